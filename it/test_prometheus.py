"""A real Prometheus (Debian's package) scrapes a live 3-node cluster under
load: every series operators rely on exists for every node (labelled
node_id), the alert rules pass `promtool check rules` and `promtool test
rules`, and each rule's expression evaluates without error against the live
data."""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

import yaml
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

from kafka_helpers import produce, wait_for
from wire import produce_request, record_batch, roundtrip

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RULES = os.path.join(ROOT, "deploy", "prometheus", "alerts.yml")
RULE_TESTS = os.path.join(ROOT, "deploy", "prometheus", "alerts_test.yml")

# Series every node exports once it has served some traffic.
PER_NODE = [
    "raft_leader_elections_total", "raft_append_entries_total", "raft_vote_requests_total", "raft_heartbeats_total",
    "raft_log_entries", "raft_current_term", "raft_commit_index",
    "chronik_kafka_requests_total", "chronik_kafka_request_errors_total", "chronik_kafka_request_latency_seconds_bucket",
    "chronik_kafka_bytes_in_total", "chronik_kafka_bytes_out_total", "chronik_kafka_connections",
    "chronik_partitions", "chronik_partition_leaders", "chronik_partitions_under_replicated", "chronik_partitions_leaderless",
    "chronik_storage_flushes_total", "chronik_storage_flush_seconds_total", "chronik_storage_disk_bytes",
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


def test_prometheus_scrapes_every_series_and_the_alert_rules_hold(cluster_factory):
    subprocess.run(["promtool", "check", "rules", RULES], check=True)
    subprocess.run(["promtool", "test", "rules", RULE_TESTS], check=True)

    c = cluster_factory(3).start()
    admin = AdminClient({"bootstrap.servers": c.bootstrap})
    admin.create_topics([NewTopic("prom", 3, 3)])["prom"].result(30)
    wait_for("leaders", lambda: (l := c.leaders("prom")) and all(l.values()))
    produce(c.bootstrap, "prom", [(b"k%d" % i, b"v%d" % i) for i in range(3000)], acks="all")
    consumer = Consumer({"bootstrap.servers": c.bootstrap, "group.id": "prom-group", "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    consumer.subscribe(["prom"])
    got = 0
    deadline = time.time() + 30
    while got < 1000 and time.time() < deadline:
        got += len([m for m in consumer.consume(500, 0.2) if not m.error()])
    consumer.commit(asynchronous=False)
    consumer.close()
    # An error on every node: a produce to a partition that does not exist.
    for n in c.nodes.values():
        roundtrip(n, produce_request("prom", 99, record_batch([b"x"])))

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
            wait_for("every series from every node", all_present, timeout=30)
        except AssertionError:
            raise AssertionError(f"series missing (nodes that have them): {missing}")
        lag = query(port, 'sum(chronik_consumer_group_lag{group="prom-group"})')
        assert lag and float(lag[0]["value"][1]) >= 0
        with open(RULES) as f:
            rules = [r for g in yaml.safe_load(f)["groups"] for r in g["rules"]]
        for r in rules:
            query(port, r["expr"])  # evaluates without error on live data
    finally:
        prom.send_signal(signal.SIGTERM)
        prom.wait(30)
        shutil.rmtree(base, ignore_errors=True)
