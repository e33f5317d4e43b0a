"""Kafka 4's APIs beyond the basics: topic ids (Metadata, Produce v13,
Fetch v13+, UNKNOWN_TOPIC_ID), DescribeTopicPartitions paging, OffsetDelete
against an active group, DescribeQuorum on a cluster. Requests that no
client sends on purpose (an unknown topic id, a page of two partitions) are
built by hand; the rest goes through Kafka 4.4's own tools."""
import base64
import struct
import time
import uuid

from confluent_kafka import Consumer

from kafka_helpers import create_topic, produce, wait_for
from test_partitions import kafka_tool, topic_view
from wire import frame, roundtrip, uvarint


def compact_str(s):
    b = s.encode()
    return uvarint(len(b) + 1) + b


def compact_array(items):
    return uvarint(len(items) + 1) + b"".join(items)


TAGS = b"\x00"


def flexible(api_key, version, body, correlation_id=7):
    """A request with header v2 (client id, then tagged fields)."""
    payload = struct.pack(">hhih", api_key, version, correlation_id, 2) + b"it" + TAGS + body
    return struct.pack(">i", len(payload)) + payload


class Reader:
    def __init__(self, data):
        self.data, self.at = data, 0

    def take(self, fmt):
        (v,) = struct.unpack_from(fmt, self.data, self.at)
        self.at += struct.calcsize(fmt)
        return v

    def uvarint(self):
        shift = n = 0
        while True:
            b = self.data[self.at]
            self.at += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return n

    def compact_str(self):
        n = self.uvarint() - 1
        if n < 0:
            return None
        s = self.data[self.at:self.at + n].decode()
        self.at += n
        return s

    def uuid(self):
        b = self.data[self.at:self.at + 16]
        self.at += 16
        return b

    def tags(self):
        for _ in range(self.uvarint()):
            self.uvarint()
            self.at += self.uvarint()

    def array(self, item):
        n = self.uvarint() - 1
        return None if n < 0 else [item(self) for _ in range(n)]


def topic_id_bytes(text):
    return base64.urlsafe_b64decode(text + "==")


def fetch_v13(node, topic_id, partition=0):
    """Fetch v13 of one partition by topic id: [(topic id, [(partition, error)])]."""
    part = struct.pack(">iiqiqi", partition, -1, 0, -1, -1, 1 << 20) + TAGS
    topic = topic_id + compact_array([part]) + TAGS
    body = struct.pack(">iiiibii", -1, 100, 1, 1 << 20, 0, 0, -1) + compact_array([topic]) + compact_array([]) + compact_str("") + TAGS
    r = Reader(roundtrip(node, flexible(1, 13, body)))
    r.take(">i"), r.tags(), r.take(">i"), r.take(">h"), r.take(">i")

    def partition_of(r):
        index, error = r.take(">i"), r.take(">h")
        r.take(">q"), r.take(">q"), r.take(">q")
        r.array(lambda r: (r.take(">q"), r.take(">q"), r.tags()))
        r.take(">i")
        n = r.uvarint() - 1
        r.at += max(n, 0)
        r.tags()
        return index, error

    def topic_of(r):
        tid = r.uuid()
        parts = r.array(partition_of)
        r.tags()
        return tid, parts
    return r.array(topic_of)


def describe_topic_partitions(node, topics, limit, cursor=None):
    """DescribeTopicPartitions v0: ([(name, error, id, [partition])], next cursor)."""
    body = compact_array([compact_str(t) + TAGS for t in topics]) + struct.pack(">i", limit)
    body += b"\xff" if cursor is None else b"\x01" + compact_str(cursor[0]) + struct.pack(">i", cursor[1]) + TAGS
    r = Reader(roundtrip(node, flexible(75, 0, body + TAGS)))
    r.take(">i"), r.tags(), r.take(">i")

    def ints(r):
        return r.array(lambda r: r.take(">i"))

    def partition_of(r):
        _error, index = r.take(">h"), r.take(">i")
        r.take(">i"), r.take(">i"), ints(r), ints(r), ints(r), ints(r), ints(r), r.tags()
        return index

    def topic_of(r):
        error, name, tid = r.take(">h"), r.compact_str(), r.uuid()
        r.take(">b")
        parts = r.array(partition_of)
        r.take(">i"), r.tags()
        return name, error, tid, parts
    topics = r.array(topic_of)
    nxt = None
    if r.take(">b") >= 0:
        nxt = (r.compact_str(), r.take(">i"))
        r.tags()
    return topics, nxt


def test_topic_ids_are_real_stable_and_the_same_on_every_node(cluster_factory):
    c = cluster_factory(3).start()
    create_topic(c.bootstrap, "ids", partitions=2)
    ids = {n: topic_view(c, "ids", node=n)["id"] for n in c.nodes}
    first = ids[1]
    assert set(ids.values()) == {first}, ids
    raw = topic_id_bytes(first)
    assert len(raw) == 16 and raw != bytes(16) and raw[6] >> 4 == 4, first
    # Kafka's own tool shows the same id.
    out = kafka_tool("org.apache.kafka.tools.TopicCommand", "--bootstrap-server", c.bootstrap, "--describe", "--topic", "ids")
    assert f"TopicId: {first}" in out, out
    # The cluster id is Kafka-shaped too, and the same everywhere.
    cluster_ids = {c.admin_get(n, "/v1/cluster")["cluster_id"] for n in c.nodes}
    assert len(cluster_ids) == 1 and len(topic_id_bytes(cluster_ids.pop())) == 16
    # A restart keeps it; a topic created again under the name gets another.
    c.nodes[2].stop()
    c.nodes[2].start()
    c.wait_ready()
    wait_for("node 2 back", lambda: topic_view(c, "ids", node=2)["id"] == first)
    kafka_tool("org.apache.kafka.tools.TopicCommand", "--bootstrap-server", c.bootstrap, "--delete", "--topic", "ids")
    wait_for("deleted", lambda: not any(t["name"] == "ids" for t in c.admin_get(1, "/v1/topics")))
    create_topic(c.bootstrap, "ids", partitions=2)
    again = wait_for("created again", lambda: topic_view(c, "ids", node=3)["id"])
    assert again != first


def test_requests_by_an_unknown_topic_id_answer_unknown_topic_id(node):
    create_topic(node.bootstrap, "by-id", partitions=1)
    produce(node.bootstrap, "by-id", [(None, b"a"), (None, b"b")])
    known = topic_id_bytes(topic_view_single(node, "by-id")["id"])
    [(tid, parts)] = fetch_v13(node, known)
    assert (tid, parts) == (known, [(0, 0)])
    stranger = uuid.uuid4().bytes
    [(tid, parts)] = fetch_v13(node, stranger)
    assert (tid, parts) == (stranger, [(0, 100)]), "UNKNOWN_TOPIC_ID"
    # The node answers the next request as usual.
    assert fetch_v13(node, known)[0][1] == [(0, 0)]


def topic_view_single(node, topic):
    import json
    import urllib.request
    with urllib.request.urlopen(node.admin + "/v1/topics", timeout=5) as r:
        return next(t for t in json.load(r) if t["name"] == topic)


def test_describe_topic_partitions_pages_by_partition(node):
    create_topic(node.bootstrap, "dtp-a", partitions=3)
    create_topic(node.bootstrap, "dtp-b", partitions=2)
    seen, cursor, pages = [], None, 0
    while True:
        topics, cursor = describe_topic_partitions(node, ["dtp-b", "dtp-a", "dtp-missing"], 2, cursor)
        pages += 1
        for name, error, _tid, parts in topics:
            if name == "dtp-missing":
                assert error == 3 and pages == 1, "UNKNOWN_TOPIC_OR_PARTITION, on the first page only"
            else:
                assert error == 0 and len(parts) <= 2
                seen += [(name, p) for p in parts]
        if cursor is None:
            break
        assert pages < 10, "the cursor never ends"
    assert seen == [("dtp-a", 0), ("dtp-a", 1), ("dtp-a", 2), ("dtp-b", 0), ("dtp-b", 1)]
    assert pages == 3


def test_offsets_of_a_topic_an_active_group_reads_are_not_deleted(node):
    create_topic(node.bootstrap, "od-read", partitions=1)
    create_topic(node.bootstrap, "od-other", partitions=1)
    produce(node.bootstrap, "od-read", [(None, b"x")] * 5)
    produce(node.bootstrap, "od-other", [(None, b"y")] * 5)
    # A standalone commit on od-other, then a member that reads od-read.
    c = Consumer({"bootstrap.servers": node.bootstrap, "group.id": "od", "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        from confluent_kafka import TopicPartition
        c.commit(offsets=[TopicPartition("od-other", 0, 3)], asynchronous=False)
        c.subscribe(["od-read"])
        deadline = time.time() + 30
        got = 0
        while got < 5 and time.time() < deadline:
            m = c.poll(1)
            if m is not None and not m.error():
                got += 1
        c.commit(asynchronous=False)
        tool = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"
        out = kafka_tool(tool, "--bootstrap-server", node.bootstrap, "--delete-offsets", "--group", "od", "--topic", "od-read")
        assert "GROUP_SUBSCRIBED_TO_TOPIC" in out or "actively subscribed" in out, out
        out = kafka_tool(tool, "--bootstrap-server", node.bootstrap, "--delete-offsets", "--group", "od", "--topic", "od-other")
        assert "Successful" in out, out
        committed = c.committed([TopicPartition("od-read", 0), TopicPartition("od-other", 0)], timeout=10)
        assert [t.offset for t in committed] == [5, -1001], "od-read kept, od-other gone"
    finally:
        c.close()


def test_metadata_quorum_tool_shows_the_controller_group(cluster_factory):
    c = cluster_factory(3).start()
    tool = "org.apache.kafka.tools.MetadataQuorumCommand"
    status = kafka_tool(tool, "--bootstrap-server", c.nodes[1].bootstrap, "describe", "--status")
    leader = int(status.split("LeaderId:")[1].split()[0])
    assert leader in c.nodes, status
    assert status.count('"id": ') == 3, "three voters"
    # The leader knows every voter's progress: all caught up on an idle cluster.
    def caught_up():
        out = kafka_tool(tool, "--bootstrap-server", c.nodes[leader].bootstrap, "describe", "--replication")
        rows = [line.split() for line in out.splitlines() if line[:1].isdigit()]
        return rows if len(rows) == 3 and all(r[3] == "0" for r in rows) else None
    rows = wait_for("every voter caught up", caught_up, timeout=20)
    assert sorted(r[-1] for r in rows) == ["Follower", "Follower", "Leader"], rows


def offset_commit_v10(node, group, topic_id, partition, offset):
    """OffsetCommit v10 (topics by id), outside any group generation: [(topic id, [(partition, error)])]."""
    part = struct.pack(">iqi", partition, offset, -1) + compact_str("meta") + TAGS
    topic = topic_id + compact_array([part]) + TAGS
    body = compact_str(group) + struct.pack(">i", -1) + compact_str("") + b"\x00" + compact_array([topic]) + TAGS
    r = Reader(roundtrip(node, flexible(8, 10, body)))
    r.take(">i"), r.tags(), r.take(">i")

    def topic_of(r):
        tid = r.uuid()
        parts = r.array(lambda r: (r.take(">i"), r.take(">h"), r.tags())[:2])
        r.tags()
        return tid, parts
    return r.array(topic_of)


def offset_fetch_v10(node, group, topic_id, partition):
    """OffsetFetch v10 (topics by id): [(topic id, [(partition, offset, error)])] of the one group."""
    topic = topic_id + compact_array([struct.pack(">i", partition)]) + TAGS
    g = compact_str(group) + b"\x00" + struct.pack(">i", -1) + compact_array([topic]) + TAGS
    body = compact_array([g]) + b"\x00" + TAGS
    r = Reader(roundtrip(node, flexible(9, 10, body)))
    r.take(">i"), r.tags(), r.take(">i")

    def part_of(r):
        p, off, _epoch = r.take(">i"), r.take(">q"), r.take(">i")
        r.compact_str()
        err = r.take(">h")
        r.tags()
        return p, off, err

    def topic_of(r):
        tid = r.uuid()
        parts = r.array(part_of)
        r.tags()
        return tid, parts

    def group_of(r):
        r.compact_str()
        topics = r.array(topic_of)
        r.take(">h"), r.tags()
        return topics
    return r.array(group_of)[0]


def test_offsets_are_committed_and_fetched_by_topic_id(node):
    create_topic(node.bootstrap, "by-id-offsets", partitions=2)
    tid = topic_id_bytes(topic_view_single(node, "by-id-offsets")["id"])
    # As clients do: find the coordinator first (which makes the offsets topic).
    roundtrip(node, frame(10, 0, 3, struct.pack(">h", 3) + b"g10"))
    wait_for("the coordinator", lambda: offset_commit_v10(node, "g10", tid, 1, 42) == [(tid, [(1, 0)])])
    assert offset_fetch_v10(node, "g10", tid, 1) == [(tid, [(1, 42, 0)])]
    stranger = uuid.uuid4().bytes
    assert offset_commit_v10(node, "g10", stranger, 0, 7) == [(stranger, [(0, 100)])], "UNKNOWN_TOPIC_ID"
    assert offset_fetch_v10(node, "g10", stranger, 0) == [(stranger, [(0, -1, 100)])]


def test_list_config_resources_api_versions_v5_and_two_phase_commit(node):
    create_topic(node.bootstrap, "lcr-topic", partitions=1)
    # ListConfigResources v1: topics (2) and brokers (4).
    r = Reader(roundtrip(node, flexible(74, 1, compact_array([b"\x02", b"\x04"]) + TAGS)))
    r.take(">i"), r.tags(), r.take(">i")
    assert r.take(">h") == 0
    listed = r.array(lambda r: (r.compact_str(), r.take(">b"), r.tags())[:2])
    assert ("lcr-topic", 2) in listed and ("1", 4) in listed, listed
    # ApiVersions v5 (KIP-1242): naming another cluster or node asks for a rebootstrap.
    def api_versions_v5(cluster_id, node_id):
        cid = compact_str(cluster_id) if cluster_id is not None else b"\x00"
        body = compact_str("it") + compact_str("1") + cid + struct.pack(">i", node_id) + TAGS
        reply = roundtrip(node, flexible(18, 5, body))
        return struct.unpack(">h", reply[4:6])[0]  # header v0, then the error code
    assert api_versions_v5(None, -1) == 0
    assert api_versions_v5(None, 1) == 0
    assert api_versions_v5(None, 7) == 129, "REBOOTSTRAP_REQUIRED"
    assert api_versions_v5("AAAAAAAAAAAAAAAAAAAAAA", -1) == 129
    # InitProducerId v6 with two-phase commit: refused (no transactions).
    body = b"\x00" + struct.pack(">iqh??", 60000, -1, -1, True, False) + TAGS
    r = Reader(roundtrip(node, flexible(22, 6, body)))
    r.take(">i"), r.tags(), r.take(">i")
    assert r.take(">h") == 42, "INVALID_REQUEST"
