"""Fixtures that run the real chronik-server binary on free ports."""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.environ.get("CHRONIK_BIN", os.path.join(ROOT, "target", "release", "chronik-server"))


def free_port_block():
    """A Kafka port p such that p, p+100 and p+200 are all free."""
    for _ in range(200):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port + 200 > 65535:
            continue
        ok = True
        for p in (port, port + 100, port + 200):
            t = socket.socket()
            try:
                t.bind(("127.0.0.1", p))
            except OSError:
                ok = False
            finally:
                t.close()
        if ok:
            return port
    raise RuntimeError("no free port block")


class Node:
    """One chronik-server process with its own data dir: a standalone node,
    or (with `config` and `node_id`) one node of a cluster."""

    def __init__(self, data_dir, extra_args=(), port=None, config=None, node_id=None, join=None):
        self.data_dir = data_dir
        self.port = port or free_port_block()
        self.extra_args = list(extra_args)
        self.config = config
        self.node_id = node_id
        self.join = join
        self.proc = None
        # The admin API token the fixtures use, when the node wants one.
        self.admin_token = None
        self.log_path = os.path.join(os.path.dirname(data_dir), f"node-{self.port}.log")

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    @property
    def raft(self):
        return f"127.0.0.1:{self.port + 100}"

    @property
    def admin(self):
        return f"http://127.0.0.1:{self.port + 200}"

    def start(self):
        log = open(self.log_path, "ab")
        if self.join:
            mode = ["start", "--join", self.join, "--node-id", str(self.node_id)]
        elif self.config is None:
            mode = ["standalone"]
        else:
            mode = ["start", "--config", self.config, "--node-id", str(self.node_id)]
        # With --listeners (security on), they say where Kafka listens.
        kafka = [] if "--listeners" in self.extra_args else ["--advertised-addr", self.bootstrap, "--kafka-listen", self.bootstrap]
        self.proc = subprocess.Popen(
            [BINARY, *mode, "--data-dir", self.data_dir, *kafka,
             "--raft-listen", f"127.0.0.1:{self.port + 100}",
             "--admin-listen", f"127.0.0.1:{self.port + 200}", *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chronik-server exited with {self.proc.returncode}; see {self.log_path}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("chronik-server did not start listening")

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=timeout)
        return self.proc.returncode

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")


@pytest.fixture
def node_factory():
    base = tempfile.mkdtemp(prefix="chronik-it-")
    nodes = []

    def make(extra_args=()):
        d = os.path.join(base, f"data{len(nodes)}")
        n = Node(d, extra_args)
        nodes.append(n)
        return n

    yield make
    for n in nodes:
        try:
            n.stop(signal.SIGKILL)
        except Exception:
            pass
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def node(node_factory):
    return node_factory().start()


class Cluster:
    """N chronik-server processes on 127.0.0.1, one TOML config for all."""

    def __init__(self, base, size=3, extra_args=(), node_args=None):
        os.makedirs(base, exist_ok=True)
        ports = []
        while len(ports) < size:
            p = free_port_block()
            if all(abs(p - q) > 300 for q in ports):
                ports.append(p)
        self.config = os.path.join(base, "cluster.toml")
        with open(self.config, "w") as f:
            f.write("[cluster]\nnodes = [\n")
            for i, p in enumerate(ports, 1):
                f.write(f'  {{ id = {i}, kafka_addr = "127.0.0.1:{p}", raft_addr = "127.0.0.1:{p + 100}" }},\n')
            f.write("]\n")
        self.base, self.extra_args = base, list(extra_args)
        node_args = node_args or {}
        self.nodes = {i: Node(os.path.join(base, f"node{i}"), [*extra_args, *node_args.get(i, [])], port=p, config=self.config, node_id=i)
                      for i, p in enumerate(ports, 1)}

    def add_node(self, via=1, args=()):
        """Starts the next node id, which joins the running cluster through
        node `via`'s Raft port (it is in the cluster once registered)."""
        n = max(self.nodes) + 1
        while True:
            p = free_port_block()
            if all(abs(p - q.port) > 300 for q in self.nodes.values()):
                break
        self.nodes[n] = Node(os.path.join(self.base, f"node{n}"), [*self.extra_args, *args], port=p, node_id=n, join=self.nodes[via].raft).start()
        return n

    @property
    def bootstrap(self):
        return ",".join(n.bootstrap for n in self.nodes.values())

    def live_bootstrap(self):
        return ",".join(n.bootstrap for n in self.nodes.values() if n.alive())

    def start(self):
        for n in self.nodes.values():
            n.start()
        self.wait_ready()
        return self

    def admin_get(self, node_id, path, timeout=2):
        n = self.nodes[node_id]
        req = urllib.request.Request(n.admin + path)
        if n.admin_token:
            req.add_header("authorization", f"Bearer {n.admin_token}")
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.load(r)

    def wait_ready(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if all(self.admin_get(i, "/v1/cluster")["controller"] for i, n in self.nodes.items() if n.alive()):
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("cluster has no controller")

    def leaders(self, topic):
        """{partition: leader} as the first live node reports it."""
        for i, n in self.nodes.items():
            if n.alive():
                for t in self.admin_get(i, "/v1/topics"):
                    if t["name"] == topic:
                        return {p["partition"]: p["leader"] for p in t["partitions"]}
        return {}

    def stop_all(self, sig=signal.SIGKILL):
        for n in self.nodes.values():
            try:
                n.stop(sig)
            except Exception:
                pass


@pytest.fixture
def cluster_factory():
    base = tempfile.mkdtemp(prefix="chronik-cluster-")
    made = []

    def make(size=3, extra_args=(), node_args=None):
        c = Cluster(os.path.join(base, f"c{len(made)}"), size, extra_args, node_args)
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop_all()
    shutil.rmtree(base, ignore_errors=True)
