"""A recording TCP proxy for `run.py --capture DIR`: clients talk to the
node through it (the node advertises the proxy's address), and every request
frame a client sends is kept as DIR/<api>-v<version>-<hash>.bin (the frame
without its 4-byte length), at most PER_KIND per API and version and none
over FRAME_MAX bytes. These are the fuzzer's seeds (fuzz/seeds)."""
import hashlib
import os
import socket
import struct
import threading

PER_KIND = 6
FRAME_MAX = 64 * 1024


class Recorder:
    def __init__(self, out_dir):
        self.out_dir = out_dir
        os.makedirs(out_dir, exist_ok=True)
        self.lock = threading.Lock()
        self.kinds = {}
        for name in os.listdir(out_dir):
            kind = name.rsplit("-", 1)[0]
            self.kinds[kind] = self.kinds.get(kind, 0) + 1

    def keep(self, frame):
        if len(frame) < 8 or len(frame) > FRAME_MAX:
            return
        key, version = struct.unpack(">hh", frame[:4])
        kind = f"{key:02d}-v{version}"
        digest = hashlib.sha256(frame[8:]).hexdigest()[:12]
        path = os.path.join(self.out_dir, f"{kind}-{digest}.bin")
        with self.lock:
            if self.kinds.get(kind, 0) >= PER_KIND or os.path.exists(path):
                return
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
        with open(path, "wb") as f:
            f.write(frame)


def _requests(recorder):
    """A stream parser that hands each complete request frame to `recorder`."""
    buf = b""

    def feed(chunk):
        nonlocal buf
        buf += chunk
        while len(buf) >= 4:
            (n,) = struct.unpack(">i", buf[:4])
            if n < 0 or n > 64 << 20:
                buf = b""  # not a frame worth keeping: stop parsing this stream
                return
            if len(buf) < 4 + n:
                return
            recorder.keep(buf[4:4 + n])
            buf = buf[4 + n:]
    return feed


def _pump(src, dst, observe=None):
    try:
        while True:
            chunk = src.recv(65536)
            if not chunk:
                break
            dst.sendall(chunk)
            if observe:
                observe(chunk)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def start_proxy(listen_port, target_port, out_dir):
    """Serves 127.0.0.1:listen_port -> 127.0.0.1:target_port in threads."""
    recorder = Recorder(out_dir)
    srv = socket.create_server(("127.0.0.1", listen_port))

    def accept():
        while True:
            client, _ = srv.accept()
            upstream = socket.create_connection(("127.0.0.1", target_port))
            threading.Thread(target=_pump, args=(client, upstream, _requests(recorder)), daemon=True).start()
            threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return srv
