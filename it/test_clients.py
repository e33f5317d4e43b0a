"""Real clients against a real node: kcat and confluent-kafka."""
import subprocess

import pytest

from kafka_helpers import check_exactly_once_in_order, consume_all, create_topic, produce

N = 10_000


def keyed(n, tag):
    return [(f"{tag}-key-{i % 97}".encode(), f"{tag}-value-{i}-".encode() * (1 + i % 7)) for i in range(n)]


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_10k_keyed_messages_round_trip_per_codec(node, codec):
    topic = f"codec-{codec}"
    create_topic(node.bootstrap, topic, partitions=3)
    acked = produce(node.bootstrap, topic, keyed(N, codec), **{"compression.type": codec, "acks": "all"})
    assert len(acked) == N
    got = consume_all(node.bootstrap, topic, 3, N)
    check_exactly_once_in_order(acked, got)


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_acks_levels(node, acks):
    topic = f"acks-{acks.replace('all', 'all')}"
    create_topic(node.bootstrap, topic)
    msgs = keyed(500, "a")
    acked = produce(node.bootstrap, topic, msgs, acks=acks)
    got = consume_all(node.bootstrap, topic, 1, len(msgs))
    assert [(k, v) for _, _, k, v in got] == msgs
    assert [o for _, o, _, _ in got] == list(range(len(msgs)))
    if acks != "0":
        # The offsets in the acknowledgements are where the records are
        # (acks=1 answers before commit, with the offset it will get).
        check_exactly_once_in_order(acked, got)


def test_kcat_produce_consume_and_auto_create(node):
    lines = "\n".join(f"k{i}:value {i}" for i in range(1000)) + "\n"
    subprocess.run(["kcat", "-b", node.bootstrap, "-t", "kcat-auto", "-P", "-K:", "-z", "lz4"],
                   input=lines.encode(), check=True, timeout=60)
    out = subprocess.run(["kcat", "-b", node.bootstrap, "-t", "kcat-auto", "-C", "-e", "-f", "%o %k %s\n"],
                         capture_output=True, check=True, timeout=60).stdout.decode()
    rows = out.strip().split("\n")
    assert rows == [f"{i} k{i} value {i}" for i in range(1000)]
    meta = subprocess.run(["kcat", "-b", node.bootstrap, "-L", "-J"], capture_output=True, check=True, timeout=30).stdout
    assert b'"kcat-auto"' in meta


def test_list_offsets_earliest_latest_and_by_timestamp(node):
    from confluent_kafka import Consumer, Producer, TopicPartition
    topic = "timestamps"
    create_topic(node.bootstrap, topic)
    p = Producer({"bootstrap.servers": node.bootstrap})
    for i in range(10):
        p.produce(topic, value=f"v{i}".encode(), timestamp=1_000_000 + i * 1000)
        p.flush(10)  # one batch per message: timestamps resolve within batches too
    c = Consumer({"bootstrap.servers": node.bootstrap, "group.id": "ts"})
    lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    assert (lo, hi) == (0, 10)
    found = c.offsets_for_times([TopicPartition(topic, 0, 1_000_000 + 4500)], timeout=10)
    assert found[0].offset == 5
    after = c.offsets_for_times([TopicPartition(topic, 0, 9_999_999_999)], timeout=10)
    assert after[0].offset in (-1, 10)  # no such record: "end"
    c.close()


def test_create_describe_delete_topic(node):
    from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
    admin = AdminClient({"bootstrap.servers": node.bootstrap})
    fs = admin.create_topics([NewTopic("cfg", 2, 1, config={"retention.ms": "1000"})])
    fs["cfg"].result(10)
    # exists already
    with pytest.raises(Exception, match="TOPIC_ALREADY_EXISTS|already exists"):
        admin.create_topics([NewTopic("cfg", 1, 1)])["cfg"].result(10)
    with pytest.raises(Exception, match="INVALID_REPLICATION_FACTOR|replication"):
        admin.create_topics([NewTopic("rf", 1, 3)])["rf"].result(10)
    with pytest.raises(Exception, match="INVALID_CONFIG|config"):
        admin.create_topics([NewTopic("badcfg", 1, 1, config={"no.such.config": "1"})])["badcfg"].result(10)
    res = admin.describe_configs([ConfigResource("topic", "cfg")])
    configs = list(res.values())[0].result(10)
    assert configs["retention.ms"].value == "1000"
    assert configs["cleanup.policy"].value == "delete"
    md = admin.list_topics(timeout=10)
    assert len(md.topics["cfg"].partitions) == 2
    admin.delete_topics(["cfg"])["cfg"].result(10)
    assert "cfg" not in admin.list_topics(timeout=10).topics
    with pytest.raises(Exception, match="UNKNOWN_TOPIC|does not exist"):
        admin.delete_topics(["cfg"])["cfg"].result(10)


def test_auto_create_can_be_switched_off(node_factory):
    n = node_factory(["--auto-create-topics", "false"]).start()
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": n.bootstrap})
    md = admin.list_topics(topic="nope", timeout=10)
    assert md.topics["nope"].error is not None
    assert "nope" not in [t for t, m in admin.list_topics(timeout=10).topics.items() if m.error is None]
