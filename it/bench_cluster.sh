#!/usr/bin/env bash
# `make bench-cluster`: a fresh 3-node cluster on this machine (ports
# 29092-29094, data in a temp dir), RF 3, acks=all, 1 KB messages:
#   - max throughput with 1 and with 3 producers (kbench, every message checked),
#   - produce and end-to-end (fetch) latency at a fixed 10,000 msg/s,
#   - failover: kill -9 of a partition leader to the first acknowledged produce,
#   - idle CPU and RSS per node with 1,000 partitions,
#   - moving a partition holding MOVE_MB (1024) MB (nodes 1,2 to 2,3) while a
#     producer writes 5,000 msg/s to it: the move's time, the producer's
#     rate and latency before and during.
set -euo pipefail
KBENCH=${1:-../shared/tools/kbench.py}
MESSAGES=${MESSAGES:-200000}
RATE=${RATE:-10000}
MOVE_MB=${MOVE_MB:-1024}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/it/bench_local_cluster.sh" chronik-bench-cluster
$CLUSTER start >/dev/null
BOOT=$($CLUSTER bootstrap)
echo "cluster up: $BOOT (logs in $CLUSTER_DIR)" >&2

kb() { # label, kbench args...
  local label=$1; shift
  python3 "$KBENCH" --bootstrap "$BOOT" --size 1024 --acks all --replication-factor 3 --consume-mode assign \
    --label chronik-cluster "$@" 2>"$TMP/$label.err" | tail -1 >"$TMP/$label.json" || { cat "$TMP/$label.err" >&2; return 1; }
}
echo "throughput, 1 producer..." >&2;  kb p1 --messages "$MESSAGES" --partitions 6 --producers 1
echo "throughput, 3 producers..." >&2; kb p3 --messages "$MESSAGES" --partitions 6 --producers 3
echo "latency at $RATE msg/s..." >&2
kb r6 --messages $((RATE * 10)) --partitions 6 --rate "$RATE" --skip-consume
kb r1 --messages $((RATE * 10)) --partitions 1 --rate "$RATE" --skip-consume
python3 "$ROOT/it/cluster_bench.py" e2e --bootstrap "$BOOT" --rate "$RATE" --messages $((RATE * 10)) --partitions 1 >"$TMP/e2e.json"
echo "idle with 1,000 partitions..." >&2
python3 "$ROOT/it/cluster_bench.py" create --bootstrap "$BOOT" --topic idle-1000 --partitions 1000
sleep 10
python3 "$ROOT/it/cluster_bench.py" idle --seconds 20 \
  --pid "1=$CLUSTER_DIR/node1.pid" --pid "2=$CLUSTER_DIR/node2.pid" --pid "3=$CLUSTER_DIR/node3.pid" >"$TMP/idle.json"
echo "moving a partition of $MOVE_MB MB..." >&2
python3 "$ROOT/it/cluster_bench.py" move --bootstrap "$BOOT" --admin-ports 29292 29293 29294 --mb "$MOVE_MB" >"$TMP/move.json"
sleep 20  # node 1 drops the replica it gave up (1 GB of keys): not during the failover
echo "failover..." >&2
python3 "$ROOT/it/cluster_bench.py" failover --bootstrap "$BOOT" --admin-ports 29292 29293 29294 --cluster-dir "$CLUSTER_DIR" >"$TMP/failover.json"

python3 - "$TMP" <<'PY'
import json, os, sys
d = sys.argv[1]
load = lambda n: json.load(open(os.path.join(d, n)))
print("3 nodes, RF 3, acks=all, 1 KB messages, 6 partitions")
print(f"{'run':<34}{'msg/s':>10}{'MB/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'lost':>6}{'dup':>6}")
for f, name in [("p1.json", "max rate, 1 producer"), ("p3.json", "max rate, 3 producers")]:
    r = load(f); p = r["produce"]; v = r.get("consume", {}); lat = p.get("lat_ms", {})
    print(f"{name:<34}{p.get('msg_s') or 0:>10.0f}{p.get('mb_s') or 0:>8.1f}{lat.get('p50') or 0:>9.2f}{lat.get('p99') or 0:>9.2f}"
          f"{v.get('lost', '-'):>6}{v.get('duplicates', '-'):>6}")
for f in ("r6.json", "r1.json"):
    r = load(f); p = r["produce"]; lat = p.get("lat_ms", {})
    name = f"fixed rate, {r['partitions_requested']} partition(s)"
    print(f"{name:<34}{p.get('msg_s') or 0:>10.0f}{p.get('mb_s') or 0:>8.1f}{lat.get('p50') or 0:>9.2f}{lat.get('p99') or 0:>9.2f}")
e = load("e2e.json")
print(f"{'end to end (produce->fetch), 1 p.':<34}{e['consumed'] / (e['messages'] / e['rate']):>10.0f}{'':>8}{e['e2e_ms']['p50'] or 0:>9.2f}{e['e2e_ms']['p99'] or 0:>9.2f}")
f = load("failover.json")
print(f"failover (kill -9 leader of node {f['killed_node']} -> first ack): {f['failover_s']} s")
i = load("idle.json")
m = load("move.json")
b, w = m["before"], m["during"]
print(f"move of a {m['mb']} MB partition (nodes 1,2 to 2,3): {m['move_s']} s ({m['copy_mb_s']} MB/s{'' if m['finished'] else ', NOT FINISHED'}); "
      f"a producer to it at {m['rate']} msg/s: {b['msg_s']} msg/s, p50/p99 {b['p50_ms']:.1f}/{b['p99_ms']:.1f} ms before, "
      f"{w['msg_s']} msg/s, {w['p50_ms']:.1f}/{w['p99_ms']:.1f} ms during")
print("idle with 1,000 partitions: " + ", ".join(f"node {n}: {v['cpu_pct']}% CPU, {v['rss_mib']} MiB RSS" for n, v in sorted(i.items())))
PY
