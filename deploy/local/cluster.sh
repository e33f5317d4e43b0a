#!/usr/bin/env bash
# Starts, stops and inspects a local 3-node cluster (see cluster.toml).
#   cluster.sh start|stop|status|clean|bootstrap|pid N
# Environment: CONFIG (default deploy/local/cluster.toml), CLUSTER_DIR.
# Data and logs live under $CLUSTER_DIR (default ./.cluster): nodeN/ is a
# node's data, nodeN.log its log, nodeN.pid its process id.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-target/release/chronik-server}
CONFIG=${CONFIG:-deploy/local/cluster.toml}
DIR=${CLUSTER_DIR:-.cluster}
# "id kafka_port" per node, from the config; admin is Kafka + 200.
mapfile -t SPEC < <(python3 -c '
import sys, tomllib
for n in tomllib.load(open(sys.argv[1], "rb"))["cluster"]["nodes"]:
    print(n["id"], n["kafka_addr"].rsplit(":", 1)[1])' "$CONFIG")
NODES=(); declare -A KAFKA ADMIN
for line in "${SPEC[@]}"; do
  read -r id port <<<"$line"; NODES+=("$id"); KAFKA[$id]=$port; ADMIN[$id]=$((port + 200))
done

bootstrap() { local n out=(); for n in "${NODES[@]}"; do out+=("127.0.0.1:${KAFKA[$n]}"); done; (IFS=,; echo "${out[*]}"); }

# Alive and not a zombie (a killed node whose parent never reaps it still
# answers kill -0).
running() {
  [[ -f "$DIR/node$1.pid" ]] || return 1
  local pid; pid=$(cat "$DIR/node$1.pid")
  kill -0 "$pid" 2>/dev/null && [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]]
}

start() {
  mkdir -p "$DIR"
  for n in "${NODES[@]}"; do
    if running "$n"; then echo "node $n already running (pid $(cat "$DIR/node$n.pid"))"; continue; fi
    "$BIN" start --config "$CONFIG" --node-id "$n" --data-dir "$DIR/node$n" >>"$DIR/node$n.log" 2>&1 &
    echo $! >"$DIR/node$n.pid"
    echo "node $n started (pid $!), Kafka 127.0.0.1:${KAFKA[$n]}, admin http://127.0.0.1:${ADMIN[$n]}, log $DIR/node$n.log"
  done
  for _ in $(seq 1 150); do
    if curl -fsS "http://127.0.0.1:${ADMIN[${NODES[0]}]}/v1/health/ready" >/dev/null 2>&1; then
      echo "cluster ready: kcat -b $(bootstrap) -L"; return 0
    fi
    sleep 0.2
  done
  echo "cluster did not become ready within 30 s; see $DIR/node*.log" >&2; return 1
}

stop() {
  for n in "${NODES[@]}"; do
    if running "$n"; then
      pid=$(cat "$DIR/node$n.pid"); kill -TERM "$pid"
      for _ in $(seq 1 100); do running "$n" || break; sleep 0.1; done
      if running "$n"; then echo "node $n did not stop in 10 s: killing"; kill -KILL "$pid"; fi
      echo "node $n stopped"
    fi
    rm -f "$DIR/node$n.pid"
  done
}

status() {
  local ports=(); for n in "${NODES[@]}"; do ports+=("$n:${ADMIN[$n]}"); done
  python3 - "${ports[@]}" <<'PY'
import json, sys, urllib.request
nodes = [a.split(":") for a in sys.argv[1:]]
def get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return json.load(r)
    except Exception as e:
        return None
print(f"{'node':<6}{'admin':<8}{'state':<8}{'controller':<12}{'replicas':<10}{'leading':<8}")
topics = None
for i, port in nodes:
    c = get(port, "/v1/cluster")
    if c is None:
        print(f"{i:<6}{port:<8}{'down':<8}")
        continue
    reps = get(port, "/v1/replicas") or []
    lead = sum(1 for r in reps if r["serving"])
    print(f"{i:<6}{port:<8}{'up':<8}{str(c['controller']):<12}{len(reps):<10}{lead:<8}")
    if topics is None:
        topics = get(port, "/v1/topics")
print()
print(f"{'topic':<32}{'partition':<11}{'leader':<8}{'epoch':<7}replicas")
for t in topics or []:
    for p in t["partitions"]:
        print(f"{t['name']:<32}{p['partition']:<11}{str(p['leader']):<8}{p['leader_epoch']:<7}{p['replicas']}")
PY
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  clean) stop; rm -rf "$DIR"; echo "removed $DIR" ;;
  bootstrap) bootstrap ;;
  pid) cat "$DIR/node$2.pid" ;;
  *) echo "usage: $0 start|stop|status|clean|bootstrap|pid N" >&2; exit 2 ;;
esac
