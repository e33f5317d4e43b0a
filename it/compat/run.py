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
# The client families again against a node with security on (run.py starts
# it: SASL_SSL, SASL_PLAINTEXT and SSL listeners, SCRAM and PLAIN, the ACL
# authorizer with the compat user as super user): each over SASL_SSL with
# SCRAM-SHA-512, one with PLAIN, one with a client certificate, and each
# with a wrong password, which must fail with an authentication error.
FAMILIES = ["java kafka-clients", "confluent-kafka", "kcat", "kafka-python", "aiokafka", "kafkajs", "franz-go"]
SECURE = [(f"{c} SASL_SSL", c, "scram") for c in FAMILIES] + [
    ("kafka-python SASL_PLAINTEXT PLAIN", "kafka-python", "plain"),
    ("confluent-kafka SSL client cert", "confluent-kafka", "mtls"),
] + [(f"{c} wrong password", c, "wrong") for c in FAMILIES]
# A wrong password must be refused within this long.
WRONG_PASSWORD_TIMEOUT_S = 60
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


def run_client(name, cmd, bootstrap, env=None, timeout=CLIENT_TIMEOUT_S, quiet=False):
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name)
    started = time.time()
    try:
        r = subprocess.run([*cmd, bootstrap, f"compat-{slug}", f"compat-group-{slug}"],
                           capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})
        lines = [line for line in r.stdout.splitlines() if line.startswith("{")]
        result = json.loads(lines[-1]) if lines else {"ok": False, "version": "?", "error": (r.stderr.strip().splitlines() or ["no output"])[-1][:300]}
        result["output"] = (r.stdout[-100_000:] + r.stderr[-100_000:]) if not result.get("ok") else ""
        if not result.get("ok") and not quiet:
            sys.stderr.write(f"--- {name} output ---\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}\n")
    except FileNotFoundError as e:
        result = {"ok": False, "version": "?", "error": f"not installed: {e} (run it/compat/install.sh)"}
    except subprocess.TimeoutExpired:
        result = {"ok": False, "version": "?", "error": f"no result within {timeout} s"}
    result["seconds"] = time.time() - started
    return result


def start_secure_node(base):
    """A node with security on, as security_helpers sets it up; its
    listeners' addresses and the certificates, for security_env.py."""
    sys.path.insert(0, os.path.dirname(HERE))
    import security_helpers as sh
    pki = sh.make_pki(os.path.join(base, "pki"), clients=(sh.ADMIN_USER,))
    ports = [free_port() for _ in range(3)]
    admin_port = free_port()
    log = open(os.path.join(base, "chronik-secure.log"), "ab")
    proc = subprocess.Popen([BINARY, "standalone", "--data-dir", os.path.join(base, "data-secure"),
                             "--raft-listen", f"127.0.0.1:{free_port()}", "--admin-listen", f"127.0.0.1:{admin_port}",
                             *sh.secure_args(pki, ports)], stdout=log, stderr=subprocess.STDOUT)
    admin = f"http://127.0.0.1:{admin_port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if sh.admin_call(admin, "GET", "/v1/health/ready", timeout=1)[0] == 200:
                break
        except OSError:
            pass
        time.sleep(0.1)
    sh.add_user(admin, sh.ADMIN_USER, sh.ADMIN_PASSWORD)
    d = pki["dir"]
    env = {"CHRONIK_COMPAT_USER": sh.ADMIN_USER, "CHRONIK_COMPAT_PASSWORD": sh.ADMIN_PASSWORD, "CHRONIK_COMPAT_CA": pki["ca"]}
    modes = {
        "scram": (f"127.0.0.1:{ports[0]}", {**env, "CHRONIK_COMPAT_SECURITY": "SASL_SSL", "CHRONIK_COMPAT_MECHANISM": "SCRAM-SHA-512"}),
        "plain": (f"127.0.0.1:{ports[1]}", {**env, "CHRONIK_COMPAT_SECURITY": "SASL_PLAINTEXT", "CHRONIK_COMPAT_MECHANISM": "PLAIN"}),
        "mtls": (f"127.0.0.1:{ports[2]}", {**env, "CHRONIK_COMPAT_SECURITY": "SSL", "CHRONIK_COMPAT_CERT": os.path.join(d, f"{sh.ADMIN_USER}.pem"),
                                          "CHRONIK_COMPAT_KEY": os.path.join(d, f"{sh.ADMIN_USER}.key")}),
        "wrong": (f"127.0.0.1:{ports[0]}", {**env, "CHRONIK_COMPAT_SECURITY": "SASL_SSL", "CHRONIK_COMPAT_MECHANISM": "SCRAM-SHA-512",
                                           "CHRONIK_COMPAT_PASSWORD": "not-the-password"}),
    }
    return proc, modes


AUTH_ERROR = re.compile(r"(?i)authenticat|sasl|credential")


def run_secure(name, cmd, mode, modes):
    bootstrap, env = modes[mode]
    if mode != "wrong":
        return run_client(name, cmd, bootstrap, env)
    r = run_client(name, cmd, bootstrap, env, timeout=WRONG_PASSWORD_TIMEOUT_S, quiet=True)
    # Passes when the client failed, soon, and said why.
    ok = not r["ok"] and AUTH_ERROR.search(r.get("error", "") + r.get("output", "")) is not None
    why = "" if ok else f"expected an authentication error within {WRONG_PASSWORD_TIMEOUT_S} s, got: {r.get('error', '')[:200]}"
    return {"ok": ok, "version": r.get("version", "?"), "error": why, "seconds": r["seconds"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", help="client names to run")
    ap.add_argument("--capture", help="keep the clients' request frames here (fuzzer seeds)")
    ap.add_argument("--no-secure", action="store_true", help="skip the runs with security on")
    args = ap.parse_args()
    base = tempfile.mkdtemp(prefix="chronik-compat-")
    proc, bootstrap = start_node(base, os.path.abspath(args.capture) if args.capture else None)
    secure = None
    rows = []
    try:
        for name, cmd in CLIENTS:
            if args.only and name not in args.only:
                continue
            print(f"compat: {name} ...", flush=True)
            rows.append((name, run_client(name, cmd, bootstrap)))
        commands = dict(CLIENTS)
        todo = [(n, f, m) for n, f, m in SECURE if not args.no_secure and not args.capture and (not args.only or n in args.only)]
        if todo:
            secure, modes = start_secure_node(base)
        for name, family, mode in todo:
            print(f"compat: {name} ...", flush=True)
            rows.append((name, run_secure(name, commands[family], mode, modes)))
    finally:
        for p in (proc, secure):
            if p:
                p.send_signal(signal.SIGKILL)
                p.wait()
    print()
    print(f"{'client':<36} {'version':<28} {'result':<7} {'time':>6}  what failed")
    for name, r in rows:
        print(f"{name:<36} {r.get('version', '?')[:28]:<28} {'pass' if r['ok'] else 'FAIL':<7} {r['seconds']:>5.1f}s  {r.get('error', '')}")
    failed = [n for n, r in rows if not r["ok"]]
    if failed:
        print(f"\nfailed: {', '.join(failed)}; node logs kept at {base}/chronik*.log")
        sys.exit(1)
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
