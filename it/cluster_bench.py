"""Cluster measurements that kbench does not make (used by bench_cluster.sh).

  e2e       produce at a fixed rate while a consumer tails the partitions:
            produce (ack) latency and end-to-end latency (produce() call to
            the consumer holding the message: commit + fetch).
  failover  produce steadily to one partition, kill -9 its leader, and time
            the gap from the kill to the first acknowledged produce sent
            after it (necessarily on the new leader).
  idle      CPU (share of one core) and RSS of each node over a quiet window.
  leaders   wait until Metadata (all topics) names a leader for every
            partition; prints how long that took.
  metadata  Metadata for all topics, a few times: latency and size.
  move      fill a partition on nodes 1 and 2 with --mb MB, then move it to
            nodes 2 and 3 (AlterPartitionReassignments through the admin
            API: a copy to node 3, then its leader leaves) while a producer
            writes 1 KB messages to it at --rate msg/s: the time the move
            takes, and the producer's rate and latency before and during.

Each prints one JSON line on stdout.
"""
import argparse
import json
import os
import signal
import threading
import time
import urllib.request

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(len(xs) * p / 100))] * 1000, 2)


def create(bootstrap, topic, partitions, rf=3):
    admin = AdminClient({"bootstrap.servers": bootstrap})  # must outlive the future
    fs = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=rf)], request_timeout=120)
    fs[topic].result(timeout=150)


def admin_get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return json.load(r)


def e2e(a):
    topic = f"e2e-{time.time_ns()}"
    create(a.bootstrap, topic, a.partitions)
    sent = {}
    ack_lat, e2e_lat = [], []
    done = threading.Event()
    c = Consumer({"bootstrap.servers": a.bootstrap, "group.id": topic, "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, 0) for p in range(a.partitions)])

    def consume():
        # poll() returns as soon as one message is there (consume(n) would
        # wait for n messages or its timeout, and that wait would count).
        while not done.is_set():
            m = c.poll(0.05)
            if m is not None and m.error() is None:
                t0 = sent.get(m.value())
                if t0 is not None:
                    e2e_lat.append(time.monotonic() - t0)
    th = threading.Thread(target=consume)
    th.start()
    time.sleep(2)  # the consumer has fetched once and is long-polling

    p = Producer({"bootstrap.servers": a.bootstrap, "acks": "all", "linger.ms": a.linger_ms})
    payload = b"x" * (a.size - 16)

    def cb(err, msg):
        if err is None:
            ack_lat.append(time.monotonic() - sent[msg.value()])

    start = time.monotonic()
    for i in range(a.messages):
        due = start + i / a.rate
        while time.monotonic() < due:
            p.poll(0.0005)
        v = b"%015d|" % i + payload
        sent[v] = time.monotonic()
        p.produce(topic, value=v, partition=i % a.partitions, on_delivery=cb)
        p.poll(0)
    p.flush(30)
    deadline = time.time() + 10
    while len(e2e_lat) < a.messages and time.time() < deadline:
        time.sleep(0.1)
    done.set()
    th.join()
    c.close()
    print(json.dumps({"rate": a.rate, "messages": a.messages, "acked": len(ack_lat), "consumed": len(e2e_lat),
                      "produce_ms": {"p50": pct(ack_lat, 50), "p99": pct(ack_lat, 99)},
                      "e2e_ms": {"p50": pct(e2e_lat, 50), "p99": pct(e2e_lat, 99)}}))


def failover(a):
    topic = f"failover-{time.time_ns()}"
    create(a.bootstrap, topic, 1)
    leader = None
    deadline = time.time() + 30
    while leader is None and time.time() < deadline:
        for t in admin_get(a.admin_ports[0], "/v1/topics"):
            if t["name"] == topic:
                leader = t["partitions"][0]["leader"]
        time.sleep(0.1)
    assert leader, "no leader"
    p = Producer({"bootstrap.servers": a.bootstrap, "acks": "all", "linger.ms": 0,
                  "message.timeout.ms": 30000, "retry.backoff.ms": 20, "retry.backoff.max.ms": 100,
                  "topic.metadata.refresh.interval.ms": 1000, **dict(x.split("=", 1) for x in a.X)})
    kill_at = None
    first_after = []

    def on_delivery(sent_at):
        def cb(err, _msg):
            if err is None and kill_at is not None and sent_at > kill_at and not first_after:
                first_after.append(time.monotonic())
        return cb

    i = 0
    start = time.monotonic()
    while not first_after:
        now = time.monotonic()
        if kill_at is None and now - start > 3:
            pid = int(open(os.path.join(a.cluster_dir, f"node{leader}.pid")).read())
            os.kill(pid, signal.SIGKILL)
            kill_at = time.monotonic()
        if kill_at is not None and now - kill_at > 30:
            break
        p.produce(topic, value=b"%d" % i, partition=0, on_delivery=on_delivery(now))
        i += 1
        p.poll(0.005)
    p.flush(10)
    gap = round(first_after[0] - kill_at, 3) if first_after else None
    print(json.dumps({"killed_node": leader, "failover_s": gap}))


def admin_post(port, path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def move(a):
    topic = f"move-{time.time_ns()}"
    admin = AdminClient({"bootstrap.servers": a.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replica_assignment=[[1, 2]])])[topic].result(timeout=60)
    time.sleep(1)
    fill = Producer({"bootstrap.servers": a.bootstrap, "acks": "all", "linger.ms": 20, "batch.size": 1 << 20,
                     "queue.buffering.max.kbytes": 1 << 20})
    chunk = os.urandom(1 << 20)
    for i in range(a.mb * 1024):
        while True:
            try:
                fill.produce(topic, value=chunk[(i % 1000):(i % 1000) + 1024], partition=0)
                break
            except BufferError:
                fill.poll(0.05)
        if i % 1024 == 0:
            fill.poll(0)
    assert fill.flush(300) == 0, "fill not acknowledged"
    # (ack time, latency) of the producer that writes at a fixed rate throughout.
    acks = []
    stop = threading.Event()

    def write():
        p = Producer({"bootstrap.servers": a.bootstrap, "acks": "all", "linger.ms": 5, "message.timeout.ms": 60000})
        n, t0 = 0, time.monotonic()
        while not stop.is_set():
            sent = time.monotonic()
            try:
                p.produce(topic, value=chunk[:1024], partition=0,
                          on_delivery=lambda e, m, sent=sent: e is None and acks.append((time.monotonic(), time.monotonic() - sent)))
                n += 1
            except BufferError:
                pass
            p.poll(0)
            ahead = n / a.rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
        p.flush(60)

    t = threading.Thread(target=write, daemon=True)
    t.start()
    time.sleep(3)
    before_start = time.monotonic()
    time.sleep(7)
    started = time.monotonic()
    # Node 3 joins, node 1 (the leader) leaves: the copy, then a handover.
    admin_post(a.admin_ports[0], "/v1/reassignments", {"moves": [{"topic": topic, "partition": 0, "replicas": [2, 3]}]})
    while admin_get(a.admin_ports[1], "/v1/reassignments"):
        if time.monotonic() - started > 600:
            break
        time.sleep(0.2)
    done = time.monotonic()
    time.sleep(2)
    stop.set()
    t.join(60)

    def window(lo, hi):
        lat = sorted(l for x, l in acks if lo <= x < hi)
        return round(len(lat) / max(hi - lo, 1e-9)), pct(lat, 50), pct(lat, 99)
    b, d = window(before_start, started), window(started, done)
    print(json.dumps({"mb": a.mb, "move_s": round(done - started, 2), "copy_mb_s": round(a.mb / max(done - started, 1e-9), 1),
                      "rate": a.rate, "before": {"msg_s": b[0], "p50_ms": b[1], "p99_ms": b[2]},
                      "during": {"msg_s": d[0], "p50_ms": d[1], "p99_ms": d[2]}, "finished": not admin_get(a.admin_ports[1], "/v1/reassignments")}))


def idle(a):
    def sample():
        out = {}
        for n, pidf in a.pids.items():
            pid = int(open(pidf).read())
            st = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            ticks = int(st[11]) + int(st[12])
            rss = next(int(l.split()[1]) for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS:"))
            out[n] = (ticks, rss)
        return out
    hz = os.sysconf("SC_CLK_TCK")
    s0 = sample()
    t0 = time.monotonic()
    time.sleep(a.seconds)
    s1 = sample()
    dt = time.monotonic() - t0
    print(json.dumps({n: {"cpu_pct": round(100 * (s1[n][0] - s0[n][0]) / hz / dt, 1), "rss_mib": round(s1[n][1] / 1024)}
                      for n in s1}))


def leaders(a):
    admin = AdminClient({"bootstrap.servers": a.bootstrap})
    t0 = time.monotonic()
    missing = None
    while time.monotonic() - t0 < a.timeout:
        try:
            md = admin.list_topics(timeout=30)
            missing = sum(1 for t in md.topics.values() for p in t.partitions.values() if p.leader < 0)
            if missing == 0:
                break
        except Exception:
            pass
        time.sleep(1)
    print(json.dumps({"all_led_s": round(time.monotonic() - t0, 1) if missing == 0 else None, "leaderless": missing}))


def metadata(a):
    admin = AdminClient({"bootstrap.servers": a.bootstrap})
    admin.list_topics(timeout=30)
    times, parts = [], 0
    for _ in range(5):
        t0 = time.monotonic()
        md = admin.list_topics(timeout=30)
        times.append(time.monotonic() - t0)
        parts = sum(len(t.partitions) for t in md.topics.values())
    times.sort()
    print(json.dumps({"partitions": parts, "p50_ms": round(times[2] * 1000, 1), "max_ms": round(times[-1] * 1000, 1)}))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("e2e")
    e.add_argument("--bootstrap", required=True)
    e.add_argument("--rate", type=int, default=10000)
    e.add_argument("--messages", type=int, default=100000)
    e.add_argument("--partitions", type=int, default=6)
    e.add_argument("--size", type=int, default=1024)
    e.add_argument("--linger-ms", type=int, default=5)
    f = sub.add_parser("failover")
    f.add_argument("--bootstrap", required=True)
    f.add_argument("--admin-ports", type=int, nargs="+", required=True)
    f.add_argument("--cluster-dir", required=True)
    f.add_argument("-X", action="append", default=[], help="extra librdkafka property k=v")
    c = sub.add_parser("create")
    c.add_argument("--bootstrap", required=True)
    c.add_argument("--topic", required=True)
    c.add_argument("--partitions", type=int, required=True)
    i = sub.add_parser("idle")
    i.add_argument("--seconds", type=float, default=20)
    i.add_argument("--pid", action="append", default=[], help="node=pidfile")
    m = sub.add_parser("move")
    m.add_argument("--bootstrap", required=True)
    m.add_argument("--admin-ports", type=int, nargs="+", required=True)
    m.add_argument("--mb", type=int, default=1024)
    m.add_argument("--rate", type=int, default=5000, help="the producer's messages/s (1 KB) during the move")
    for name in ("leaders", "metadata"):
        x = sub.add_parser(name)
        x.add_argument("--bootstrap", required=True)
        x.add_argument("--timeout", type=float, default=600)
    a = ap.parse_args()
    if a.cmd == "idle":
        a.pids = dict(x.split("=", 1) for x in a.pid)
    if a.cmd == "create":
        create(a.bootstrap, a.topic, a.partitions)
        return
    {"e2e": e2e, "failover": failover, "idle": idle, "leaders": leaders, "metadata": metadata, "move": move}[a.cmd](a)


if __name__ == "__main__":
    main()
