"""The deployment files, checked by the tools this machine has: the
Kubernetes manifests against the API schemas (kubernetes-validate), the
systemd unit by systemd-analyze, and the docker compose file, Prometheus
config and Grafana provisioning for consistency with each other and with
the cluster config the nodes read. (`docker compose config` needs the
compose plugin, which is not installed here.)"""
import json
import os
import re
import subprocess
import tempfile
import tomllib

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEPLOY = os.path.join(ROOT, "deploy")
BINARY = os.path.join(ROOT, "target", "release", "chronik-server")


def load_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def test_kubernetes_manifests_are_valid_and_consistent():
    path = os.path.join(DEPLOY, "k8s", "chronik.yaml")
    r = subprocess.run(["kubernetes-validate", "--strict", path], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    docs = {d["kind"]: d for d in load_all(path)}
    sts, svc, cm = docs["StatefulSet"], docs["Service"], docs["ConfigMap"]
    assert svc["spec"]["clusterIP"] == "None" and sts["spec"]["serviceName"] == svc["metadata"]["name"]
    container = sts["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/v1/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v1/health/ready"
    # Pod chronik-<ordinal> runs node ordinal + 1, listed in the cluster config.
    nodes = tomllib.loads(cm["data"]["cluster.toml"])["cluster"]["nodes"]
    for ordinal in range(sts["spec"]["replicas"]):
        node = next(n for n in nodes if n["id"] == ordinal + 1)
        assert node["kafka_addr"].startswith(f"{sts['metadata']['name']}-{ordinal}.{svc['metadata']['name']}:")
    assert "${HOSTNAME##*-} + 1" in container["args"][0]


def test_systemd_unit_verifies():
    with open(os.path.join(DEPLOY, "systemd", "chronik.service")) as f:
        unit = f.read().replace("/usr/local/bin/chronik-server", BINARY)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "chronik.service")
        with open(path, "w") as f:
            f.write(unit)
        r = subprocess.run(["systemd-analyze", "verify", path], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "chronik.service" not in r.stderr, r.stderr


def test_compose_prometheus_and_grafana_fit_together():
    compose = load_all(os.path.join(DEPLOY, "docker-compose.yml"))[0]
    with open(os.path.join(DEPLOY, "docker", "cluster.toml"), "rb") as f:
        nodes = tomllib.load(f)["cluster"]["nodes"]
    chronik = {k: v for k, v in compose["services"].items() if k.startswith("chronik")}
    assert len(chronik) == len(nodes) == 3
    for name, svc in chronik.items():
        node_id = int(svc["command"][svc["command"].index("--node-id") + 1])
        node = next(n for n in nodes if n["id"] == node_id)
        assert node["kafka_addr"] == f"{name}:9092" and svc["hostname"] == name
        for vol in svc["volumes"]:
            src = vol.split(":")[0]
            if src.startswith("./"):
                assert os.path.exists(os.path.join(DEPLOY, src)), src
    prom = load_all(os.path.join(DEPLOY, "docker", "prometheus.yml"))[0]
    targets = prom["scrape_configs"][0]["static_configs"][0]["targets"]
    assert sorted(targets) == sorted(f"{n}:9292" for n in chronik)
    for svc in ("prometheus", "grafana"):
        for vol in compose["services"][svc]["volumes"]:
            assert os.path.exists(os.path.join(DEPLOY, vol.split(":")[0])), vol
    ds = load_all(os.path.join(DEPLOY, "grafana", "provisioning", "datasources", "prometheus.yml"))[0]
    uid = ds["datasources"][0]["uid"]
    for name in os.listdir(os.path.join(DEPLOY, "grafana", "dashboards")):
        with open(os.path.join(DEPLOY, "grafana", "dashboards", name)) as f:
            board = json.load(f)
        assert board["panels"], name
        for p in board["panels"]:
            assert p["datasource"]["uid"] == uid and p["targets"], (name, p["title"])
