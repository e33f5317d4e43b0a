"""A real Prometheus (Debian's package) scrapes a live 3-node cluster under
load: every series operators rely on exists for every node (labelled
node_id), the alert rules pass `promtool check rules` and `promtool test
rules`, each rule's expression evaluates without error against the live
data, and every query of the Grafana dashboards returns data."""
import glob
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request

import yaml
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from kafka_helpers import produce, wait_for
from wire import produce_request, record_batch, roundtrip

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RULES = os.path.join(ROOT, "deploy", "prometheus", "alerts.yml")
RULE_TESTS = os.path.join(ROOT, "deploy", "prometheus", "alerts_test.yml")
DASHBOARDS = sorted(glob.glob(os.path.join(ROOT, "deploy", "grafana", "dashboards", "*.json")))

# Series every node exports once it has served some traffic.
PER_NODE = [
    "raft_leader_elections_total", "raft_append_entries_total", "raft_vote_requests_total", "raft_heartbeats_total",
    "raft_log_entries", "raft_current_term", "raft_commit_index",
    "chronik_kafka_requests_total", "chronik_kafka_request_errors_total", "chronik_kafka_request_latency_seconds_bucket",
    "chronik_kafka_bytes_in_total", "chronik_kafka_bytes_out_total", "chronik_kafka_connections",
    "chronik_partitions", "chronik_partition_leaders", "chronik_partitions_under_replicated", "chronik_partitions_leaderless",
    "chronik_storage_flushes_total", "chronik_storage_flush_seconds_total", "chronik_storage_flush_duration_seconds_bucket",
    "chronik_storage_flush_writers_bucket", "chronik_storage_disk_bytes",
    "chronik_storage_disk_free_bytes",
]
# Series only the nodes coordinating a consumer group export.
SOME_NODE = ["chronik_consumer_group_lag"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def query(port, expr):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return body["data"]["result"]


def dashboard_queries():
    """(dashboard title, panel title, expr) for every query of every dashboard."""
    out = []
    for path in DASHBOARDS:
        with open(path) as f:
            d = json.load(f)
        for p in d["panels"]:
            for t in p["targets"]:
                out.append((d["title"], p["title"], t["expr"]))
    return out


class Load:
    """Producers, a consumer group with auto-commit, and a refused produce on
    every node every few seconds, until stopped."""

    def __init__(self, cluster):
        self.c, self.stop = cluster, threading.Event()
        self.threads = [threading.Thread(target=f) for f in (self.produce, self.consume, self.errors)]
        for t in self.threads:
            t.start()

    def produce(self):
        p = Producer({"bootstrap.servers": self.c.bootstrap, "linger.ms": 5})
        i = 0
        while not self.stop.is_set():
            p.produce("prom", key=b"k%d" % i, value=b"v%d" % i)
            p.poll(0.002)
            i += 1
        p.flush(10)

    def consume(self):
        c = Consumer({"bootstrap.servers": self.c.bootstrap, "group.id": "prom-group", "auto.offset.reset": "earliest",
                      "auto.commit.interval.ms": 1000})
        c.subscribe(["prom"])
        while not self.stop.is_set():
            c.consume(500, 0.2)
        c.close()

    def errors(self):
        while not self.stop.wait(2):
            for n in self.c.nodes.values():
                roundtrip(n, produce_request("prom", 99, record_batch([b"x"])))

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)


def test_prometheus_scrapes_every_series_and_the_alert_rules_hold(cluster_factory):
    subprocess.run(["promtool", "check", "rules", RULES], check=True)
    subprocess.run(["promtool", "test", "rules", RULE_TESTS], check=True)
    assert len(DASHBOARDS) >= 4, DASHBOARDS

    c = cluster_factory(3).start()
    admin = AdminClient({"bootstrap.servers": c.bootstrap})
    admin.create_topics([NewTopic("prom", 3, 3)])["prom"].result(30)
    wait_for("leaders", lambda: (l := c.leaders("prom")) and all(l.values()))

    base = tempfile.mkdtemp(prefix="chronik-prom-")
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [RULES],
        "scrape_configs": [{"job_name": "chronik",
                            "static_configs": [{"targets": [f"127.0.0.1:{n.port + 200}" for n in c.nodes.values()]}]}],
    }
    with open(os.path.join(base, "prometheus.yml"), "w") as f:
        yaml.safe_dump(config, f)
    prom = subprocess.Popen(["prometheus", f"--config.file={base}/prometheus.yml", f"--storage.tsdb.path={base}/data",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(base, "prometheus.log"), "w"))
    load = Load(c)
    try:
        wait_for("three targets up", lambda: len([r for r in query(port, 'up{job="chronik"} == 1')]) == 3, timeout=60)
        missing = {}

        def all_present():
            missing.clear()
            for name in PER_NODE:
                nodes = {r["metric"].get("node_id") for r in query(port, f"count by (node_id) ({name})")}
                if nodes != {"1", "2", "3"}:
                    missing[name] = sorted(n for n in nodes if n)
            for name in SOME_NODE:
                if not query(port, f"count by (node_id) ({name})"):
                    missing[name] = []
            return not missing
        try:
            wait_for("every series from every node", all_present, timeout=90)
        except AssertionError:
            raise AssertionError(f"series missing (nodes that have them): {missing}")
        lag = query(port, 'sum(chronik_consumer_group_lag{group="prom-group"})')
        assert lag and float(lag[0]["value"][1]) >= 0
        with open(RULES) as f:
            rules = [r for g in yaml.safe_load(f)["groups"] for r in g["rules"]]
        for r in rules:
            query(port, r["expr"])  # evaluates without error on live data
        empty = []

        def dashboards_answer():
            empty.clear()
            for board, panel, expr in dashboard_queries():
                result = query(port, expr)
                if not result or all(math.isnan(float(r["value"][1])) for r in result):
                    empty.append(f"{board} / {panel}: {expr}")
            return not empty
        try:
            wait_for("every dashboard query to return data", dashboards_answer, timeout=90, interval=1)
        except AssertionError:
            raise AssertionError("dashboard queries with no data under load:\n" + "\n".join(empty))
    finally:
        load.finish()
        prom.send_signal(signal.SIGTERM)
        prom.wait(30)
        shutil.rmtree(base, ignore_errors=True)
