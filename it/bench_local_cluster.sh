# Sourced by the cluster benches: a fresh 3-node cluster config on ports
# 29092-29094 in a temp dir ($TMP), started with $CLUSTER start; the exit
# trap stops it and removes the dir (KEEP=1 keeps it). Needs ROOT and a
# mktemp prefix in $1. CHRONIK_BIN overrides the binary (for A/B runs).
TMP=$(mktemp -d "/tmp/$1.XXXXXX")
export CLUSTER_DIR=$TMP/cluster CONFIG=$TMP/cluster.toml BIN=${CHRONIK_BIN:-$ROOT/target/release/chronik-server}
cat >"$CONFIG" <<TOML
[cluster]
nodes = [
  { id = 1, kafka_addr = "127.0.0.1:29092", raft_addr = "127.0.0.1:29192" },
  { id = 2, kafka_addr = "127.0.0.1:29093", raft_addr = "127.0.0.1:29193" },
  { id = 3, kafka_addr = "127.0.0.1:29094", raft_addr = "127.0.0.1:29194" },
]
TOML
CLUSTER="bash $ROOT/deploy/local/cluster.sh"
trap '$CLUSTER stop >/dev/null 2>&1 || true; [[ -n "${KEEP:-}" ]] || rm -rf "$TMP"' EXIT
