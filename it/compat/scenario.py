"""The compatibility scenario, run by one Python client library with its
default producer settings (`python3 scenario.py LIB BOOTSTRAP TOPIC GROUP`,
LIB one of confluent-kafka, kafka-python, aiokafka):

1. create a topic with 3 partitions;
2. produce 10,000 keyed messages and wait for every acknowledgement;
3. consume them with a group of two members (two processes) that split
   the partitions, commit, and stop both;
4. produce 1,000 more;
5. a new member of the same group must resume exactly after the commits:
   it gets the 1,000 new messages and none of the old;
6. describe the topic, then delete it.

Prints one JSON line: {"client", "version", "ok", "error"}.

A member runs as `python3 scenario.py LIB member BOOTSTRAP TOPIC GROUP OUT`:
it writes each record it reads to OUT as "partition offset value", and
when OUT.stop appears it commits, writes its final assignment to OUT.done
and leaves the group."""
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback

import security_env

FIRST, SECOND, PARTITIONS = 10_000, 1_000, 3
TIMEOUT_S = 90


def check_split(final):
    """final: the partitions each member held at the end."""
    assert all(final) and not final[0] & final[1] and final[0] | final[1] == set(range(PARTITIONS)), \
        f"the two members must split the partitions, got {final}"


def check_first(got, acked):
    """Every acknowledged message read, each where it was acknowledged. A
    partition that moved between members in a rebalance before the commit
    is read again from the start: the same records, at the same offsets."""
    for g in got:
        for p, o, v in g:
            assert acked.get(v) == (p, o), f"{v!r} read at {(p, o)}, acknowledged at {acked.get(v)}"
    values = {v for g in got for _, _, v in g}
    assert len(values) == FIRST, f"consumed {len(values)} distinct of {FIRST}"


def run_group(lib, bootstrap, topic, group, want):
    """Two member processes consume until `want` distinct records arrived,
    then commit and leave. Returns ([records per member], [final partitions])."""
    tmp = tempfile.mkdtemp(prefix="compat-")
    outs = [os.path.join(tmp, f"member{i}") for i in range(2)]
    procs = [subprocess.Popen([sys.executable, __file__, lib, "member", bootstrap, topic, group, out]) for out in outs]

    def read(path):
        if not os.path.exists(path):
            return []
        with open(path, "rb") as f:
            lines = f.read().split(b"\n")[:-1]
        return [(int(p), int(o), v) for p, o, v in (line.split(b" ", 2) for line in lines)]
    deadline = time.time() + TIMEOUT_S
    while time.time() < deadline and len({v for out in outs for _, _, v in read(out)}) < want:
        assert all(p.poll() is None for p in procs), "a member exited early"
        time.sleep(0.2)
    time.sleep(1)  # a moment longer, to catch duplicates
    for out in outs:
        open(out + ".stop", "w").close()
    for p in procs:
        assert p.wait(60) == 0, "a member failed"
    finals = [set(json.load(open(out + ".done"))) for out in outs]
    return [read(out) for out in outs], finals


def member(lib, bootstrap, topic, group, out):
    """One group member: see the module doc."""
    f = open(out, "ab", buffering=0)

    def record(p, o, v):
        f.write(b"%d %d %s\n" % (p, o, v))

    def stopping():
        return os.path.exists(out + ".stop")

    def done(partitions):
        with open(out + ".done", "w") as d:
            json.dump(sorted(partitions), d)
    MEMBERS[lib](bootstrap, topic, group, record, stopping, done)


def check_resume(got, ends):
    values = sorted(v for _, _, v in got)
    assert values == sorted(b"n%d" % i for i in range(SECOND)), f"the new member read {len(values)} messages, not exactly the {SECOND} new ones"
    for p in range(PARTITIONS):
        offsets = sorted(o for q, o, _ in got if q == p)
        assert not offsets or offsets[0] == ends[p], f"partition {p} resumed at {offsets[0]}, committed {ends[p]}"


def keyed(prefix, n):
    return [(b"k%d" % i, b"%s%d" % (prefix, i)) for i in range(n)]


# ---------------------------------------------------------------- librdkafka
def run_confluent(bootstrap, topic, group):
    import confluent_kafka
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap, **security_env.confluent()})
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(30)

    def produce(msgs):
        acked, errors = {}, []
        p = Producer({"bootstrap.servers": bootstrap, **security_env.confluent()})

        def cb(err, m):
            if err:
                errors.append(err)
            else:
                acked[m.value()] = (m.partition(), m.offset())
        for k, v in msgs:
            while True:
                try:
                    p.produce(topic, key=k, value=v, on_delivery=cb)
                    break
                except BufferError:
                    p.poll(0.05)
        assert p.flush(60) == 0 and not errors, f"undelivered: {errors[:3]}"
        return acked

    acked = produce(keyed(b"v", FIRST))
    got, finals = run_group("confluent-kafka", bootstrap, topic, group, FIRST)
    check_split(finals)
    check_first(got, acked)
    conf = {"bootstrap.servers": bootstrap, **security_env.confluent(), "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False}
    c = Consumer(conf)
    ends = {tp.partition: tp.offset for tp in c.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)}
    c.close()
    produce(keyed(b"n", SECOND))
    c = Consumer(conf)
    c.subscribe([topic])
    got = poll_all(lambda m: [(r.partition(), r.offset(), r.value()) for r in m.consume(500, 0.1) if not r.error()], [c], SECOND)[0]
    c.close()
    check_resume(got, ends)
    md = admin.list_topics(topic, timeout=10).topics[topic]
    assert len(md.partitions) == PARTITIONS, md
    admin.delete_topics([topic])[topic].result(30)
    return f"{confluent_kafka.__version__} (librdkafka {confluent_kafka.libversion()[0]})"


def member_confluent(bootstrap, topic, group, record, stopping, done):
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": bootstrap, **security_env.confluent(), "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    while not stopping():
        for r in c.consume(500, 0.1):
            if not r.error():
                record(r.partition(), r.offset(), r.value())
    c.commit(asynchronous=False)
    done(tp.partition for tp in c.assignment())
    c.close()


def poll_all(poll, members, want):
    got = [[] for _ in members]
    deadline = time.time() + TIMEOUT_S
    while sum(map(len, got)) < want and time.time() < deadline:
        for i, m in enumerate(members):
            got[i].extend(poll(m))
    # A little longer, to catch duplicates.
    end = time.time() + 1
    while time.time() < end:
        for i, m in enumerate(members):
            got[i].extend(poll(m))
    return got


# -------------------------------------------------------------- kafka-python
def run_kafka_python(bootstrap, topic, group):
    import kafka
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **security_env.kafka_python())
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])

    def produce(msgs):
        p = KafkaProducer(bootstrap_servers=bootstrap, **security_env.kafka_python())
        futures = [(v, p.send(topic, key=k, value=v)) for k, v in msgs]
        acked = {}
        for v, f in futures:
            md = f.get(timeout=60)
            acked[v] = (md.partition, md.offset)
        p.close()
        return acked

    acked = produce(keyed(b"v", FIRST))

    def member():
        return KafkaConsumer(topic, bootstrap_servers=bootstrap, **security_env.kafka_python(), group_id=group, auto_offset_reset="earliest", enable_auto_commit=False)

    def poll(m):
        return [(r.partition, r.offset, r.value) for rs in m.poll(timeout_ms=100).values() for r in rs]

    got, finals = run_group("kafka-python", bootstrap, topic, group, FIRST)
    check_split(finals)
    check_first(got, acked)
    probe = KafkaConsumer(bootstrap_servers=bootstrap, **security_env.kafka_python(), group_id=group, enable_auto_commit=False)
    ends = {p: probe.committed(TopicPartition(topic, p)) for p in range(PARTITIONS)}
    probe.close()
    produce(keyed(b"n", SECOND))
    c = member()
    got = poll_all(poll, [c], SECOND)[0]
    c.close()
    check_resume(got, ends)
    described = admin.describe_topics([topic])
    assert len(described[0]["partitions"]) == PARTITIONS, described
    admin.delete_topics([topic])
    admin.close()
    return kafka.__version__


def member_kafka_python(bootstrap, topic, group, record, stopping, done):
    from kafka import KafkaConsumer
    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, **security_env.kafka_python(), group_id=group, auto_offset_reset="earliest", enable_auto_commit=False)
    while not stopping():
        for rs in c.poll(timeout_ms=100).values():
            for r in rs:
                record(r.partition, r.offset, r.value)
    c.commit()
    done(tp.partition for tp in c.assignment())
    c.close()


# ------------------------------------------------------------------ aiokafka
def run_aiokafka(bootstrap, topic, group):
    import aiokafka
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    async def main():
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **security_env.aiokafka())
        await admin.start()
        await admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])

        async def produce(msgs):
            p = AIOKafkaProducer(bootstrap_servers=bootstrap, **security_env.aiokafka())
            await p.start()
            futures = [(v, await p.send(topic, key=k, value=v)) for k, v in msgs]
            acked = {}
            for v, f in futures:
                md = await f
                acked[v] = (md.partition, md.offset)
            await p.stop()
            return acked

        acked = await produce(keyed(b"v", FIRST))

        async def member():
            c = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, **security_env.aiokafka(), group_id=group, auto_offset_reset="earliest", enable_auto_commit=False)
            await c.start()
            return c

        async def poll_all_async(members, want):
            got = [[] for _ in members]
            deadline = time.time() + TIMEOUT_S
            end = None
            while time.time() < deadline and (end is None or time.time() < end):
                for i, m in enumerate(members):
                    batches = await m.getmany(timeout_ms=100)
                    got[i].extend((r.partition, r.offset, r.value) for rs in batches.values() for r in rs)
                if end is None and sum(map(len, got)) >= want:
                    end = time.time() + 1
            return got

        got, finals = await asyncio.get_running_loop().run_in_executor(None, run_group, "aiokafka", bootstrap, topic, group, FIRST)
        check_split(finals)
        check_first(got, acked)
        probe = await member()
        ends = {p: await probe.committed(TopicPartition(topic, p)) for p in range(PARTITIONS)}
        await probe.stop()
        await produce(keyed(b"n", SECOND))
        c = await member()
        got = (await poll_all_async([c], SECOND))[0]
        await c.stop()
        check_resume(got, ends)
        described = await admin.describe_topics([topic])
        assert len(described[0]["partitions"]) == PARTITIONS, described
        await admin.delete_topics([topic])
        await admin.close()

    asyncio.run(main())
    return aiokafka.__version__


def member_aiokafka(bootstrap, topic, group, record, stopping, done):
    from aiokafka import AIOKafkaConsumer

    async def main():
        c = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, **security_env.aiokafka(), group_id=group, auto_offset_reset="earliest", enable_auto_commit=False)
        await c.start()
        while not stopping():
            for rs in (await c.getmany(timeout_ms=100)).values():
                for r in rs:
                    record(r.partition, r.offset, r.value)
        await c.commit()
        done(tp.partition for tp in c.assignment())
        await c.stop()
    asyncio.run(main())


MEMBERS = {"confluent-kafka": member_confluent, "kafka-python": member_kafka_python, "aiokafka": member_aiokafka}

RUNNERS = {"confluent-kafka": run_confluent, "kafka-python": run_kafka_python, "aiokafka": run_aiokafka}

if __name__ == "__main__":
    if sys.argv[2] == "member":
        member(sys.argv[1], *sys.argv[3:7])
        sys.exit(0)
    lib, bootstrap, topic, group = sys.argv[1:5]
    # Warnings and errors of the Python libraries on stderr, as a user sees
    # them (kafka-python reports a refused password only in its log).
    import logging
    logging.basicConfig(level=logging.WARNING)
    result = {"client": lib, "version": "?", "ok": False, "error": ""}
    try:
        result["version"] = RUNNERS[lib](bootstrap, topic, group)
        result["ok"] = True
    except Exception as e:  # noqa: BLE001 - every failure is reported in the table
        traceback.print_exc()
        result["error"] = f"{type(e).__name__}: {e}"[:300]
    print(json.dumps(result), flush=True)
