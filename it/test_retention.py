"""Retention and DeleteRecords: the log start moves on every replica, offsets
never shift, reads below the log start are out of range, and Kafka's own
DeleteRecords tool, librdkafka's AdminClient, the admin API and the CLI all
move it."""
import glob
import json
import os
import subprocess
import time
import urllib.request

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from kafka_helpers import wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = os.path.join(ROOT, "target", "release", "chronik")
# Where `make bench-compare` keeps them too.
KAFKA_LIB = os.environ.get("KAFKA_LIB", os.path.join(ROOT, "target", "apache-kafka-4.4.0", "lib"))


def produce_batches(bootstrap, topic, batches, per_batch, size=100, partition=0):
    """`batches` record batches of `per_batch` records each (one flush per batch)."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1000, "acks": "all"})
    acked = []
    for b in range(batches):
        for i in range(per_batch):
            p.produce(topic, key=b"k%d" % (b * per_batch + i), value=b"x" * size, partition=partition,
                      on_delivery=lambda err, m: acked.append(m.offset()) if err is None else None)
        assert p.flush(30) == 0
    assert len(acked) == batches * per_batch, f"{len(acked)} acknowledged"
    return sorted(acked)


def watermarks(bootstrap, topic, partition=0):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "wm"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    finally:
        c.close()


def read_from(bootstrap, topic, offset, expected, reset="earliest"):
    """Offsets read after assigning at `offset`, until `expected` arrived."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"rd-{time.time_ns()}", "auto.offset.reset": reset,
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, offset)])
    got, errors = [], []
    deadline = time.time() + 30
    while len(got) < expected and time.time() < deadline and not errors:
        for m in c.consume(num_messages=500, timeout=0.5):
            if m.error():
                errors.append(m.error())
            else:
                got.append(m.offset())
    c.close()
    return got, errors


def delete_records(bootstrap, topic, offset, partition=0):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fs = admin.delete_records([TopicPartition(topic, partition, offset)], request_timeout=30)
    return list(fs.values())[0].result(timeout=60)


def create(bootstrap, topic, rf=1, partitions=1, config=None):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, rf, config=config or {})])[topic].result(timeout=30)


def post(url, body, method="POST"):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def test_delete_records_moves_the_log_start_and_keeps_offsets(node_factory):
    node = node_factory().start()
    b = node.bootstrap
    create(b, "dr")
    assert produce_batches(b, "dr", 10, 10) == list(range(100))

    # librdkafka's AdminClient: offset 35 is inside the batch 30..39, which
    # stays whole; the log start is 35, as Kafka's low watermark would be.
    assert delete_records(b, "dr", 35).low_watermark == 35
    assert watermarks(b, "dr") == (35, 100)
    got, errors = read_from(b, "dr", 0, 65)
    assert not errors and got == list(range(35, 100)), "an out-of-range position resets to the log start"
    got, errors = read_from(b, "dr", 10, 1, reset="error")
    assert errors and got == [], "a read below the log start is out of range"
    # An offset below the log start changes nothing; beyond the end is refused.
    assert delete_records(b, "dr", 20).low_watermark == 35
    with pytest.raises(Exception) as e:
        delete_records(b, "dr", 101)
    assert "OFFSET_OUT_OF_RANGE" in str(e.value), e.value

    # The admin API, then the CLI (-1: everything up to the high watermark).
    status, r = post(f"{node.admin}/v1/topics/dr/partitions/0/delete-records", {"offset": 60})
    assert status == 200 and r["log_start_offset"] == 60, r
    status, r = post(f"{node.admin}/v1/topics/dr/partitions/0/delete-records", {"offset": 500})
    assert status == 400 and "out of range" in r["error"], r
    out = subprocess.run([CLI, "--admin", node.admin, "topic", "delete-records", "dr", "--partition", "0", "--offset", "-1"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "now starts at offset 100" in out.stdout, out
    assert watermarks(b, "dr") == (100, 100)
    metrics = urllib.request.urlopen(f"{node.admin}/metrics", timeout=10).read().decode()
    assert 'chronik_log_trims_total{node_id="1",reason="delete_records"} 3' in metrics
    assert 'chronik_log_trimmed_records_total{node_id="1",reason="delete_records"} 100' in metrics

    # Offsets go on from where they were, and the log start survives a restart.
    assert produce_batches(b, "dr", 1, 5) == list(range(100, 105))
    node.stop()
    node.start()
    assert wait_for("the partition to serve", lambda: watermarks(b, "dr")) == (100, 105)
    got, errors = read_from(b, "dr", 0, 5)
    assert not errors and got == list(range(100, 105))

    # The offsets topic is Chronik's own: its records are not for deleting.
    status, r = post(f"{node.admin}/v1/topics/__consumer_offsets/partitions/0/delete-records", {"offset": -1})
    assert status in (400, 404), r


def test_retention_by_time_and_size_on_a_schedule(node_factory):
    node = node_factory(["--log-retention-check-interval-ms", "200", "--log-retention-ms", "86400000"]).start()
    b = node.bootstrap
    create(b, "by-time", config={"retention.ms": "1500"})
    create(b, "by-size", config={"retention.bytes": "3000"})
    create(b, "compacted", config={"cleanup.policy": "compact", "retention.ms": "1"})
    create(b, "default")
    for t in ["by-time", "by-size", "compacted", "default"]:
        produce_batches(b, t, 8, 10)

    # Every batch of by-time expires: the log start reaches the end.
    wait_for("time retention", lambda: watermarks(b, "by-time") == (80, 80), timeout=20)
    # by-size keeps the newest batches holding at least 3000 bytes.
    low, high = wait_for("size retention", lambda: (w := watermarks(b, "by-size"))[0] > 0 and w)
    assert high == 80 and low % 10 == 0 and 20 <= high - low < 80, (low, high)
    got, errors = read_from(b, "by-size", low, high - low)
    assert not errors and got == list(range(low, high))
    time.sleep(1)
    assert watermarks(b, "by-size") == (low, high), "retention stops where the bound holds"
    # Compacted topics are not deleted by time; the broker default is 1 day.
    assert watermarks(b, "compacted") == (0, 80)
    assert watermarks(b, "default") == (0, 80)
    admin = AdminClient({"bootstrap.servers": b})
    res = ConfigResource("topic", "default")
    configs = admin.describe_configs([res])[res].result(timeout=30)
    assert configs["retention.ms"].value == "86400000", "the broker's default is reported"

    # New records expire in their turn.
    produce_batches(b, "by-time", 1, 10)
    wait_for("time retention of new records", lambda: watermarks(b, "by-time") == (90, 90), timeout=20)
    metrics = urllib.request.urlopen(f"{node.admin}/metrics", timeout=10).read().decode()
    assert 'chronik_log_trims_total{node_id="1",reason="retention"}' in metrics


def test_replicas_agree_on_the_log_start_across_a_failover(cluster_factory):
    c = cluster_factory(3).start()
    create(c.bootstrap, "dr3", rf=3)
    produce_batches(c.bootstrap, "dr3", 6, 10)
    leader = wait_for("a leader", lambda: c.leaders("dr3").get(0))
    other = next(i for i in c.nodes if i != leader)
    # Any node's admin API passes the request to the leader.
    status, r = post(f"{c.nodes[other].admin}/v1/topics/dr3/partitions/0/delete-records", {"offset": 25})
    assert status == 200 and r["log_start_offset"] == 25, r

    def starts():
        return {i: next(x["log_start_offset"] for x in c.admin_get(i, "/v1/replicas") if x["topic"] == "dr3")
                for i, n in c.nodes.items() if n.alive()}
    wait_for("every replica to apply the trim", lambda: set(starts().values()) == {25})
    digests = {i: c.admin_get(i, "/v1/replicas/dr3/0/digest") for i in c.nodes}
    assert len({(d["high_watermark"], d["batches"], d["crc32c"]) for d in digests.values()}) == 1, digests

    c.nodes[leader].stop()

    def after_failover():
        try:
            return watermarks(c.live_bootstrap(), "dr3")
        except KafkaException:
            return None  # the consumer still asked the old leader
    assert wait_for("a new leader", after_failover, timeout=60) == (25, 60)
    got, errors = read_from(c.live_bootstrap(), "dr3", 0, 35)
    assert not errors and got == list(range(25, 60))


def replica_of(c, node_id, topic, partition=0):
    return next(x for x in c.admin_get(node_id, "/v1/replicas") if x["topic"] == topic and x["partition"] == partition)


def test_a_follower_stopped_across_a_purge_catches_up_by_snapshot(cluster_factory):
    """Retention frees whole segments of the Raft log; a follower that missed
    them installs the leader's snapshot (no records) and then receives what is
    still retained by appends, ending byte-identical to the leader."""
    c = cluster_factory(3, extra_args=["--log-retention-check-interval-ms", "300"]).start()
    create(c.bootstrap, "purged", rf=3, config={"retention.bytes": "20000", "segment.ms": "1000"})
    produce_batches(c.bootstrap, "purged", 2, 10)
    leader = wait_for("a leader", lambda: c.leaders("purged").get(0))
    follower = next(i for i in c.nodes if i != leader)
    c.nodes[follower].stop()
    # About 1.2 KB a batch: 60 batches hold 3-4x retention.bytes, and with a
    # pause between rounds segments close by age.
    for _ in range(6):
        produce_batches(c.live_bootstrap(), "purged", 10, 10)
        time.sleep(1.1)

    # Purging follows retention a segment at a time (each look takes the
    # newest checkpoint below the log start then): wait until most of the
    # log is gone, not just the first segment.
    def purged():
        r = replica_of(c, leader, "purged")
        gone = r["purged_index"] is not None and r["log_start_offset"] > 0
        return r if gone and r["last_log_index"] - r["purged_index"] < 40 else None
    before = wait_for("the leader to purge most of its Raft log", purged, timeout=30)
    assert before["high_watermark"] == 620
    assert before["purged_index"] <= before["snapshot_index"]

    c.nodes[follower].start()

    def caught_up():
        f, l = replica_of(c, follower, "purged"), replica_of(c, leader, "purged")
        same = (f["high_watermark"], f["log_start_offset"]) == (l["high_watermark"], l["log_start_offset"]) == (620, l["log_start_offset"])
        return (f, l) if same else None
    f, l = wait_for("the follower to catch up", caught_up, timeout=60)
    assert "installing received snapshot" in c.nodes[follower].log(), "caught up by snapshot, not by replaying the purged log"
    digests = {i: c.admin_get(i, "/v1/replicas/purged/0/digest") for i in (leader, follower)}
    assert len({(d["high_watermark"], d["batches"], d["crc32c"]) for d in digests.values()}) == 1, digests
    # A consumer from the earliest offset reads the whole retained range.
    start = l["log_start_offset"]
    got, errors = read_from(c.bootstrap, "purged", start, 620 - start)
    assert not errors and got == list(range(start, 620))
    # Reads below the log start are out of range.
    _, errors = read_from(c.bootstrap, "purged", 0, 1, reset="error")
    assert errors, "offset 0 is below the log start"
    metrics = urllib.request.urlopen(f"{c.nodes[leader].admin}/metrics", timeout=10).read().decode()
    assert f'chronik_log_snapshots_total{{node_id="{leader}"}}' in metrics


def kafka_tools_classpath():
    """Apache Kafka 4.4.0's jars from Maven Central (it/kafka/pom.xml), fetched once."""
    if not glob.glob(os.path.join(KAFKA_LIB, "kafka-tools-4.4.0.jar")):
        subprocess.run(["mvn", "-q", "-f", os.path.join(ROOT, "it", "kafka", "pom.xml"), "dependency:copy-dependencies",
                        f"-DoutputDirectory={KAFKA_LIB}", "-DincludeScope=runtime"], check=True, timeout=900)
    return os.path.join(KAFKA_LIB, "*")


def test_kafka_delete_records_tool(node, tmp_path):
    """kafka-delete-records.sh is org.apache.kafka.tools.DeleteRecordsCommand."""
    create(node.bootstrap, "dr-tool", partitions=2)
    for p in (0, 1):
        produce_batches(node.bootstrap, "dr-tool", 4, 5, partition=p)
    spec = tmp_path / "offsets.json"
    spec.write_text(json.dumps({"version": 1, "partitions": [
        {"topic": "dr-tool", "partition": 0, "offset": 12},
        {"topic": "dr-tool", "partition": 1, "offset": -1}]}))
    out = subprocess.run(["java", "-cp", kafka_tools_classpath(), "org.apache.kafka.tools.DeleteRecordsCommand",
                          "--bootstrap-server", node.bootstrap, "--offset-json-file", str(spec)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out
    assert "partition: dr-tool-0\tlow_watermark: 12" in out.stdout, out.stdout
    assert "partition: dr-tool-1\tlow_watermark: 20" in out.stdout, out.stdout
    assert watermarks(node.bootstrap, "dr-tool", 0) == (12, 20)
    assert watermarks(node.bootstrap, "dr-tool", 1) == (20, 20)
