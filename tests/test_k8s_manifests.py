"""deploy/k8s: rendered by the real kustomize (`kubectl kustomize`), every object checked
against the Kubernetes API schemas (kubernetes-validate, strict: unknown fields are
errors), and the parts only the gateway can judge checked against the gateway itself:
the env names are settings, the ConfigMaps hold the config that loads, the probes are
its health endpoints, the grace period covers the drain."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gateway.config import load_config
from gateway.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30.0"  # the oldest release the manifests promise to fit


def render(directory: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl not on PATH (scripts/test.sh installs kubernetes-client)"
    out = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True,
                         check=True, timeout=60).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="module", params=["base", "overlays/example"])
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(K8S / request.param)


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def test_every_object_validates_against_the_kubernetes_schemas(rendered):
    kinds = {o["kind"] for o in rendered}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
            "ConfigMap", "Secret", "StatefulSet"} <= kinds
    for obj in rendered:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_the_validator_refuses_a_broken_object(rendered):
    """The check above can fail: a misspelt field and a wrong type are both errors."""
    deployment = by_kind(rendered, "Deployment")["gateway"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    for broken in ({**container, "readinesProbe": {"httpGet": {"path": "/readyz",
                                                               "port": "http"},
                                                   "periodSecond": 2}},
                   {**container, "ports": [{"containerPort": "8080"}]}):
        spec = {**deployment["spec"], "template": {
            **deployment["spec"]["template"],
            "spec": {**deployment["spec"]["template"]["spec"], "containers": [broken]}}}
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate({**deployment, "spec": spec}, KUBERNETES_VERSION,
                                         strict=True)


def test_selectors_and_targets_meet(rendered):
    deployments = {**by_kind(rendered, "Deployment"), **by_kind(rendered, "StatefulSet")}
    for name, d in deployments.items():
        labels = d["spec"]["template"]["metadata"]["labels"]
        assert d["spec"]["selector"]["matchLabels"].items() <= labels.items(), name
    pod_labels = [d["spec"]["template"]["metadata"]["labels"] for d in deployments.values()]
    for name, svc in by_kind(rendered, "Service").items():
        assert any(svc["spec"]["selector"].items() <= labels.items()
                   for labels in pod_labels), f"Service {name} selects no pods"
    hpa = by_kind(rendered, "HorizontalPodAutoscaler")["gateway"]
    assert hpa["spec"]["scaleTargetRef"]["name"] in deployments
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    pdb = by_kind(rendered, "PodDisruptionBudget")["gateway"]
    gateway_labels = deployments["gateway"]["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= gateway_labels.items()
    assert hpa["spec"]["minReplicas"] > 1  # so the PDB can let one go


def gateway_pod(rendered: list[dict[str, Any]]) -> dict[str, Any]:
    pod: dict[str, Any] = by_kind(rendered, "Deployment")["gateway"]["spec"]["template"]
    return pod


def test_the_gateway_container_speaks_the_gateways_settings(rendered):
    pod = gateway_pod(rendered)
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    fields = {f"GATEWAY_{name.upper()}" for name in Settings.model_fields}
    assert set(env) <= fields, set(env) - fields  # a typo would be silently ignored
    values = {k.removeprefix("GATEWAY_").lower(): v for k, v in env.items() if v is not None}
    settings = Settings(**values, redis_url="redis://redis:6379/0")
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["spec"]["terminationGracePeriodSeconds"] >= (
        settings.drain_grace + settings.drain_timeout)
    assert settings.drain_grace > 0  # endpoints are removed while the pod is signalled
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert not any("subPath" in m for m in container["volumeMounts"])  # no live updates
    assert str(settings.routes_file.parent) == mounts["routes"]
    assert str(settings.policies_dir) == mounts["policies"]
    assert str(settings.signing_key_path) == mounts["signing-keys"]
    assert str(settings.data_dir) == mounts["data"]
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"


def test_the_configmaps_hold_the_shipped_config_and_it_loads(rendered, tmp_path: Path):
    maps = by_kind(rendered, "ConfigMap")
    routes = maps["gateway-routes"]["data"]["routes.yaml"]
    assert routes == (ROOT / "deploy" / "gateway" / "routes.yaml").read_text()
    (tmp_path / "policies").mkdir()
    for name, text in maps["gateway-policies"]["data"].items():
        assert text == (ROOT / "policies" / name).read_text(), name
        (tmp_path / "policies" / name).write_text(text)
    (tmp_path / "routes.yaml").write_text(routes)
    config = load_config(tmp_path / "routes.yaml", tmp_path / "policies")
    assert {"sentiment", "classify", "embed"} <= set(config.groups)
    services = by_kind(rendered, "Service")
    for group in ("sentiment", "classify", "embed"):  # the routes reach the in-cluster Services
        port = services[group]["spec"]["ports"][0]["port"]
        assert f"http://{group}:{port}" in routes


def test_the_workers_take_the_gateways_config_and_outlive_their_grace(rendered):
    worker = by_kind(rendered, "Deployment")["gateway-worker"]["spec"]["template"]
    container = worker["spec"]["containers"][0]
    assert container["command"][:2] == ["gateway", "worker"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    fields = {f"GATEWAY_{name.upper()}" for name in Settings.model_fields}
    assert set(env) <= fields, set(env) - fields
    gateway_env = {e["name"]: e for e in gateway_pod(rendered)["spec"]["containers"][0]["env"]}
    for name in ("GATEWAY_REDIS_URL", "GATEWAY_ROUTES_FILE", "GATEWAY_POLICIES_DIR"):
        assert {e["name"]: e for e in container["env"]}[name] == gateway_env[name]
    assert worker["spec"]["terminationGracePeriodSeconds"] > float(
        env["GATEWAY_JOBS_SHUTDOWN_GRACE"])


def test_redis_keeps_its_data(rendered):
    redis = by_kind(rendered, "StatefulSet")["redis"]
    args = redis["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert redis["spec"]["volumeClaimTemplates"]
