"""Where Kafka's clients rely on the broker's behaviour, not only on its
APIs: pipelined async commits apply in order, a static member restarts
without a rebalance, members that start together share one generation,
every Kafka topic config is accepted with Kafka's validation and types,
manual replica assignments, LogAppendTime and the Produce response's
log start offset."""
import os
import socket
import struct
import subprocess
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


def join_group_v5(sock, group, member_id):
    """Sends a JoinGroup v5 (consumer protocol "range") on `sock`."""
    def s16(b):
        return struct.pack(">h", len(b)) + b
    meta = struct.pack(">h", 0) + struct.pack(">i", 1) + s16(b"together") + struct.pack(">i", -1)
    body = s16(group.encode()) + struct.pack(">ii", 10000, 10000) + s16(member_id.encode()) + struct.pack(">h", -1)
    body += s16(b"consumer") + struct.pack(">i", 1) + s16(b"range") + struct.pack(">i", len(meta)) + meta
    sock.sendall(frame(11, 5, 77, body))


def read_join_v5(sock):
    """(error, generation, leader, member id, member count) of a JoinGroup v5 answer."""
    def exact(n):
        out = b""
        while len(out) < n:
            chunk = sock.recv(n - len(out))
            assert chunk, "connection closed"
            out += chunk
        return out
    (n,) = struct.unpack(">i", exact(4))
    r = exact(n)
    pos = 4 + 4
    err, gen = struct.unpack(">hi", r[pos:pos + 6]); pos += 6
    def string():
        nonlocal pos
        (l,) = struct.unpack(">h", r[pos:pos + 2]); pos += 2
        v = r[pos:pos + max(l, 0)].decode(); pos += max(l, 0)
        return v
    string()  # protocol name
    leader, member = string(), string()
    (count,) = struct.unpack(">i", r[pos:pos + 4])
    return err, gen, leader, member, count


def test_members_that_join_together_share_one_generation(node_factory):
    """KIP-394 (JoinGroup v4+): a new member first gets its id
    (MEMBER_ID_REQUIRED), and the group waits for pending members, so two
    members that start together end up in one generation, even with
    group.initial.rebalance.delay.ms=0 and one of them much slower to come back."""
    n = node_factory(["--group-initial-rebalance-delay-ms", "0"]).start()
    create_topic(n.bootstrap, "together", partitions=4)
    # FindCoordinator creates the offsets topic; wait until it answers.
    g = b"together"
    find = frame(10, 0, 5, struct.pack(">h", len(g)) + g)
    wait_for("a coordinator", lambda: (r := roundtrip(n, find)) is not None and struct.unpack(">h", r[4:6])[0] == 0)
    socks = [socket.create_connection(("127.0.0.1", n.port), timeout=15) for _ in range(2)]
    ids = []
    for s in socks:
        join_group_v5(s, "together", "")
        err, _, _, member, _ = read_join_v5(s)
        assert err == 79 and member, err  # MEMBER_ID_REQUIRED, with the id to use
        ids.append(member)
    join_group_v5(socks[0], "together", ids[0])
    socks[0].settimeout(1.5)
    with pytest.raises(socket.timeout):
        read_join_v5(socks[0])  # held: the second member is still pending
    socks[0].settimeout(15)
    join_group_v5(socks[1], "together", ids[1])
    answers = [read_join_v5(s) for s in socks]
    for s in socks:
        s.close()
    assert [a[0] for a in answers] == [0, 0], answers
    assert answers[0][1] == answers[1][1] == 1, f"one generation for both: {answers}"
    assert sorted(a[4] for a in answers) == [0, 2], "the leader gets both members"


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
    # A node other than the controller's leader goes down (a controller
    # failover is another test's subject), and the survivors notice within
    # the liveness window: before that, an assignment naming it would be
    # accepted and wait for it to come back.
    controller = c.admin_get(1, "/v1/cluster")["controller"]
    dead = next(n for n in (2, 3, 1) if n != controller)
    alive = [n for n in (1, 2, 3) if n != dead]
    c.nodes[dead].stop()
    assert wait_for(f"node {dead} seen down", lambda: all(
        not next(n for n in c.admin_get(i, "/v1/nodes") if n["id"] == dead)["alive"] for i in alive))
    with pytest.raises(KafkaException, match="not alive"):
        admin.create_topics([NewTopic("manual-dead", 1, replica_assignment=[[alive[0], dead]])])["manual-dead"].result(timeout=30)


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


def test_a_ready_response_is_not_held_behind_a_waiting_one(node):
    """Responses on one connection go out in request order, and each as soon
    as it is ready: an ApiVersions answer pipelined ahead of a long-polling
    Fetch arrives at once, not when the Fetch is done. (The writer used to
    flush only when nothing was queued behind a response: under a steady
    stream of pipelined produces, librdkafka saw round trips of 0.3-4 s for
    produces the broker had answered in 30 ms.)"""
    create_topic(node.bootstrap, "held-back", partitions=1)
    name = b"held-back"
    wait_ms = 4000
    # Fetch v4: replica_id max_wait min_bytes max_bytes isolation [topic [partition offset max_bytes]]
    fetch = struct.pack(">iiiib", -1, wait_ms, 1, 1 << 20, 0) + struct.pack(">ih", 1, len(name)) + name
    fetch += struct.pack(">iiqi", 1, 0, 0, 1 << 20)
    s = socket.create_connection(("127.0.0.1", node.port), timeout=10)
    try:
        sent = time.monotonic()
        s.sendall(frame(18, 0, 1) + frame(1, 4, 2, fetch))
        (n,) = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))
        first = s.recv(n, socket.MSG_WAITALL)
        took = time.monotonic() - sent
        assert struct.unpack(">i", first[:4])[0] == 1
        assert took < wait_ms / 1000 / 2, f"the ApiVersions answer came after {took:.2f} s, with the Fetch"
        (n,) = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))
        second = s.recv(n, socket.MSG_WAITALL)
        assert struct.unpack(">i", second[:4])[0] == 2
        assert time.monotonic() - sent >= wait_ms / 1000 * 0.9, "the Fetch did not long-poll: the test proves nothing"
    finally:
        s.close()
