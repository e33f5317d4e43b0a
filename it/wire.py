"""Kafka requests built by hand, byte by byte, for the cases no client
library sends on purpose: damaged frames, a retried idempotent batch."""
import socket
import struct

import crc32c_impl


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


def record_batch(values, corrupt=False, producer_id=-1, epoch=-1, sequence=-1):
    """A magic-2 batch built by hand, uncompressed; idempotent when given a
    producer id, epoch and first sequence."""
    recs = b"".join(record(val, i) for i, val in enumerate(values))
    return raw_batch(recs, len(values), producer_id=producer_id, epoch=epoch, sequence=sequence, corrupt=corrupt)


def produce_request(topic, partition, records, acks=-1):
    # Produce v3: transactional_id(null) acks timeout [topic [partition records]]
    t = topic.encode()
    body = struct.pack(">hhi", -1, acks, 5000) + struct.pack(">i", 1) + struct.pack(">h", len(t)) + t
    body += struct.pack(">i", 1) + struct.pack(">i", partition) + struct.pack(">i", len(records)) + records
    return frame(0, 3, 11, body)


def init_producer_id(node):
    """InitProducerId v0 without a transactional id: (error, producer id, epoch)."""
    body = struct.pack(">hi", -1, 60000)
    reply = roundtrip(node, frame(22, 0, 12, body))
    _corr, _throttle, err, pid, epoch = struct.unpack(">iihqh", reply[:20])
    return err, pid, epoch


def parse_produce_v3(reply):
    # corr, [topic: name [partition: index error base_offset log_append_time]], throttle
    pos = 4 + 4
    (tlen,) = struct.unpack(">h", reply[pos:pos + 2]); pos += 2 + tlen
    pos += 4
    index, err, base = struct.unpack(">ihq", reply[pos:pos + 14])
    return index, err, base


def uvarint(v):
    """Unsigned varint, as flexible versions' lengths use it."""
    out = b""
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def varint(v):
    """Zig-zag varint, as record fields use it."""
    return uvarint((v << 1) ^ (v >> 63))


def raw_batch(records_body, count, attributes=0, base_timestamp=0, producer_id=-1, epoch=-1, sequence=-1, corrupt=False):
    """A magic-2 batch around an already encoded (maybe compressed) records
    body, with the record count the caller claims."""
    after_crc = struct.pack(">hiqqqhii", attributes, count - 1, base_timestamp, base_timestamp, producer_id, epoch, sequence, count) + records_body
    crc = crc32c_impl.crc32c(after_crc)
    if corrupt:
        crc ^= 0xDEADBEEF
    head = struct.pack(">iBI", 0, 2, crc)
    return struct.pack(">qi", 0, len(head) + len(after_crc)) + head + after_crc


def record(value, index=0, key=None, headers=None, header_count=None):
    """One encoded record; `header_count` may claim more headers than given."""
    headers = headers or []
    body = b"\x00" + varint(0) + varint(index)
    body += varint(-1) if key is None else varint(len(key)) + key
    body += varint(len(value)) + value
    body += varint(len(headers) if header_count is None else header_count)
    for hk, hv in headers:
        body += varint(len(hk)) + hk + varint(len(hv)) + hv
    return varint(len(body)) + body


def api_versions(node):
    """{api key: (min, max)} as the node advertises them (ApiVersions v0)."""
    reply = roundtrip(node, frame(18, 0, 1))
    pos = 4
    err, n = struct.unpack(">hi", reply[pos:pos + 6])
    pos += 6
    out = {}
    for _ in range(n):
        k, lo, hi = struct.unpack(">hhh", reply[pos:pos + 6])
        pos += 6
        out[k] = (lo, hi)
    return out
