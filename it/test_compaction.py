"""Log compaction (cleanup.policy=compact) on real nodes: the latest record
of each key survives at its offset, superseded ones go (offsets show gaps,
as in Kafka), tombstones go once delete.retention.ms has passed, the open
segment and batches newer than min.compaction.lag.ms are left alone, keyless
records are refused, and every replica ends with the same bytes."""
import time
import urllib.request

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from kafka_helpers import replica_digests, wait_for
from test_retention import create, watermarks

# Leaders look for partitions to compact every 300 ms; segments close after 1 s.
FAST = ["--log-cleaner-backoff-ms", "300"]
COMPACTED = {"cleanup.policy": "compact", "segment.ms": "1000", "min.cleanable.dirty.ratio": "0.01"}


def produce(bootstrap, topic, records, compression="none"):
    """(key, value or None) pairs, in order, acks=all; returns their offsets."""
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 50, "compression.type": compression})
    offsets = []
    for k, v in records:
        p.produce(topic, key=k, value=v, on_delivery=lambda err, m: offsets.append(m.offset()) if err is None else offsets.append(err))
    assert p.flush(30) == 0
    assert all(isinstance(o, int) for o in offsets), offsets
    return offsets


def read_all(bootstrap, topic, expect_end):
    """(offset, key, value) of every record, up to the high watermark."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"c-{time.time_ns()}", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "check.crcs": True})
    c.assign([TopicPartition(topic, 0, 0)])
    out, deadline = [], time.time() + 30
    while time.time() < deadline:
        for m in c.consume(500, timeout=0.3):
            assert not m.error(), m.error()
            out.append((m.offset(), m.key(), m.value()))
        if out and out[-1][0] >= expect_end - 1:
            break
    c.close()
    return out


def roll(bootstrap, topic):
    """Closes the open segment: a write after segment.ms has passed."""
    time.sleep(1.2)
    return produce(bootstrap, topic, [(b"roll", b"r")])[0]


def test_compaction_keeps_the_latest_value_of_each_key_on_every_replica(cluster_factory):
    c = cluster_factory(3, extra_args=FAST).start()
    b = c.bootstrap
    create(b, "kv", rf=3, config=COMPACTED)
    sent = [(b"k%d" % (i % 10), b"v%d" % i) for i in range(200)] + [(b"k3", None)]
    offsets = produce(b, "kv", sent[:100], compression="lz4") + produce(b, "kv", sent[100:], compression="zstd")
    end = roll(b, "kv") + 1
    latest = {}
    for (k, v), o in zip(sent, offsets):
        latest[k] = (o, k, v)
    expected = sorted(latest.values()) + [(end - 1, b"roll", b"r")]

    def compacted():
        got = read_all(b, "kv", end)
        return got if got == expected else None
    wait_for("compaction of kv", compacted, timeout=30)
    assert watermarks(b, "kv") == (0, end), "offsets and watermarks never move"
    # Every replica compacted its own log to the same bytes.
    wait_for("identical replicas", lambda: len({d for d in replica_digests(c, "kv", 1)[0].values()}) == 1, timeout=20)

    # The tombstone of k3 stays for delete.retention.ms (a day by default);
    # with 0 it goes at the next compaction, which new writes make due.
    a = AdminClient({"bootstrap.servers": b})
    res = ConfigResource(ConfigResource.Type.TOPIC, "kv", incremental_configs=[
        ConfigEntry("delete.retention.ms", "0", incremental_operation=AlterConfigOpType.SET)])
    list(a.incremental_alter_configs([res]).values())[0].result(timeout=30)
    more = produce(b, "kv", [(b"k1", b"new")])
    end = roll(b, "kv") + 1
    expected = [e for e in expected if e[1] not in (b"k3", b"k1", b"roll")] + [(more[0], b"k1", b"new"), (end - 1, b"roll", b"r")]
    expected.sort()
    wait_for("tombstone removal", compacted, timeout=30)
    wait_for("identical replicas", lambda: len({d for d in replica_digests(c, "kv", 1)[0].values()}) == 1, timeout=20)
    metrics = urllib.request.urlopen(f"{c.nodes[1].admin}/metrics", timeout=10).read().decode()
    runs = [float(l.split()[-1]) for l in metrics.splitlines() if l.startswith("chronik_compactions_total{")]
    assert runs and runs[0] >= 2, runs
    assert 'chronik_compaction_bytes_removed_total{node_id="1"}' in metrics


def test_the_open_segment_and_recent_records_are_left_alone(node_factory):
    n = node_factory(FAST).start()
    b = n.bootstrap
    create(b, "lag", config={**COMPACTED, "min.compaction.lag.ms": "3600000"})
    create(b, "open", config={**COMPACTED, "segment.ms": "3600000"})
    for t in ("lag", "open"):
        produce(b, t, [(b"k", b"v%d" % i) for i in range(50)])
        roll(b, t)
    time.sleep(2)
    for t in ("lag", "open"):
        assert len(read_all(b, t, 51)) == 51, t
    # max.compaction.lag.ms forces the open segment to be compacted.
    a = AdminClient({"bootstrap.servers": b})
    res = ConfigResource(ConfigResource.Type.TOPIC, "open", incremental_configs=[
        ConfigEntry("max.compaction.lag.ms", "1", incremental_operation=AlterConfigOpType.SET)])
    list(a.incremental_alter_configs([res]).values())[0].result(timeout=30)
    wait_for("compaction of an overdue open segment", lambda: [r[0] for r in read_all(b, "open", 51)] == [49, 50], timeout=30)


def test_a_compacted_topic_refuses_records_without_a_key(node):
    create(node.bootstrap, "needs-keys", config={"cleanup.policy": "compact"})
    p = Producer({"bootstrap.servers": node.bootstrap, "acks": "all", "retries": 0})
    errors = []
    p.produce("needs-keys", value=b"no key", on_delivery=lambda err, m: errors.append(err))
    p.flush(30)
    assert errors and errors[0] is not None and errors[0].name() == "INVALID_RECORD", errors
