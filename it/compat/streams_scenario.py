"""Kafka Streams 4.4 against Chronik: the word count of apps/WordCount.java
(a repartition topic, a state store with a compacted changelog topic),
at-least-once. It counts a first set of lines, closes, loses its local
state, and counts a second set after restoring its store from the
changelog: every final count must be exact.

Usage: python3 streams_scenario.py BOOTSTRAP TOPIC GROUP. Prints one JSON
line. `WordCountApp` and `Counts` serve it/test_frameworks.py too."""
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

HERE = os.path.dirname(os.path.abspath(__file__))
APPS_CP = f"{HERE}/apps/target/classes:{HERE}/apps/target/dependency/*"
WORDS = ["apple", "banana", "cherry", "damson", "elder", "fig", "grape", "hazel", "ice", "juniper", "kiwi", "lime"]
PARTITIONS = 3


def lines(n, seed):
    rnd = random.Random(seed)
    return [" ".join(rnd.choice(WORDS) for _ in range(rnd.randint(1, 6))) for _ in range(n)]


def expected(all_lines):
    counts = {}
    for line in all_lines:
        for w in line.split():
            counts[w] = counts.get(w, 0) + 1
    return counts


def produce_lines(bootstrap, topic, batch):
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    for i, line in enumerate(batch):
        p.produce(topic, line.encode(), key=str(i).encode())
    assert p.flush(60) == 0, "lines not all acknowledged"


class WordCountApp:
    """apps/WordCount.java in a process; `lines` collects what it prints."""

    def __init__(self, bootstrap, source, sink, app_id, state_dir, replication=1, log=None):
        self.lines = []
        self.proc = subprocess.Popen(["java", "-cp", APPS_CP, "WordCount", bootstrap, source, sink, app_id, state_dir, str(replication)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log or subprocess.DEVNULL, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def said(self, prefix):
        return [line for line in self.lines if line.startswith(prefix)]

    def wait_for(self, prefix, timeout=90):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.said(prefix):
                return self.said(prefix)
            if self.proc.poll() is not None or self.said("DEAD"):
                raise AssertionError(f"word count stopped: {self.lines[-5:]}")
            time.sleep(0.2)
        raise AssertionError(f"word count never said {prefix}: {self.lines[-5:]}")

    def stop(self):
        self.proc.stdin.write("stop\n")
        self.proc.stdin.flush()
        rc = self.proc.wait(90)
        assert rc == 0 and self.said("CLOSED") and not self.said("DEAD"), f"exit {rc}: {self.lines[-5:]}"


class Counts:
    """The output topic read as a table: each word's latest count."""

    def __init__(self, bootstrap, topic, group):
        self.latest = {}
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False})
        self.c.subscribe([topic])

    def until(self, done, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for m in self.c.consume(500, 0.5):
                if not m.error():
                    self.latest[m.key().decode()] = struct.unpack(">q", m.value())[0]
            if done(self.latest):
                return self.latest
        raise AssertionError(f"counts never reached what was expected: {self.latest}")

    def close(self):
        self.c.close()


def main():
    bootstrap, topic, group = sys.argv[1:4]
    source, sink = topic + "-lines", topic + "-counts"
    state = tempfile.mkdtemp(prefix="compat-streams-")
    log = open(os.path.join(state, "streams.log"), "w")
    result = {"ok": False, "version": "Kafka Streams 4.4.0"}
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for f in admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in (source, sink)]).values():
            f.result(30)
        first, second = lines(300, 1), lines(200, 2)
        produce_lines(bootstrap, source, first)
        counts = Counts(bootstrap, sink, group + "-reader")
        app = WordCountApp(bootstrap, source, sink, group, os.path.join(state, "a"), log=log)
        app.wait_for("RUNNING")
        want = expected(first)
        counts.until(lambda got: got == want)
        app.stop()
        # The local store is gone: the next run must restore it from the changelog.
        shutil.rmtree(os.path.join(state, "a"))
        produce_lines(bootstrap, source, second)
        app = WordCountApp(bootstrap, source, sink, group, os.path.join(state, "a"), log=log)
        app.wait_for("RESTORED")
        want = expected(first + second)
        counts.until(lambda got: got == want)
        app.stop()
        counts.close()
        internal = sorted(t for t in admin.list_topics(timeout=30).topics if t.startswith(group + "-"))
        assert any(t.endswith("-changelog") for t in internal) and any(t.endswith("-repartition") for t in internal), internal
        result.update(ok=True, internal_topics=internal)
    except Exception as e:  # noqa: BLE001 - the row's failure
        traceback.print_exc()
        result["error"] = f"{type(e).__name__}: {e}"[:300]
        log.flush()
        sys.stderr.write(open(log.name).read()[-3000:])
    finally:
        shutil.rmtree(state, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
