#!/usr/bin/env bash
# Starts a fresh single node on free ports, runs kbench (librdkafka producer and
# consumer, every message checked) for 1 KB messages with acks=all on 1 and 6
# partitions, then at half the measured rate for latency, and prints a table.
set -euo pipefail
KBENCH=${1:-../shared/tools/kbench.py}
MESSAGES=${MESSAGES:-300000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$ROOT/target/release/chronik-server"
DIR=$(mktemp -d /tmp/chronik-bench.XXXXXX)
PORT=${PORT:-19092}
"$BIN" standalone --data-dir "$DIR/data" --advertised-addr "127.0.0.1:$PORT" --kafka-listen "127.0.0.1:$PORT" \
  --raft-listen "127.0.0.1:$((PORT + 100))" --admin-listen "127.0.0.1:$((PORT + 200))" >"$DIR/node.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done

run() { # label, extra kbench args...
  local label=$1; shift
  python3 "$KBENCH" --bootstrap "127.0.0.1:$PORT" --size 1024 --acks all --consume-mode assign --label chronik "$@" \
    2>"$DIR/kbench.err" | tail -1 > "$DIR/$label.json" || { cat "$DIR/kbench.err" >&2; return 1; }
}
run p1 --messages "$MESSAGES" --partitions 1
run p6 --messages "$MESSAGES" --partitions 6
RATE=$(python3 -c "import json;print(int(json.load(open('$DIR/p1.json'))['produce']['msg_s']/2))" 2>/dev/null || echo 20000)
run half --messages $((RATE * 10)) --partitions 1 --rate "$RATE"
python3 - "$DIR" <<'PY'
import json, sys, os
d = sys.argv[1]
print(f"{'run':<28}{'msg/s':>10}{'MB/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'lost':>6}{'dup':>6}")
for label, name in [("p1", "1 partition, max rate"), ("p6", "6 partitions, max rate"), ("half", "1 partition, half rate")]:
    r = json.load(open(os.path.join(d, label + ".json")))
    p = r["produce"]; v = r.get("consume", {})
    lat = p.get("lat_ms", {})
    print(f"{name:<28}{p.get('msg_s') or 0:>10.0f}{p.get('mb_s') or 0:>9.1f}{lat.get('p50') or 0:>9.2f}{lat.get('p99') or 0:>9.2f}"
          f"{v.get('lost', '-'):>6}{v.get('duplicates', '-'):>6}")
PY
