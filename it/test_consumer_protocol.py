"""KIP-848's consumer group protocol (ConsumerGroupHeartbeat) with Kafka
4.4's own console consumer and tools: members share a topic, a killed
member's partitions go to the survivor after its session, Kafka's
kafka-consumer-groups describes the group, a classic member cannot join a
live consumer group, and an emptied group goes on under the classic
protocol from the same committed offsets."""
import os
import re
import signal
import subprocess
import time
import urllib.error

from confluent_kafka import Consumer, KafkaError, Producer

from kafka_helpers import create_topic, wait_for
from test_partitions import kafka_tool
from test_retention import create, kafka_tools_classpath

FAST = ["--group-consumer-session-timeout-ms", "6000", "--group-consumer-heartbeat-interval-ms", "500"]
GROUPS = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"


def produce_each(bootstrap, topic, partitions, prefix, per_partition):
    p = Producer({"bootstrap.servers": bootstrap})
    for part in range(partitions):
        for i in range(per_partition):
            p.produce(topic, f"{prefix}-{part}-{i}".encode(), partition=part)
    assert p.flush(30) == 0


def console_consumer(bootstrap, topic, group, out_path):
    out = open(out_path, "wb")
    return subprocess.Popen(
        ["java", "-cp", kafka_tools_classpath(), "org.apache.kafka.tools.consumer.ConsoleConsumer", "--bootstrap-server", bootstrap,
         "--topic", topic, "--group", group, "--from-beginning", "--consumer-property", "group.protocol=consumer",
         "--consumer-property", "auto.commit.interval.ms=200"],
        stdout=out, stderr=subprocess.STDOUT)


def values(path):
    with open(path, "rb") as f:
        return {line.strip().decode() for line in f if re.match(rb"^(old|new|late)-\d+-\d+$", line.strip())}


def members(bootstrap, group):
    out = kafka_tool(GROUPS, "--bootstrap-server", bootstrap, "--describe", "--group", group, "--members")
    return [line.split() for line in out.splitlines() if line.startswith(group + " ")]


def test_consumer_protocol_members_share_take_over_and_hand_back_to_classic(node_factory, tmp_path):
    node = node_factory(FAST).start()
    b = node.bootstrap
    create_topic(b, "kip848", partitions=4)
    produce_each(b, "kip848", 4, "old", 10)
    outs = [tmp_path / "c1.out", tmp_path / "c2.out"]
    procs = [console_consumer(b, "kip848", "g", str(o)) for o in outs]
    try:
        wait_for("both members to hold partitions", lambda: (lambda m: len(m) == 2 and all(int(r[4]) > 0 for r in m) and m)(members(b, "g")), timeout=60)
        wait_for("every old record read", lambda: len(values(outs[0]) | values(outs[1])) == 40, timeout=30)
        # The group is a consumer group to Kafka's tools.
        state = kafka_tool(GROUPS, "--bootstrap-server", b, "--describe", "--group", "g", "--state")
        assert re.search(r"(?m)^g\s.*\suniform\s+Stable\s+2\s*$", state), state
        # A classic member cannot join while consumer-protocol members hold it.
        classic = Consumer({"bootstrap.servers": b, "group.id": "g", "auto.offset.reset": "earliest"})
        classic.subscribe(["kip848"])
        deadline, refused = time.time() + 30, None
        while time.time() < deadline and refused is None:
            m = classic.poll(0.5)
            if m is not None and m.error() and m.error().code() == KafkaError.INCONSISTENT_GROUP_PROTOCOL:
                refused = m.error()
            assert m is None or m.error(), "a classic member got records of a live consumer group"
        classic.close()
        assert refused is not None, "no INCONSISTENT_GROUP_PROTOCOL for the classic member"
        # One member dies: after its session the other reads every partition.
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait()
        produce_each(b, "kip848", 4, "new", 5)
        want = {f"new-{p}-{i}" for p in range(4) for i in range(5)}
        wait_for("the survivor to read every partition", lambda: want <= values(outs[1]), timeout=40)
        # The survivor leaves; the empty group goes on as a classic group
        # from the offsets the consumer-protocol members committed.
        time.sleep(1)
        procs[1].send_signal(signal.SIGTERM)
        procs[1].wait(30)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    produce_each(b, "kip848", 4, "late", 2)
    c = Consumer({"bootstrap.servers": b, "group.id": "g", "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe(["kip848"])
    got, deadline = set(), time.time() + 30
    while time.time() < deadline and len(got) < 8:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.add(m.value().decode())
    c.close()
    assert got == {f"late-{p}-{i}" for p in range(4) for i in range(2)}, f"resumed from the committed offsets: {sorted(got)[:10]}"


def test_consumer_protocol_members_carry_on_when_the_coordinator_dies(cluster_factory, tmp_path):
    c = cluster_factory(3, extra_args=FAST).start()
    create(c.bootstrap, "kip848-ha", rf=3, partitions=3)
    produce_each(c.bootstrap, "kip848-ha", 3, "old", 5)
    out = tmp_path / "c.out"
    proc = console_consumer(c.bootstrap, "kip848-ha", "ha", str(out))
    try:
        wait_for("the old records", lambda: len(values(out)) == 15, timeout=60)
        # The admin API knows the group once it has committed.
        def coordinator_of():
            try:
                return c.admin_get(1, "/v1/groups/ha", timeout=10)["coordinator"]
            except urllib.error.HTTPError:
                return None
        coordinator = wait_for("the group's first commit", coordinator_of, timeout=20)
        c.nodes[coordinator].stop(signal.SIGKILL)
        produce_each(c.live_bootstrap(), "kip848-ha", 3, "new", 5)
        want = {f"new-{p}-{i}" for p in range(3) for i in range(5)}
        # A new coordinator does not know the member: it joins again and
        # resumes from its commits.
        wait_for("the new records after the coordinator died", lambda: want <= values(out), timeout=60)
        live = next(n for n in c.nodes if n != coordinator)
        assert c.admin_get(live, "/v1/groups/ha", timeout=10)["coordinator"] != coordinator
    finally:
        proc.kill()
