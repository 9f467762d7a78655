"""docker-compose.yml: parsed by a compose client and checked for the topology the
observability tests run as plain processes (no Docker engine is needed for either)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Any

import redis
import yaml

from gateway.config import load_config
from tests.observability.stack import ROOT

COMPOSE_FILE = ROOT / "docker-compose.yml"
SERVICES = {"gateway", "worker", "redis", "sentiment", "classify", "embed", "prometheus",
            "grafana"}


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return doc


def test_compose_client_accepts_the_file() -> None:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose not found on PATH: apt-get install docker-compose"
    result = subprocess.run([binary, "-f", str(COMPOSE_FILE), "config", "--quiet"],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    services = subprocess.run([binary, "-f", str(COMPOSE_FILE), "config", "--services"],
                              capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert set(services.stdout.split()) == SERVICES


def test_every_service_has_a_health_check_and_waits_for_what_it_needs() -> None:
    services = compose()["services"]
    assert set(services) == SERVICES
    for name, service in services.items():
        assert service["healthcheck"]["test"][0] == "CMD", name
    gateway = services["gateway"]
    assert {k: v["condition"] for k, v in gateway["depends_on"].items()} == {
        "redis": "service_healthy", "sentiment": "service_healthy",
        "classify": "service_healthy", "embed": "service_healthy"}
    assert gateway["environment"]["GATEWAY_REDIS_URL"] == "redis://redis:6379/0"
    assert "--workers" in gateway["command"]
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"
    for name in ("gateway", "worker", "sentiment", "classify", "embed"):  # one image
        assert services[name]["build"] == "." and services[name]["image"] == "ai-gateway:local"
    assert (ROOT / "Dockerfile").is_file()
    # Published on loopback only.
    for service in services.values():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), port


def test_mounted_files_exist_and_fit_together() -> None:
    services = compose()["services"]
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
    # Prometheus loads the alert rules and scrapes every service by its compose name.
    mounts = {v.split(":")[1]: v.split(":")[0] for v in services["prometheus"]["volumes"]}
    config_path = ROOT / mounts["/etc/prometheus/prometheus.yml"]
    config = yaml.safe_load(config_path.read_text())
    for rules in config["rule_files"]:
        assert f"/etc/prometheus/{rules}" in mounts
    scraped = {job["job_name"]: job["static_configs"][0]["targets"][0]
               for job in config["scrape_configs"]}
    for job in ("gateway", "worker", "sentiment", "classify", "embed"):
        host, port = scraped[job].split(":")
        assert host == job and port in str(services[job]["command"]) + str(
            services[job].get("ports", ""))
    # Grafana gets the datasource and dashboards; the datasource is the compose Prometheus.
    grafana = {v.split(":")[1]: v.split(":")[0] for v in services["grafana"]["volumes"]
               if v.startswith("./")}
    datasources = ROOT / grafana["/etc/grafana/provisioning/datasources"]
    source = yaml.safe_load((datasources / "prometheus.yml").read_text())["datasources"][0]
    assert source["url"] == "http://prometheus:9090" and source["uid"] == "prometheus"
    providers = ROOT / grafana["/etc/grafana/provisioning/dashboards"]
    provider = yaml.safe_load((providers / "provider.yml").read_text())["providers"][0]
    dashboards = ROOT / grafana[provider["options"]["path"]]
    assert {p.name for p in dashboards.glob("*.json")} == {
        "gateway-overview.json", "inference-services.json"}


def test_compose_routes_are_the_shipped_routes_on_service_names() -> None:
    gateway = compose()["services"]["gateway"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in gateway["volumes"]}
    routes = ROOT / mounts[gateway["environment"]["GATEWAY_ROUTES_FILE"]]
    policies = ROOT / mounts[gateway["environment"]["GATEWAY_POLICIES_DIR"]]
    stack = load_config(routes, policies)
    shipped = load_config(ROOT / "routes.yaml", ROOT / "policies")
    assert stack.routes.keys() == shipped.routes.keys()
    for name, route in stack.routes.items():
        assert route.spec.model_dump(exclude={"upstream"}) == \
            shipped.routes[name].spec.model_dump(exclude={"upstream"})
    hosts = {t.url for g in stack.groups.values() for t in g.targets}
    assert hosts == {"http://sentiment:8101", "http://classify:8102", "http://embed:8103"}



def test_redis_keeps_the_credentials_on_a_volume() -> None:
    doc = compose()
    redis = doc["services"]["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert "--save" not in command or command[command.index("--save") + 1] != ""
    volume, target = redis["volumes"][0].split(":")[:2]
    assert target == "/data" and volume in doc["volumes"]  # a named volume, not the image


def test_the_readme_issues_a_key_inside_the_stack(redis_server, tmp_path) -> None:
    command = "docker compose exec gateway gateway keys create --tenant demo"
    assert command in (ROOT / "README.md").read_text()
    # What that command runs in the gateway container: the service's environment, its
    # mounts at their host paths, Redis at a throwaway one. The key lands in the store
    # that every worker of the stack reads.
    gateway = compose()["services"]["gateway"]
    mounts = {v.split(":")[1]: str(ROOT / v.split(":")[0]) for v in gateway["volumes"]}
    env = {k: mounts.get(v, v) for k, v in gateway["environment"].items()}
    assert env.pop("GATEWAY_REDIS_URL") == "redis://redis:6379/0"
    env |= {"GATEWAY_REDIS_URL": redis_server.url, "GATEWAY_DATA_DIR": str(tmp_path)}
    argv = command.split()[command.split().index("exec") + 2:]
    assert argv[0] == "gateway" and shutil.which("gateway", path=os.path.dirname(
        sys.executable))
    done = subprocess.run([sys.executable, "-m", "gateway", *argv[1:]], env={
        **{k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}, **env},
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    key_id = done.stdout.strip().split("_")[1]
    stored = redis.Redis.from_url(redis_server.url)
    try:
        assert stored.hexists("gw:auth:keys", key_id)
    finally:
        stored.close()


def test_the_image_copies_what_the_package_build_reads_before_it_runs() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    needed = {project["readme"], *project["license-files"], "pyproject.toml"}
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    install = next(i for i, line in enumerate(lines) if "pip install" in line)
    copied = {word for line in lines[:install] if line.startswith("COPY")
              for word in line.split()[1:-1]}
    assert needed <= copied, needed - copied
