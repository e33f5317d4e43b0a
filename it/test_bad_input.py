"""Bad input gets a clear error (or a closed connection, as Kafka does) and
never takes the node down: after each case, another client still works."""
import socket
import struct

import pytest

from kafka_helpers import consume_all, create_topic, produce
from wire import frame, parse_produce_v3, produce_request, record_batch, roundtrip


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
