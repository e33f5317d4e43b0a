#!/usr/bin/env bash
# `make bench-scale`: 10,000 partitions (RF 3) on a fresh local 3-node cluster
# (ports 29092-29094): creation time, time until every partition has a
# leader, idle CPU and RSS per node, Metadata latency, produce latency at
# 10,000 msg/s over a 600-partition topic beside them, and the time for all
# groups to elect leaders again after the whole cluster restarts.
set -euo pipefail
KBENCH=${1:-../shared/tools/kbench.py}
PARTITIONS=${PARTITIONS:-10000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/it/bench_local_cluster.sh" chronik-bench-scale
CB="python3 $ROOT/it/cluster_bench.py"
PIDS=(--pid "1=$CLUSTER_DIR/node1.pid" --pid "2=$CLUSTER_DIR/node2.pid" --pid "3=$CLUSTER_DIR/node3.pid")
$CLUSTER start >/dev/null
BOOT=$($CLUSTER bootstrap)
echo "cluster up: $BOOT (logs in $CLUSTER_DIR)" >&2
echo "creating $PARTITIONS partitions..." >&2
t0=$(date +%s.%N)
$CB create --bootstrap "$BOOT" --topic scale --partitions "$PARTITIONS"
create_s=$(echo "$(date +%s.%N) - $t0" | bc)
$CB leaders --bootstrap "$BOOT" >"$TMP/led.json"
sleep 10
echo "idle..." >&2
$CB idle --seconds 20 "${PIDS[@]}" >"$TMP/idle.json"
$CB metadata --bootstrap "$BOOT" >"$TMP/md.json"
echo "produce over 600 more partitions..." >&2
python3 "$KBENCH" --bootstrap "$BOOT" --size 1024 --acks all --replication-factor 3 --partitions 600 --rate 10000 \
  --messages 100000 --skip-consume --label chronik-scale 2>"$TMP/p600.err" | tail -1 >"$TMP/p600.json"
echo "restart all nodes..." >&2
$CLUSTER stop >/dev/null
$CLUSTER start >/dev/null
t0=$(date +%s.%N)
$CB leaders --bootstrap "$BOOT" >"$TMP/reled.json"
python3 - "$TMP" "$PARTITIONS" "$create_s" <<'PY'
import json, os, sys
d, n, create_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
load = lambda f: json.load(open(os.path.join(d, f)))
led, reled, md, p = load("led.json"), load("reled.json"), load("md.json"), load("p600.json")["produce"]
print(f"{n} partitions, RF 3, 3 nodes")
print(f"  CreateTopics answered after      {create_s:.1f} s; every partition led after {led['all_led_s']} s more")
print("  idle: " + ", ".join(f"node {k}: {v['cpu_pct']}% CPU, {v['rss_mib']} MiB RSS" for k, v in sorted(load("idle.json").items())))
print(f"  Metadata (all {md['partitions']} partitions): p50 {md['p50_ms']} ms, max {md['max_ms']} ms")
print(f"  10K msg/s over 600 more partitions: {p['msg_s']:.0f} msg/s, p50 {p['lat_ms']['p50']} ms, p99 {p['lat_ms']['p99']} ms")
print(f"  after restarting every node: all led after {reled['all_led_s']} s (leaderless at the end: {reled['leaderless']})")
PY
