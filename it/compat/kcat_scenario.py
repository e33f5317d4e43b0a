"""The compatibility scenario (see scenario.py) with kcat (librdkafka
through its command line, Debian's build): kcat -P produces the keyed
messages with its default settings, two `kcat -G` processes form the group
(committing as kcat does: auto-commit, and on exit), a third resumes, and
`kcat -L` describes the topic. kcat has no topic admin: the topic is
created and deleted with librdkafka's admin API (confluent-kafka).

Usage: python3 kcat_scenario.py BOOTSTRAP TOPIC GROUP. Prints one JSON line."""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback

from confluent_kafka import Consumer, TopicPartition

import security_env

# kcat with the runner's security settings (-X key=value for each).
KCAT = ["kcat", *[a for k, v in security_env.confluent().items() for a in ("-X", f"{k}={v}")]]
from confluent_kafka.admin import AdminClient, NewTopic

FIRST, SECOND, PARTITIONS, TIMEOUT_S = 10_000, 1_000, 3, 90


def produce(bootstrap, topic, prefix, n):
    lines = "".join(f"k{i}:{prefix}{i}\n" for i in range(n)).encode()
    r = subprocess.run([*KCAT, "-P", "-b", bootstrap, "-t", topic, "-K:"], input=lines, capture_output=True, timeout=120)
    assert r.returncode == 0, f"kcat -P failed: {r.stderr.decode()[-300:]}"


def run_group(bootstrap, topic, group, count, want):
    """`count` kcat -G members until `want` distinct values arrived; SIGTERM
    makes each commit and leave. Returns ([records], [final partitions])."""
    tmp = tempfile.mkdtemp(prefix="compat-kcat-")
    outs, errs, procs = [], [], []
    for i in range(count):
        out, err = open(os.path.join(tmp, f"m{i}.out"), "wb"), open(os.path.join(tmp, f"m{i}.err"), "wb")
        procs.append(subprocess.Popen([*KCAT, "-u", "-b", bootstrap, "-G", group, "-X", "auto.offset.reset=earliest",
                                       "-f", "%p %o %s\\n", topic], stdout=out, stderr=err))
        outs.append(out.name)
        errs.append(err.name)

    def records(path):
        with open(path, "rb") as f:
            rows = [line.split(b" ", 2) for line in f.read().split(b"\n") if line.count(b" ") >= 2]
        return [(int(p), int(o), v.decode()) for p, o, v in rows]
    deadline = time.time() + TIMEOUT_S
    while time.time() < deadline and len({v for o in outs for _, _, v in records(o)}) < want:
        time.sleep(0.2)
    time.sleep(1)
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(30)
    finals = []
    for e in errs:
        text = open(e, errors="replace").read()
        assigned = re.findall(r"assigned: (.*)", text)
        finals.append({int(x) for x in re.findall(r"\[(\d+)\]", assigned[-1])} if assigned else set())
    return [records(o) for o in outs], finals


def check_values(rows, prefix, n):
    at = {}
    for p, o, v in rows:
        assert at.setdefault((p, o), v) == v, f"two values at {p}/{o}"
        assert v.startswith(prefix), f"unexpected {v!r} at {p}/{o}"
    assert len(set(at.values())) == n and len(at) == n, f"read {len(set(at.values()))} distinct of {n}"
    for p in range(PARTITIONS):
        offsets = sorted(o for q, o in at if q == p)
        assert offsets == list(range(offsets[0], offsets[0] + len(offsets))) if offsets else True, f"gap in partition {p}"


def scenario(bootstrap, topic, group):
    # kcat speaks first: the cluster as kcat -L sees it.
    r = subprocess.run([*KCAT, "-L", "-b", bootstrap], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"kcat -L failed: {r.stderr[-300:]}"
    admin = AdminClient({"bootstrap.servers": bootstrap, **security_env.confluent()})
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(30)
    produce(bootstrap, topic, "v", FIRST)
    rows, finals = run_group(bootstrap, topic, group, 2, FIRST)
    assert all(finals) and not finals[0] & finals[1] and finals[0] | finals[1] == set(range(PARTITIONS)), \
        f"the two members must split the partitions, got {finals}"
    check_values([r for m in rows for r in m], "v", FIRST)
    probe = Consumer({"bootstrap.servers": bootstrap, **security_env.confluent(), "group.id": group})
    ends = {tp.partition: tp.offset for tp in probe.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)}
    highs = {p: probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(PARTITIONS)}
    probe.close()
    assert ends == highs, f"committed {ends}, ends {highs}"
    produce(bootstrap, topic, "n", SECOND)
    rows, _ = run_group(bootstrap, topic, group, 1, SECOND)
    check_values(rows[0], "n", SECOND)
    for p in range(PARTITIONS):
        offsets = [o for q, o, _ in rows[0] if q == p]
        assert not offsets or min(offsets) == ends[p], f"partition {p} resumed at {min(offsets)}, committed {ends[p]}"
    listing = subprocess.run([*KCAT, "-L", "-b", bootstrap, "-t", topic], capture_output=True, text=True, timeout=30).stdout
    assert len(re.findall(r"partition \d+, leader", listing)) == PARTITIONS, listing
    admin.delete_topics([topic])[topic].result(30)


if __name__ == "__main__":
    version = subprocess.run(["kcat", "-V"], capture_output=True, text=True).stdout
    m = re.search(r"Version ([\d.]+).*librdkafka ([\d.]+)", version)
    result = {"client": "kcat", "version": f"{m.group(1)} (librdkafka {m.group(2)})" if m else "?", "ok": False, "error": ""}
    try:
        scenario(*sys.argv[1:4])
        result["ok"] = True
    except Exception as e:  # noqa: BLE001 - reported in the table
        traceback.print_exc()
        result["error"] = f"{type(e).__name__}: {e}"[:300]
    print(json.dumps(result), flush=True)
    sys.exit(0 if result["ok"] else 1)
