"""Fault-injection runs against a real 3-node cluster (`make chaos`).

Nodes listen on their own loopback addresses (127.0.0.11-13), so iptables
rules between those addresses cut node-to-node traffic while the test
client (127.0.0.1) still reaches every node, as Jepsen's clients do. Raft
traffic to each node passes a small proxy of this harness, which adds
latency on demand (tc netem is not available). Faults are injected by name
(kill, restart, stop, pause, partition, isolate, loss, latency,
clock_skew, disk_full, power_loss, heal) on a schedule drawn from one seed;
a workload (plain and idempotent producers, an assigned consumer) records
every send and poll into a history; after healing, a fresh consumer reads
everything, `checker.check` judges the history, and the replicas of every
partition must be byte-identical. Needs root, iptables, and for some
scenarios xfsprogs (power loss) and libfaketime (clock skew).

    python3 it/chaos.py [--scenario NAME ...] [--seed N] [--duration S]

prints one row per scenario and exits 1 on any anomaly. A failing row names
its seed: rerun with that seed to replay the same schedule.
"""
import argparse
import json
import os
import queue
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

from checker import check, summary
import security_helpers

# --secure: every node with a SASL_SSL listener, SCRAM, the ACL authorizer,
# the cluster secret and admin tokens; the workload's clients log in as the
# super user. Set by main().
SECURE = {}


def client_conf(bootstrap, **conf):
    """A confluent-kafka config for the cluster (with SASL_SSL when secure)."""
    if SECURE:
        conf = {**security_helpers.sasl_conf(bootstrap, security_helpers.ADMIN_USER, security_helpers.ADMIN_PASSWORD, ca=SECURE["ca"]), **conf}
    return {"bootstrap.servers": bootstrap, **conf}


def admin_headers():
    return {"Authorization": f"Bearer {security_helpers.ADMIN_TOKEN}"} if SECURE else {}

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.environ.get("CHRONIK_BIN", os.path.join(ROOT, "target", "release", "chronik-server"))
def node_ips(n):
    """Node id -> its own loopback address: 127.0.0.11, .12, ..."""
    return {i: f"127.0.0.{10 + i}" for i in range(1, n + 1)}


# Cluster size per scenario (3 unless said otherwise).
SIZES = {"power-loss-minority": 5, "moves-under-faults": 4, "membership-under-faults": 5}
# Nodes a scenario's cluster starts with (all of SIZES unless said otherwise);
# the others join it during the scenario.
SEEDS = {"membership-under-faults": 3}
KAFKA, RAFT, ADMIN = 19092, 19192, 19292
# Peers reach a node's Raft port through the harness proxy on this port.
RAFT_PROXY = 19193
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
# The data disk of the disk-full scenario, and its reserve.
SMALL_DISK = "160m"
MIN_FREE = 32 * 1024 * 1024
CHAIN = "CHRONIK_CHAOS"
TOPIC = "chaos"
PARTITIONS = 3
# Per scenario: node flags, and the chaos topic's configs.
EXTRA_ARGS = {"retention-compaction": ["--log-retention-check-interval-ms", "500", "--log-cleaner-backoff-ms", "500"]}
TOPIC_CONFIGS = {"retention-compaction": {"retention.bytes": "40000", "segment.ms": "1000"}}
# The compacted topic of the retention-compaction scenario, and its keys.
KV_TOPIC = "chaos-kv"
KV_KEYS = 20
# Errors after which the broker certainly did not write the batch.
DEFINITE = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
            KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError.INVALID_REQUIRED_ACKS}


def sh(*args):
    subprocess.run(args, check=True, capture_output=True)


class DelayProxy:
    """Forwards TCP connections from `listen` to `target`, holding every
    chunk `delay` seconds (set at any time) in each direction, in order."""

    def __init__(self, listen, target):
        self.target, self.delay = target, 0.0
        self.sock = socket.create_server(listen, reuse_port=False)
        self.sock.settimeout(0.5)
        self.stopped = threading.Event()
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def _accept(self):
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            try:
                up = socket.create_connection(self.target, timeout=2)
            except OSError:
                conn.close()
                continue
            for a, b in ((conn, up), (up, conn)):
                q = queue.Queue()
                threading.Thread(target=self._read, args=(a, q), daemon=True).start()
                threading.Thread(target=self._write, args=(b, q), daemon=True).start()

    def _read(self, src, q):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            q.put((time.monotonic(), data))
            if not data:
                return

    def _write(self, dst, q):
        while True:
            t, data = q.get()
            wait = t + self.delay - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                dst.sendall(data)
            except OSError:
                return

    def close(self):
        self.stopped.set()
        self.acceptor.join()  # accept() times out within 0.5 s: the port is free after this
        self.sock.close()


class ChaosCluster:
    def __init__(self, base, disk=None, size=3, seeds=None):
        """disk: None (plain directories), "tmpfs" (small, for disk-full) or
        "xfs" (a loop-mounted XFS per node, for power loss). The first
        `seeds` nodes (all by default) are in the config; the others join."""
        self.ips = node_ips(size)
        self.seeds = set(list(self.ips)[:seeds or size])
        # Nodes decommissioned and stopped for good.
        self.removed = set()
        self.base = base
        self.disk = disk
        self.config = os.path.join(base, "cluster.toml")
        with open(self.config, "w") as f:
            f.write("[cluster]\nnodes = [\n")
            for i, ip in self.ips.items():
                if i not in self.seeds:
                    continue
                f.write(f'  {{ id = {i}, kafka_addr = "{ip}:{KAFKA}", raft_addr = "{ip}:{RAFT_PROXY}" }},\n')
            f.write("]\n")
        self.proxies = {i: DelayProxy((ip, RAFT_PROXY), (ip, RAFT)) for i, ip in self.ips.items()}
        self.mounts = {}
        for i in self.ips:
            if disk:
                self.mount(i)
        self.skew = {}
        self.extra_args = []
        # Checks a scenario adds, run after healing: each returns anomalies.
        self.after_heal = []
        # Topics whose replicas must end byte-identical.
        self.topics = [TOPIC]
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
        return ",".join(f"{ip}:{KAFKA}" for ip in self.ips.values())

    def data_dir(self, i):
        return os.path.join(self.base, f"node{i}")

    def mount(self, i):
        d = self.data_dir(i)
        os.makedirs(d, exist_ok=True)
        if self.disk == "tmpfs":
            sh("mount", "-t", "tmpfs", "-o", f"size={SMALL_DISK}", "tmpfs", d)
        elif self.disk == "xfs":
            img = os.path.join(self.base, f"node{i}.img")
            if not os.path.exists(img):
                sh("truncate", "-s", "600M", img)
                sh("mkfs.xfs", "-q", img)
            sh("mount", "-o", "loop", img, d)
        self.mounts[i] = d

    def start(self, i):
        ip = self.ips[i]
        log = open(os.path.join(self.base, f"node{i}.log"), "ab")
        env = dict(os.environ)
        if self.skew.get(i):
            # Wall clock and monotonic clock both shifted: timestamps and
            # any wall-clock arithmetic see a node that is minutes off.
            env.update(LD_PRELOAD=FAKETIME_LIB, FAKETIME=f"{self.skew[i]:+d}s", FAKETIME_NO_CACHE="1")
        extra = ["--min-free-disk-bytes", str(MIN_FREE)] if self.disk == "tmpfs" else []
        extra += self.extra_args
        # A node not in the config joins through a seed's Raft port.
        how = ["--config", self.config] if i in self.seeds else ["--join", f"{self.ips[min(self.seeds)]}:{RAFT_PROXY}", "--advertised-addr", f"{ip}:{KAFKA}"]
        if SECURE:
            p = SECURE["pki"]
            kafka = ["--listeners", f"SASL_SSL://{ip}:{KAFKA}", "--ssl-cert-file", p["cert"], "--ssl-key-file", p["key"], "--ssl-ca-file", p["ca"],
                     "--authorizer", "acl", "--super-users", f"User:{security_helpers.ADMIN_USER}",
                     "--cluster-secret-file", os.path.join(p["dir"], "cluster.secret"), "--cluster-tls", "true",
                     "--admin-token-file", os.path.join(p["dir"], "admin.token")]
            how = [a for a in how if a != "--advertised-addr" and a != f"{ip}:{KAFKA}"]
        else:
            kafka = ["--kafka-listen", f"{ip}:{KAFKA}"]
        self.procs[i] = subprocess.Popen(
            [BINARY, "start", *how, "--node-id", str(i), "--data-dir", os.path.join(self.data_dir(i), "data"),
             *kafka, "--raft-listen", f"{ip}:{RAFT}", "--admin-listen", f"{ip}:{ADMIN}", *extra],
            stdout=log, stderr=subprocess.STDOUT, env=env)

    def alive(self, i):
        p = self.procs.get(i)
        return p is not None and p.poll() is None and i not in self.paused

    def admin(self, i, path):
        req = urllib.request.Request(f"http://{self.ips[i]}:{ADMIN}{path}", headers=admin_headers())
        with urllib.request.urlopen(req, timeout=2) as r:
            return json.load(r)

    def wait_ready(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if all(self.admin(i, "/v1/cluster")["controller"] for i in self.ips if self.alive(i)):
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("cluster not ready")

    def leaders(self):
        for i in self.ips:
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

    def stop(self, i):
        """A clean shutdown: SIGTERM, and wait for the exit."""
        self.procs[i].send_signal(signal.SIGTERM)
        self.procs[i].wait(30)

    def loss(self, i, p):
        """Drops a fraction `p` of the packets between node i and its peers, both ways."""
        for j in self.ips:
            if j != i:
                for a, b in ((i, j), (j, i)):
                    sh("iptables", "-A", CHAIN, "-s", self.ips[a], "-d", self.ips[b], "-m", "statistic",
                       "--mode", "random", "--probability", str(p), "-j", "DROP")

    def latency(self, i, ms):
        """Delays Raft traffic into node i by `ms` (both directions of each connection)."""
        self.proxies[i].delay = ms / 1000

    def clock_skew(self, i, seconds):
        """Restarts node i with its clocks `seconds` off (libfaketime)."""
        self.skew[i] = seconds
        self.restart(i)

    def disk_full(self, i):
        """Fills node i's data disk (tmpfs) down to half its reserve."""
        d = self.mounts[i]
        st = os.statvfs(d)
        free = st.f_bavail * st.f_frsize
        with open(os.path.join(d, "filler"), "ab") as f:
            f.write(b"\0" * max(0, free - MIN_FREE // 2))

    def disk_freed(self, i):
        try:
            os.remove(os.path.join(self.mounts[i], "filler"))
        except FileNotFoundError:
            pass

    def power_loss(self, *nodes):
        """Cuts the power of `nodes` at one moment: the XFS under each stops
        at once without writing back what was not synced, the processes die,
        and the disks are mounted again (log recovery) before the nodes
        restart."""
        for i in nodes:
            sh("xfs_io", "-x", "-c", "shutdown", self.mounts[i])
        for i in nodes:
            self.kill(i)
        for i in nodes:
            sh("umount", self.mounts[i])
            self.mount(i)
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
                        sh("iptables", "-A", CHAIN, "-s", self.ips[x], "-d", self.ips[y], "-j", "DROP")

    def restart_stopped(self):
        """Starts every node of the cluster that is not running."""
        for i, p in list(self.procs.items()):
            if p.poll() is not None and i not in self.removed:
                self.start(i)

    def isolate(self, i):
        self.partition([i], [j for j in self.ips if j != i])

    def heal(self):
        sh("iptables", "-F", CHAIN)
        for i in list(self.paused):
            self.resume(i)
        for p in self.proxies.values():
            p.delay = 0.0
        for i in list(self.mounts):
            if self.disk == "tmpfs":
                self.disk_freed(i)

    def cleanup(self):
        self.heal()
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.kill()
                p.wait()
        for p in self.proxies.values():
            p.close()
        for d in self.mounts.values():
            subprocess.run(["umount", "-l", d], capture_output=True)
        subprocess.run(["iptables", "-D", "INPUT", "-j", CHAIN], capture_output=True)
        subprocess.run(["iptables", "-X", CHAIN], capture_output=True)

    def log_lines(self, text):
        """The lines of every node's log that contain `text`."""
        out = []
        for i in self.ips:
            if not os.path.exists(os.path.join(self.base, f"node{i}.log")):
                continue
            with open(os.path.join(self.base, f"node{i}.log"), "rb") as f:
                out += [f"node {i}: " + line.decode(errors="replace").strip() for line in f if text.encode() in line]
        return out

    def replicas_of(self, topic=TOPIC):
        """{partition: [replica node ids]} from the metadata."""
        for i in self.ips:
            if self.alive(i):
                for t in self.admin(i, "/v1/topics"):
                    if t["name"] == topic:
                        return {p["partition"]: p["replicas"] for p in t["partitions"]}
        return {}

    def raft_views(self, digests):
        """For each partition of `digests` whose replicas differ: every
        replica's (leader, term, last log, committed, applied index)."""
        out = {}
        for p, d in (digests.items() if isinstance(digests, dict) else []):
            if len(set(d.values())) == 1:
                continue
            for i in d:
                try:
                    r = next(r for r in self.admin(i, "/v1/replicas") if r["topic"] == TOPIC and r["partition"] == p)
                    out.setdefault(p, {})[i] = tuple(r[k] for k in ("leader", "term", "last_log_index", "committed_index", "applied_index"))
                except (OSError, StopIteration) as e:
                    out.setdefault(p, {})[i] = str(e)
            out.setdefault(p, {})["first difference"] = self.first_difference(p, list(d))
        return out

    def first_difference(self, p, nodes):
        """The first batch (base offset, last offset, Raft log index) where
        the replicas of partition `p` on `nodes` differ, as each holds it."""
        offset = 0
        try:
            while True:
                pages = {i: self.admin(i, f"/v1/replicas/{TOPIC}/{p}/batches?from={offset}&limit=1000")["batches"] for i in nodes}
                longest = max(len(b) for b in pages.values())
                for k in range(longest):
                    seen = {i: (tuple(b[k][f] for f in ("base_offset", "last_offset", "log_index")) if k < len(b) else None)
                            for i, b in pages.items()}
                    if len(set(seen.values())) > 1:
                        return seen
                if longest < 1000:
                    return None
                offset = max(b[-1]["last_offset"] for b in pages.values() if b) + 1
        except OSError as e:
            return str(e)

    def digests(self):
        """{partition: {replica node: (high watermark, crc32c)}} of every
        topic in `self.topics` (partitions of other topics than the chaos
        topic are named "topic/partition")."""
        out = {}
        for topic in self.topics:
            for p, replicas in self.replicas_of(topic).items():
                for i in replicas:
                    d = self.admin(i, f"/v1/replicas/{topic}/{p}/digest")
                    out.setdefault(p if topic == TOPIC else f"{topic}/{p}", {})[i] = (d["high_watermark"], d["crc32c"])
        return out


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

    def producer(self, name, rate=200, idempotent=False):
        # Plain producers have no client retries: each value is sent once, so
        # a value stored twice is the broker's doing, never a resend. librdkafka
        # backs off up to 10 s before reconnecting to a broker that was down;
        # 500 ms keeps that client policy out of the recovery figure (with it,
        # a leader moving to a node restarted seconds earlier read as 3-5 s).
        #
        # The idempotent producer retries as it likes, with its default
        # message timeout: the broker must still store each value once. (A
        # message that times out in the client while in flight makes
        # librdkafka bump the epoch and send what it had in flight again
        # under new sequence numbers; no broker can tell those apart, so a
        # short message timeout would test librdkafka, not Chronik.)
        conf = client_conf(self.c.bootstrap, **{"acks": "all", "linger.ms": 2, "log_level": 2,
                "topic.metadata.refresh.interval.ms": 1000, "reconnect.backoff.max.ms": 500})
        if idempotent:
            conf.update({"enable.idempotence": True})
        else:
            conf.update({"retries": 0, "enable.idempotence": False, "message.timeout.ms": 5000, "request.timeout.ms": 4000})
        p = Producer(conf)
        pending = {}
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
                pending.pop(op["value"], None)
                self.record(op)
            try:
                p.produce(TOPIC, value=value.encode(), partition=part, on_delivery=cb)
                pending[value] = op
            except BufferError:
                pass
            seq += 1
            p.poll(1.0 / rate)
        p.flush(15)
        # Still undelivered when the run ends: the outcome is unknown.
        for op in list(pending.values()):
            op.update(complete=time.monotonic(), outcome="unknown", error="not delivered when the run ended")
            self.record(op)

    def consumer(self, name):
        c = Consumer(client_conf(self.c.bootstrap, **{"group.id": f"chaos-{name}", "enable.auto.commit": False,
                      "auto.offset.reset": "error", "log_level": 2}))
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
        self.threads.append(threading.Thread(target=self.producer, args=("i1",), kwargs={"idempotent": True}))
        self.threads.append(threading.Thread(target=self.consumer, args=("c1",)))
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)

    def final_read(self, timeout=60):
        c = Consumer(client_conf(self.c.bootstrap, **{"group.id": "chaos-final", "enable.auto.commit": False}))
        for part in range(PARTITIONS):
            lo, hi = c.get_watermark_offsets(TopicPartition(TOPIC, part), timeout=10)
            # From the log start: retention may have moved it.
            c.assign([TopicPartition(TOPIC, part, lo)])
            records, deadline = [], time.time() + timeout
            while hi > lo and (not records or records[-1][0] < hi - 1) and time.time() < deadline:
                for m in c.consume(500, timeout=0.5):
                    if m.error() is None:
                        records.append([m.offset(), m.value().decode()])
            self.record({"op": "final", "partition": part, "records": records, "log_start": lo})
        c.close()


def first_ack_after(history, t, partitions):
    oks = [op["complete"] - t for op in history
           if op["op"] == "send" and op.get("outcome") == "ok" and op["invoke"] >= t and op["partition"] in partitions]
    return min(oks) if oks else None


# Scenarios: each drives faults for `duration` seconds and returns
# [(time injected, partitions affected)] for the recovery figure.
def repeat_fault(c, rng, duration, pick, inject, undo, hold):
    """Until `duration` is nearly over (at least once): wait 1-2 s, pick a node
    (`pick(leaders)`, or a tuple of nodes), inject the fault, hold it for
    `hold` seconds (a range), undo it. Recovery counts from the moment the
    fault starts (a power loss includes the remount and restart)."""
    events, end = [], time.monotonic() + duration
    first = True
    while first or time.monotonic() < end - hold[1]:
        first = False
        time.sleep(rng.uniform(1, 2))
        leaders = c.leaders()
        victim = pick(leaders)
        if not victim:
            first = time.monotonic() < end + 10  # no leader yet: a fault must still happen once
            continue
        injected = time.monotonic()
        inject(victim)
        hit = victim if isinstance(victim, tuple) else (victim,)
        events.append((injected, [p for p, l in leaders.items() if l in hit]))
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
        return rng.choice([i for i in c.ips if i not in leaders.values()] or sorted(c.ips))
    return repeat_fault(c, rng, duration, pick, c.isolate, lambda _: c.heal(), (3, 5))


def majority_lost(c, rng, duration):
    """Every node cut off from every other: no write may be acknowledged
    while it lasts (checked here), and writes resume after healing."""
    events, end = [], time.monotonic() + duration
    first = True
    while first or time.monotonic() < end - 8:
        first = False
        time.sleep(rng.uniform(1, 2))
        c.partition(*[[i] for i in c.ips])
        cut = time.monotonic()
        time.sleep(rng.uniform(3, 5))
        c.heal()
        healed = time.monotonic()
        # Recovery counts from the heal; the window is checked afterwards.
        events.append((healed, list(range(PARTITIONS))))
        c.windows.append((cut + 1.0, healed))  # the lease lets in-flight acks finish in the first second
    return events


def random_leader(c, rng):
    return lambda leaders: leaders.get(rng.randrange(PARTITIONS))


def leader_restarted_gracefully(c, rng, duration):
    """SIGTERM to a leader (a clean shutdown), restarted a moment later."""
    return repeat_fault(c, rng, duration, random_leader(c, rng), c.stop, c.start, (1, 3))


def rolling_restart(c, rng, duration):
    """Every node in turn: clean shutdown, start, wait until it serves again."""
    events, end = [], time.monotonic() + duration
    first = True
    while first or time.monotonic() < end - 6:
        first = False
        for i in sorted(c.ips):
            leaders = c.leaders()
            c.stop(i)
            events.append((time.monotonic(), [p for p, l in leaders.items() if l == i]))
            time.sleep(rng.uniform(0.5, 1.5))
            c.start(i)
            c.wait_ready()
            time.sleep(rng.uniform(1, 2))
    return events


def cascading(c, rng, duration):
    """Leaders killed one after another, each restarted just before the next
    kill: elections and catch-up overlap."""
    events, end = [], time.monotonic() + duration
    first = True
    while first or time.monotonic() < end - 4:
        first = False
        leaders = c.leaders()
        victim = leaders.get(rng.randrange(PARTITIONS))
        if not victim or not c.alive(victim):
            first = time.monotonic() < end + 10
            time.sleep(0.3)
            continue
        c.kill(victim)
        events.append((time.monotonic(), [p for p, l in leaders.items() if l == victim]))
        time.sleep(rng.uniform(0.8, 1.5))
        c.start(victim)
        time.sleep(rng.uniform(0.3, 1.0))
    return events


def all_killed(c, rng, duration):
    """Crash recovery: every node killed with kill -9 at once mid-write, then
    all restarted. Everything acknowledged must survive."""
    events, end = [], time.monotonic() + duration
    first = True
    while first or time.monotonic() < end - 6:
        first = False
        time.sleep(rng.uniform(2, 3))
        for i in c.ips:
            c.kill(i)
        time.sleep(rng.uniform(0.5, 1.5))
        for i in c.ips:
            c.start(i)
        events.append((time.monotonic(), list(range(PARTITIONS))))
    return events


def stale_node_catch_up(c, rng, duration):
    """A follower is down for most of the run while writes go on, then
    comes back and must catch up (the replica check compares it)."""
    time.sleep(1)
    leaders = c.leaders()
    victim = rng.choice([i for i in c.ips if i not in leaders.values()] or sorted(c.ips))
    c.kill(victim)
    time.sleep(duration * 0.7)
    c.start(victim)
    restarted = time.monotonic()
    time.sleep(duration * 0.2)
    return [(restarted, list(range(PARTITIONS)))]


def with_background(fault, undo):
    """A scenario that keeps `fault` on for the whole run and kills leaders
    meanwhile, so elections happen under it."""
    def scenario(c, rng, duration):
        fault(c)
        try:
            return repeat_fault(c, rng, duration, random_leader(c, rng), c.kill, c.start, (2, 3))
        finally:
            undo(c)
    return scenario


def latency_100ms(c):
    for i in c.ips:
        c.latency(i, 100)


def loss_20(c):
    for i in c.ips:
        c.loss(i, 0.2)


def clock_skew(c, rng, duration):
    """Two nodes run with clocks minutes off (one ahead, one behind) while
    leaders are killed."""
    a, b = rng.sample(sorted(c.ips), 2)
    c.clock_skew(a, 300)
    c.clock_skew(b, -300)
    c.wait_ready()
    return repeat_fault(c, rng, duration, random_leader(c, rng), c.kill, c.start, (2, 3))


def disk_full(c, rng, duration):
    """A node's data disk fills up (any node, leader or not) and is freed again."""
    return repeat_fault(c, rng, duration, lambda leaders: rng.choice(sorted(c.ips)), c.disk_full, c.disk_freed, (3, 5))


def power_loss(c, rng, duration):
    """A node loses power: unsynced writes on its disk are gone."""
    return repeat_fault(c, rng, duration, lambda leaders: rng.choice(sorted(c.ips)), c.power_loss, lambda _: None, (2, 3))


def power_loss_minority(c, rng, duration):
    """Two of five nodes lose power at the same moment: for partitions with
    both among their three replicas, every acknowledged write was durable
    on at least one of them... or on both, and must survive."""
    def pick(leaders):
        return tuple(rng.sample(sorted(c.ips), len(c.ips) // 2))
    return repeat_fault(c, rng, duration, pick, lambda nodes: c.power_loss(*nodes), lambda _: None, (2, 3))


def concurrent(c, rng, duration):
    """Two faults at once on different nodes: 20% loss on one, a pause of
    another (a majority can still be formed, barely)."""
    events, end = [], time.monotonic() + duration
    first = True
    while first or time.monotonic() < end - 5:
        first = False
        time.sleep(rng.uniform(1, 2))
        a, b = rng.sample(sorted(c.ips), 2)
        leaders = c.leaders()
        c.loss(a, 0.2)
        c.pause(b)
        events.append((time.monotonic(), [p for p, l in leaders.items() if l in (a, b)]))
        time.sleep(rng.uniform(2, 4))
        c.heal()
    return events


class KeyedWriter:
    """Writes "key:seq" values of KV_KEYS keys to the compacted topic
    (idempotent, acks=all), recording each acknowledgement; after healing
    checks what compaction left: every value read was sent, each key's
    values in the order sent, the newest acknowledged value of every key (or
    a newer one) still there, and fewer records than were acknowledged (so
    compaction did run)."""

    def __init__(self, c):
        self.c = c
        self.acked = {}  # key -> highest acknowledged seq
        self.sent = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self):
        p = Producer(client_conf(self.c.bootstrap, **{"acks": "all", "enable.idempotence": True, "linger.ms": 5,
                      "log_level": 2, "topic.metadata.refresh.interval.ms": 1000, "reconnect.backoff.max.ms": 500}))
        seq = 0
        while not self.stop.is_set():
            key = f"k{seq % KV_KEYS}"
            value = f"{key}:{seq}"
            self.sent.add(value)

            def cb(err, msg, key=key, seq=seq):
                if err is None:
                    self.acked[key] = max(self.acked.get(key, -1), seq)
            try:
                p.produce(KV_TOPIC, key=key.encode(), value=value.encode(), on_delivery=cb)
            except BufferError:
                pass
            seq += 1
            p.poll(0.01)
        p.flush(15)

    def check(self):
        self.stop.set()
        self.thread.join(30)
        c = Consumer(client_conf(self.c.bootstrap, **{"group.id": "chaos-kv-final", "enable.auto.commit": False}))
        lo, hi = c.get_watermark_offsets(TopicPartition(KV_TOPIC, 0), timeout=10)
        c.assign([TopicPartition(KV_TOPIC, 0, lo)])
        read, deadline = [], time.time() + 60
        while hi > lo and (not read or read[-1][0] < hi - 1) and time.time() < deadline:
            for m in c.consume(500, timeout=0.5):
                if m.error() is None:
                    read.append((m.offset(), m.key().decode(), m.value().decode()))
        c.close()
        anomalies, last = [], {}
        for off, key, value in read:
            seq = int(value.split(":")[1])
            if value not in self.sent or not value.startswith(key + ":"):
                anomalies.append({"kind": "kv-phantom", "ops": [], "detail": f"{KV_TOPIC} offset {off} holds {key}={value}, never sent"})
            elif key in last and seq <= last[key]:
                anomalies.append({"kind": "kv-reordered", "ops": [], "detail": f"{KV_TOPIC}: {key}:{seq} at {off} after {key}:{last[key]}"})
            last[key] = seq
        for key, seq in self.acked.items():
            if last.get(key, -1) < seq:
                anomalies.append({"kind": "kv-lost", "ops": [], "detail": f"{KV_TOPIC}: {key}:{seq} acknowledged, newest read {last.get(key)}"})
        if len(read) >= len(self.sent) or not self.acked:
            anomalies.append({"kind": "kv-not-compacted", "ops": [], "detail": f"{len(read)} records read of {len(self.sent)} sent ({len(self.acked)} keys)"})
        return anomalies


def retention_compaction(c, rng, duration):
    """Retention (the chaos topic keeps 40 KB a partition, segments of 1 s)
    and compaction (a compacted topic written with 20 keys) run while
    leaders are killed and a follower is down long enough to need a
    snapshot. The checker allows records below the log start to be gone,
    and nothing else; the compacted topic keeps every key's newest value;
    replicas of both end byte-identical."""
    admin = AdminClient(client_conf(c.bootstrap))
    kv = {"cleanup.policy": "compact", "segment.ms": "1000", "min.cleanable.dirty.ratio": "0.01"}
    admin.create_topics([NewTopic(KV_TOPIC, num_partitions=1, replication_factor=3, config=kv)])[KV_TOPIC].result(timeout=30)
    writer = KeyedWriter(c)
    writer.thread.start()
    c.after_heal.append(writer.check)
    c.topics.append(KV_TOPIC)
    events, end = [], time.monotonic() + duration
    # A follower (one that leads nothing, if there is one) down for a while.
    time.sleep(1)
    leaders = c.leaders()
    stale = rng.choice([i for i in c.ips if i not in leaders.values()] or sorted(c.ips))
    c.kill(stale)
    time.sleep(min(4, duration / 3))
    c.start(stale)
    events.append((time.monotonic(), list(range(PARTITIONS))))
    # Then leaders killed one after another.
    return events + cascading(c, rng, max(0.0, end - time.monotonic()))


def post_admin(c, i, path, body):
    req = urllib.request.Request(f"http://{c.ips[i]}:{ADMIN}{path}", data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **admin_headers()})
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def moves_under_faults(c, rng, duration):
    """Partitions move between the 4 nodes (a replica joins, one leaves,
    often the leader) while a node among the leader, the joiner and the
    leaver is killed, paused or cut off mid-move (Jepsen found lost writes
    in Redpanda under kill plus membership change). Each move must finish
    once the faults heal; the checker judges the writes, and the replicas
    of the final assignment must be byte-identical."""
    events, end = [], time.monotonic() + duration
    first = True
    while first or time.monotonic() < end - 5:
        first = False
        time.sleep(rng.uniform(0.5, 1.5))
        live = [i for i in sorted(c.ips) if c.alive(i)]
        try:
            current = c.replicas_of()
            leaders = c.leaders()
        except OSError:
            continue
        p = rng.randrange(PARTITIONS)
        if p not in current or not live:
            continue
        target = rng.sample(sorted(c.ips), 3)
        status, body = post_admin(c, rng.choice(live), "/v1/reassignments", {"moves": [{"topic": TOPIC, "partition": p, "replicas": target}]})
        if status != 200:
            print(f"  moves-under-faults: move of {p} to {target} refused ({status}): {body}", file=sys.stderr)
        time.sleep(rng.uniform(0.1, 1.0))
        around = {leaders.get(p)} | (set(target) ^ set(current[p]))
        victim = rng.choice(sorted(n for n in around if n))
        fault = rng.choice(["kill", "pause", "isolate"])
        events.append((time.monotonic(), [p]))
        {"kill": c.kill, "pause": c.pause, "isolate": c.isolate}[fault](victim)
        time.sleep(rng.uniform(1, 3))
        {"kill": c.start, "pause": c.resume, "isolate": lambda _: c.heal()}[fault](victim)
    c.heal()
    for i in c.ips:
        if c.procs[i].poll() is not None:
            c.start(i)

    def moves_finished():
        deadline = time.time() + 90
        left = None
        while time.time() < deadline:
            try:
                left = c.admin(min(c.ips), "/v1/reassignments") if c.alive(min(c.ips)) else left
                if left == []:
                    return []
            except OSError as e:
                left = str(e)
            time.sleep(1)
        return [{"kind": "move-stuck", "ops": [], "detail": f"partition moves still in progress 90 s after healing: {left}"}]
    c.after_heal.insert(0, moves_finished)
    return events


def membership_under_faults(c, rng, duration):
    """Nodes 4 and 5 join the 3-node cluster (replicas move onto them), then
    a random node is decommissioned (its replicas move away, it leaves the
    controller group), while a node among the controller leader, the one
    joining or leaving and a partition leader is killed, paused or cut off
    each time (Jepsen found lost writes in Redpanda under kill plus
    membership change). After healing, every decommission must end, the
    removed node must be out of the controller group, and the checker
    judges the writes."""
    events = []

    def fault_around(*nodes):
        try:
            controller = c.admin(min(i for i in c.procs if c.alive(i)), "/v1/cluster")["controller"]
            leaders = set(c.leaders().values())
        except (OSError, ValueError):
            controller, leaders = None, set()
        around = sorted({n for n in (controller, *nodes, *leaders) if n in c.procs and n not in c.removed})
        victim = rng.choice(around)
        fault = rng.choice(["kill", "pause", "isolate"])
        events.append((time.monotonic(), list(range(PARTITIONS))))
        {"kill": c.kill, "pause": c.pause, "isolate": c.isolate}[fault](victim)
        time.sleep(rng.uniform(1, 3))
        {"kill": c.start, "pause": c.resume, "isolate": lambda _: c.heal()}[fault](victim)

    def live_admin():
        return rng.choice([i for i in c.procs if c.alive(i) and i not in c.removed])

    for n in sorted(set(c.ips) - c.seeds):
        time.sleep(rng.uniform(0.5, 1.5))
        c.start(n)
        time.sleep(rng.uniform(0.2, 1.5))
        fault_around(n)
    time.sleep(rng.uniform(1, duration / 3))
    leaving = rng.choice(sorted(c.ips))
    status, body = 0, None
    for _ in range(20):
        try:
            status, body = post_admin(c, live_admin(), f"/v1/nodes/{leaving}/decommission", {})
        except OSError as e:
            status, body = 0, str(e)
        if status == 202:
            break
        time.sleep(1)
    print(f"  membership-under-faults: decommission of node {leaving}: {status} {body}", file=sys.stderr)
    time.sleep(rng.uniform(0.2, 1.5))
    fault_around(leaving)
    c.heal()
    c.restart_stopped()

    def membership_settled():
        deadline, last = time.time() + 120, None
        while time.time() < deadline:
            try:
                ask = min(i for i in c.procs if c.alive(i) and i != leaving)
                nodes = {n["id"]: n for n in c.admin(ask, "/v1/nodes")}
                last = {i: (n["controller_role"], n["draining"], n["replicas"]) for i, n in nodes.items()}
                if leaving not in nodes and not any(n["draining"] for n in nodes.values()):
                    voters = sorted(i for i, n in nodes.items() if n["controller_role"] == "voter")
                    if leaving in voters or len(voters) != 3:
                        return [{"kind": "controller-membership", "ops": [], "detail": f"voters {voters} after node {leaving} left 4 nodes"}]
                    c.removed.add(leaving)
                    c.kill(leaving)
                    return []
            except (OSError, ValueError) as e:
                last = str(e)
            time.sleep(1)
        return [{"kind": "decommission-stuck", "ops": [], "detail": f"node {leaving} still in the cluster 120 s after healing: {last}"}]
    c.after_heal.insert(0, membership_settled)
    return events


SCENARIOS = {"leader-killed": leader_killed, "leader-paused": leader_paused, "leader-isolated": leader_isolated,
             "follower-isolated": follower_isolated, "majority-lost": majority_lost,
             "graceful-restart": leader_restarted_gracefully, "rolling-restart": rolling_restart,
             "cascading": cascading, "all-killed": all_killed, "stale-catch-up": stale_node_catch_up,
             "latency-100ms": with_background(latency_100ms, lambda c: c.heal()),
             "loss-20pct": with_background(loss_20, lambda c: c.heal()),
             "clock-skew": clock_skew, "disk-full": disk_full, "power-loss": power_loss,
             "power-loss-minority": power_loss_minority, "concurrent": concurrent,
             "retention-compaction": retention_compaction, "moves-under-faults": moves_under_faults,
             "membership-under-faults": membership_under_faults}
# Scenarios whose nodes need a special data disk.
DISKS = {"disk-full": "tmpfs", "power-loss": "xfs", "power-loss-minority": "xfs"}


def replicas_diverged(c, timeout=30):
    """None once every partition has identical replicas on all nodes (high
    watermark and CRC32C of every batch); the last digests if they never do."""
    deadline, last = time.time() + timeout, None
    while time.time() < deadline:
        try:
            last = c.digests()
            if len(last) >= PARTITIONS and all(len(set(d.values())) == 1 for d in last.values()):
                return None
        except OSError as e:
            last = str(e)
        time.sleep(0.5)
    return last


def acked_during(history, windows):
    """Sends invoked and acknowledged entirely inside a window with no majority."""
    return [op for op in history if op["op"] == "send" and op.get("outcome") == "ok"
            and any(lo <= op["invoke"] and op["complete"] <= hi for lo, hi in windows)]


def run(name, seed, duration):
    base = tempfile.mkdtemp(prefix=f"chronik-chaos-{name}-")
    c = ChaosCluster(base, disk=DISKS.get(name), size=SIZES.get(name, 3), seeds=SEEDS.get(name))
    rng = random.Random(seed)
    c.extra_args = EXTRA_ARGS.get(name, [])
    try:
        for i in sorted(c.seeds):
            c.start(i)
        c.wait_ready()
        if SECURE:
            security_helpers.add_user(f"http://{c.ips[min(c.seeds)]}:{ADMIN}", security_helpers.ADMIN_USER, security_helpers.ADMIN_PASSWORD)
        admin = AdminClient(client_conf(c.bootstrap))
        topic = NewTopic(TOPIC, num_partitions=PARTITIONS, replication_factor=3, config=TOPIC_CONFIGS.get(name, {}))
        admin.create_topics([topic])[TOPIC].result(timeout=30)
        w = Workload(c)
        w.start()
        events = SCENARIOS[name](c, rng, duration)
        c.heal()
        c.restart_stopped()
        time.sleep(5)
        w.finish()
        c.wait_ready()
        if "retention.bytes" in TOPIC_CONFIGS.get(name, {}):
            # Retention stops, so the final read starts at a log start that stays.
            res = ConfigResource(ConfigResource.Type.TOPIC, TOPIC, incremental_configs=[
                ConfigEntry("retention.bytes", "-1", incremental_operation=AlterConfigOpType.SET)])
            list(admin.incremental_alter_configs([res]).values())[0].result(timeout=30)
            time.sleep(1)
        w.final_read()
        anomalies = check(w.history)
        for extra in c.after_heal:
            anomalies += extra()
        if "retention.bytes" in TOPIC_CONFIGS.get(name, {}):
            starts = [op["log_start"] for op in w.history if op["op"] == "final"]
            if not any(starts):
                anomalies.append({"kind": "retention-inert", "ops": [], "detail": f"no log start moved: {starts}"})
        diverged = replicas_diverged(c)
        if diverged:
            anomalies.append({"kind": "replica-divergence", "ops": [],
                              "detail": f"replicas differ after healing: {diverged}; Raft views: {c.raft_views(diverged)}"})
        for line in c.log_lines("follower log is reverted"):
            anomalies.append({"kind": "replica-lost-flushed-entries", "ops": [],
                              "detail": f"a replica came back without entries it had acknowledged as durable: {line}"})
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
    ap.add_argument("--exclude", action="append", default=[], choices=sorted(SCENARIOS), help="leave a scenario out (says so in the output)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--duration", type=float, default=20)
    ap.add_argument("--secure", action="store_true", help="security on: SASL_SSL, SCRAM, ACLs, mTLS and a secret between nodes, admin tokens")
    a = ap.parse_args()
    if a.secure:
        pki = security_helpers.make_pki(tempfile.mkdtemp(prefix="chronik-chaos-pki-"), clients=())
        SECURE.update(pki=pki, ca=pki["ca"])
        print("security on: SASL_SSL listeners, SCRAM-SHA-512, ACL authorizer, mTLS and a secret between nodes, admin tokens")
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    print(f"{'scenario':<18}{'seed':>11}{'ops':>8}{'acked':>8}{'lost':>6}{'dup':>5}{'anomalies':>11}{'faults':>8}{'recovery s':>12}")
    bad = False
    for name in a.exclude:
        print(f"{name:<18} excluded from this run (--exclude)")
    for name in [n for n in (a.scenario or sorted(SCENARIOS)) if n not in a.exclude]:
        s, anomalies = run(name, seed, a.duration)
        # A scenario that injected nothing proves nothing: that fails too.
        bad |= bool(anomalies) or s["unrecovered"] > 0 or s["faults"] == 0
        print(f"{name:<18}{seed:>11}{s['operations']:>8}{s['acknowledged']:>8}{s['lost']:>6}{s['duplicated']:>5}"
              f"{s['anomalies']:>11}{s['faults']:>8}{str(s['recovery_s']):>12}", flush=True)
        if s.get("history"):
            print(f"  history: {s['history']}  (replay: make chaos SEED={seed})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
