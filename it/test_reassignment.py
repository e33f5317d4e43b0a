"""Partition moves on a running cluster (AlterPartitionReassignments and
ListPartitionReassignments; `kafka-reassign-partitions.sh`, the admin API,
the CLI): a partition moves under a producing workload, its leader killed
mid-move; the replication factor goes from 1 to 3 and back; a move is
cancelled. Every acknowledged record is read back exactly once and the
replicas end byte-identical."""
import json
import os
import signal
import subprocess
import tempfile
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition

from kafka_helpers import wait_for
from test_partitions import kafka_tool, topic_view
from test_retention import CLI, create, post

REASSIGN = "org.apache.kafka.tools.reassign.ReassignPartitionsCommand"


class Writer:
    """An idempotent acks=all producer writing unique values to one
    partition until stopped, each acknowledgement recorded."""

    def __init__(self, bootstrap, topic, partition=0):
        self.topic, self.partition = topic, partition
        self.acked, self.failed = {}, []
        self.stop = threading.Event()
        self.p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                           "linger.ms": 5, "message.timeout.ms": 60000})
        self.thread = threading.Thread(target=self.run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def run(self):
        i = 0
        while not self.stop.is_set():
            value = b"v%d" % i

            def done(err, msg, value=value):
                if err is None:
                    self.acked[value] = msg.offset()
                else:
                    self.failed.append((value, str(err)))
            self.p.produce(self.topic, value=value, partition=self.partition, on_delivery=done)
            self.p.poll(0)
            i += 1
            time.sleep(0.002)
        self.p.flush(60)

    def finish(self):
        self.stop.set()
        self.thread.join(90)
        return self.acked


def read_all(bootstrap, topic, partition=0):
    """Every value of the partition from its start, with its offset."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{time.time()}", "enable.auto.commit": False})
    tp = TopicPartition(topic, partition, 0)
    _, high = c.get_watermark_offsets(tp, timeout=15)
    c.assign([tp])
    out = []
    deadline = time.time() + 60
    while (not out or out[-1][1] < high - 1) and time.time() < deadline:
        m = c.poll(1)
        if m is not None and m.error() is None:
            out.append((m.value(), m.offset()))
    c.close()
    return out, high


def check_exactly_once(acked, read):
    values = [v for v, _ in read]
    assert len(values) == len(set(values)), "a value was read twice"
    offsets = dict(read)
    missing = [v for v in acked if v not in offsets]
    assert not missing, f"{len(missing)} acknowledged values lost, e.g. {missing[:5]}"
    moved = [(v, o, offsets[v]) for v, o in acked.items() if offsets[v] != o]
    assert not moved, f"acknowledged values at other offsets: {moved[:5]}"


def assignment(c, topic, partition=0, node=1):
    return topic_view(c, topic, node)["partitions"][partition]


def moves(c, node=1):
    return c.admin_get(node, "/v1/reassignments", timeout=20)


def digests_agree(c, topic, partition, replicas):
    seen = {}
    for n in replicas:
        d = c.admin_get(n, f"/v1/replicas/{topic}/{partition}/digest", timeout=10)
        seen[n] = (d["high_watermark"], d["crc32c"])
    return seen if len(set(seen.values())) == 1 else None


def reassign_tool(c, plan, action, *extra):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(plan, f)
    try:
        return kafka_tool(REASSIGN, "--bootstrap-server", c.bootstrap, f"--{action}", "--reassignment-json-file", f.name, *extra)
    finally:
        os.unlink(f.name)


def test_a_partition_moves_under_load_while_its_leader_is_killed(cluster_factory):
    c = cluster_factory(4, extra_args=["--auto-leader-rebalance-enable", "false"]).start()
    create(c.bootstrap, "mv", rf=3, partitions=1)
    wait_for("a leader", lambda: assignment(c, "mv")["leader"])
    # 64 MB to copy, so that the move takes a while.
    bulk = Producer({"bootstrap.servers": c.bootstrap, "acks": "all", "linger.ms": 50, "batch.size": 1 << 20})
    for i in range(64 * 1024):
        bulk.produce("mv", value=os.urandom(1024), partition=0)
        if i % 4096 == 0:
            bulk.poll(0)
    assert bulk.flush(120) == 0
    w = Writer(c.bootstrap, "mv").start()
    wait_for("records flowing", lambda: len(w.acked) > 500, timeout=30)
    a = assignment(c, "mv")
    leader, replicas = a["leader"], a["replicas"]
    # Node 4 joins; the leader leaves, so leadership moves too.
    target = [4] + [n for n in replicas if n != leader]
    plan = {"version": 1, "partitions": [{"topic": "mv", "partition": 0, "replicas": target}]}
    out = reassign_tool(c, plan, "execute")
    assert "Successfully started partition reassignment" in out, out
    # Asked of a node that stays up throughout.
    other = target[1]
    listed = moves(c, other)
    assert [(m["topic"], m["partition"]) for m in listed] == [("mv", 0)], listed
    assert listed[0]["adding"] == [4] and listed[0]["removing"] == [leader], listed
    # Kill the leader once node 4 is a learner catching up, then bring it
    # back: the next leader carries the move on.
    m = wait_for("node 4 a learner", lambda: (lambda m: m if m and 4 in (m[0]["progress"] or {}).get("learners", []) else None)(moves(c, other)), interval=0.05)
    assert m[0]["progress"]["step"].startswith("CatchUp"), m
    c.nodes[leader].stop(signal.SIGKILL)
    assert moves(c, other), "the move was still in progress when its leader died"
    assert "in progress" in reassign_tool(c, plan, "verify"), "verify while moving"
    time.sleep(3)
    c.nodes[leader].start()
    wait_for("the move to finish", lambda: not moves(c, other), timeout=120)
    assert "complete" in reassign_tool(c, plan, "verify").lower()
    a = wait_for("the target as replicas", lambda: (lambda a: a if a["replicas"] == target and a["leader"] else None)(assignment(c, "mv")), timeout=30)
    assert a["leader"] in target, a
    time.sleep(2)
    acked = w.finish()
    assert len(acked) > 1000 and not w.failed, (len(acked), w.failed[:5])
    read, high = read_all(c.bootstrap, "mv")
    check_exactly_once(acked, read)
    wait_for("replicas byte-identical", lambda: digests_agree(c, "mv", 0, target), timeout=60)
    # The node that left holds the partition no more.
    wait_for("the old leader dropped its replica",
             lambda: not any(r["topic"] == "mv" for r in c.admin_get(leader, "/v1/replicas", timeout=10)), timeout=30)


def test_replication_factor_goes_from_1_to_3_and_back_to_1(cluster_factory):
    c = cluster_factory(3).start()
    create(c.bootstrap, "rf", rf=1, partitions=1)
    first = assignment(c, "rf")["replicas"][0]
    p = Producer({"bootstrap.servers": c.bootstrap, "acks": "all"})
    acked = {}
    for i in range(2000):
        p.produce("rf", value=b"r%d" % i, partition=0, on_delivery=lambda e, m: e is None and acked.__setitem__(m.value(), m.offset()))
    assert p.flush(30) == 0
    # Through the admin API: RF 3.
    three = [first] + [n for n in (1, 2, 3) if n != first]
    status, body = post(f"{c.nodes[2].admin}/v1/reassignments", {"moves": [{"topic": "rf", "partition": 0, "replicas": three}]})
    assert status == 200, body
    wait_for("RF 3", lambda: not moves(c) and assignment(c, "rf")["replicas"] == three, timeout=60)
    wait_for("3 identical replicas", lambda: digests_agree(c, "rf", 0, three), timeout=60)
    # The leader counts the new replicas in sync once it has seen them keep up.
    wait_for("3 replicas in sync", lambda: sorted(assignment(c, "rf")["isr"]) == [1, 2, 3], timeout=30)
    # A change of RF is refused when the request does not allow it.
    status, body = post(f"{c.nodes[1].admin}/v1/reassignments", {"moves": [{"topic": "rf", "partition": 0, "replicas": [first]}], "allow_replication_factor_change": False})
    assert status == 400 and "replication factor" in body["error"], body
    # Through the CLI: back to one replica, on another node.
    other = three[2]
    out = subprocess.run([CLI, "--admin", c.nodes[1].admin, "reassign", "rf", "0", "--replicas", str(other)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out
    wait_for("RF 1 elsewhere", lambda: not moves(c) and assignment(c, "rf")["replicas"] == [other] and assignment(c, "rf")["leader"] == other, timeout=60)
    read, _ = read_all(c.bootstrap, "rf")
    check_exactly_once(acked, read)
    # Refused as Kafka refuses: unknown partition, unknown node, duplicates, no move to cancel.
    for mv, code in [({"topic": "rf", "partition": 5, "replicas": [1]}, 404), ({"topic": "rf", "partition": 0, "replicas": [9]}, 400),
                     ({"topic": "rf", "partition": 0, "replicas": [1, 1]}, 400), ({"topic": "rf", "partition": 0, "replicas": None}, 400)]:
        status, body = post(f"{c.nodes[1].admin}/v1/reassignments", {"moves": [mv]})
        assert status == 400, (mv, status, body)


def test_a_move_to_a_dead_node_waits_and_can_be_cancelled(cluster_factory):
    c = cluster_factory(4, extra_args=["--auto-leader-rebalance-enable", "false"]).start()
    create(c.bootstrap, "cx", rf=2, partitions=1)
    a = wait_for("a leader", lambda: (lambda a: a if a["leader"] else None)(assignment(c, "cx")))
    original = a["replicas"]
    spare = next(n for n in (1, 2, 3, 4) if n not in original)
    c.nodes[spare].stop(signal.SIGKILL)
    target = [original[0], spare]
    plan = {"version": 1, "partitions": [{"topic": "cx", "partition": 0, "replicas": target}]}
    reassign_tool(c, plan, "execute")
    time.sleep(3)
    listed = moves(c, original[0])
    assert listed and listed[0]["adding"] == [spare], listed
    # Writes go on meanwhile: the dead node is only a learner.
    p = Producer({"bootstrap.servers": c.live_bootstrap(), "acks": "all"})
    p.produce("cx", value=b"during", partition=0)
    assert p.flush(30) == 0
    out = subprocess.run([CLI, "--admin", c.nodes[original[0]].admin, "reassignments"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "cx-0" in out.stdout and "CatchUp" in out.stdout, out
    # (Clearing throttles would ask the dead node too, as with Kafka.)
    out = reassign_tool(c, plan, "cancel", "--preserve-throttles")
    assert "Successfully cancelled" in out, out
    wait_for("back where it was", lambda: not moves(c, original[0]) and assignment(c, "cx", node=original[0])["replicas"] == original, timeout=60)
