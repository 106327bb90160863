"""deploy/ is ready to copy: the Dockerfile, the compose file, the Kubernetes manifests, the
Prometheus and Grafana files parse, agree with each other (names, ports, probes, grace
periods) and with the code (every `conveyor` command line parses with the real CLI, every
metric they query is one a real /metrics serves)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from .conftest import DEPLOY, load_yaml, metric_names, parse_command

K8S = DEPLOY / "kubernetes"


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines
            if line and not line.startswith("#")]


def exec_form(argument: str) -> list[str]:
    parsed = json.loads(argument)
    assert isinstance(parsed, list)
    return [str(part) for part in parsed]


def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    found = {}
    for path in sorted(K8S.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in load_yaml(path):
            found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    assert isinstance(only, dict)
    return only


def grace_of(args: list[str]) -> float:
    return float(parse_command(args)[1]["grace"])


# -- the image -----------------------------------------------------------------------------
def test_dockerfile_runs_conveyor_as_a_user_without_privileges() -> None:
    steps = dockerfile_instructions()
    final = steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM"):]
    users = [arg for op, arg in final if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert [exec_form(arg) for op, arg in final if op == "ENTRYPOINT"] == [["conveyor"]]
    (cmd,) = [exec_form(arg) for op, arg in final if op == "CMD"]
    assert parse_command(cmd)[0] == "serve"
    (health,) = [arg for op, arg in final if op == "HEALTHCHECK"]
    probe = exec_form(health.split("CMD", 1)[1].strip())
    assert probe[0] == "conveyor" and parse_command(probe[1:])[0] == "check"
    env = " ".join(arg for op, arg in final if op == "ENV")
    exposed = {int(p) for op, arg in final if op == "EXPOSE" for p in arg.split()}
    ports = {int(p) for p in re.findall(r"CONVEYOR_(?:HEALTH_)?PORT=(\d+)", env)}
    assert ports == exposed == {8000, 8001}


def test_dockerfile_builds_the_front_end_and_installs_real_extras() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert "npm" in text and "python -m build --wheel" in text
    extras = set(re.search(r"\[([a-z,]+)\]\"", text).group(1).split(","))  # type: ignore[union-attr]
    import tomllib

    from tests.helpers import ROOT
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert extras <= set(declared) and "server" in extras and "redis" in extras
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    for needed in ("src", "pyproject.toml", "setup.py", "MANIFEST.in", "README.md",
                   "LICENSE", "examples"):
        assert needed not in ignored and f"{needed}/" not in ignored


# -- compose ---------------------------------------------------------------------------------
def test_compose_runs_redis_durably_the_api_two_workers_prometheus_and_grafana() -> None:
    (compose,) = load_yaml(DEPLOY / "compose.yaml")
    services = compose["services"]
    assert {"redis", "api", "worker", "prometheus", "grafana"} <= set(services)
    redis = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis and "--maxmemory-policy noeviction" in redis
    assert parse_command(services["api"]["command"])[0] == "serve"
    worker = services["worker"]
    assert parse_command(worker["command"])[0] == "worker"
    assert worker["deploy"]["replicas"] == 2
    assert float(worker["stop_grace_period"].removesuffix("s")) > grace_of(worker["command"])
    for name in ("api", "worker"):
        probe = services[name]["healthcheck"]["test"]
        assert probe[:2] == ["CMD", "conveyor"] and parse_command(probe[2:])[0] == "check"
    assert "--worker" in worker["healthcheck"]["test"]
    assert services["api"]["environment"]["CONVEYOR_URL"].startswith("redis://redis:")


def test_compose_mounts_files_that_exist_and_prometheus_holds_a_read_token() -> None:
    (compose,) = load_yaml(DEPLOY / "compose.yaml")
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), source
    (prometheus,) = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    (job,) = prometheus["scrape_configs"]
    assert job["static_configs"][0]["targets"] == ["api:8000"]
    tokens = compose["services"]["api"]["environment"]["CONVEYOR_TOKENS"]
    assert f"read:{job['authorization']['credentials']}" in tokens.split(",")


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool (Debian package prometheus) is missing")
def test_promtool_accepts_the_prometheus_config_and_its_rules() -> None:
    checked = subprocess.run(["promtool", "check", "config",
                              str(DEPLOY / "prometheus" / "prometheus.yml")],
                             capture_output=True, text=True, timeout=60, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


# -- Kubernetes ----------------------------------------------------------------------------
def test_kustomization_lists_files_that_exist_and_one_autoscaler() -> None:
    (kustomization,) = load_yaml(K8S / "kustomization.yaml")
    for resource in kustomization["resources"]:
        assert (K8S / resource).is_file(), resource
    assert sum("autoscaling/" in r for r in kustomization["resources"]) == 1


def test_deployments_select_their_own_pods_and_run_real_commands() -> None:
    found = manifests()
    for name, command in (("conveyor-serve", "serve"), ("conveyor-worker", "worker")):
        deployment = found[("Deployment", name)]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        spec = container(deployment)
        assert parse_command(spec["args"])[0] == command
        assert spec["image"] == "conveyor"  # kustomization's images: entry rewrites it
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0


def test_probes_use_the_ports_the_commands_listen_on() -> None:
    found = manifests()
    serve = container(found[("Deployment", "conveyor-serve")])
    ports = {p["name"]: p["containerPort"] for p in serve["ports"]}
    assert ports["http"] == parse_command(serve["args"])[1]["port"]
    worker = container(found[("Deployment", "conveyor-worker")])
    worker_ports = {p["name"]: p["containerPort"] for p in worker["ports"]}
    assert worker_ports["health"] == parse_command(worker["args"])[1]["health_port"]
    for spec, named in ((serve, ports), (worker, worker_ports)):
        for kind in ("livenessProbe", "readinessProbe"):
            probe = spec[kind]["httpGet"]
            assert probe["port"] in named and probe["path"] in ("/healthz", "/readyz")
    assert worker["readinessProbe"]["httpGet"]["path"] == "/readyz"  # backend answers


def test_worker_termination_grace_period_exceeds_its_shutdown_grace() -> None:
    worker = manifests()[("Deployment", "conveyor-worker")]
    grace = grace_of(container(worker)["args"])
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > grace


def test_service_pdbs_monitor_and_autoscalers_point_at_what_exists() -> None:
    found = manifests()
    serve_labels = found[("Deployment", "conveyor-serve")]["spec"]["template"]["metadata"][
        "labels"]
    service = found[("Service", "conveyor-serve")]
    assert service["spec"]["selector"].items() <= serve_labels.items()
    names = {p["name"] for p in container(found[("Deployment", "conveyor-serve")])["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= names
    for name in ("conveyor-serve", "conveyor-worker"):
        pods = found[("Deployment", name)]["spec"]["template"]["metadata"]["labels"]
        selector = found[("PodDisruptionBudget", name)]["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pods.items()
    monitor = found[("ServiceMonitor", "conveyor")]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= \
        service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in
                                                       service["spec"]["ports"]}
    secret = found[("Secret", "conveyor-secrets")]["stringData"]
    credentials = monitor["spec"]["endpoints"][0]["authorization"]["credentials"]
    assert f"read:{secret[credentials['key']]}" in secret["CONVEYOR_TOKENS"].split(",")
    for kind in ("ScaledObject", "HorizontalPodAutoscaler"):
        target = found[(kind, "conveyor-worker")]["spec"]["scaleTargetRef"]["name"]
        assert ("Deployment", target) in found


def test_autoscalers_scale_the_workers_on_the_queues_they_consume() -> None:
    found = manifests()
    queues = parse_command(container(found[("Deployment", "conveyor-worker")])["args"])[1][
        "queues"]
    consumed = set(",".join(queues).split(","))
    (trigger,) = found[("ScaledObject", "conveyor-worker")]["spec"]["triggers"]
    assert trigger["type"] == "prometheus"
    query = trigger["metadata"]["query"]
    assert 'conveyor_queue_jobs{state="waiting"' in query
    assert set(re.search(r'queue=~"([^"]+)"', query).group(1).split("|")) == consumed  # type: ignore[union-attr]
    (metric,) = found[("HorizontalPodAutoscaler", "conveyor-worker")]["spec"]["metrics"]
    (expression,) = metric["external"]["metric"]["selector"]["matchExpressions"]
    assert set(expression["values"]) == consumed


# -- metrics the files query ----------------------------------------------------------------
def test_every_metric_the_deploy_files_query_is_served(served_metrics: set[str]) -> None:
    keda = manifests()[("ScaledObject", "conveyor-worker")]["spec"]["triggers"][0]
    queried = {
        "keda": metric_names(keda["metadata"]["query"]),
        "alerts": metric_names(yaml.safe_dump(load_yaml(DEPLOY / "prometheus" /
                                                        "alerts.yml")[0]["groups"])),
        "grafana": metric_names(" ".join(
            target["expr"] for panel in grafana()["panels"] for target in panel["targets"])),
        "grafana variables": metric_names(json.dumps(grafana()["templating"])),
    }
    for where, names in queried.items():
        assert names, f"{where} queries no metric"
        assert names <= served_metrics, f"{where}: not served: {sorted(names - served_metrics)}"


def grafana() -> dict[str, Any]:
    loaded = json.loads((DEPLOY / "grafana" / "conveyor.json").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_grafana_dashboard_covers_what_operators_watch() -> None:
    dashboard = grafana()
    titles = " | ".join(panel["title"].lower() for panel in dashboard["panels"])
    for topic in ("queue depth", "throughput", "failure rate", "wait time", "run time",
                  "dead letters", "workers", "worker slots"):
        assert topic in titles, topic
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert any("histogram_quantile(0.95" in e and "conveyor_job_wait_seconds_bucket" in e
               for e in exprs)
    assert any(e.startswith("sum by (queue) (rate(conveyor_jobs_finished_total") for e in exprs)
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    (datasource,) = load_yaml(DEPLOY / "grafana" / "provisioning" / "datasources" /
                              "prometheus.yml")
    uid = datasource["datasources"][0]["uid"]
    variable = next(v for v in dashboard["templating"]["list"] if v["name"] == "datasource")
    assert variable["current"]["value"] == uid
    assert all(panel["datasource"]["uid"] == "${datasource}" for panel in dashboard["panels"])


def test_compose_commands_quote_cleanly() -> None:
    (compose,) = load_yaml(DEPLOY / "compose.yaml")
    for service in ("api", "worker"):
        assert shlex.split(shlex.join(compose["services"][service]["command"])) == \
            compose["services"][service]["command"]
