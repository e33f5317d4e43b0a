"""Consumer groups with librdkafka (confluent-kafka): members split the
partitions, commit, and a new member resumes after the commits; a member
killed with kill -9 is dropped when its session runs out and the rest take
over its partitions; committed offsets survive a restart and a coordinator
failover; wrong generations and unknown members get Kafka's error codes."""
import os
import signal
import struct
import subprocess
import sys
import textwrap
import time

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from kafka_helpers import create_topic, produce, wait_for
from wire import frame, roundtrip

# The smallest session timeout Kafka (and Chronik) accept by default.
SESSION_MS = 6000
FAST_JOIN = ["--group-initial-rebalance-delay-ms", "300"]


def consumer(bootstrap, group, name, **conf):
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group, "client.id": name,
                     "auto.offset.reset": "earliest", "enable.auto.commit": False,
                     "session.timeout.ms": SESSION_MS, "heartbeat.interval.ms": 500, **conf})


def poll_until(consumers, want, timeout=60):
    """Polls every consumer until `want` messages arrived in all; returns
    {consumer index: [(partition, offset, value)]}."""
    got = {i: [] for i in range(len(consumers))}
    deadline = time.time() + timeout
    while sum(len(v) for v in got.values()) < want and time.time() < deadline:
        for i, c in enumerate(consumers):
            for m in c.consume(num_messages=500, timeout=0.05):
                assert m.error() is None, m.error()
                got[i].append((m.partition(), m.offset(), m.value()))
    return got


def test_two_members_split_commit_and_a_new_member_resumes(node_factory):
    n = node_factory(FAST_JOIN).start()
    create_topic(n.bootstrap, "split", partitions=3)
    a, b = consumer(n.bootstrap, "g", "a"), consumer(n.bootstrap, "g", "b")
    a.subscribe(["split"])
    b.subscribe(["split"])
    # The group settles first (on a slow machine the second member may join
    # after the first generation): then each member reads only its own.
    wait_for("the two members to split the partitions",
             lambda: a.poll(0.05) is None and b.poll(0.05) is None and a.assignment() and b.assignment()
             and len(a.assignment()) + len(b.assignment()) == 3, timeout=60)
    produce(n.bootstrap, "split", [(b"k%d" % i, b"v%d" % i) for i in range(3000)])
    got = poll_until([a, b], 3000)
    parts = [{p for p, _, _ in got[i]} for i in (0, 1)]
    assert parts[0] and parts[1] and not parts[0] & parts[1], f"members must split the partitions: {parts}"
    values = [v for i in got for _, _, v in got[i]]
    assert sorted(values) == sorted(b"v%d" % i for i in range(3000)) and len(values) == 3000
    a.commit(asynchronous=False)
    b.commit(asynchronous=False)
    committed = {tp.partition: tp.offset for tp in a.committed([TopicPartition("split", p) for p in range(3)], timeout=10)}
    ends = {p: a.get_watermark_offsets(TopicPartition("split", p))[1] for p in range(3)}
    assert committed == ends, (committed, ends)
    a.close()
    b.close()

    produce(n.bootstrap, "split", [(b"k%d" % i, b"new%d" % i) for i in range(300)])
    c = consumer(n.bootstrap, "g", "c")
    c.subscribe(["split"])
    got = poll_until([c], 300)[0]
    assert sorted(v for _, _, v in got) == sorted(b"new%d" % i for i in range(300))
    assert all(o >= ends[p] for p, o, _ in got), "resumed exactly after the committed offsets"
    c.close()

    admin = AdminClient({"bootstrap.servers": n.bootstrap})
    listed = [g.group_id for g in admin.list_consumer_groups().result(10).valid]
    assert "g" in listed
    desc = admin.describe_consumer_groups(["g"])["g"].result(10)
    assert str(desc.state).endswith("EMPTY"), desc.state
    admin.delete_consumer_groups(["g"])["g"].result(10)
    assert "g" not in [g.group_id for g in admin.list_consumer_groups().result(10).valid]


MEMBER_SCRIPT = textwrap.dedent("""
    import sys, time
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2], "client.id": "doomed",
                  "auto.offset.reset": "earliest", "session.timeout.ms": %d, "heartbeat.interval.ms": 500})
    c.subscribe([sys.argv[3]])
    while True:
        m = c.poll(0.2)
        if c.assignment():
            print("assigned", flush=True)
""" % SESSION_MS)


def test_member_killed_with_kill_9_is_dropped_and_the_group_rebalances(node_factory):
    n = node_factory(FAST_JOIN).start()
    create_topic(n.bootstrap, "rb", partitions=4)
    doomed = subprocess.Popen([sys.executable, "-c", MEMBER_SCRIPT, n.bootstrap, "rbg", "rb"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert doomed.stdout.readline().strip() == "assigned"
        survivor = consumer(n.bootstrap, "rbg", "survivor")
        survivor.subscribe(["rb"])
        wait_for("the survivor to share the partitions",
                 lambda: survivor.poll(0.1) is None and 0 < len(survivor.assignment()) < 4, timeout=30)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
        t_kill = time.time()
        wait_for("the survivor to own every partition",
                 lambda: survivor.poll(0.1) is None and len(survivor.assignment()) == 4, timeout=SESSION_MS / 1000 + 20)
        took = time.time() - t_kill
        print(f"rebalance after kill -9: {took:.1f}s (session timeout {SESSION_MS / 1000:.0f}s)")
        assert took >= SESSION_MS / 1000 - 1.5, "the dead member's session must run out first"
        assert "member session expired" in n.log()
        survivor.close()
    finally:
        if doomed.poll() is None:
            doomed.kill()


def test_committed_offsets_survive_a_restart(node_factory):
    n = node_factory(FAST_JOIN).start()
    create_topic(n.bootstrap, "keep", partitions=2)
    c = consumer(n.bootstrap, "keeper", "k")
    c.commit(offsets=[TopicPartition("keep", 0, 17), TopicPartition("keep", 1, 42)], asynchronous=False)
    c.close()
    n.stop()
    n.start()
    c = consumer(n.bootstrap, "keeper", "k")
    got = wait_for("committed offsets after the restart",
                   lambda: {tp.partition: tp.offset for tp in c.committed([TopicPartition("keep", 0), TopicPartition("keep", 1)], timeout=5)})
    assert got == {0: 17, 1: 42}
    c.close()


def test_commits_survive_the_loss_of_the_coordinator(cluster_factory):
    c = cluster_factory(3, FAST_JOIN).start()
    admin = AdminClient({"bootstrap.servers": c.bootstrap})
    admin.create_topics([NewTopic("ha", 3, 3)])["ha"].result(30)
    cons = consumer(c.bootstrap, "hag", "h")
    cons.commit(offsets=[TopicPartition("ha", p, 100 + p) for p in range(3)], asynchronous=False)
    cons.close()
    coordinator = find_coordinator(c, "hag")
    c.nodes[coordinator].stop(signal.SIGKILL)
    cons = consumer(c.live_bootstrap(), "hag", "h2")
    got = wait_for("committed offsets from the new coordinator",
                   lambda: {tp.partition: tp.offset for tp in cons.committed([TopicPartition("ha", p) for p in range(3)], timeout=5)})
    assert got == {0: 100, 1: 101, 2: 102}
    assert find_coordinator(c, "hag") != coordinator
    cons.close()


def find_coordinator(cluster, group):
    """FindCoordinator v1 to a live node: the coordinator's node id."""
    node = next(n for n in cluster.nodes.values() if n.alive())
    g = group.encode()

    for _ in range(100):
        reply = roundtrip(node, frame(10, 1, 7, struct.pack(">h", len(g)) + g + b"\x00"))
        # v1: correlation, throttle, error, error_message (nullable string), node_id, host, port
        _corr, _throttle, err = struct.unpack(">iih", reply[:10])
        (mlen,) = struct.unpack(">h", reply[10:12])
        pos = 12 + max(mlen, 0)
        (node_id,) = struct.unpack(">i", reply[pos:pos + 4])
        if err == 0:
            return node_id
        time.sleep(0.2)
    raise AssertionError(f"no coordinator for {group}")


def heartbeat(node, group, generation, member):
    g, m = group.encode(), member.encode()
    reply = roundtrip(node, frame(12, 0, 9, struct.pack(">h", len(g)) + g + struct.pack(">i", generation) + struct.pack(">h", len(m)) + m))
    return struct.unpack(">ih", reply[:6])[1]


def test_group_errors_are_the_ones_clients_expect(node_factory):
    n = node_factory(FAST_JOIN).start()
    create_topic(n.bootstrap, "errs")
    c = consumer(n.bootstrap, "eg", "e")
    c.subscribe(["errs"])
    wait_for("an assignment", lambda: c.poll(0.1) is None and c.assignment())
    member = c.memberid()
    UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION = 25, 22
    assert heartbeat(n, "eg", 1, "nobody") == UNKNOWN_MEMBER_ID
    assert heartbeat(n, "eg", 99, member) == ILLEGAL_GENERATION
    assert heartbeat(n, "never-joined", 1, "x") == UNKNOWN_MEMBER_ID
    c.close()


def test_a_static_member_that_comes_back_takes_its_place_without_waiting(node_factory):
    """group.instance.id (KIP-345): librdkafka does not leave the group when a
    static member closes. The same instance id coming back replaces the old
    member at once instead of waiting for its session to run out."""
    n = node_factory(FAST_JOIN).start()
    create_topic(n.bootstrap, "static", partitions=2)
    session_ms = 30_000
    first = consumer(n.bootstrap, "sg", "s1", **{"group.instance.id": "worker-1", "session.timeout.ms": session_ms})
    first.subscribe(["static"])
    wait_for("an assignment", lambda: first.poll(0.1) is None and len(first.assignment()) == 2)
    old_member = first.memberid()
    first.close()
    t = time.time()
    again = consumer(n.bootstrap, "sg", "s1", **{"group.instance.id": "worker-1", "session.timeout.ms": session_ms})
    again.subscribe(["static"])
    wait_for("the returning static member's assignment", lambda: again.poll(0.1) is None and len(again.assignment()) == 2)
    took = time.time() - t
    assert took < session_ms / 1000 / 2, f"took {took:.1f}s: the old member's session was waited out"
    assert again.memberid() != old_member
    assert "static member rejoined" in n.log()
    again.close()


def test_a_recreated_topic_starts_with_no_committed_offsets(node):
    """A deleted topic's committed offsets go with it (Kafka's
    onPartitionsDeleted): a new topic of the same name must not make its
    consumers skip records."""
    b = node.bootstrap
    create_topic(b, "reborn")
    produce(b, "reborn", [(None, b"m%d" % i) for i in range(10)])
    c = Consumer({"bootstrap.servers": b, "group.id": "g-reborn", "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition("reborn", 0, 7)], asynchronous=False)
    assert c.committed([TopicPartition("reborn", 0)], timeout=10)[0].offset == 7
    admin = AdminClient({"bootstrap.servers": b})
    admin.delete_topics(["reborn"])["reborn"].result(timeout=30)
    wait_for("the topic to go", lambda: "reborn" not in admin.list_topics(timeout=10).topics)
    admin.create_topics([NewTopic("reborn", 1, 1)])["reborn"].result(timeout=30)
    wait_for("the old commit to be forgotten",
             lambda: c.committed([TopicPartition("reborn", 0)], timeout=10)[0].offset < 0, timeout=20)
    assert "committed offsets of a deleted topic forgotten" in node.log()
    # The new topic's own commits work as ever.
    c.commit(offsets=[TopicPartition("reborn", 0, 1)], asynchronous=False)
    assert c.committed([TopicPartition("reborn", 0)], timeout=10)[0].offset == 1
    c.close()


def test_committed_offsets_expire_once_a_group_is_empty(node_factory):
    """offsets.retention.minutes (here 2 s): an Empty group's offsets expire
    that long after it emptied, and the group with them; a standalone
    committer's that long after each commit; an active group keeps its own."""
    n = node_factory(FAST_JOIN + ["--offsets-retention-ms", "2000", "--offsets-retention-check-interval-ms", "300"]).start()
    b = n.bootstrap
    create_topic(b, "exp")
    produce(b, "exp", [(None, b"m%d" % i) for i in range(10)])
    # A group that joins, commits and leaves: Empty from then on.
    left = consumer(b, "left", "l")
    left.subscribe(["exp"])
    poll_until([left], 10)
    left.commit(offsets=[TopicPartition("exp", 0, 10)], asynchronous=False)
    left.close()
    # A group that stays: its commit is older than the retention in the end.
    stays = consumer(b, "stays", "s")
    stays.subscribe(["exp"])
    poll_until([stays], 10)
    stays.commit(offsets=[TopicPartition("exp", 0, 4)], asynchronous=False)
    # A consumer that commits without joining.
    alone = Consumer({"bootstrap.servers": b, "group.id": "alone", "enable.auto.commit": False})
    alone.commit(offsets=[TopicPartition("exp", 0, 3)], asynchronous=False)
    assert alone.committed([TopicPartition("exp", 0)], timeout=10)[0].offset == 3

    def committed(group):
        c = Consumer({"bootstrap.servers": b, "group.id": group, "enable.auto.commit": False})
        try:
            return c.committed([TopicPartition("exp", 0)], timeout=10)[0].offset
        finally:
            c.close()

    deadline = time.time() + 20
    while time.time() < deadline and (committed("left") >= 0 or committed("alone") >= 0):
        stays.poll(0.2)  # keeps its membership alive
    assert committed("left") < 0 and committed("alone") < 0, (committed("left"), committed("alone"))
    for _ in range(10):
        stays.poll(0.2)
    assert committed("stays") == 4, "a group with members keeps its offsets"
    admin = AdminClient({"bootstrap.servers": b})
    groups = admin.list_consumer_groups(request_timeout=30).result(timeout=30)
    names = {g.group_id for g in groups.valid}
    assert "left" not in names and "stays" in names, names
    assert "committed offsets expired" in n.log()
    stays.close()
