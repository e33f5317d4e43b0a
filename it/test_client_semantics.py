"""Where Kafka's clients rely on the broker's behaviour, not only on its
APIs: pipelined async commits apply in order, a static member restarts
without a rebalance, members that start together share one generation,
every Kafka topic config is accepted with Kafka's validation and types,
manual replica assignments, LogAppendTime and the Produce response's
log start offset."""
import os
import struct
import subprocess
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from kafka_helpers import create_topic, produce, wait_for
from wire import frame, raw_batch, record, roundtrip

HERE = os.path.dirname(os.path.abspath(__file__))
JAVA_CP = f"{HERE}/compat/java/target/classes:{HERE}/compat/java/target/dependency/*"


def java(*args, timeout=180):
    r = subprocess.run(["java", "-cp", JAVA_CP, "Semantics", *args], capture_output=True, text=True, timeout=timeout)
    lines = [l for l in r.stdout.splitlines() if l.startswith("{")]
    assert lines, f"no result: {r.stdout[-2000:]} {r.stderr[-2000:]}"
    import json
    return json.loads(lines[-1])


def test_librdkafka_async_commits_after_every_message_end_at_the_last(node):
    create_topic(node.bootstrap, "acommit")
    n = 1000
    produce(node.bootstrap, "acommit", [(None, b"m%d" % i) for i in range(n)], acks="all")
    c = Consumer({"bootstrap.servers": node.bootstrap, "group.id": "acommit-rdk", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    c.assign([TopicPartition("acommit", 0, 0)])
    seen = 0
    deadline = time.time() + 60
    while seen < n and time.time() < deadline:
        for m in c.consume(200, timeout=0.5):
            assert m.error() is None
            c.commit(message=m, asynchronous=True)
            seen += 1
    assert seen == n
    c.poll(1.0)  # let the commit callbacks run
    committed = wait_for("the last commit", lambda: (o := c.committed([TopicPartition("acommit", 0)], timeout=10)[0].offset) == n and o, timeout=15)
    assert committed == n
    c.close()


def test_java_async_commits_after_every_message_end_at_the_last(node):
    create_topic(node.bootstrap, "jcommit")
    produce(node.bootstrap, "jcommit", [(None, b"m%d" % i) for i in range(1000)], acks="all")
    r = java("async-commits", node.bootstrap, "jcommit", "jcommit-group", "1000")
    assert r["ok"], r


def test_a_static_member_restart_does_not_rebalance_the_others(node):
    create_topic(node.bootstrap, "statics", partitions=4)
    r = java("static-restart", node.bootstrap, "statics", "static-group")
    assert r["ok"], r


def test_members_that_join_together_share_one_generation(node_factory):
    n = node_factory(["--group-initial-rebalance-delay-ms", "0"]).start()
    create_topic(n.bootstrap, "together", partitions=4)
    assigns = {0: [], 1: []}
    revokes = {0: 0, 1: 0}
    cs = []
    for i in (0, 1):
        c = Consumer({"bootstrap.servers": n.bootstrap, "group.id": "together", "auto.offset.reset": "earliest",
                      "enable.auto.commit": False, "session.timeout.ms": 6000, "heartbeat.interval.ms": 300})
        cs.append(c)

    def sub(i):
        cs[i].subscribe(["together"], on_assign=lambda c, ps, i=i: assigns[i].append(len(ps)),
                        on_revoke=lambda c, ps, i=i: revokes.__setitem__(i, revokes[i] + (1 if ps else 0)))
    threads = [threading.Thread(target=sub, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    deadline = time.time() + 30
    while time.time() < deadline and not (assigns[0] and assigns[1] and sum(a[-1] for a in assigns.values()) == 4):
        for c in cs:
            c.poll(0.05)
    for _ in range(40):
        for c in cs:
            c.poll(0.05)
    revoked_while_running = dict(revokes)  # closing revokes too
    for c in cs:
        c.close()
    assert assigns[0] == [2] and assigns[1] == [2], f"assignments {assigns}: one generation of two members, not a first of one"
    assert revoked_while_running == {0: 0, 1: 0}, revoked_while_running


# Every topic config of Kafka 4.x with a valid value other than its default.
ALL_CONFIGS = {
    "cleanup.policy": "compact,delete", "compression.gzip.level": "5", "compression.lz4.level": "10",
    "compression.type": "lz4", "compression.zstd.level": "7", "delete.retention.ms": "1000",
    "file.delete.delay.ms": "1000", "flush.messages": "10", "flush.ms": "1000",
    "follower.replication.throttled.replicas": "0:1", "index.interval.bytes": "1000",
    "leader.replication.throttled.replicas": "*", "local.retention.bytes": "-1", "local.retention.ms": "-1",
    "max.compaction.lag.ms": "100000", "max.message.bytes": "100000", "message.timestamp.after.max.ms": "1000",
    "message.timestamp.before.max.ms": "1000", "message.timestamp.type": "LogAppendTime",
    "min.cleanable.dirty.ratio": "0.25", "min.compaction.lag.ms": "10", "min.insync.replicas": "1",
    "preallocate": "true", "remote.log.copy.disable": "false", "remote.log.delete.on.disable": "false",
    "remote.storage.enable": "false", "retention.bytes": "1000000", "retention.ms": "100000",
    "segment.bytes": "1048576", "segment.index.bytes": "4096", "segment.jitter.ms": "10", "segment.ms": "1000",
    "unclean.leader.election.enable": "true",
}


def test_every_kafka_topic_config_is_accepted_with_its_type(node):
    admin = AdminClient({"bootstrap.servers": node.bootstrap})
    for k, v in ALL_CONFIGS.items():
        name = "cfg-" + k.replace(".", "-")
        admin.create_topics([NewTopic(name, 1, 1, config={k: v})])[name].result(timeout=30)
    admin.create_topics([NewTopic("cfg-all", 1, 1, config=ALL_CONFIGS)])["cfg-all"].result(timeout=30)
    res = ConfigResource("topic", "cfg-all")
    described = admin.describe_configs([res])[res].result(timeout=30)
    for k, v in ALL_CONFIGS.items():
        assert described[k].value == v, (k, described[k].value)
        assert not described[k].is_default
    plain = ConfigResource("topic", "cfg-delete-retention-ms")
    d = admin.describe_configs([plain])[plain].result(timeout=30)
    assert d["segment.ms"].is_default and d["segment.ms"].value == "604800000"
    # Each config's type, as kafka-python's own admin tests read it.
    from kafka.admin import ConfigResource as KConfigResource, ConfigResourceType, KafkaAdminClient
    ka = KafkaAdminClient(bootstrap_servers=node.bootstrap)
    typed = ka.describe_configs([KConfigResource(ConfigResourceType.TOPIC, "cfg-all")], config_filter="all")["topic"]["cfg-all"]
    ka.close()
    want = {"delete.retention.ms": "LONG", "min.cleanable.dirty.ratio": "DOUBLE", "cleanup.policy": "LIST",
            "preallocate": "BOOLEAN", "max.message.bytes": "INT", "compression.type": "STRING"}
    assert {k: typed[k]["config_type"] for k in want} == want
    assert typed["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
    assert "topic config accepted but not enforced" in node.log()


@pytest.mark.parametrize("key,value", [
    ("delete.retention.ms", "-5"), ("min.cleanable.dirty.ratio", "2"), ("cleanup.policy", "archive"),
    ("segment.bytes", "100"), ("compression.type", "brotli"), ("unclean.leader.election.enable", "maybe"),
    ("no.such.config", "1"), ("message.timestamp.difference.max.ms", "1000"),
])
def test_invalid_topic_configs_are_refused_as_kafka_does(node, key, value):
    admin = AdminClient({"bootstrap.servers": node.bootstrap})
    name = f"bad-{abs(hash(key + value))}"
    with pytest.raises(KafkaException, match="INVALID_CONFIG|nvalid"):
        admin.create_topics([NewTopic(name, 1, 1, config={key: value})])[name].result(timeout=30)


def test_create_topics_with_a_manual_replica_assignment(cluster_factory):
    c = cluster_factory(3).start()
    admin = AdminClient({"bootstrap.servers": c.bootstrap})
    admin.create_topics([NewTopic("manual", 3, replica_assignment=[[3, 1], [2, 3], [1, 2]])])["manual"].result(timeout=30)
    md = admin.list_topics("manual", timeout=10).topics["manual"].partitions
    assert {p: v.replicas for p, v in md.items()} == {0: [3, 1], 1: [2, 3], 2: [1, 2]}
    assert wait_for("the preferred leaders", lambda: c.leaders("manual") == {0: 3, 1: 2, 2: 1})
    produce(c.bootstrap, "manual", [(b"k", b"v")] * 10, acks="all")
    for bad in ([[1, 1]], [[1, 2], [3]], [[9]]):
        with pytest.raises(KafkaException, match="INVALID_REPLICA_ASSIGNMENT|assignment"):
            admin.create_topics([NewTopic("manual-bad", len(bad), replica_assignment=bad)])["manual-bad"].result(timeout=30)
    c.nodes[2].stop()
    with pytest.raises(KafkaException, match="not alive"):
        admin.create_topics([NewTopic("manual-dead", 1, replica_assignment=[[1, 2]])])["manual-dead"].result(timeout=30)


def produce_v5(node, topic, batch):
    """Produce v5: (error, base offset, log append time, log start offset)."""
    t = topic.encode()
    body = struct.pack(">hhi", -1, -1, 5000) + struct.pack(">i", 1) + struct.pack(">h", len(t)) + t
    body += struct.pack(">i", 1) + struct.pack(">ii", 0, len(batch)) + batch
    reply = roundtrip(node, frame(0, 5, 41, body))
    pos = 4 + 4
    (tl,) = struct.unpack(">h", reply[pos:pos + 2]); pos += 2 + tl
    pos += 4
    _idx, err, base, append_time, start = struct.unpack(">ihqqq", reply[pos:pos + 30])
    return err, base, append_time, start


def test_log_append_time_is_stamped_by_the_broker(node):
    create_topic(node.bootstrap, "appendtime", config={"message.timestamp.type": "LogAppendTime"})
    create_topic(node.bootstrap, "createtime")
    old = 1_000_000_000_000  # 2001: a producer's clock far off
    before = int(time.time() * 1000)
    err, base, append_time, start = produce_v5(node, "appendtime", raw_batch(record(b"v"), 1, base_timestamp=old))
    after = int(time.time() * 1000)
    assert (err, base, start) == (0, 0, 0)
    assert before <= append_time <= after, (before, append_time, after)
    err, _, append_time, start = produce_v5(node, "createtime", raw_batch(record(b"v"), 1, base_timestamp=before))
    assert (err, append_time, start) == (0, -1, 0)
    c = Consumer({"bootstrap.servers": node.bootstrap, "group.id": "lat", "enable.auto.commit": False})
    c.assign([TopicPartition("appendtime", 0, 0)])
    (m,) = c.consume(1, timeout=10)
    kind, ts = m.timestamp()
    c.close()
    assert kind == 2 and before <= ts <= after, (kind, ts)  # TIMESTAMP_LOG_APPEND_TIME
