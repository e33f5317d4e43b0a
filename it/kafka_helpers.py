"""Produce and consume with confluent-kafka (librdkafka), checking every message."""
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def create_topic(bootstrap, name, partitions=1, config=None):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fs = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})])
    fs[name].result(timeout=30)


def produce(bootstrap, topic, messages, **conf):
    """messages: list of (key, value). Returns {(partition, offset): (key, value)} of acknowledged ones."""
    acked = {}
    errors = []

    def cb(err, msg):
        if err is not None:
            errors.append(err)
        else:
            acked[(msg.partition(), msg.offset())] = (msg.key(), msg.value())

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **conf})
    for k, v in messages:
        while True:
            try:
                p.produce(topic, key=k, value=v, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    remaining = p.flush(60)
    assert remaining == 0, f"{remaining} messages not delivered"
    assert not errors, f"delivery errors: {errors[:5]}"
    return acked


def consume_all(bootstrap, topic, partitions, expected, timeout=60):
    """Reads every partition from the beginning until `expected` messages arrived."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"it-{time.time_ns()}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got = []
    deadline = time.time() + timeout
    while len(got) < expected and time.time() < deadline:
        for m in c.consume(num_messages=1000, timeout=0.5):
            assert m.error() is None, m.error()
            got.append((m.partition(), m.offset(), m.key(), m.value()))
    # Linger briefly to catch anything beyond what we expected (duplicates).
    for m in c.consume(num_messages=1000, timeout=0.5):
        if m.error() is None:
            got.append((m.partition(), m.offset(), m.key(), m.value()))
    c.close()
    return got


def check_exactly_once_in_order(acked, got):
    """Every acknowledged message read exactly once, at its acknowledged
    offset, offsets gap-free from 0 within each partition."""
    seen = {}
    for part, off, k, v in got:
        assert (part, off) not in seen, f"offset {part}/{off} read twice"
        seen[(part, off)] = (k, v)
    assert seen == acked, f"read {len(seen)} messages, acknowledged {len(acked)}; first differences: " + \
        str(sorted(set(seen.items()) ^ set(acked.items()))[:3])
    by_part = {}
    for part, off in seen:
        by_part.setdefault(part, []).append(off)
    for part, offs in by_part.items():
        offs.sort()
        assert offs == list(range(len(offs))), f"partition {part} offsets have gaps"
    # Per partition, reads come back in offset order.
    last = {}
    for part, off, _, _ in got:
        assert off > last.get(part, -1), f"partition {part} read out of order at {off}"
        last[part] = off


def wait_for(what, check, timeout=30, interval=0.2):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = check()
            if last:
                return last
        except OSError as e:
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last: {last}")


def replica_digests(cluster, topic, partitions):
    """{partition: {node: (high_watermark, crc32c)}} over the live nodes."""
    out = {}
    for i, n in cluster.nodes.items():
        if not n.alive():
            continue
        for p in range(partitions):
            d = cluster.admin_get(i, f"/v1/replicas/{topic}/{p}/digest", timeout=10)
            out.setdefault(p, {})[i] = (d["high_watermark"], d["crc32c"])
    return out
