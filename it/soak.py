"""make soak: disk use under retention and a steady 1 KB workload.

A fresh single node; a topic whose partitions keep `--retention-mb` each
(retention.bytes, segments of 1 MiB) receives `--times` that amount. Prints,
every few seconds, what was produced, each partition's log start and high
watermark, and the data directory's size. Checks as it goes that a consumer
which keeps up misses nothing and that no offset is ever reused, and at the
end that a consumer from the earliest offset starts at the moved log start.
Prints the space amplification at the end: bytes on disk over the record
bytes retained, and over retention.bytes times the partitions.

  python3 it/soak.py [--retention-mb 16] [--times 10] [--partitions 2]
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("CHRONIK_BIN", os.path.join(ROOT, "target", "release", "chronik-server"))


def du(path):
    total = 0
    for d, _, files in os.walk(path):
        for f in files:
            try:
                total += os.stat(os.path.join(d, f)).st_blocks * 512
            except OSError:
                pass
    return total


def replicas(admin):
    with urllib.request.urlopen(f"{admin}/v1/replicas", timeout=10) as r:
        return {x["partition"]: x for x in json.load(r) if x["topic"] == "soak"}


def segments(admin):
    """sled's log segments by state and its live bytes, from /metrics."""
    out = {}
    with urllib.request.urlopen(f"{admin}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("chronik_storage_segments{"):
                out[line.split('state="')[1].split('"')[0]] = int(float(line.split()[-1]))
            elif line.startswith("chronik_storage_relocation_queue_pages{"):
                out["queued"] = int(float(line.split()[-1]))
            elif line.startswith("chronik_storage_live_bytes{"):
                out["live"] = int(float(line.split()[-1]))
    return out


class Tail(threading.Thread):
    """Consumes every partition as it is written; records what it saw."""

    def __init__(self, bootstrap, partitions):
        super().__init__(daemon=True)
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": "soak-tail", "auto.offset.reset": "earliest",
                           "enable.auto.commit": False, "fetch.max.bytes": 8 << 20})
        self.c.assign([TopicPartition("soak", p, 0) for p in range(partitions)])
        self.next = {p: 0 for p in range(partitions)}
        self.errors = []
        self.count = 0
        self.stop = False

    def run(self):
        while not self.stop:
            for m in self.c.consume(num_messages=1000, timeout=0.5):
                if m.error():
                    self.errors.append(str(m.error()))
                    continue
                p, o = m.partition(), m.offset()
                if o != self.next[p]:
                    self.errors.append(f"partition {p}: offset {o} where {self.next[p]} was next")
                if m.value()[:12] != b"%012d" % o:
                    self.errors.append(f"partition {p}: offset {o} holds record {m.value()[:12]!r}")
                self.next[p] = o + 1
                self.count += 1
        self.c.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--retention-mb", type=int, default=16)
    ap.add_argument("--times", type=int, default=10)
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--idle", type=int, default=9, help="seconds to watch the disk after the last record")
    ap.add_argument("--port", type=int, default=int(os.environ.get("PORT", "19392")))
    args = ap.parse_args()
    retention = args.retention_mb << 20
    size = 1024
    per_partition = args.times * retention // size
    base = tempfile.mkdtemp(prefix="chronik-soak-")
    data = os.path.join(base, "data")
    port = args.port
    admin = f"http://127.0.0.1:{port + 200}"
    log = open(os.path.join(base, "node.log"), "wb")
    node = subprocess.Popen([BIN, "standalone", "--data-dir", data, "--advertised-addr", f"127.0.0.1:{port}",
                             "--kafka-listen", f"127.0.0.1:{port}", "--raft-listen", f"127.0.0.1:{port + 100}",
                             "--admin-listen", f"127.0.0.1:{port + 200}", "--log-retention-check-interval-ms", "1000"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        bootstrap = f"127.0.0.1:{port}"
        kadmin = AdminClient({"bootstrap.servers": bootstrap})
        kadmin.create_topics(
            [NewTopic("soak", args.partitions, 1, config={"retention.bytes": str(retention), "segment.bytes": str(1 << 20)})]
        )["soak"].result(timeout=30)
        tail = Tail(bootstrap, args.partitions)
        tail.start()
        p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "enable.idempotence": True})
        failed = []
        start = time.time()
        last_print = 0
        max_disk = 0
        starts = {q: 0 for q in range(args.partitions)}
        print(f"{'s':>5}{'produced MB':>13}{'consumed':>10}{'log start':>22}{'high watermark':>22}{'purged index':>18}{'disk MB':>9}{'live MB':>9}  segments free/active/inactive/draining, pages queued")
        for o in range(per_partition):
            for q in range(args.partitions):
                while True:
                    try:
                        p.produce("soak", value=(b"%012d" % o).ljust(size, b"x"), partition=q,
                                  on_delivery=lambda err, m: failed.append(err) if err else None)
                        break
                    except BufferError:
                        p.poll(0.05)
            p.poll(0)
            if o % 2000 == 0 and time.time() - last_print >= 5:
                last_print = time.time()
                r = replicas(admin)
                for q, x in r.items():
                    if x["log_start_offset"] < starts[q]:
                        failed.append(f"partition {q}: log start went back from {starts[q]} to {x['log_start_offset']}")
                    starts[q] = x["log_start_offset"]
                disk = du(data)
                max_disk = max(max_disk, disk)
                ls = "/".join(str(r[q]["log_start_offset"]) for q in sorted(r))
                hw = "/".join(str(r[q]["high_watermark"]) for q in sorted(r))
                pi = "/".join(str(r[q]["purged_index"]) for q in sorted(r))
                sg = segments(admin)
                print(f"{time.time() - start:>5.0f}{(o + 1) * size * args.partitions / 1e6:>13.0f}{tail.count:>10}{ls:>22}{hw:>22}{pi:>18}{disk / 1e6:>9.1f}"
                      f"{sg.get('live', 0) / 1e6:>9.1f}  {sg.get('free', 0)}/{sg.get('active', 0)}/{sg.get('inactive', 0)}/{sg.get('draining', 0)}, {sg.get('queued', 0)}", flush=True)
        assert p.flush(60) == 0
        produced = per_partition * args.partitions
        deadline = time.time() + 60
        while tail.count < produced and time.time() < deadline:
            time.sleep(0.2)
        tail.stop = True
        tail.join(10)
        # Let retention, the purge and sled's cleaner catch up, then look at the disk.
        for _ in range(args.idle // 3):
            time.sleep(3)
            sg = segments(admin)
            files = sorted(((os.stat(os.path.join(d, f)).st_blocks * 512, os.path.relpath(os.path.join(d, f), data))
                            for d, _, fs in os.walk(data) for f in fs), reverse=True)
            print("files: " + ", ".join(f"{name} {n / 1e6:.1f} MB" for n, name in files[:4]))
            print(f"idle: disk {du(data) / 1e6:.1f} MB, live {sg.get('live', 0) / 1e6:.1f} MB, segments free/active/inactive/draining "
                  f"{sg.get('free', 0)}/{sg.get('active', 0)}/{sg.get('inactive', 0)}/{sg.get('draining', 0)}, pages queued {sg.get('queued', 0)}", flush=True)
        r = replicas(admin)
        disk = du(data)
        max_disk = max(max_disk, disk)
        retained = sum(x["retained_bytes"] for x in r.values())
        for q, x in sorted(r.items()):
            print(f"partition {q}: Raft log entries {x['purged_index']}..{x['last_log_index']} kept, snapshot at {x['snapshot_index']}, "
                  f"log start {x['log_start_offset']}, {x['retained_bytes'] / 1e6:.1f} MB retained")
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": "soak-late", "auto.offset.reset": "earliest", "enable.auto.commit": False})
        c.subscribe(["soak"])
        first = {}
        deadline = time.time() + 30
        while len(first) < args.partitions and time.time() < deadline:
            for m in c.consume(num_messages=100, timeout=0.5):
                if not m.error():
                    first.setdefault(m.partition(), m.offset())
        c.close()
        problems = list(failed) + tail.errors[:10]
        for q, x in r.items():
            if first.get(q) is None or first[q] < x["log_start_offset"] or first[q] == 0:
                problems.append(f"partition {q}: a consumer from earliest began at {first.get(q)}, the log start is {x['log_start_offset']}")
            if x["high_watermark"] != per_partition:
                problems.append(f"partition {q}: high watermark {x['high_watermark']}, {per_partition} produced")
        if tail.count != produced:
            problems.append(f"the tailing consumer got {tail.count} of {produced}")
        print(f"\nproduced {produced * size / 1e6:.0f} MB ({args.times}x retention.bytes of {args.retention_mb} MiB on {args.partitions} partitions)")
        print(f"disk at the end {disk / 1e6:.1f} MB, at most {max_disk / 1e6:.1f} MB")
        files = sorted(((os.stat(os.path.join(d, f)).st_blocks * 512, os.path.relpath(os.path.join(d, f), data))
                        for d, _, fs in os.walk(data) for f in fs), reverse=True)
        print("largest files: " + ", ".join(f"{name} {n / 1e6:.1f} MB" for n, name in files[:4]))
        print(f"retained {retained / 1e6:.1f} MB (record batches from the log start to the high watermark)")
        amp = disk / retained
        print(f"space amplification: {amp:.2f} x retained, {disk / (retention * args.partitions):.2f} x retention.bytes"
              f" (target 1.2: {'met' if amp <= 1.2 else 'not met'})")
        print(f"tailing consumer: {tail.count} records, {len(tail.errors)} errors; consumer from earliest began at {first}")
        if problems:
            print("FAILED:\n  " + "\n  ".join(map(str, problems)))
            sys.exit(1)
        print("ok")
    except BaseException:
        if node.poll() is not None:
            print(f"the node exited with {node.returncode}; its log ends:", file=sys.stderr)
            with open(os.path.join(base, "node.log"), "rb") as f:
                sys.stderr.write(f.read()[-4000:].decode(errors="replace"))
        raise
    finally:
        node.terminate()
        node.wait(30)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
