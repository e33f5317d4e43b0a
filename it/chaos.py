"""Fault-injection runs against a real 3-node cluster (`make chaos`).

Nodes listen on their own loopback addresses (127.0.0.11-13), so iptables
rules between those addresses cut node-to-node traffic while the test
client (127.0.0.1) still reaches every node, as Jepsen's clients do. Faults
are injected by name (kill, restart, pause, partition, isolate, heal) on a
schedule drawn from one seed; a workload records every send and poll into a
history; after healing, a fresh consumer reads everything and
`checker.check` judges the history. Needs root and iptables.

    python3 it/chaos.py [--scenario NAME ...] [--seed N] [--duration S]

prints one row per scenario and exits 1 on any anomaly. A failing row names
its seed: rerun with that seed to replay the same schedule.
"""
import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from checker import check, summary

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.environ.get("CHRONIK_BIN", os.path.join(ROOT, "target", "release", "chronik-server"))
IPS = {1: "127.0.0.11", 2: "127.0.0.12", 3: "127.0.0.13"}
KAFKA, RAFT, ADMIN = 19092, 19192, 19292
CHAIN = "CHRONIK_CHAOS"
TOPIC = "chaos"
PARTITIONS = 3
# Errors after which the broker certainly did not write the batch.
DEFINITE = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
            KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError.INVALID_REQUIRED_ACKS}


def sh(*args):
    subprocess.run(args, check=True, capture_output=True)


class ChaosCluster:
    def __init__(self, base):
        self.base = base
        self.config = os.path.join(base, "cluster.toml")
        with open(self.config, "w") as f:
            f.write("[cluster]\nnodes = [\n")
            for i, ip in IPS.items():
                f.write(f'  {{ id = {i}, kafka_addr = "{ip}:{KAFKA}", raft_addr = "{ip}:{RAFT}" }},\n')
            f.write("]\n")
        self.procs = {}
        self.paused = set()
        # Spans during which no majority exists: nothing may be acknowledged.
        self.windows = []
        subprocess.run(["iptables", "-N", CHAIN], capture_output=True)
        sh("iptables", "-F", CHAIN)
        if subprocess.run(["iptables", "-C", "INPUT", "-j", CHAIN], capture_output=True).returncode != 0:
            sh("iptables", "-I", "INPUT", "-j", CHAIN)

    @property
    def bootstrap(self):
        return ",".join(f"{ip}:{KAFKA}" for ip in IPS.values())

    def start(self, i):
        ip = IPS[i]
        log = open(os.path.join(self.base, f"node{i}.log"), "ab")
        self.procs[i] = subprocess.Popen(
            [BINARY, "start", "--config", self.config, "--node-id", str(i), "--data-dir", os.path.join(self.base, f"node{i}"),
             "--kafka-listen", f"{ip}:{KAFKA}", "--raft-listen", f"{ip}:{RAFT}", "--admin-listen", f"{ip}:{ADMIN}"],
            stdout=log, stderr=subprocess.STDOUT)

    def alive(self, i):
        p = self.procs.get(i)
        return p is not None and p.poll() is None and i not in self.paused

    def admin(self, i, path):
        with urllib.request.urlopen(f"http://{IPS[i]}:{ADMIN}{path}", timeout=2) as r:
            return json.load(r)

    def wait_ready(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if all(self.admin(i, "/v1/cluster")["controller"] for i in IPS if self.alive(i)):
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("cluster not ready")

    def leaders(self):
        for i in IPS:
            if self.alive(i):
                try:
                    for t in self.admin(i, "/v1/topics"):
                        if t["name"] == TOPIC:
                            return {p["partition"]: p["leader"] for p in t["partitions"]}
                except OSError:
                    continue
        return {}

    # Faults, by name.
    def kill(self, i):
        self.procs[i].send_signal(signal.SIGKILL)
        self.procs[i].wait()

    def restart(self, i):
        if self.procs[i].poll() is None:
            self.kill(i)
        self.start(i)

    def pause(self, i):
        self.procs[i].send_signal(signal.SIGSTOP)
        self.paused.add(i)

    def resume(self, i):
        self.procs[i].send_signal(signal.SIGCONT)
        self.paused.discard(i)

    def partition(self, *sides):
        """Cuts traffic between nodes on different sides, both ways."""
        for a in sides:
            for b in sides:
                if a is b:
                    continue
                for x in a:
                    for y in b:
                        sh("iptables", "-A", CHAIN, "-s", IPS[x], "-d", IPS[y], "-j", "DROP")

    def isolate(self, i):
        self.partition([i], [j for j in IPS if j != i])

    def heal(self):
        sh("iptables", "-F", CHAIN)
        for i in list(self.paused):
            self.resume(i)

    def cleanup(self):
        self.heal()
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.kill()
                p.wait()
        subprocess.run(["iptables", "-D", "INPUT", "-j", CHAIN], capture_output=True)
        subprocess.run(["iptables", "-X", CHAIN], capture_output=True)


class Workload:
    """Producers and an assigned consumer writing and reading unique values,
    every operation recorded."""

    def __init__(self, cluster):
        self.c = cluster
        self.history = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = []

    def record(self, op):
        with self.lock:
            self.history.append(op)

    def producer(self, name, rate=200):
        # No client retries: each value is sent once, so a value stored twice
        # is the broker's doing, never a resend. librdkafka backs off up to
        # 10 s before reconnecting to a broker that was down; 500 ms keeps
        # that client policy out of the recovery figure (with it, a leader
        # moving to a node restarted seconds earlier read as 3-5 s).
        p = Producer({"bootstrap.servers": self.c.bootstrap, "acks": "all", "retries": 0, "enable.idempotence": False,
                      "linger.ms": 2, "message.timeout.ms": 5000, "request.timeout.ms": 4000,
                      "topic.metadata.refresh.interval.ms": 1000, "reconnect.backoff.max.ms": 500})
        seq = 0
        while not self.stop.is_set():
            value = f"{name}-{seq}"
            part = seq % PARTITIONS
            op = {"op": "send", "process": name, "partition": part, "value": value, "invoke": time.monotonic()}

            def cb(err, msg, op=op):
                op["complete"] = time.monotonic()
                if err is None:
                    op["outcome"], op["offset"] = "ok", msg.offset()
                else:
                    op["outcome"] = "fail" if err.code() in DEFINITE else "unknown"
                    op["error"] = err.str()
                self.record(op)
            try:
                p.produce(TOPIC, value=value.encode(), partition=part, on_delivery=cb)
            except BufferError:
                pass
            seq += 1
            p.poll(1.0 / rate)
        p.flush(10)

    def consumer(self, name):
        c = Consumer({"bootstrap.servers": self.c.bootstrap, "group.id": f"chaos-{name}", "enable.auto.commit": False,
                      "auto.offset.reset": "error"})
        c.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
        while not self.stop.is_set():
            t = time.monotonic()
            m = c.poll(0.2)
            if m is None or m.error() is not None:
                continue
            self.record({"op": "poll", "process": name, "partition": m.partition(), "invoke": t,
                         "complete": time.monotonic(), "records": [[m.offset(), m.value().decode()]]})
        c.close()

    def start(self):
        self.threads = [threading.Thread(target=self.producer, args=(f"p{i}",)) for i in (1, 2)]
        self.threads.append(threading.Thread(target=self.consumer, args=("c1",)))
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)

    def final_read(self, timeout=60):
        c = Consumer({"bootstrap.servers": self.c.bootstrap, "group.id": "chaos-final", "enable.auto.commit": False})
        for part in range(PARTITIONS):
            lo, hi = c.get_watermark_offsets(TopicPartition(TOPIC, part), timeout=10)
            c.assign([TopicPartition(TOPIC, part, 0)])
            records, deadline = [], time.time() + timeout
            while (not records or records[-1][0] < hi - 1) and time.time() < deadline:
                for m in c.consume(500, timeout=0.5):
                    if m.error() is None:
                        records.append([m.offset(), m.value().decode()])
            self.record({"op": "final", "partition": part, "records": records})
        c.close()


def first_ack_after(history, t, partitions):
    oks = [op["complete"] - t for op in history
           if op["op"] == "send" and op.get("outcome") == "ok" and op["invoke"] >= t and op["partition"] in partitions]
    return min(oks) if oks else None


# Scenarios: each drives faults for `duration` seconds and returns
# [(time injected, partitions affected)] for the recovery figure.
def repeat_fault(c, rng, duration, pick, inject, undo, hold):
    """Until `duration` is nearly over: wait 1-2 s, pick a node (`pick(leaders)`),
    inject the fault, hold it for `hold` seconds (a range), undo it. Each fault
    is timed once in place: sends before that may still commit."""
    events, end = [], time.monotonic() + duration
    while time.monotonic() < end - hold[1]:
        time.sleep(rng.uniform(1, 2))
        leaders = c.leaders()
        victim = pick(leaders)
        if not victim:
            continue
        inject(victim)
        events.append((time.monotonic(), [p for p, l in leaders.items() if l == victim]))
        time.sleep(rng.uniform(*hold))
        undo(victim)
    return events


def leader_killed(c, rng, duration):
    return repeat_fault(c, rng, duration, lambda l: l.get(rng.randrange(PARTITIONS)), c.kill, c.start, (2, 4))


def leader_paused(c, rng, duration):
    # Held longer than the election timeout.
    return repeat_fault(c, rng, duration, lambda l: l.get(rng.randrange(PARTITIONS)), c.pause, c.resume, (2, 4))


def leader_isolated(c, rng, duration):
    return repeat_fault(c, rng, duration, lambda l: l.get(rng.randrange(PARTITIONS)), c.isolate, lambda _: c.heal(), (3, 5))


def follower_isolated(c, rng, duration):
    """A minority (a node leading nothing, if there is one) is cut off: the
    majority goes on; the node catches up after healing."""
    def pick(leaders):
        return rng.choice([i for i in IPS if i not in leaders.values()] or sorted(IPS))
    return repeat_fault(c, rng, duration, pick, c.isolate, lambda _: c.heal(), (3, 5))


def majority_lost(c, rng, duration):
    """Every node cut off from every other: no write may be acknowledged
    while it lasts (checked here), and writes resume after healing."""
    events, end = [], time.monotonic() + duration
    while time.monotonic() < end - 8:
        time.sleep(rng.uniform(1, 2))
        c.partition([1], [2], [3])
        cut = time.monotonic()
        time.sleep(rng.uniform(3, 5))
        c.heal()
        healed = time.monotonic()
        # Recovery counts from the heal; the window is checked afterwards.
        events.append((healed, list(range(PARTITIONS))))
        c.windows.append((cut + 1.0, healed))  # the lease lets in-flight acks finish in the first second
    return events


SCENARIOS = {"leader-killed": leader_killed, "leader-paused": leader_paused, "leader-isolated": leader_isolated,
             "follower-isolated": follower_isolated, "majority-lost": majority_lost}


def acked_during(history, windows):
    """Sends invoked and acknowledged entirely inside a window with no majority."""
    return [op for op in history if op["op"] == "send" and op.get("outcome") == "ok"
            and any(lo <= op["invoke"] and op["complete"] <= hi for lo, hi in windows)]


def run(name, seed, duration):
    base = tempfile.mkdtemp(prefix=f"chronik-chaos-{name}-")
    c = ChaosCluster(base)
    rng = random.Random(seed)
    try:
        for i in IPS:
            c.start(i)
        c.wait_ready()
        admin = AdminClient({"bootstrap.servers": c.bootstrap})
        admin.create_topics([NewTopic(TOPIC, num_partitions=PARTITIONS, replication_factor=3)])[TOPIC].result(timeout=30)
        w = Workload(c)
        w.start()
        events = SCENARIOS[name](c, rng, duration)
        c.heal()
        for i in IPS:
            if c.procs[i].poll() is not None:
                c.start(i)
        time.sleep(5)
        w.finish()
        c.wait_ready()
        w.final_read()
        anomalies = check(w.history)
        for op in acked_during(w.history, c.windows):
            anomalies.append({"kind": "minority-ack", "ops": [op],
                              "detail": f"{op['value']!r} acknowledged while no majority could be formed"})
        s = summary(w.history, anomalies)
        # A fault that touched no leader is measured on every partition.
        recov = [first_ack_after(w.history, t, parts or list(range(PARTITIONS))) for t, parts in events]
        if os.environ.get("CHAOS_VERBOSE"):
            print(f"  {name}: recovery per fault: {[None if r is None else round(r, 2) for r in recov]}", file=sys.stderr)
        s["recovery_s"] = round(max(r for r in recov if r is not None), 2) if any(r is not None for r in recov) else None
        s["unrecovered"] = sum(1 for r in recov if r is None)
        s["faults"] = len(events)
        if anomalies:
            path = os.path.join(ROOT, f"chaos-{name}-{seed}.jsonl")
            with open(path, "w") as f:
                for op in w.history:
                    f.write(json.dumps(op) + "\n")
            s["history"] = path
            for a in anomalies[:10]:
                print(f"  {name} seed {seed}: {a['kind']}: {a['detail']}", file=sys.stderr)
        return s, anomalies
    finally:
        c.cleanup()
        if os.environ.get("CHAOS_KEEP"):
            print(f"  data and logs kept in {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--duration", type=float, default=20)
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    print(f"{'scenario':<18}{'seed':>11}{'ops':>8}{'acked':>8}{'lost':>6}{'dup':>5}{'anomalies':>11}{'faults':>8}{'recovery s':>12}")
    bad = False
    for name in a.scenario or sorted(SCENARIOS):
        s, anomalies = run(name, seed, a.duration)
        bad |= bool(anomalies) or s["unrecovered"] > 0
        print(f"{name:<18}{seed:>11}{s['operations']:>8}{s['acknowledged']:>8}{s['lost']:>6}{s['duplicated']:>5}"
              f"{s['anomalies']:>11}{s['faults']:>8}{str(s['recovery_s']):>12}", flush=True)
        if s.get("history"):
            print(f"  history: {s['history']}  (replay: make chaos SEED={seed})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
