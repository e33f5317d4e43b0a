"""Hostile input and bounded resources: nothing a client sends takes a node
down or makes it spend without bound. After each case the node still serves
a produce and a fetch from another client."""
import gzip
import os
import re
import socket
import struct
import threading
import time
import urllib.request
import zlib

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from kafka_helpers import consume_all, create_topic, produce, wait_for
from wire import api_versions, frame, parse_produce_v3, produce_request, raw_batch, record, roundtrip

MESSAGE_TOO_LARGE, INVALID_RECORD, CORRUPT_MESSAGE = 10, 87, 2


def still_serving(node, topic="health"):
    """Another client produces and reads back."""
    value = f"alive-{time.time_ns()}".encode()
    acked = produce(node.bootstrap, topic, [(b"k", value)], acks="all")
    assert len(acked) == 1
    (part, off), = acked.keys()
    c = Consumer({"bootstrap.servers": node.bootstrap, "group.id": f"h-{time.time_ns()}", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, part, off)])
    got = c.consume(1, timeout=10)
    c.close()
    assert got and got[0].value() == value
    assert node.alive()


def metric(node, name, **labels):
    with urllib.request.urlopen(node.admin + "/metrics", timeout=5) as r:
        text = r.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def send_raw(node, data, wait=0.5):
    s = socket.create_connection(("127.0.0.1", node.port), timeout=3)
    try:
        s.sendall(data)
        s.settimeout(wait)
        try:
            s.recv(100)
        except OSError:
            pass
    finally:
        s.close()


BOMBS = [b"\x7f\xff\xff\xff", b"\x7f\xff", b"\xff\xff\xff\xff\x0f", b"\xfe\xff\xff\xff\x0f"]


def test_length_bombs_in_every_advertised_api(node):
    """For every API and version advertised: a request whose first lengths
    claim the most their encoding allows. The node refuses each (closing that
    connection, as Kafka does) and stays up."""
    versions = api_versions(node)
    assert len(versions) >= 21
    sent = 0
    for key, (lo, hi) in sorted(versions.items()):
        for v in range(lo, hi + 1):
            for tag in (b"", b"\x00"):  # header v1, or v2 with its tagged fields
                for at in (0, 2, 4, 8):
                    for bomb in BOMBS:
                        body = tag + b"\x00" * at + bomb + b"\x00" * 8
                        send_raw(node, frame(key, v, 9, body=body), wait=0.05)
                        sent += 1
    assert sent > 2000
    assert node.alive(), "a length bomb took the node down"
    still_serving(node)


@pytest.mark.parametrize("data", [
    struct.pack(">i", 1000) + b"\x00\x03\x00\x0c\x00\x00\x00\x01",   # promises 1000 bytes, sends 8
    struct.pack(">i", 8) + b"\x00\x00\x00\x03",                       # cut inside the header
    struct.pack(">i", 0x7FFFFFFF),                                    # length only, and absurd
])
def test_truncated_frames(node, data):
    send_raw(node, data)
    still_serving(node)


def produce_one(node, topic, batch, version=3):
    reply = roundtrip(node, produce_request(topic, 0, batch))
    assert reply is not None, "the node closed the connection instead of answering"
    return parse_produce_v3(reply)[1]


def test_a_batch_whose_count_lies_is_refused(node):
    create_topic(node.bootstrap, "lies")
    three = record(b"a", 0) + record(b"b", 1) + record(b"c", 2)
    assert produce_one(node, "lies", raw_batch(three, 5)) == INVALID_RECORD
    assert produce_one(node, "lies", raw_batch(three, 0x7FFFFFFF)) == INVALID_RECORD
    assert produce_one(node, "lies", raw_batch(three, 2)) == INVALID_RECORD
    skipped = record(b"a", 0) + record(b"b", 2) + record(b"c", 3)  # offset deltas 0, 2, 3
    assert produce_one(node, "lies", raw_batch(skipped, 3)) == INVALID_RECORD
    assert produce_one(node, "lies", raw_batch(three, 3)) == 0, "the honest batch is taken"
    got = consume_all(node.bootstrap, "lies", 1, 3)
    assert [v for _, _, _, v in got] == [b"a", b"b", b"c"], "nothing of the refused batches was stored"
    still_serving(node)


def test_header_count_bomb_is_refused(node):
    create_topic(node.bootstrap, "headers")
    bomb = record(b"v", 0, headers=[(b"h", b"x")], header_count=0x7FFFFFFF)
    assert produce_one(node, "headers", raw_batch(bomb, 1)) == INVALID_RECORD
    ok = record(b"v", 0, headers=[(b"h", b"x")])
    assert produce_one(node, "headers", raw_batch(ok, 1)) == 0
    still_serving(node)


def gzip_of_zeros_record(value_bytes):
    """One record whose value is `value_bytes` zeros, gzip-compressed as a
    stream (a few hundred KiB for hundreds of MiB)."""
    head = b"\x00" + b"\x00" + b"\x00" + b"\x01"  # attributes, ts delta, offset delta, key null (varint -1)
    from wire import varint
    body_len = len(head) + len(varint(value_bytes)) + value_bytes + 1
    prefix = varint(body_len) + head + varint(value_bytes)
    z = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip framing
    out = [z.compress(prefix)]
    chunk = b"\x00" * (1 << 20)
    left = value_bytes
    while left:
        n = min(left, len(chunk))
        out.append(z.compress(chunk[:n]))
        left -= n
    out.append(z.compress(b"\x00"))  # header count 0
    out.append(z.flush())
    return b"".join(out)


def test_decompression_bomb_is_refused_not_inflated(node):
    create_topic(node.bootstrap, "bomb")
    body = gzip_of_zeros_record(512 << 20)  # 512 MiB of records in well under 1 MiB
    assert len(body) < 1_000_000, len(body)
    before = metric(node, "chronik_limit_hits_total", limit="batch_decompressed_bytes_max")
    rss_before = rss_mib(node)
    assert produce_one(node, "bomb", raw_batch(body, 1, attributes=1)) == INVALID_RECORD
    assert metric(node, "chronik_limit_hits_total", limit="batch_decompressed_bytes_max") == before + 1
    grew = rss_mib(node) - rss_before
    print(f"RSS after a 512 MiB gzip bomb grew by {grew:.0f} MiB")
    assert grew < 64, f"RSS grew by {grew:.0f} MiB: the bomb was inflated into memory"
    small = gzip.compress(record(b"fine", 0))
    assert produce_one(node, "bomb", raw_batch(small, 1, attributes=1)) == 0
    assert "batch_decompressed_bytes_max" in node.log()
    still_serving(node)


def rss_mib(node):
    with open(f"/proc/{node.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def test_messages_over_the_limits_get_message_too_large(node_factory):
    n = node_factory(["--message-max-bytes", "20000"]).start()
    create_topic(n.bootstrap, "sized")
    create_topic(n.bootstrap, "small", config={"max.message.bytes": "2000"})
    assert produce_one(n, "sized", raw_batch(record(b"x" * 30000), 1)) == MESSAGE_TOO_LARGE
    assert produce_one(n, "sized", raw_batch(record(b"x" * 10000), 1)) == 0
    assert produce_one(n, "small", raw_batch(record(b"x" * 3000), 1)) == MESSAGE_TOO_LARGE
    assert produce_one(n, "small", raw_batch(record(b"x" * 1000), 1)) == 0
    assert metric(n, "chronik_limit_hits_total", limit="message_max_bytes") == 2
    # A real client sees MSG_SIZE_TOO_LARGE for its message.
    errors = []
    p = Producer({"bootstrap.servers": n.bootstrap, "message.max.bytes": 1000000, "batch.size": 1000000})
    p.produce("sized", value=b"y" * 50000, on_delivery=lambda err, msg: errors.append(err))
    p.flush(30)
    assert errors and errors[0] is not None and errors[0].code() == KafkaError.MSG_SIZE_TOO_LARGE, errors
    still_serving(n)


def test_connections_per_ip_are_bounded(node_factory):
    n = node_factory(["--max-connections-per-ip", "4"]).start()
    open_now = lambda: metric(n, "chronik_kafka_connections")
    wait_for("the start-up probe's connection to close", lambda: open_now() == 0)
    held = [socket.create_connection(("127.0.0.1", n.port), timeout=3) for _ in range(4)]
    wait_for("four connections open", lambda: open_now() == 4)
    extra = socket.create_connection(("127.0.0.1", n.port), timeout=3)
    extra.settimeout(3)
    assert extra.recv(10) == b"", "the fifth connection from one address is closed at once"
    extra.close()
    assert metric(n, "chronik_limit_hits_total", limit="max_connections_per_ip") >= 1
    for s in held:
        s.close()
    time.sleep(0.3)
    still_serving(n)


def test_queued_request_bytes_hold_a_pipeline_back_in_order(node_factory):
    """With room for two 400 KiB requests in progress, ten pipelined on one
    connection are all answered, in order, with consecutive offsets."""
    n = node_factory(["--queued-max-request-bytes", "1048576", "--frame-bytes-max", "524288",
                      "--connection-requests-in-flight-max", "4"]).start()
    create_topic(n.bootstrap, "queued")
    s = socket.create_connection(("127.0.0.1", n.port), timeout=30)
    batch = raw_batch(record(b"q" * 400_000), 1)
    req = produce_request("queued", 0, batch)
    s.sendall(req * 10)
    offsets = []
    buf = b""
    while len(offsets) < 10:
        chunk = s.recv(65536)
        assert chunk, "connection closed"
        buf += chunk
        while len(buf) >= 4 and len(buf) >= 4 + struct.unpack(">i", buf[:4])[0]:
            (ln,) = struct.unpack(">i", buf[:4])
            _, err, base = parse_produce_v3(buf[4:4 + ln])
            assert err == 0
            offsets.append(base)
            buf = buf[4 + ln:]
    s.close()
    assert offsets == list(range(10))
    assert metric(n, "chronik_limit_hits_total", limit="queued_max_request_bytes") >= 1
    still_serving(n)


def test_fetch_response_is_capped_by_fetch_max_bytes(node_factory):
    """A consumer asking for 1 GiB gets at most fetch_max_bytes (here 8 MiB)."""
    n = node_factory(["--fetch-max-bytes", str(8 << 20)]).start()
    create_topic(n.bootstrap, "capped", config={"max.message.bytes": str(2 << 20)})
    value = os.urandom(1 << 20)
    produce(n.bootstrap, "capped", [(None, value)] * 40, acks="all", **{"message.max.bytes": 2 << 20, "linger.ms": 0})
    got = fetch_bytes(n, "capped", 0, 1 << 30)
    print(f"fetch of 1 GiB from 40 MiB answered {got / 2**20:.1f} MiB")
    assert (1 << 20) <= got <= (8 << 20) + (1 << 20)
    assert metric(n, "chronik_limit_hits_total", limit="fetch_max_bytes") >= 1
    still_serving(n)


def fetch_bytes(node, topic, offset, max_bytes, timeout=60):
    """A Fetch v4 for one partition asking for `max_bytes`: the records
    bytes of the answer."""
    err, got = fetch_answer(node, topic, offset, max_bytes, timeout)
    assert err == 0, err
    return got


def fetch_answer(node, topic, offset, max_bytes, timeout=60):
    """(error code, records bytes) of a Fetch v4 asking for `max_bytes`."""
    t = topic.encode()
    body = struct.pack(">iiiib", -1, 500, 1, max_bytes, 0)  # replica, max wait, min bytes, max bytes, isolation
    body += struct.pack(">i", 1) + struct.pack(">h", len(t)) + t
    body += struct.pack(">i", 1) + struct.pack(">iqi", 0, offset, max_bytes)
    reply = roundtrip(node, frame(1, 4, 21, body), timeout=timeout)
    assert reply is not None
    # corr, throttle, [topic: name [partition: index err hwm lso aborted(array) records(bytes)]]
    pos = 4 + 4 + 4
    (tl,) = struct.unpack(">h", reply[pos:pos + 2]); pos += 2 + tl
    pos += 4
    idx, err, hwm, lso = struct.unpack(">ihqq", reply[pos:pos + 22]); pos += 22
    (na,) = struct.unpack(">i", reply[pos:pos + 4]); pos += 4 + max(na, 0) * 16
    (rl,) = struct.unpack(">i", reply[pos:pos + 4])
    return err, max(rl, 0)
