"""Bounds that hold across a cluster: the ISR reports replicas that are
caught up (not merely alive), a Produce answers within its own timeout
whatever its partitions do, and the coordinator keeps only live groups in
memory whatever group names clients send."""
import signal
import struct
import time

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from kafka_helpers import produce, wait_for
from test_hostile import metric, still_serving
from wire import frame, raw_batch, record, roundtrip


def isr_of(bootstrap, topic):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    md = admin.list_topics(topic, timeout=10)
    return {p: sorted(v.isrs) for p, v in md.topics[topic].partitions.items()}


def test_isr_drops_a_stopped_follower_and_takes_it_back_once_caught_up(cluster_factory):
    c = cluster_factory(3, ["--replica-lag-time-max-ms", "2000"]).start()
    admin = AdminClient({"bootstrap.servers": c.bootstrap})  # must outlive the future
    admin.create_topics([NewTopic("isr", 1, 3)])["isr"].result(timeout=30)
    leader = wait_for("a leader", lambda: c.leaders("isr").get(0))
    assert wait_for("a full ISR", lambda: isr_of(c.bootstrap, "isr")[0] == [1, 2, 3])
    follower = next(i for i in c.nodes if i != leader)
    c.nodes[follower].stop(signal.SIGKILL)
    produce(c.live_bootstrap(), "isr", [(None, b"x" * 1000)] * 200, acks="all")
    others = [i for i in c.nodes if i != follower]
    shrunk = wait_for("the ISR to drop the stopped follower", lambda: isr_of(c.live_bootstrap(), "isr")[0] == sorted(others))
    assert shrunk
    # Every live node reports the same ISR (followers learn it from the leader).
    for i in others:
        assert isr_of(c.nodes[i].bootstrap, "isr")[0] == sorted(others)
    assert wait_for("the leader to count the partition under-replicated",
                    lambda: metric(c.nodes[leader], "chronik_partitions_under_replicated") == 1)
    c.nodes[follower].start()
    assert wait_for("the caught-up follower back in the ISR", lambda: isr_of(c.bootstrap, "isr")[0] == [1, 2, 3], timeout=60)
    assert wait_for("no partition under-replicated", lambda: metric(c.nodes[leader], "chronik_partitions_under_replicated") == 0)


def produce_v3_multi(node, topic, partitions, timeout_ms, acks=-1):
    """One Produce v3 to several partitions of `topic`: (seconds taken, [error codes])."""
    t = topic.encode()
    body = struct.pack(">hhi", -1, acks, timeout_ms) + struct.pack(">i", 1) + struct.pack(">h", len(t)) + t
    body += struct.pack(">i", len(partitions))
    for p in partitions:
        b = raw_batch(record(b"v"), 1)
        body += struct.pack(">ii", p, len(b)) + b
    started = time.time()
    reply = roundtrip(node, frame(0, 3, 31, body), timeout=30)
    took = time.time() - started
    assert reply is not None
    pos = 4 + 4
    (tl,) = struct.unpack(">h", reply[pos:pos + 2]); pos += 2 + tl
    (n,) = struct.unpack(">i", reply[pos:pos + 4]); pos += 4
    codes = []
    for _ in range(n):
        _idx, err, _base, _t = struct.unpack(">ihqq", reply[pos:pos + 22]); pos += 22
        codes.append(err)
    return took, codes


def test_a_produce_answers_within_its_own_timeout_when_partitions_are_stuck(cluster_factory):
    """Four partitions led by one node whose followers stop: the entries are
    appended but never commit. One deadline covers the whole request: the
    answer comes after about its 1.5 s timeout, not 1.5 s per partition."""
    c = cluster_factory(3).start()
    admin = AdminClient({"bootstrap.servers": c.bootstrap})
    admin.create_topics([NewTopic("stuck", 12, 3)])["stuck"].result(timeout=30)
    leaders = wait_for("leaders", lambda: (l := c.leaders("stuck")) and all(l.values()) and l)
    led_by_1 = [p for p, l in leaders.items() if l == 1][:4]
    assert len(led_by_1) >= 2, leaders
    for i in (2, 3):
        c.nodes[i].proc.send_signal(signal.SIGSTOP)
    try:
        took, codes = produce_v3_multi(c.nodes[1], "stuck", led_by_1, timeout_ms=1500)
        print(f"produce to {len(led_by_1)} stuck partitions answered in {took:.2f} s: {codes}")
        assert took < 2.5, f"{took:.2f} s for a 1.5 s timeout"
        assert all(code in (7, 6, 5) for code in codes), codes  # timed out / not leader / no leader
        # Once the lease ran out, a leader without quorum refuses at once.
        time.sleep(1.5)
        took, codes = produce_v3_multi(c.nodes[1], "stuck", led_by_1, timeout_ms=5000)
        assert took < 1.0, f"{took:.2f} s: a leader without quorum waited instead of refusing"
        assert all(code in (6, 5) for code in codes), codes
    finally:
        for i in (2, 3):
            c.nodes[i].proc.send_signal(signal.SIGCONT)
    still_serving(c.nodes[1], "after-stuck")


def test_the_coordinator_keeps_only_live_groups_in_memory(node):
    admin = AdminClient({"bootstrap.servers": node.bootstrap})
    still_serving(node)
    names = [f"ghost-{i}" for i in range(300)]
    for i in range(0, len(names), 50):
        for f in admin.describe_consumer_groups(names[i:i + 50]).values():
            f.result(timeout=30)
        for n in names[i:i + 50]:
            admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(n, [TopicPartition("health", 0)])])[n].result(timeout=30)
    # Group names only looked up are dropped at the next coordinator tick.
    assert wait_for("the coordinator to forget the looked-up groups",
                    lambda: metric(node, "chronik_coordinator_groups") == 0, timeout=10)
    still_serving(node)
