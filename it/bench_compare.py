"""`make bench-compare`: Chronik and Apache Kafka 4.4.0 side by side, same
machine, same client (kbench: librdkafka, 1 KB messages, acks=all, every
message read back and checked on the max-rate runs).

Systems, each run alternately per scenario (the order flips every round):
  chronik      every acknowledged write fsynced (on a majority in a cluster)
  kafka        Kafka's defaults: acknowledged from the page cache, no fsync
  kafka-fsync  the same brokers, topics with flush.messages=1 (the topic form
               of log.flush.interval.messages=1): an fsync per append, the
               durability Chronik gives
Shapes: one node, then three nodes (RF 3, min.insync.replicas=2; Kafka as
three combined broker+controller KRaft nodes). Only the measured system's
nodes run; each is started fresh per round.

Each cluster first carries 65 s of load that is not measured (JIT warm-up).
Figures per run: msg/s, produce p50/p99 (ms), CPU of the system's own
processes per MB produced (ms of CPU, all nodes, from /proc), and for the
max-rate runs bytes added on disk (all nodes) per byte replicated. Each line
is one run; the ratio lines compare means over rounds (chronik / kafka).

Environment: ROUNDS (2), MESSAGES (200000), CHRONIK_BIN (the server binary;
target/release by default), KAFKA_LIB (jars; fetched with
it/kafka/pom.xml when missing), KEEP=1 keeps the temp dir.
"""
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

from confluent_kafka.admin import AdminClient, NewTopic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KBENCH = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "tools", "kbench.py")
ROUNDS = int(os.environ.get("ROUNDS", "2"))
MESSAGES = int(os.environ.get("MESSAGES", "200000"))
KAFKA_LIB = os.environ.get("KAFKA_LIB", os.path.join(ROOT, "target", "apache-kafka-4.4.0", "lib"))
BIN = os.environ.get("CHRONIK_BIN") or os.path.join(ROOT, "target", "release", "chronik-server")
HZ = os.sysconf("SC_CLK_TCK")
SIZE = 1024


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def wait_port(port, seconds=60):
    import socket
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port} after {seconds} s")


def wait_brokers(bootstrap, n, seconds=90):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if len(admin.list_topics(timeout=5).brokers) >= n:
                return
        except Exception:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{bootstrap}: fewer than {n} brokers after {seconds} s")


def cpu_ticks(pids):
    total = 0
    for pid in pids:
        st = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        total += int(st[11]) + int(st[12])
    return total


def disk_bytes(dirs):
    out = subprocess.run(["du", "-s", "--block-size=1", *dirs], capture_output=True, text=True).stdout
    return sum(int(line.split()[0]) for line in out.splitlines() if line.strip())


class Cluster:
    """Processes of one system in one shape."""

    def __init__(self, name, tmp, nodes):
        self.name, self.tmp, self.nodes = name, tmp, nodes
        self.procs, self.data_dirs = [], []

    def pids(self):
        return [p.pid for p in self.procs]

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.time() + 15
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                # A KRaft node whose quorum is gone can hang in controlled shutdown.
                p.kill()
                p.wait()


class Chronik(Cluster):
    def __init__(self, tmp, nodes):
        super().__init__("chronik", tmp, nodes)
        base = 19092 if nodes == 1 else 29092
        self.ports = [base + i for i in range(nodes)]
        self.bootstrap = ",".join(f"127.0.0.1:{p}" for p in self.ports)
        d = os.path.join(tmp, f"chronik-{nodes}")
        os.makedirs(d)
        if nodes == 1:
            data = os.path.join(d, "data")
            self.data_dirs.append(data)
            p = self.ports[0]
            cmd = [BIN, "standalone", "--data-dir", data, "--advertised-addr", f"127.0.0.1:{p}", "--kafka-listen", f"127.0.0.1:{p}",
                   "--raft-listen", f"127.0.0.1:{p + 100}", "--admin-listen", f"127.0.0.1:{p + 200}"]
            self.procs.append(subprocess.Popen(cmd, stdout=open(os.path.join(d, "node.log"), "w"), stderr=subprocess.STDOUT))
        else:
            conf = os.path.join(d, "cluster.toml")
            with open(conf, "w") as f:
                f.write("[cluster]\nnodes = [\n")
                for i, p in enumerate(self.ports):
                    f.write(f'  {{ id = {i + 1}, kafka_addr = "127.0.0.1:{p}", raft_addr = "127.0.0.1:{p + 100}" }},\n')
                f.write("]\n")
            for i in range(nodes):
                data = os.path.join(d, f"node{i + 1}")
                self.data_dirs.append(data)
                cmd = [BIN, "start", "--config", conf, "--node-id", str(i + 1), "--data-dir", data]
                self.procs.append(subprocess.Popen(cmd, stdout=open(os.path.join(d, f"node{i + 1}.log"), "w"), stderr=subprocess.STDOUT))
        for p in self.ports:
            wait_port(p)
        wait_brokers(self.bootstrap, nodes)


class Kafka(Cluster):
    """Combined broker+controller KRaft nodes, formatted fresh."""

    def __init__(self, tmp, nodes):
        super().__init__("kafka", tmp, nodes)
        base = 39092 if nodes == 1 else 49092
        self.ports = [base + i for i in range(nodes)]
        ctl = [p + 100 for p in self.ports]
        self.bootstrap = ",".join(f"127.0.0.1:{p}" for p in self.ports)
        d = os.path.join(tmp, f"kafka-{nodes}")
        os.makedirs(d)
        cp = os.path.join(KAFKA_LIB, "*")
        log4j = os.path.join(d, "log4j2.properties")
        with open(log4j, "w") as f:
            f.write("rootLogger.level = warn\nrootLogger.appenderRef.out.ref = OUT\nappender.out.type = Console\n"
                    "appender.out.name = OUT\nappender.out.layout.type = PatternLayout\nappender.out.layout.pattern = [%d] %p %m (%c)%n\n")
        java = ["java", "-Xms1g", "-Xmx1g", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
                "-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={log4j}", "-cp", cp]
        tool = ["java", f"-Dlog4j2.configurationFile={log4j}", "-cp", cp, "kafka.tools.StorageTool"]
        cluster_id = subprocess.run(tool + ["random-uuid"], capture_output=True, text=True, check=True).stdout.split()[-1]
        dir_ids = [subprocess.run(tool + ["random-uuid"], capture_output=True, text=True, check=True).stdout.split()[-1] for _ in range(nodes)]
        rf = min(3, nodes)
        for i in range(nodes):
            data = os.path.join(d, f"node{i + 1}")
            self.data_dirs.append(data)
            props = os.path.join(d, f"node{i + 1}.properties")
            with open(props, "w") as f:
                f.write(f"""process.roles=broker,controller
node.id={i + 1}
listeners=PLAINTEXT://127.0.0.1:{self.ports[i]},CONTROLLER://127.0.0.1:{ctl[i]}
advertised.listeners=PLAINTEXT://127.0.0.1:{self.ports[i]}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.quorum.bootstrap.servers={",".join(f"127.0.0.1:{c}" for c in ctl)}
log.dirs={data}
num.partitions=1
default.replication.factor={rf}
min.insync.replicas={2 if nodes >= 3 else 1}
offsets.topic.replication.factor={rf}
transaction.state.log.replication.factor={rf}
transaction.state.log.min.isr={2 if nodes >= 3 else 1}
group.initial.rebalance.delay.ms=0
""")
            fmt = tool + ["format", "-t", cluster_id, "-c", props]
            if nodes == 1:
                fmt.append("--standalone")
            else:
                fmt += ["--initial-controllers", ",".join(f"{j + 1}@127.0.0.1:{ctl[j]}:{dir_ids[j]}" for j in range(nodes))]
            subprocess.run(fmt, capture_output=True, text=True, check=True)
            if nodes > 1:
                # The formatted directory id must match the one named in --initial-controllers.
                meta = os.path.join(data, "meta.properties")
                text = open(meta).read()
                assert dir_ids[i] in text, f"{meta} does not carry directory id {dir_ids[i]}"
            self.procs.append(subprocess.Popen(java + ["kafka.Kafka", props], stdout=open(os.path.join(d, f"node{i + 1}.log"), "w"),
                                               stderr=subprocess.STDOUT))
        for p in self.ports:
            wait_port(p, 120)
        wait_brokers(self.bootstrap, nodes, 120)


def fetch_kafka():
    if glob.glob(os.path.join(KAFKA_LIB, "kafka_2.13-4.4.0.jar")):
        return
    log(f"fetching Apache Kafka 4.4.0 from Maven Central into {KAFKA_LIB} ...")
    subprocess.run(["mvn", "-q", "-f", os.path.join(ROOT, "it", "kafka", "pom.xml"), "dependency:copy-dependencies",
                    f"-DoutputDirectory={KAFKA_LIB}", "-DincludeScope=runtime"], check=True)


def create_topic(bootstrap, topic, partitions, rf, config):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fs = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=rf, config=config)], request_timeout=120)
    fs[topic].result(timeout=150)


def run(system, cluster, tmp, label, args, partitions, rate):
    """One kbench run against one system; returns its figures."""
    nodes = cluster.nodes
    rf = min(3, nodes)
    topic = f"cmp-{label}-{system}-{uuid.uuid4().hex[:8]}"
    config = {"flush.messages": "1"} if system == "kafka-fsync" else {}
    t_create = time.monotonic()
    create_topic(cluster.bootstrap, topic, partitions, rf, config)
    t_create = time.monotonic() - t_create
    time.sleep(1 if partitions < 100 else 5)  # leaders settle; creation's own work is not the run's
    disk0 = disk_bytes(cluster.data_dirs)
    cpu0 = cpu_ticks(cluster.pids())
    cmd = [sys.executable, KBENCH, "--bootstrap", cluster.bootstrap, "--topic", topic, "--size", str(SIZE), "--acks", "all",
           "--partitions", str(partitions), "--replication-factor", str(rf), "--consume-mode", "assign", "--label", system, *args]
    err = os.path.join(tmp, f"{label}-{system}.err")
    out = subprocess.run(cmd, capture_output=True, text=True)
    open(err, "w").write(out.stderr)
    cpu1 = cpu_ticks(cluster.pids())
    if out.returncode != 0 or not out.stdout.strip():
        log(out.stderr[-2000:])
        raise SystemExit(f"kbench failed against {system} ({label}); see {err}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    p, v = r["produce"], r.get("consume", {})
    produced_mb = (p.get("acked") or p.get("messages") or 0) * SIZE / 1e6
    fig = {"msg_s": p.get("msg_s") or 0, "p50": p["lat_ms"].get("p50") or 0, "p99": p["lat_ms"].get("p99") or 0,
           "cpu_ms_mb": 1000 * (cpu1 - cpu0) / HZ / produced_mb if produced_mb else 0,
           "lost": v.get("lost", "-"), "dup": v.get("duplicates", "-"), "create_s": t_create}
    if rate == 0:
        time.sleep(2)  # background flushes land
        fig["disk"] = (disk_bytes(cluster.data_dirs) - disk0) / (produced_mb * 1e6 * rf) if produced_mb else 0
    return fig


def warm_up(cluster, tmp):
    """Load that is not measured: the JVM compiles its hot paths in the
    first minute (a cold 3-node Kafka answers at 10K msg/s with p50 in the
    hundreds of ms, a warm one in single digits). Every system gets the same."""
    log(f"   warming up {cluster.name} ...")
    for args, parts in ((["--messages", "600000", "--rate", "10000", "--skip-consume"], 6), (["--messages", "100000"], 6)):
        run(cluster.name, cluster, tmp, "warmup", args, parts, 1)


def scenarios(nodes):
    m = ["--messages", str(MESSAGES)]
    if nodes == 1:
        return [("20K msg/s, 6 partitions", "r20k6", ["--messages", "200000", "--rate", "20000", "--skip-consume"], 6, 20000),
                ("max, 1 partition", "max1", m, 1, 0),
                ("max, 6 partitions", "max6", m, 6, 0)]
    return [("10K msg/s, 6 partitions", "r10k6", ["--messages", "100000", "--rate", "10000", "--skip-consume"], 6, 10000),
            ("10K msg/s, 600 partitions", "r10k600", ["--messages", "100000", "--rate", "10000", "--skip-consume"], 600, 10000),
            ("max, 1 partition", "max1", m, 1, 0),
            ("max, 6 partitions", "max6", m, 6, 0)]


HEAD = f"{'':<28}{'system':<14}{'msg/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'CPU ms/MB':>11}{'disk B/B':>10}{'lost':>6}{'dup':>5}"


def line(name, system, f):
    disk = f"{f['disk']:.2f}" if "disk" in f else "-"
    return f"{name:<28}{system:<14}{f['msg_s']:>9.0f}{f['p50']:>9.2f}{f['p99']:>9.2f}{f['cpu_ms_mb']:>11.1f}{disk:>10}{f['lost']!s:>6}{f['dup']!s:>5}"


def ratio_line(a, b, label):
    def mean(xs, k):
        vals = [x[k] for x in xs if k in x]
        return sum(vals) / len(vals) if vals else None

    def r(k):
        x, y = mean(a, k), mean(b, k)
        return f"{x / y:.2f}x" if x is not None and y else "-"
    return f"{'':<28}{label:<14}{r('msg_s'):>9}{r('p50'):>9}{r('p99'):>9}{r('cpu_ms_mb'):>11}{r('disk'):>10}"


def main():
    fetch_kafka()
    tmp = tempfile.mkdtemp(prefix="chronik-bench-compare.")
    log(f"work dir {tmp}")
    systems = ["chronik", "kafka", "kafka-fsync"]
    report = []
    try:
        for nodes in (1, 3):
            results = {}
            for rnd in range(ROUNDS):
                # One system's nodes at a time: on 2 cores an idle cluster beside
                # the measured one would be part of the measurement.
                clusters = [("chronik", Chronik, ["chronik"]), ("kafka", Kafka, ["kafka", "kafka-fsync"])]
                if rnd % 2:
                    clusters = [(n, c, s[::-1]) for n, c, s in clusters[::-1]]
                for cname, make, runs in clusters:
                    log(f"[{nodes} node(s), round {rnd + 1}] starting {cname} ...")
                    cl = make(tmp, nodes)
                    try:
                        warm_up(cl, tmp)
                        for name, label, args, parts, rate in scenarios(nodes):
                            for s in runs:
                                f = run(s, cl, tmp, f"{label}-r{rnd}", args, parts, rate)
                                log("   " + line(name, s, f))
                                results.setdefault(name, {}).setdefault(s, []).append(f)
                    finally:
                        cl.stop()
                    shutil.rmtree(os.path.join(tmp, f"{cname}-{nodes}"), ignore_errors=True)
            title = "one node" if nodes == 1 else "three nodes, RF 3, min.insync.replicas=2"
            report.append(f"\n{title}, 1 KB messages, acks=all, kbench (librdkafka)")
            report.append(HEAD)
            for name, by in results.items():
                for s in systems:
                    for f in by[s]:
                        report.append(line(name, s, f))
                report.append(ratio_line(by["chronik"], by["kafka"], "chronik/kafka"))
                report.append(ratio_line(by["chronik"], by["kafka-fsync"], "chronik/k-fsync"))
                creates = ", ".join(f"{s} {sum(f['create_s'] for f in by[s]) / len(by[s]):.1f} s" for s in systems)
                report.append(f"{'':<28}topic creation: {creates}")
        print("\n".join(report))
        print("\nCPU ms/MB: CPU of all the system's nodes per MB produced (max-rate runs include reading everything back);"
              "\ndisk B/B: bytes added on disk, all nodes, per byte produced times RF.")
    finally:
        if not os.environ.get("KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
