"""Fixtures that run the real chronik-server binary on free ports."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

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
    """One chronik-server process with its own data dir."""

    def __init__(self, data_dir, extra_args=()):
        self.data_dir = data_dir
        self.port = free_port_block()
        self.extra_args = list(extra_args)
        self.proc = None
        self.log_path = os.path.join(os.path.dirname(data_dir), f"node-{self.port}.log")

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    @property
    def admin(self):
        return f"http://127.0.0.1:{self.port + 200}"

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [BINARY, "standalone", "--data-dir", self.data_dir,
             "--advertised-addr", self.bootstrap,
             "--kafka-listen", self.bootstrap,
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
