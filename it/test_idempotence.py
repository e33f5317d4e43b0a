"""Idempotent producers, driven byte by byte so that the retries are exact:
a batch sent again with the same producer id, epoch and sequence is stored
once and acknowledged with its original offset; a gap gets
OUT_OF_ORDER_SEQUENCE_NUMBER; an older epoch gets INVALID_PRODUCER_EPOCH.
The producer state survives a restart and a leader change."""
import signal
import time

from confluent_kafka.admin import AdminClient, NewTopic

from kafka_helpers import consume_all, create_topic, wait_for
from wire import frame, init_producer_id, parse_produce_v3, produce_request, record_batch, roundtrip

OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47
# Errors that mean "ask again shortly" while a leader is elected.
RETRIABLE = {5, 6}


def send(node, topic, values, pid, epoch, seq, timeout=20):
    """Sends one idempotent batch to partition 0; (error, base offset).
    Retries only while the partition has no leader on this node."""
    deadline = time.time() + timeout
    while True:
        batch = record_batch(values, producer_id=pid, epoch=epoch, sequence=seq)
        reply = roundtrip(node, produce_request(topic, 0, batch))
        if reply is not None:
            _, err, base = parse_produce_v3(reply)
            if err not in RETRIABLE or time.time() > deadline:
                return err, base
        time.sleep(0.1)


def test_retried_batch_is_stored_once_and_gaps_are_refused(node):
    create_topic(node.bootstrap, "idem")
    err, pid, epoch = init_producer_id(node)
    assert (err, epoch) == (0, 0) and pid >= 0
    assert init_producer_id(node)[1] != pid, "every InitProducerId gets a new id"

    assert send(node, "idem", [b"a", b"b"], pid, 0, 0) == (0, 0)
    assert send(node, "idem", [b"a", b"b"], pid, 0, 0) == (0, 0), "a retry gets its original offset"
    assert send(node, "idem", [b"c"], pid, 0, 2) == (0, 2)
    assert send(node, "idem", [b"a", b"b"], pid, 0, 0) == (0, 0), "an older retry, too"
    assert send(node, "idem", [b"gap"], pid, 0, 5)[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert send(node, "idem", [b"d"], pid, 1, 0) == (0, 3), "a new epoch starts at sequence 0"
    assert send(node, "idem", [b"old"], pid, 0, 3)[0] == INVALID_PRODUCER_EPOCH

    node.stop()
    node.start()
    assert send(node, "idem", [b"d"], pid, 1, 0) == (0, 3), "the state survived the restart"
    assert send(node, "idem", [b"e"], pid, 1, 1) == (0, 4)

    got = consume_all(node.bootstrap, "idem", 1, 5)
    assert [(o, v) for _, o, _, v in got] == [(0, b"a"), (1, b"b"), (2, b"c"), (3, b"d"), (4, b"e")]


def test_retry_after_a_leader_change_gets_its_original_offset(cluster_factory):
    c = cluster_factory(3).start()
    admin = AdminClient({"bootstrap.servers": c.bootstrap})
    admin.create_topics([NewTopic("idem3", 1, 3)])["idem3"].result(30)
    leader = wait_for("a leader", lambda: c.leaders("idem3").get(0))
    err, pid, _ = init_producer_id(c.nodes[leader])
    assert err == 0
    assert send(c.nodes[leader], "idem3", [b"a"], pid, 0, 0) == (0, 0)
    assert send(c.nodes[leader], "idem3", [b"b", b"c"], pid, 0, 1) == (0, 1)

    c.nodes[leader].stop(signal.SIGKILL)
    new = wait_for("a new leader", lambda: (l := c.leaders("idem3").get(0)) not in (None, leader) and l)
    # The producer never heard back about [b, c] (say): it sends it again.
    assert send(c.nodes[new], "idem3", [b"b", b"c"], pid, 0, 1) == (0, 1)
    assert send(c.nodes[new], "idem3", [b"d"], pid, 0, 3) == (0, 3)
    assert send(c.nodes[new], "idem3", [b"x"], pid, 0, 9)[0] == OUT_OF_ORDER_SEQUENCE_NUMBER

    got = consume_all(c.live_bootstrap(), "idem3", 1, 4)
    assert [(o, v) for _, o, _, v in got] == [(0, b"a"), (1, b"b"), (2, b"c"), (3, b"d")]


def test_pipelined_batches_wait_for_a_starting_partition(node):
    """Two idempotent batches pipelined on one connection the moment a
    restarted node listens, before the partition's group has started: both
    wait for it and are stored in order. (Refusing the first and judging the
    second would look like a sequence gap, and librdkafka answers that with
    an epoch bump that can duplicate a stored batch.)"""
    import socket
    import struct
    # Many groups to start first, so that the last topic's takes a while.
    create_topic(node.bootstrap, "bulk", partitions=1000)
    create_topic(node.bootstrap, "straddle")
    err, pid, _ = init_producer_id(node)
    assert send(node, "straddle", [b"a"], pid, 0, 0) == (0, 0)
    node.stop()
    node.start()
    first = produce_request("straddle", 0, record_batch([b"b"], producer_id=pid, epoch=0, sequence=1))
    second = produce_request("straddle", 0, record_batch([b"c"], producer_id=pid, epoch=0, sequence=2))
    second = second[:8] + struct.pack(">i", 2) + second[12:]  # correlation id 2
    with socket.create_connection(("127.0.0.1", node.port), timeout=30) as s:
        s.sendall(first + second)
        f = s.makefile("rb")
        replies = []
        for _ in range(2):
            (n,) = struct.unpack(">i", f.read(4))
            replies.append(f.read(n))
    assert [parse_produce_v3(r)[1:] for r in replies] == [(0, 1), (0, 2)], [parse_produce_v3(r) for r in replies]


def test_idle_producers_are_forgotten_after_producer_id_expiration(node_factory):
    """producer.id.expiration.ms (here 2 s): a producer whose last batch is
    older is forgotten by every replica at its leader's next retention check;
    its next batch is then judged as a new producer's, as in Kafka."""
    from wire import raw_batch, record
    node = node_factory(["--producer-id-expiration-ms", "2000", "--log-retention-check-interval-ms", "300"]).start()
    create_topic(node.bootstrap, "expiring")
    _, pid, _ = init_producer_id(node)

    def batch(value, seq):
        return raw_batch(record(value), 1, base_timestamp=int(time.time() * 1000), producer_id=pid, epoch=0, sequence=seq)

    def produce(b):
        _, err, base = parse_produce_v3(roundtrip(node, produce_request("expiring", 0, b)))
        return err, base
    first = batch(b"a", 0)
    assert produce(first) == (0, 0)
    assert produce(first) == (0, 0), "a retry within the expiration is a duplicate"
    wait_for("the producer to expire", lambda: "idempotent producers expired" in node.log(), timeout=15)
    # Forgotten: a batch after a gap is a new producer's first.
    assert produce(batch(b"b", 7)) == (0, 1)
    # (And before expiry it was refused: the same gap on another producer.)
    _, other, _ = init_producer_id(node)
    b = raw_batch(record(b"c"), 1, base_timestamp=int(time.time() * 1000), producer_id=other, epoch=0, sequence=0)
    assert produce(b)[0] == 0
    gap = raw_batch(record(b"d"), 1, base_timestamp=int(time.time() * 1000), producer_id=other, epoch=0, sequence=7)
    assert produce(gap)[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
