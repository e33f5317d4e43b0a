"""make compat: the compatibility scenario (scenario.py) once per client
library, each against a fresh single Chronik node with its default settings.
Prints a table (client, version, result, what failed); exits 1 if any failed.

Usage: python3 it/compat/run.py [--only NAME ...] [--capture DIR]

--capture DIR records every request frame the clients send (through a proxy
the node advertises) as fuzzer seeds: `make fuzz-seeds` fills fuzz/seeds."""
import argparse
import json
import re
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BINARY = os.path.join(ROOT, "target", "release", "chronik-server")
PY = sys.executable

CLIENTS = [
    ("java kafka-clients", ["java", "-cp", f"{HERE}/java/target/classes:{HERE}/java/target/dependency/*", "Compat"]),
    ("java group.protocol=consumer", ["java", "-Dgroup.protocol=consumer", "-cp",
                                      f"{HERE}/java/target/classes:{HERE}/java/target/dependency/*", "Compat"]),
    ("confluent-kafka", [PY, f"{HERE}/scenario.py", "confluent-kafka"]),
    ("kcat", [PY, f"{HERE}/kcat_scenario.py"]),
    ("kafka-python", [PY, f"{HERE}/scenario.py", "kafka-python"]),
    ("aiokafka", [PY, f"{HERE}/scenario.py", "aiokafka"]),
    ("kafkajs", ["node", f"{HERE}/node/compat.js"]),
    ("franz-go", [f"{HERE}/go/compat-franz"]),
    ("kafka-cli", [PY, f"{HERE}/kafka_cli.py"]),
    ("kafka-streams", [PY, f"{HERE}/streams_scenario.py"]),
    ("kafka-connect", [PY, f"{HERE}/connect_scenario.py"]),
    ("franz-go kgo tests", [PY, f"{HERE}/franz_kgo.py"]),
]
CLIENT_TIMEOUT_S = 600


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return port if port + 200 < 65536 else free_port()


def start_node(base, capture=None):
    port = free_port()
    advertised = port
    if capture:
        import capture as capture_mod
        advertised = free_port()
        capture_mod.start_proxy(advertised, port, capture)
    log = open(os.path.join(base, "chronik.log"), "ab")
    proc = subprocess.Popen([BINARY, "standalone", "--data-dir", os.path.join(base, "data"),
                             "--advertised-addr", f"127.0.0.1:{advertised}", "--kafka-listen", f"127.0.0.1:{port}",
                             "--raft-listen", f"127.0.0.1:{port + 100}", "--admin-listen", f"127.0.0.1:{port + 200}"],
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, f"127.0.0.1:{advertised}"
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("chronik-server did not start")


def run_client(name, cmd, bootstrap):
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name)
    started = time.time()
    try:
        r = subprocess.run([*cmd, bootstrap, f"compat-{slug}", f"compat-group-{slug}"],
                           capture_output=True, text=True, timeout=CLIENT_TIMEOUT_S)
        lines = [line for line in r.stdout.splitlines() if line.startswith("{")]
        result = json.loads(lines[-1]) if lines else {"ok": False, "version": "?", "error": (r.stderr.strip().splitlines() or ["no output"])[-1][:300]}
        if not result.get("ok"):
            sys.stderr.write(f"--- {name} output ---\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}\n")
    except FileNotFoundError as e:
        result = {"ok": False, "version": "?", "error": f"not installed: {e} (run it/compat/install.sh)"}
    except subprocess.TimeoutExpired:
        result = {"ok": False, "version": "?", "error": f"no result within {CLIENT_TIMEOUT_S} s"}
    result["seconds"] = time.time() - started
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", help="client names to run")
    ap.add_argument("--capture", help="keep the clients' request frames here (fuzzer seeds)")
    args = ap.parse_args()
    base = tempfile.mkdtemp(prefix="chronik-compat-")
    proc, bootstrap = start_node(base, os.path.abspath(args.capture) if args.capture else None)
    rows = []
    try:
        for name, cmd in CLIENTS:
            if args.only and name not in args.only:
                continue
            print(f"compat: {name} ...", flush=True)
            rows.append((name, run_client(name, cmd, bootstrap)))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    print()
    print(f"{'client':<28} {'version':<28} {'result':<7} {'time':>6}  what failed")
    for name, r in rows:
        print(f"{name:<28} {r.get('version', '?')[:28]:<28} {'pass' if r['ok'] else 'FAIL':<7} {r['seconds']:>5.1f}s  {r.get('error', '')}")
    failed = [n for n, r in rows if not r["ok"]]
    if failed:
        print(f"\nfailed: {', '.join(failed)}; node log kept at {base}/chronik.log")
        sys.exit(1)
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
