"""The `chronik` command-line client against a live node: readable tables,
--json for scripts, and a non-zero exit with the API's message on errors."""
import json
import os
import subprocess

from kafka_helpers import produce, wait_for

CLI = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "target", "release", "chronik")


def cli(node, *args):
    return subprocess.run([CLI, "--admin", node.admin, *args], capture_output=True, text=True, timeout=60)


def test_cli_drives_topics_and_reports_errors(node):
    # Right after start the controller may not be elected yet: status says so.
    r = wait_for("status to report ready", lambda: (r := cli(node, "status")).returncode == 0 and "ready: yes" in r.stdout and r)
    assert "CONTROLLER" in r.stdout and "*" in r.stdout, r

    r = cli(node, "topic", "create", "cli-t", "--partitions", "2", "--config", "retention.ms=60000")
    assert r.returncode == 0 and "created topic cli-t" in r.stdout, r
    produce(node.bootstrap, "cli-t", [(b"k", b"v%d" % i) for i in range(10)], acks="all")

    r = cli(node, "topics")
    assert r.returncode == 0
    row = next(line.split() for line in r.stdout.splitlines() if line.startswith("cli-t"))
    assert row == ["cli-t", "2", "1", "0"], row

    r = cli(node, "--json", "topic", "describe", "cli-t")
    t = json.loads(r.stdout)
    assert sum(p["high_watermark"] for p in t["partitions"]) == 10 and t["configs"]["retention.ms"] == "60000"

    r = cli(node, "topic", "create", "cli-t")
    assert r.returncode == 1 and "already exists" in r.stderr and "409" in r.stderr, r
    r = cli(node, "topic", "describe", "no-such-topic")
    assert r.returncode == 1 and "does not exist" in r.stderr, r

    r = cli(node, "topic", "delete", "cli-t")
    assert r.returncode == 0 and "deleted topic cli-t" in r.stdout
    assert "cli-t" not in cli(node, "topics").stdout

    r = subprocess.run([CLI, "--admin", "http://127.0.0.1:1", "status"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "cannot reach" in r.stderr
