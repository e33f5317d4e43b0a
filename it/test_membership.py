"""Cluster membership with real processes: a cluster grows from 3 to 5
nodes under load and replicas move onto the new ones; a node is
decommissioned under load; a killed node is replaced; a standalone node
holding data becomes the first node of a 3-node cluster and its topics go
to RF 3; racks: replicas in distinct racks, and a consumer reads from a
replica in its own rack (KIP-392). Every acknowledged record is read back
exactly once and the replicas end byte-identical."""
import re
import subprocess
import time
import urllib.request

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from kafka_helpers import wait_for
from test_reassignment import Writer, check_exactly_once, digests_agree, moves, read_all
from test_retention import CLI, create, post
from test_partitions import kafka_tool, topic_view


def nodes(c, ask):
    return {n["id"]: n for n in c.admin_get(ask, "/v1/nodes", timeout=10)}


def voters(c, ask):
    return sorted(i for i, n in nodes(c, ask).items() if n["controller_role"] == "voter")


def replica_counts(c, topic, ask):
    counts = {}
    for p in topic_view(c, topic, ask)["partitions"]:
        for n in p["replicas"]:
            counts[n] = counts.get(n, 0) + 1
    return counts


def settled(c, topic, ask):
    """The topic's partitions, once no move is under way and each has a leader."""
    if moves(c, ask):
        return None
    parts = topic_view(c, topic, ask)["partitions"]
    return parts if all(p["leader"] for p in parts) else None


def writing(c, topic, rf, partitions, written, bootstrap=None):
    """Creates `topic`, waits for its leaders, and starts a writer on each
    partition of `written`, returning them once records flow."""
    bootstrap = bootstrap or c.bootstrap
    create(bootstrap, topic, rf=rf, partitions=partitions)
    wait_for("leaders", lambda: settled(c, topic, 1))
    ws = [Writer(bootstrap, topic, p).start() for p in written]
    wait_for("records flowing", lambda: all(len(w.acked) > 100 for w in ws), timeout=30)
    return ws


def check_writers(c, ws, topic, ask):
    """Stops the writers; every acknowledged record is read back once at its
    offset, and every partition's replicas are byte-identical."""
    for w in ws:
        acked = w.finish()
        assert len(acked) > 200 and not w.failed, (w.partition, len(acked), w.failed[:5])
        read, _ = read_all(c.live_bootstrap(), topic, w.partition)
        check_exactly_once(acked, read)
    for p in topic_view(c, topic, ask)["partitions"]:
        wait_for(f"{topic}-{p['partition']} replicas byte-identical", lambda p=p: digests_agree(c, topic, p["partition"], p["replicas"]), timeout=60)


def test_a_cluster_grows_from_3_to_5_nodes_under_load_and_replicas_move_onto_them(cluster_factory):
    c = cluster_factory(3).start()
    ws = writing(c, "grow", 3, 6, [0, 1, 2])
    for _ in range(2):
        n = c.add_node(via=1)
        wait_for(f"node {n} registered", lambda n=n: n in nodes(c, 2), timeout=30)
    # 18 replicas over 5 nodes: the new ones get 3 each (their share).
    wait_for("replicas on the new nodes", lambda: settled(c, "grow", 1) and replica_counts(c, "grow", 1).get(4, 0) >= 3 and replica_counts(c, "grow", 1).get(5, 0) >= 3, timeout=120)
    counts = replica_counts(c, "grow", 1)
    assert sum(counts.values()) == 18 and max(counts.values()) - min(counts.values()) <= 1, counts
    # The controller group: 5 voters, asked of a new node too.
    wait_for("5 controller voters", lambda: voters(c, 5) == [1, 2, 3, 4, 5], timeout=30)
    # Clients see 5 brokers.
    md = AdminClient({"bootstrap.servers": c.bootstrap}).list_topics(timeout=10)
    assert sorted(md.brokers) == [1, 2, 3, 4, 5], md.brokers
    check_writers(c, ws, "grow", 1)
    # A new topic is placed over all five.
    create(c.bootstrap, "after", rf=1, partitions=5)
    assert sorted(p["replicas"][0] for p in topic_view(c, "after", 1)["partitions"]) == [1, 2, 3, 4, 5]


def test_a_node_is_decommissioned_under_load(cluster_factory):
    c = cluster_factory(4).start()
    ws = writing(c, "dc", 3, 8, [0, 1, 2])
    out = subprocess.run([CLI, "--admin", c.nodes[1].admin, "decommission", "2"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out
    wait_for("node 2 draining", lambda: nodes(c, 1).get(2, {"draining": True})["draining"], timeout=10)
    # Refused while the others could not hold the partitions: with RF 3,
    # a second node decommissioned at once would leave two.
    status, body = post(f"{c.nodes[1].admin}/v1/nodes/3/decommission", {})
    assert status == 409 and "only 2 other nodes" in body["error"], (status, body)
    wait_for("node 2 gone", lambda: 2 not in nodes(c, 1), timeout=120)
    parts = wait_for("moves over", lambda: settled(c, "dc", 1), timeout=60)
    assert all(2 not in p["replicas"] and len(p["replicas"]) == 3 for p in parts), parts
    assert voters(c, 1) == [1, 3, 4], nodes(c, 1)
    md = AdminClient({"bootstrap.servers": c.nodes[1].bootstrap}).list_topics(timeout=10)
    assert sorted(md.brokers) == [1, 3, 4], md.brokers
    # It holds nothing any more; it is told so, and its id cannot come back.
    wait_for("node 2 dropped its replicas", lambda: not c.admin_get(2, "/v1/replicas", timeout=10), timeout=30)
    assert "removed from the cluster" in c.nodes[2].log()
    check_writers(c, ws, "dc", 1)
    status, body = post(f"{c.nodes[1].admin}/v1/nodes/2/decommission", {})
    assert status == 404, (status, body)


def test_a_killed_node_is_replaced(cluster_factory):
    c = cluster_factory(3).start()
    ws = writing(c, "rp", 3, 4, [0, 1])
    c.nodes[3].stop(sig=9)
    wait_for("node 3 seen dead", lambda: not nodes(c, 1)[3]["alive"], timeout=10)
    n = c.add_node(via=2)
    wait_for("node 4 registered", lambda: n in nodes(c, 1), timeout=30)
    # A dead node drains like a live one: the survivors are the source.
    status, body = post(f"{c.nodes[2].admin}/v1/nodes/3/decommission", {})
    assert status == 202, (status, body)
    wait_for("node 3 gone", lambda: 3 not in nodes(c, 1), timeout=120)
    parts = wait_for("moves over", lambda: settled(c, "rp", 1), timeout=60)
    assert all(sorted(p["replicas"]) == [1, 2, 4] for p in parts), parts
    wait_for("controller voters 1, 2, 4", lambda: voters(c, 4) == [1, 2, 4], timeout=30)
    check_writers(c, ws, "rp", 1)


def test_a_standalone_node_becomes_a_three_node_cluster(cluster_factory):
    c = cluster_factory(1)
    # Node 1 of a one-node "cluster" is the standalone node itself.
    solo = c.nodes[1]
    solo.config = None
    solo.start()
    ws = writing(c, "solo", 1, 2, [0, 1], bootstrap=solo.bootstrap)
    for _ in range(2):
        n = c.add_node(via=1)
        wait_for(f"node {n} registered", lambda n=n: n in nodes(c, 1), timeout=30)
    wait_for("3 controller voters", lambda: voters(c, 1) == [1, 2, 3], timeout=30)
    # RF 3 for every partition (the balancer may have moved some meanwhile),
    # with the CLI.
    out = subprocess.run([CLI, "--admin", c.nodes[2].admin, "topic", "replication-factor", "solo", "3"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "2 partitions moving to 3 replicas" in out.stdout, out
    parts = wait_for("RF 3", lambda: (lambda ps: ps if ps and all(len(p["replicas"]) == 3 for p in ps) else None)(settled(c, "solo", 1)), timeout=120)
    # Any node now serves the topic; the standalone node can go away.
    check_writers(c, ws, "solo", 1)
    c.nodes[1].stop(sig=9)
    p = wait_for("a new leader", lambda: all(x["leader"] in (2, 3) for x in topic_view(c, "solo", 2)["partitions"]), timeout=30)
    assert p and parts


def bytes_out(c, n):
    text = urllib.request.urlopen(f"{c.nodes[n].admin}/metrics", timeout=10).read().decode()
    return sum(float(v) for v in re.findall(r"^chronik_kafka_bytes_out_total\{[^}]*\} (\S+)$", text, re.M))


def test_replicas_are_placed_in_distinct_racks_and_consumers_read_from_their_rack(cluster_factory):
    racks = {1: "east", 2: "east", 3: "west", 4: "north"}
    c = cluster_factory(4, node_args={i: ["--broker-rack", r] for i, r in racks.items()}).start()
    wait_for("racks registered", lambda: all(nodes(c, 1)[i]["rack"] == r for i, r in racks.items()), timeout=30)
    admin = AdminClient({"bootstrap.servers": c.bootstrap})
    md = admin.describe_cluster(include_authorized_operations=False).result(timeout=10)
    assert {n.id: n.rack for n in md.nodes} == racks
    create(c.bootstrap, "racked", rf=3, partitions=8)
    parts = wait_for("leaders", lambda: settled(c, "racked", 1))
    for p in parts:
        assert len({racks[n] for n in p["replicas"]}) == 3, p
    # A partition whose leader is not in rack "west" has a replica there
    # (node 3): a consumer in "west" reads it from node 3.
    p = next(p for p in parts if racks[p["leader"]] != "west")
    assert 3 in p["replicas"], p
    prod = Producer({"bootstrap.servers": c.bootstrap, "acks": "all"})
    values = [b"r%d" % i for i in range(2000)]
    for v in values:
        prod.produce("racked", value=v + b"-" * 500, partition=p["partition"])
    assert prod.flush(30) == 0
    before = {n: bytes_out(c, n) for n in c.nodes}
    cons = Consumer({"bootstrap.servers": c.bootstrap, "group.id": "west-readers", "client.rack": "west",
                     "auto.offset.reset": "earliest", "enable.auto.commit": False})
    cons.assign([TopicPartition("racked", p["partition"], 0)])
    got = []
    deadline = time.time() + 30
    while len(got) < len(values) and time.time() < deadline:
        m = cons.poll(1)
        if m is not None and m.error() is None:
            got.append(m.value().rstrip(b"-"))
    cons.close()
    assert got == values
    served = {n: bytes_out(c, n) - before[n] for n in c.nodes}
    assert served[3] >= 2000 * 500, served
    assert served[p["leader"]] < 2000 * 500 / 2, served
    # Kafka's own Java consumer too.
    before = {n: bytes_out(c, n) for n in c.nodes}
    out = kafka_tool("org.apache.kafka.tools.consumer.ConsoleConsumer", "--bootstrap-server", c.bootstrap, "--topic", "racked",
                     "--partition", str(p["partition"]), "--offset", "earliest", "--max-messages", "2000",
                     "--consumer-property", "client.rack=west", "--timeout-ms", "30000")
    # (The tool may print a notice about its options first.)
    assert [line.rstrip("-").encode() for line in out.splitlines() if re.fullmatch(r"r\d+-*", line)] == values, out[:500]
    served = {n: bytes_out(c, n) - before[n] for n in c.nodes}
    assert served[3] >= 2000 * 500 and served[p["leader"]] < 2000 * 500 / 2, served
