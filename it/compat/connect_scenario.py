"""Kafka Connect 4.4 against Chronik: one distributed-mode worker
(org.apache.kafka.connect.cli.ConnectDistributed) creates its compacted
internal topics (configs, offsets, status), and a file source -> topic ->
file sink pipeline (apps/chronik/LineFile*.java, Kafka's FileStream
examples re-written: Maven Central here does not serve connect-file)
moves every line, in order, including lines appended while it runs.

Usage: python3 connect_scenario.py BOOTSTRAP TOPIC GROUP. Prints one JSON line."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request

from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

HERE = os.path.dirname(os.path.abspath(__file__))
APPS_CP = f"{HERE}/apps/target/classes:{HERE}/apps/target/dependency/*"
LINES = 1000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rest(port, path, body=None, method=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode() if body is not None else None,
                                 method=method or ("POST" if body is not None else "GET"), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def wait(what, check, timeout, proc=None):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the worker exited ({proc.returncode}) while waiting for {what}")
        try:
            last = check()
            if last:
                return last
        except OSError as e:
            last = e
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last: {last}")


def main():
    bootstrap, topic, group = sys.argv[1:4]
    tmp = tempfile.mkdtemp(prefix="compat-connect-")
    port = free_port()
    src, dst = os.path.join(tmp, "in.txt"), os.path.join(tmp, "out.txt")
    internal = {"config": f"{group}-configs", "offset": f"{group}-offsets", "status": f"{group}-status"}
    with open(os.path.join(tmp, "worker.properties"), "w") as f:
        f.write(f"bootstrap.servers={bootstrap}\ngroup.id={group}\n"
                + "".join(f"{k}.storage.topic={v}\n{k}.storage.replication.factor=1\n" for k, v in internal.items())
                + "key.converter=org.apache.kafka.connect.storage.StringConverter\n"
                + "value.converter=org.apache.kafka.connect.storage.StringConverter\n"
                + f"listeners=http://127.0.0.1:{port}\nrest.advertised.host.name=127.0.0.1\noffset.flush.interval.ms=500\n")
    log = open(os.path.join(tmp, "worker.log"), "w")
    result = {"ok": False, "version": "Kafka Connect 4.4.0"}
    worker = None
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
        with open(src, "w") as f:
            f.writelines(f"line {i}\n" for i in range(LINES // 2))
        worker = subprocess.Popen(["java", "-cp", APPS_CP, "org.apache.kafka.connect.cli.ConnectDistributed", os.path.join(tmp, "worker.properties")],
                                  stdout=log, stderr=subprocess.STDOUT)
        wait("the worker's REST API", lambda: "version" in rest(port, "/"), 120, worker)
        rest(port, "/connectors", {"name": f"{group}-src", "config": {"connector.class": "chronik.LineFileSource", "tasks.max": "1",
                                                                      "file": src, "topic": topic}})
        rest(port, "/connectors", {"name": f"{group}-sink", "config": {"connector.class": "chronik.LineFileSink", "tasks.max": "1",
                                                                       "file": dst, "topics": topic}})
        with open(src, "a") as f:
            f.writelines(f"line {i}\n" for i in range(LINES // 2, LINES))
        want = [f"line {i}" for i in range(LINES)]

        def moved():
            if not os.path.exists(dst):
                return None
            with open(dst) as f:
                got = f.read().splitlines()
            assert got == want[:len(got)], f"out of order or changed: {got[:5]}..."
            return got == want
        wait("every line in the sink's file", moved, 120, worker)
        for name in (f"{group}-src", f"{group}-sink"):
            status = rest(port, f"/connectors/{name}/status")
            states = [status["connector"]["state"]] + [t["state"] for t in status["tasks"]]
            assert set(states) == {"RUNNING"}, status
        # The worker's topics exist and are compacted, as Connect requires.
        resources = [ConfigResource(ConfigResource.Type.TOPIC, t) for t in internal.values()]
        for res, f in admin.describe_configs(resources).items():
            policy = f.result(30)["cleanup.policy"].value
            assert policy == "compact", f"{res.name}: cleanup.policy={policy}"
        result.update(ok=True, lines=LINES)
    except Exception as e:  # noqa: BLE001 - the row's failure
        traceback.print_exc()
        result["error"] = f"{type(e).__name__}: {e}"[:300]
        log.flush()
        sys.stderr.write(open(log.name).read()[-4000:])
    finally:
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(60)
            except subprocess.TimeoutExpired:
                worker.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
