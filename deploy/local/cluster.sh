#!/usr/bin/env bash
# Starts, stops and inspects a local 3-node cluster (see cluster.toml), and
# grows or shrinks it.
#   cluster.sh start|stop|status|clean|bootstrap|pid N
#   cluster.sh add          a new node (next id) joins the running cluster
#   cluster.sh remove N     decommissions node N (its replicas move away),
#                           then stops it once it has left the cluster
# Environment: CONFIG (default deploy/local/cluster.toml), CLUSTER_DIR;
# LISTENERS, a node's Kafka listeners with {port} for its Kafka port, and
# ADMIN_TOKEN for the admin API (both set by cluster_secure.sh).
# Data and logs live under $CLUSTER_DIR (default ./.cluster): nodeN/ is a
# node's data, nodeN.log its log, nodeN.pid its process id; `added` lists
# the nodes that joined ("id kafka_port"), `removed` those that left.
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
SEEDS=" ${SPEC[*]%% *} "
[[ -f "$DIR/added" ]] && mapfile -t -O "${#SPEC[@]}" SPEC <"$DIR/added"
NODES=(); declare -A KAFKA ADMIN
for line in "${SPEC[@]}"; do
  read -r id port <<<"$line"
  grep -qx "$id" "$DIR/removed" 2>/dev/null && continue
  NODES+=("$id"); KAFKA[$id]=$port; ADMIN[$id]=$((port + 200))
done

# curl and urllib with the admin API's token, when there is one.
AUTH=(); [[ -n "${ADMIN_TOKEN:-}" ]] && AUTH=(-H "Authorization: Bearer $ADMIN_TOKEN")

bootstrap() { local n out=(); for n in "${NODES[@]}"; do out+=("127.0.0.1:${KAFKA[$n]}"); done; (IFS=,; echo "${out[*]}"); }

# Alive and not a zombie (a killed node whose parent never reaps it still
# answers kill -0).
running() {
  [[ -f "$DIR/node$1.pid" ]] || return 1
  local pid; pid=$(cat "$DIR/node$1.pid")
  kill -0 "$pid" 2>/dev/null && [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]]
}

# Starts node $1: a seed node from the config, or one that joins through
# the Raft port of the first other node listed.
start_node() {
  local n=$1 args=(--config "$CONFIG")
  if [[ "$SEEDS" != *" $n "* ]]; then
    local k=${KAFKA[$n]} via
    for via in "${NODES[@]}"; do [[ $via != "$n" ]] && break; done
    args=(--advertised-addr "127.0.0.1:$k" --join "127.0.0.1:$((KAFKA[$via] + 100))")
  fi
  [[ -n "${LISTENERS:-}" ]] && args+=(--listeners "${LISTENERS//\{port\}/${KAFKA[$n]}}")
  "$BIN" start "${args[@]}" --node-id "$n" --data-dir "$DIR/node$n" >>"$DIR/node$n.log" 2>&1 &
  echo $! >"$DIR/node$n.pid"
  echo "node $n started (pid $!), Kafka 127.0.0.1:${KAFKA[$n]}, admin http://127.0.0.1:${ADMIN[$n]}, log $DIR/node$n.log"
}

# Waits (30 s at most) until node $1 answers ready.
await_ready() {
  for _ in $(seq 1 150); do
    curl -fsS "http://127.0.0.1:${ADMIN[$1]}/v1/health/ready" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "node $1 did not become ready within 30 s; see $DIR/node$1.log" >&2; return 1
}

start() {
  mkdir -p "$DIR"
  for n in "${NODES[@]}"; do
    if running "$n"; then echo "node $n already running (pid $(cat "$DIR/node$n.pid"))"; continue; fi
    start_node "$n"
  done
  await_ready "${NODES[0]}" && echo "cluster ready: kcat -b $(bootstrap) -L"
}

# A new node, the next id, joins the running cluster; with the default
# partition_autobalancing (node_add) replicas then move onto it.
add() {
  mkdir -p "$DIR"
  local max=0 n line id port
  for line in "${SPEC[@]}"; do read -r id port <<<"$line"; ((id > max)) && max=$id; done
  n=$((max + 1)); port=$((9091 + n))
  echo "$n $port" >>"$DIR/added"
  NODES+=("$n"); KAFKA[$n]=$port; ADMIN[$n]=$((port + 200))
  start_node "$n"
  await_ready "$n"
  for _ in $(seq 1 150); do
    curl -fsS "${AUTH[@]}" "http://127.0.0.1:${ADMIN[$n]}/v1/nodes/$n" >/dev/null 2>&1 && { echo "node $n joined the cluster: chronik --admin http://127.0.0.1:${ADMIN[$n]} nodes"; return 0; }
    sleep 0.2
  done
  echo "node $n did not join within 30 s; see $DIR/node$n.log" >&2; return 1
}

# Decommissions node $1 through another node, follows the moves, then stops
# it once the cluster no longer lists it.
remove() {
  local n=$1 via t
  [[ -n "${KAFKA[$n]:-}" ]] || { echo "node $n is not part of this cluster" >&2; return 2; }
  for via in "${NODES[@]}"; do [[ $via != "$n" ]] && running "$via" && break; done
  local api="http://127.0.0.1:${ADMIN[$via]}"
  curl -fsS "${AUTH[@]}" -X POST "$api/v1/nodes/$n/decommission" >/dev/null || { curl -sS "${AUTH[@]}" -X POST "$api/v1/nodes/$n/decommission"; echo; return 1; }
  echo "node $n: decommissioning (its replicas move away)"
  for t in $(seq 1 3600); do
    local left
    left=$(curl -fsS "${AUTH[@]}" "$api/v1/nodes" | python3 -c "import json,sys; n=[x for x in json.load(sys.stdin) if x['id']==$n]; print(n[0]['replicas'] if n else 'gone')") || left="?"
    if [[ $left == gone ]]; then
      echo "node $n left the cluster"
      echo "$n" >>"$DIR/removed"
      if running "$n"; then kill -TERM "$(cat "$DIR/node$n.pid")"; echo "node $n stopped"; fi
      rm -f "$DIR/node$n.pid"; return 0
    fi
    (( t % 10 == 1 )) && echo "node $n: $left replicas still to move"
    sleep 1
  done
  echo "node $n still hosts replicas after an hour; see chronik reassignments" >&2; return 1
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
import json, os, sys, urllib.request
nodes = [a.split(":") for a in sys.argv[1:]]
token = os.environ.get("ADMIN_TOKEN")
def get(port, path):
    try:
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {token}"} if token else {})
        with urllib.request.urlopen(req, timeout=2) as r:
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
  add) add ;;
  remove) remove "${2:?usage: $0 remove N}" ;;
  *) echo "usage: $0 start|stop|status|clean|bootstrap|pid N|add|remove N" >&2; exit 2 ;;
esac
