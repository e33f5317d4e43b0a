"""Acknowledged data survives SIGTERM and kill -9, at the same offsets, and
offsets continue without gaps."""
import signal

import pytest

from kafka_helpers import check_exactly_once_in_order, consume_all, create_topic, produce


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def test_restart_keeps_every_acknowledged_message(node_factory, sig):
    n = node_factory().start()
    create_topic(n.bootstrap, "durable", partitions=2)
    first = produce(n.bootstrap, "durable", [(f"k{i}".encode(), f"before-{i}".encode()) for i in range(3000)], acks="all")
    n.stop(sig)
    n.start()
    second = produce(n.bootstrap, "durable", [(f"k{i}".encode(), f"after-{i}".encode()) for i in range(3000)], acks="all")
    assert not set(first) & set(second), "an offset was handed out twice"
    acked = {**first, **second}
    got = consume_all(n.bootstrap, "durable", 2, len(acked))
    check_exactly_once_in_order(acked, got)
    if sig == signal.SIGTERM:
        assert "stopped" in n.log()


def test_kill_9_during_produce_loses_nothing_acknowledged(node_factory):
    """Kill the node while a producer is mid-stream; what was acknowledged
    before the kill must all be there afterwards."""
    import threading
    import time
    from confluent_kafka import Producer

    n = node_factory().start()
    create_topic(n.bootstrap, "midstream")
    acked = {}
    p = Producer({"bootstrap.servers": n.bootstrap, "acks": "all", "linger.ms": 1,
                  "message.timeout.ms": 5000, "retries": 0})

    def cb(err, msg):
        if err is None:
            acked[msg.offset()] = msg.value()

    stop = threading.Event()

    def run():
        i = 0
        while not stop.is_set():
            try:
                p.produce("midstream", value=f"m{i}".encode(), on_delivery=cb)
                i += 1
            except BufferError:
                pass
            p.poll(0.001)

    t = threading.Thread(target=run)
    t.start()
    deadline = time.time() + 20
    while len(acked) < 2000 and time.time() < deadline:
        time.sleep(0.05)
    n.stop(signal.SIGKILL)
    stop.set()
    t.join()
    p.flush(10)
    snapshot = dict(acked)
    assert len(snapshot) >= 2000
    n.start()
    got = consume_all(n.bootstrap, "midstream", 1, len(snapshot))
    read = {off: v for _, off, _, v in got}
    missing = [o for o in snapshot if read.get(o) != snapshot[o]]
    assert not missing, f"{len(missing)} acknowledged messages lost or changed, e.g. offset {missing[:3]}"
    assert sorted(read) == list(range(len(read))), "offsets have gaps"
