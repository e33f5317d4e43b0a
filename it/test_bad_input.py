"""Bad input gets a clear error (or a closed connection, as Kafka does) and
never takes the node down: after each case, another client still works."""
import socket
import struct

import pytest

from kafka_helpers import consume_all, create_topic, produce


def frame(api_key, version, correlation_id, body=b"", client_id=b"it"):
    header = struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def roundtrip(node, data, expect_reply=True, timeout=5):
    s = socket.create_connection(("127.0.0.1", node.port), timeout=timeout)
    s.sendall(data)
    try:
        head = s.recv(4)
        if not head:
            return None
        (n,) = struct.unpack(">i", head)
        body = b""
        while len(body) < n:
            chunk = s.recv(n - len(body))
            if not chunk:
                break
            body += chunk
        return body
    except (ConnectionResetError, socket.timeout):
        return None
    finally:
        s.close()


def still_serving(node, topic="health"):
    acked = produce(node.bootstrap, topic, [(b"k", b"v")], acks="all")
    assert len(acked) == 1
    assert node.alive()


def test_unknown_api_key_closes_only_that_connection(node):
    assert roundtrip(node, frame(999, 0, 7)) is None
    still_serving(node)


def test_api_versions_too_new_gets_unsupported_version(node):
    reply = roundtrip(node, frame(18, 99, 42))
    corr, err = struct.unpack(">ih", reply[:6])
    assert corr == 42 and err == 35  # UNSUPPORTED_VERSION, v0 body
    still_serving(node)


def test_unsupported_version_of_known_api_closes_connection(node):
    assert roundtrip(node, frame(0, 99, 3)) is None  # Produce v99
    assert roundtrip(node, frame(0, 1, 3)) is None   # Produce v1: advertised for librdkafka, refused
    still_serving(node)


@pytest.mark.parametrize("data", [
    b"\x00\x00\x00\x02\x00\x03",                    # shorter than a header
    struct.pack(">i", 100) + b"\x00\x03\x00\x01",   # truncated: promises 100 bytes, sends 4
    frame(3, 1, 5, body=b"\xff\xff\xff\x7f"),         # Metadata with an absurd array length
    b"\xff\xff\xff\xff",                             # negative length
])
def test_malformed_frames(node, data):
    s = socket.create_connection(("127.0.0.1", node.port), timeout=3)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    try:
        s.recv(100)
    except OSError:
        pass
    s.close()
    still_serving(node)


def test_oversized_frame_is_refused_without_reading_it(node_factory):
    n = node_factory(["--frame-bytes-max", "1048576"]).start()
    s = socket.create_connection(("127.0.0.1", n.port), timeout=5)
    s.sendall(struct.pack(">i", 2 * 1048576) + b"\x00" * 1024)
    assert s.recv(10) == b""  # closed by the node
    s.close()
    still_serving(n)
    assert "frame_bytes_max" in n.log()


def record_batch(values, corrupt=False):
    """A magic-2 batch built by hand, uncompressed."""
    def varint(v):
        v = (v << 1) ^ (v >> 63)
        out = b""
        while True:
            b = v & 0x7F
            v >>= 7
            if v:
                out += bytes([b | 0x80])
            else:
                return out + bytes([b])
    recs = b""
    for i, val in enumerate(values):
        body = b"\x00" + varint(0) + varint(i) + varint(-1) + varint(len(val)) + val + varint(0)
        recs += varint(len(body)) + body
    after_crc = struct.pack(">hiqqqhii", 0, len(values) - 1, 0, 0, -1, -1, -1, len(values)) + recs
    import crc32c_impl
    crc = crc32c_impl.crc32c(after_crc)
    if corrupt:
        crc ^= 0xDEADBEEF
    head = struct.pack(">iBI", 0, 2, crc)  # leader epoch, magic, crc
    batch_len = len(head) + len(after_crc)
    return struct.pack(">qi", 0, batch_len) + head + after_crc


def produce_request(topic, partition, records, acks=-1):
    # Produce v3: transactional_id(null) acks timeout [topic [partition records]]
    t = topic.encode()
    body = struct.pack(">hhi", -1, acks, 5000) + struct.pack(">i", 1) + struct.pack(">h", len(t)) + t
    body += struct.pack(">i", 1) + struct.pack(">i", partition) + struct.pack(">i", len(records)) + records
    return frame(0, 3, 11, body)


def parse_produce_v3(reply):
    # corr, [topic: name [partition: index error base_offset log_append_time]], throttle
    pos = 4 + 4
    (tlen,) = struct.unpack(">h", reply[pos:pos + 2]); pos += 2 + tlen
    pos += 4
    index, err, base = struct.unpack(">ihq", reply[pos:pos + 14])
    return index, err, base


def test_corrupt_crc_gets_corrupt_message(node):
    create_topic(node.bootstrap, "crc")
    reply = roundtrip(node, produce_request("crc", 0, record_batch([b"x", b"y"], corrupt=True)))
    assert parse_produce_v3(reply)[1] == 2  # CORRUPT_MESSAGE
    reply = roundtrip(node, produce_request("crc", 0, record_batch([b"x", b"y"])))
    assert parse_produce_v3(reply) == (0, 0, 0), "a good batch right after is accepted at offset 0"
    got = consume_all(node.bootstrap, "crc", 1, 2)
    assert [v for _, _, _, v in got] == [b"x", b"y"]


def test_unknown_topic_and_partition(node):
    create_topic(node.bootstrap, "known")
    reply = roundtrip(node, produce_request("never-created", 0, record_batch([b"x"])))
    assert parse_produce_v3(reply)[1] == 3  # UNKNOWN_TOPIC_OR_PARTITION
    reply = roundtrip(node, produce_request("known", 7, record_batch([b"x"])))
    assert parse_produce_v3(reply)[1] == 3
    still_serving(node)


def test_invalid_topic_names(node):
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": node.bootstrap})
    for name in ["bad name", "..", "x" * 250, "ümlaut"]:
        with pytest.raises(Exception, match="INVALID_TOPIC|invalid"):
            admin.create_topics([NewTopic(name, 1, 1)])[name].result(10)
    still_serving(node)
