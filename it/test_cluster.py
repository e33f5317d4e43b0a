"""A 3-node cluster: every partition is a Raft group over three real
processes. Kill -9 a leader mid-stream: nothing acknowledged is lost, the
producer recovers by itself, and the restarted node catches up to
byte-identical replicas."""
import signal
import struct
import threading
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from kafka_helpers import check_exactly_once_in_order, consume_all, produce, replica_digests, wait_for

TOPIC = "replicated"
PARTITIONS = 6
MESSAGES = 20_000


def test_kill_leader_mid_stream_then_catch_up(cluster_factory):
    c = cluster_factory(3).start()
    admin = AdminClient({"bootstrap.servers": c.bootstrap})
    admin.create_topics([NewTopic(TOPIC, num_partitions=PARTITIONS, replication_factor=3)])[TOPIC].result(timeout=30)
    leaders = wait_for("a leader for every partition", lambda: (l := c.leaders(TOPIC)) and all(l.values()) and l)
    assert len(leaders) == PARTITIONS
    # Round-robin placement spreads the preferred leaders over all nodes.
    assert set(leaders.values()) == {1, 2, 3}, leaders

    acked, failed = {}, []
    lock = threading.Lock()

    def cb(err, msg):
        with lock:
            if err is None:
                acked[(msg.partition(), msg.offset())] = msg.value()
            else:
                failed.append((msg.value(), err))

    p = Producer({"bootstrap.servers": c.bootstrap, "acks": "all", "linger.ms": 2,
                  "enable.idempotence": False, "message.timeout.ms": 60000})
    victim = leaders[0]
    acked_at_kill = None
    t_kill = None
    for i in range(MESSAGES):
        while True:
            try:
                p.produce(TOPIC, key=str(i).encode(), value=f"v{i}".encode(), on_delivery=cb)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
        if i == MESSAGES // 3:
            p.flush(30)
            acked_at_kill = dict(acked)
            c.nodes[victim].stop(signal.SIGKILL)
            t_kill = time.time()
    assert p.flush(90) == 0, "producer did not deliver everything"
    assert not failed, f"{len(failed)} sends failed, first: {failed[:3]}"
    assert len(acked) == MESSAGES

    # The partitions the victim led moved to the two survivors.
    new_leaders = wait_for("new leaders", lambda: (l := c.leaders(TOPIC)) and all(v not in (None, victim) for v in l.values()) and l)
    print(f"failover: leaders {leaders} -> {new_leaders} in {time.time() - t_kill:.1f}s after kill")

    got = consume_all(c.live_bootstrap(), TOPIC, PARTITIONS, MESSAGES, timeout=90)
    by_offset = {}
    for part, off, _k, v in got:
        assert by_offset.setdefault((part, off), v) == v, f"{part}/{off} read with two values"
    # Nothing acknowledged is lost, and it is where the ack said it is.
    for key, v in acked.items():
        assert by_offset.get(key) == v, f"acknowledged {v!r} at {key} but read {by_offset.get(key)!r}"
    # Offsets are gap-free in every partition.
    for part in range(PARTITIONS):
        offs = sorted(off for (pp, off) in by_offset if pp == part)
        assert offs == list(range(len(offs))), f"partition {part} has offset gaps"
    # A value stored twice can only be a retry, by this non-idempotent
    # producer, of a send in flight to the killed leader: never one sent
    # before the kill was acknowledged, and never in a partition the victim
    # did not lead.
    positions = {}
    for (part, off), v in by_offset.items():
        positions.setdefault(v, []).append((part, off))
    dups = {v: ps for v, ps in positions.items() if len(ps) > 1}
    before_kill = set(acked_at_kill.values())
    for v, ps in dups.items():
        assert v not in before_kill, f"{v!r} acknowledged before the kill is stored at {ps}"
        assert all(leaders[pp] == victim for pp, _ in ps), f"{v!r} duplicated outside the failed-over partitions: {ps}"
    print(f"{len(dups)} values stored twice by producer retries across the failover")

    # The killed node comes back and catches up: every partition's replicas
    # hold the same committed bytes.
    c.nodes[victim].start()
    def converged():
        d = replica_digests(c, TOPIC, PARTITIONS)
        return all(len(set(nodes.values())) == 1 and len(nodes) == 3 for nodes in d.values()) and d
    digests = wait_for("replicas to converge", converged, timeout=60, interval=0.5)
    for part, nodes in digests.items():
        hwm = next(iter(nodes.values()))[0]
        assert hwm == len([1 for (pp, _) in by_offset if pp == part]), f"partition {part}: replicas at {hwm}"


def test_minority_leader_refuses_writes_then_recovers(cluster_factory):
    """Pause both followers of a partition: its leader, left without a
    majority, must not acknowledge a single write (the sends fail), and stops
    serving once its lease runs out. After the followers resume, writes are
    acknowledged again and every acknowledged one is readable."""
    c = cluster_factory(3).start()
    topic = "minority"
    admin = AdminClient({"bootstrap.servers": c.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=3)])[topic].result(timeout=30)
    leader = wait_for("a leader", lambda: c.leaders(topic).get(0))
    followers = [i for i in c.nodes if i != leader]

    def send(values, timeout_ms):
        acked, failed = {}, []
        p = Producer({"bootstrap.servers": c.nodes[leader].bootstrap, "acks": "all", "linger.ms": 0,
                      "message.timeout.ms": timeout_ms, "enable.idempotence": False})
        for v in values:
            p.produce(topic, value=v, partition=0,
                      on_delivery=lambda err, m: failed.append(m.value()) if err else acked.__setitem__(m.offset(), m.value()))
        p.flush(timeout_ms / 1000 + 10)
        return acked, failed

    before, failed = send([b"before-%d" % i for i in range(100)], 10000)
    assert len(before) == 100 and not failed

    for f in followers:
        c.nodes[f].proc.send_signal(signal.SIGSTOP)
    try:
        during, failed = send([b"during-%d" % i for i in range(20)], 4000)
        assert not during, f"a leader without a majority acknowledged {len(during)} writes"
        assert len(failed) == 20
        rep = [r for r in c.admin_get(leader, "/v1/replicas") if r["topic"] == topic][0]
        assert not rep["serving"], f"leader without a quorum still serving: {rep}"
    finally:
        for f in followers:
            c.nodes[f].proc.send_signal(signal.SIGCONT)

    wait_for("the partition to serve again", lambda: c.leaders(topic).get(0))
    after, failed = send([b"after-%d" % i for i in range(100)], 30000)
    assert len(after) == 100 and not failed
    got = consume_all(c.bootstrap, topic, 1, 200, timeout=30)
    by_offset = {off: v for _p, off, _k, v in got}
    for off, v in {**before, **after}.items():
        assert by_offset.get(off) == v, f"acknowledged {v!r} at {off}, read {by_offset.get(off)!r}"
    # Writes refused during the outage may still surface (their outcome was
    # unknown to the client), but never at an acknowledged offset, and never twice.
    values = [v for v in by_offset.values()]
    assert len(values) == len(set(values))


def test_acks_1_and_all_mixed_report_true_offsets(cluster_factory):
    """acks=1 is answered after the leader's local durable append, with the
    offset the batch gets once committed: producers with acks=1 and acks=all
    writing the same partitions concurrently must both get the offsets the
    records are read back at."""
    c = cluster_factory(3).start()
    topic = "mixed-acks"
    admin = AdminClient({"bootstrap.servers": c.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=3)])[topic].result(timeout=30)
    wait_for("leaders", lambda: (l := c.leaders(topic)) and all(l.values()))
    results = {}

    def run(acks):
        results[acks] = produce(c.bootstrap, topic, [(b"%s-%d" % (acks.encode(), i), b"%s-%d" % (acks.encode(), i))
                                                     for i in range(5000)], acks=acks, **{"enable.idempotence": False})
    threads = [threading.Thread(target=run, args=(a,)) for a in ("1", "all")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    acked = {**results["1"], **results["all"]}
    assert len(acked) == 10000, "two acknowledgements named the same offset"
    got = consume_all(c.bootstrap, topic, 3, len(acked), timeout=60)
    check_exactly_once_in_order(acked, got)


def test_topic_changes_on_a_non_controller_node_are_forwarded(cluster_factory):
    """CreateTopics and DeleteTopics sent straight to a node that does not lead
    the controller group (raw requests, so no client reroutes them) succeed,
    and every node sees the change."""
    from test_bad_input import frame, roundtrip

    c = cluster_factory(3).start()
    controller = c.admin_get(1, "/v1/cluster")["controller"]
    other = next(i for i in c.nodes if i != controller)
    name = b"forwarded"
    # CreateTopics v2: [name partitions rf [assignments] [configs]] timeout validate_only
    body = struct.pack(">i", 1) + struct.pack(">h", len(name)) + name + struct.pack(">ihii", 2, 3, 0, 0)
    body += struct.pack(">ib", 10000, 0)
    reply = roundtrip(c.nodes[other], frame(19, 2, 7, body), timeout=20)
    # corr, throttle, [name error_code error_message]
    (corr, _throttle, count) = struct.unpack(">iii", reply[:12])
    (nlen,) = struct.unpack(">h", reply[12:14])
    (err,) = struct.unpack(">h", reply[14 + nlen:16 + nlen])
    assert (corr, count, reply[14:14 + nlen], err) == (7, 1, name, 0)
    for i in c.nodes:
        wait_for(f"node {i} to see the topic", lambda i=i: any(t["name"] == "forwarded" for t in c.admin_get(i, "/v1/topics")))

    # DeleteTopics v1: [name] timeout
    body = struct.pack(">i", 1) + struct.pack(">h", len(name)) + name + struct.pack(">i", 10000)
    reply = roundtrip(c.nodes[other], frame(20, 1, 8, body), timeout=20)
    # corr, throttle, [name error_code]
    (corr, _throttle, count) = struct.unpack(">iii", reply[:12])
    (err,) = struct.unpack(">h", reply[14 + nlen:16 + nlen])
    assert (corr, count, err) == (8, 1, 0)
    for i in c.nodes:
        wait_for(f"node {i} to drop the topic", lambda i=i: not any(t["name"] == "forwarded" for t in c.admin_get(i, "/v1/topics")))


def test_a_dead_controller_is_not_named_to_clients(cluster_factory):
    """Once the controller group's leader is known down, Metadata and
    DescribeCluster name a live node as controller, even before the group has
    elected another (slow elections here make that window seconds long).
    librdkafka's admin client sends to the named controller and waits on a
    dead one for its whole request timeout; any live node forwards."""
    c = cluster_factory(3)
    with open(c.config) as f:
        body = f.read()
    with open(c.config, "w") as f:
        f.write("election_timeout_min_ms = 4000\nelection_timeout_max_ms = 5000\n" + body)
    c.start()
    dead = c.admin_get(1, "/v1/cluster")["controller"]
    c.nodes[dead].stop(signal.SIGKILL)
    survivors = [i for i in c.nodes if i != dead]

    def known_down(i):
        return not next(n for n in c.admin_get(i, "/v1/cluster")["nodes"] if n["id"] == dead)["alive"]

    for i in survivors:
        wait_for(f"node {i} to see node {dead} down", lambda i=i: known_down(i), timeout=10)
    for i in survivors:
        md = AdminClient({"bootstrap.servers": c.nodes[i].bootstrap}).list_topics(timeout=5)
        assert md.controller_id in survivors, f"node {i} names controller {md.controller_id}; node {dead} is dead"
    still_electing = [i for i in survivors if c.admin_get(i, "/v1/cluster")["controller"] == dead]
    assert still_electing, "the controller group elected before the check: the window it guards was not exercised"

    admin = AdminClient({"bootstrap.servers": c.live_bootstrap()})
    admin.create_topics([NewTopic("after-controller-failover", 1, 2)])["after-controller-failover"].result(timeout=30)
    for i in survivors:
        wait_for(f"node {i} to see the topic",
                 lambda i=i: any(t["name"] == "after-controller-failover" for t in c.admin_get(i, "/v1/topics")))
