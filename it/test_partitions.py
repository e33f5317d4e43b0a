"""Partitions and their leaders on a running cluster: CreatePartitions
(`kafka-topics.sh --alter --partitions`, admin clients, admin API, CLI),
ElectLeaders (`kafka-leader-election.sh`) and the automatic leader balancer
that hands leaders back to their preferred replicas once a node returns."""
import json
import subprocess
import time
import urllib.request

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewPartitions

from kafka_helpers import wait_for
from test_retention import CLI, create, kafka_tools_classpath, post

NO_BALANCER = ["--auto-leader-rebalance-enable", "false"]
FAST_BALANCER = ["--leader-imbalance-check-interval-ms", "500"]


def kafka_tool(main_class, *args):
    out = subprocess.run(["java", "-cp", kafka_tools_classpath(), main_class, *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out
    return out.stdout


def topic_view(c, topic, node=1):
    return next(t for t in c.admin_get(node, "/v1/topics", timeout=10) if t["name"] == topic)


def preferred_lead(c, topic):
    t = topic_view(c, topic)
    return all(p["leader"] == p["replicas"][0] for p in t["partitions"]) and t["partitions"]


def leaders_led_elsewhere_meanwhile(c, topic, away, ask):
    """Creates `topic` (6 partitions, RF 3) led by its preferred replicas,
    stops node `away` until node `ask` sees every partition led by another
    node, then starts it again."""
    create(c.bootstrap, topic, rf=3, partitions=6)
    wait_for("preferred leaders at first", lambda: preferred_lead(c, topic), timeout=20)
    c.nodes[away].stop()
    wait_for("new leaders", lambda: all(p["leader"] not in (None, away) for p in topic_view(c, topic, node=ask)["partitions"]), timeout=20)
    c.nodes[away].start()
    c.wait_ready()


def test_partitions_are_added_to_a_running_topic(cluster_factory):
    c = cluster_factory(3, extra_args=NO_BALANCER).start()
    b = c.bootstrap
    create(b, "grow", rf=2, partitions=2)
    a = AdminClient({"bootstrap.servers": b})
    list(a.create_partitions([NewPartitions("grow", 4)], request_timeout=30).values())[0].result(timeout=30)
    def led():
        v = topic_view(c, "grow")
        return v if all(p["leader"] for p in v["partitions"]) else None
    t = wait_for("leaders of the new partitions", led)
    assert [p["partition"] for p in t["partitions"]] == [0, 1, 2, 3]
    # Round-robin after the topic's own: each partition starts one node further.
    firsts = [p["replicas"][0] for p in t["partitions"]]
    assert all((firsts[i + 1] - firsts[i]) % 3 == 1 for i in range(3)), firsts
    assert all(len(p["replicas"]) == 2 and p["leader"] for p in t["partitions"]), t
    # The new partitions take writes at once, old ones keep theirs.
    p = Producer({"bootstrap.servers": b, "acks": "all"})
    for part in range(4):
        p.produce("grow", value=b"v%d" % part, partition=part)
    assert p.flush(30) == 0
    cons = Consumer({"bootstrap.servers": b, "group.id": "g-grow", "enable.auto.commit": False})
    for part in range(4):
        assert cons.get_watermark_offsets(TopicPartition("grow", part), timeout=10) == (0, 1), part
    cons.close()

    # Kafka's own tool.
    kafka_tool("org.apache.kafka.tools.TopicCommand", "--bootstrap-server", b, "--alter", "--topic", "grow", "--partitions", "6")
    wait_for("6 partitions", lambda: len(topic_view(c, "grow")["partitions"]) == 6)
    # The admin API and the CLI.
    status, body = post(f"{c.nodes[2].admin}/v1/topics/grow/partitions", {"count": 7})
    assert status == 200 and len(body["partitions"]) == 7, body
    out = subprocess.run([CLI, "--admin", c.nodes[3].admin, "--json", "topic", "add-partitions", "grow", "--count", "8"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and len(json.loads(out.stdout)["partitions"]) == 8, out

    # Refused as Kafka refuses: no shrinking, no growing the offsets topic.
    for topic, count, code in [("grow", 3, "INVALID_PARTITIONS"), ("nope", 3, "UNKNOWN_TOPIC_OR_PART")]:
        with pytest.raises(KafkaException) as e:
            list(a.create_partitions([NewPartitions(topic, count)], request_timeout=30).values())[0].result(timeout=30)
        assert e.value.args[0].name() == code, e.value
    assert post(f"{c.nodes[1].admin}/v1/topics/grow/partitions", {"count": 2})[0] == 400


def test_kafka_leader_election_tool_elects_preferred_leaders(cluster_factory):
    c = cluster_factory(3, extra_args=NO_BALANCER).start()
    b = c.bootstrap
    # Node 1 goes away and comes back: its partitions stay led elsewhere.
    leaders_led_elsewhere_meanwhile(c, "elect", away=1, ask=2)
    time.sleep(2)
    assert not preferred_lead(c, "elect"), "no balancer: leaders stay where they went"
    out = kafka_tool("org.apache.kafka.tools.LeaderElectionCommand", "--bootstrap-server", b,
                     "--election-type", "preferred", "--all-topic-partitions")
    assert "Successfully completed leader election (PREFERRED) for partitions" in out, out
    wait_for("preferred leaders again", lambda: preferred_lead(c, "elect"), timeout=20)
    # Again: nothing to do, as Kafka says it.
    out = kafka_tool("org.apache.kafka.tools.LeaderElectionCommand", "--bootstrap-server", b,
                     "--election-type", "preferred", "--topic", "elect", "--partition", "0")
    assert "Valid replica already elected for partitions elect-0" in out, out
    # Unclean: Raft never elects a replica without the committed records.
    out = kafka_tool("org.apache.kafka.tools.LeaderElectionCommand", "--bootstrap-server", b,
                     "--election-type", "unclean", "--topic", "elect", "--partition", "1")
    assert "Valid replica already elected for partitions elect-1" in out, out


def test_leaders_go_back_to_their_preferred_replicas_when_a_node_returns(cluster_factory):
    c = cluster_factory(3, extra_args=FAST_BALANCER).start()
    leaders_led_elsewhere_meanwhile(c, "balance", away=2, ask=1)
    wait_for("leaders back on their preferred replicas", lambda: preferred_lead(c, "balance"), timeout=30)
    moves = 0
    for i in c.nodes:
        metrics = urllib.request.urlopen(f"{c.nodes[i].admin}/metrics", timeout=10).read().decode()
        moves += sum(float(l.split()[-1]) for l in metrics.splitlines() if l.startswith("chronik_leader_balance_moves_total{"))
    assert moves >= 1, moves
