"""A full disk: the node refuses writes with KAFKA_STORAGE_ERROR before sled
hits ENOSPC, stays up, gives its leaderships to replicas that can write, and
takes writes again once space returns; nothing acknowledged is lost. The
data directory is a small tmpfs, filled with a file (needs root)."""
import os
import subprocess
import time

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from kafka_helpers import check_exactly_once_in_order, consume_all, produce, replica_digests, wait_for

RESERVE = 16 * 1024 * 1024


@pytest.fixture
def small_disk():
    """Mounts a 96 MiB tmpfs; yields (path, fill, free)."""
    mounts = []

    def make(path):
        os.makedirs(path, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", path], check=True)
        mounts.append(path)
        filler = os.path.join(path, "filler")

        def fill(leave_bytes):
            st = os.statvfs(path)
            free = st.f_bavail * st.f_frsize
            with open(filler, "ab") as f:
                f.write(b"\0" * max(0, free - leave_bytes))
            time.sleep(0.1)  # the node reads the free space at most every 20 ms

        def release():
            os.remove(filler)
        return fill, release
    yield make
    for m in mounts:
        subprocess.run(["umount", "-l", m], check=False)


def send_one(bootstrap, topic, value, timeout_s=5):
    """(error code or None) of one acks=all send with no client retries."""
    out = {}
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "retries": 0, "message.timeout.ms": timeout_s * 1000})
    p.produce(topic, value=value, on_delivery=lambda err, msg: out.update(err=err))
    p.flush(timeout_s + 5)
    return out.get("err")


def test_single_node_refuses_writes_while_full_and_recovers(node_factory, small_disk):
    n = node_factory(["--min-free-disk-bytes", str(RESERVE)])
    fill, release = small_disk(os.path.dirname(n.data_dir) + "/disk")
    n.data_dir = os.path.dirname(n.data_dir) + "/disk/data"
    n.start()
    before = produce(n.bootstrap, "full", [(b"k", b"before-%d" % i) for i in range(500)], acks="all")
    fill(RESERVE // 2)
    err = send_one(n.bootstrap, "full", b"refused")
    assert err is not None and err.code() == KafkaError.KAFKA_STORAGE_ERROR, err
    assert n.alive()
    assert "disk full" in n.log()
    release()
    after = produce(n.bootstrap, "full", [(b"k", b"after-%d" % i) for i in range(500)], acks="all")
    got = consume_all(n.bootstrap, "full", 1, 1000)
    check_exactly_once_in_order({**before, **after}, got)
    assert b"refused" not in [v for *_, v in got]


def test_a_full_node_gives_up_leading_and_the_cluster_goes_on(cluster_factory, small_disk):
    c = cluster_factory(3, ["--min-free-disk-bytes", str(RESERVE)])
    full = 2
    fill, release = small_disk(c.nodes[full].data_dir)
    c.start()
    admin = AdminClient({"bootstrap.servers": c.bootstrap})
    admin.create_topics([NewTopic("df", 3, 3)])["df"].result(30)
    leaders = wait_for("leaders", lambda: (l := c.leaders("df")) and all(l.values()) and l)
    assert full in leaders.values(), f"round-robin placement gives node {full} a leadership: {leaders}"
    first = produce(c.bootstrap, "df", [(None, b"a-%d" % i) for i in range(600)], acks="all")
    fill(RESERVE // 2)
    t = time.time()
    # The producer's own retries carry it across the move of leadership.
    during = produce(c.bootstrap, "df", [(None, b"b-%d" % i) for i in range(600)], acks="all")
    moved = wait_for("leaders off the full node", lambda: (l := c.leaders("df")) and all(l.values()) and full not in l.values() and l)
    print(f"writes to every partition acknowledged {time.time() - t:.1f}s after the disk filled; leaders {leaders} -> {moved}")
    assert c.nodes[full].alive()
    release()
    last = produce(c.bootstrap, "df", [(None, b"c-%d" % i) for i in range(600)], acks="all")
    got = consume_all(c.bootstrap, "df", 3, 1800)
    check_exactly_once_in_order({**first, **during, **last}, got)
    # The full node catches up once space is back: byte-identical replicas.
    wait_for("replicas to converge", lambda: all(len(set(v.values())) == 1 and len(v) == 3
                                                 for v in replica_digests(c, "df", 3).values()), timeout=60)
