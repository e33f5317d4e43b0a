#!/usr/bin/env bash
# make cluster-secure: a local 3-node cluster with security on, the setup
# README's "A secure cluster" describes, with certificates and secrets made
# here (once, under $CLUSTER_DIR/pki):
#   Kafka on SASL_SSL only (127.0.0.1:9392-9394; SCRAM-SHA-256/512),
#   the ACL authorizer with User:admin as super user,
#   mTLS and a cluster secret between nodes (Raft ports 9492-9494),
#   admin API tokens (admin ports 9592-9594; full and read-only).
# Then it creates the user admin with a random password and writes client
# settings for Kafka's tools (client.properties) and kcat (kcat.conf).
#   cluster_secure.sh start|stop|status|clean
set -euo pipefail
cd "$(dirname "$0")/../.."
export CLUSTER_DIR=${CLUSTER_DIR:-.cluster-secure}
PKI="$CLUSTER_DIR/pki"
export CONFIG="$CLUSTER_DIR/cluster.toml"

make_pki() {
  mkdir -p "$PKI"; chmod 700 "$PKI"
  [[ -f "$PKI/ca.pem" ]] && return 0
  echo "making a CA, the nodes' certificate and secrets in $PKI"
  (cd "$PKI"
   openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 365 -subj "/CN=chronik-local-ca" 2>/dev/null
   printf "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n" >node.ext
   openssl req -newkey rsa:2048 -nodes -keyout node.key -out node.csr -subj "/CN=chronik-node" 2>/dev/null
   openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out node.pem -days 365 -extfile node.ext 2>/dev/null
   openssl rand -hex 24 >cluster.secret
   openssl rand -hex 24 >admin.token
   openssl rand -hex 24 >read.token
   openssl rand -hex 12 >admin.password
   chmod 600 ./*.key ./*.secret ./*.token ./*.password)
  cat >"$CONFIG" <<EOF
# Written by deploy/local/cluster_secure.sh: every node reads it.
[cluster]
nodes = [
  { id = 1, kafka_addr = "127.0.0.1:9392", raft_addr = "127.0.0.1:9492" },
  { id = 2, kafka_addr = "127.0.0.1:9393", raft_addr = "127.0.0.1:9493" },
  { id = 3, kafka_addr = "127.0.0.1:9394", raft_addr = "127.0.0.1:9494" },
]

[security]
ssl_cert_file = "$PWD/$PKI/node.pem"
ssl_key_file = "$PWD/$PKI/node.key"
ssl_ca_file = "$PWD/$PKI/ca.pem"
sasl_enabled_mechanisms = "SCRAM-SHA-256,SCRAM-SHA-512"
authorizer = "acl"
super_users = "User:admin"
cluster_secret_file = "$PWD/$PKI/cluster.secret"
cluster_tls = true
admin_token_file = "$PWD/$PKI/admin.token"
admin_read_token_file = "$PWD/$PKI/read.token"
EOF
}

cluster() {
  LISTENERS='SASL_SSL://127.0.0.1:{port}' ADMIN_TOKEN="$(cat "$PKI/admin.token")" bash deploy/local/cluster.sh "$@"
}

start() {
  make_pki
  cluster start
  local token password
  token=$(cat "$PKI/admin.token"); password=$(cat "$PKI/admin.password")
  curl -fsS -X PUT -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d "{\"password\": \"$password\"}" http://127.0.0.1:9592/v1/users/admin >/dev/null
  cat >"$CLUSTER_DIR/client.properties" <<EOF
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$password";
ssl.truststore.type=PEM
ssl.truststore.location=$PWD/$PKI/ca.pem
EOF
  cat >"$CLUSTER_DIR/kcat.conf" <<EOF
security.protocol=SASL_SSL
sasl.mechanisms=SCRAM-SHA-512
sasl.username=admin
sasl.password=$password
ssl.ca.location=$PWD/$PKI/ca.pem
EOF
  chmod 600 "$CLUSTER_DIR/client.properties" "$CLUSTER_DIR/kcat.conf"
  echo
  echo "secure cluster ready; the super user is admin (password in $PKI/admin.password)"
  echo "  kcat -F $CLUSTER_DIR/kcat.conf -b 127.0.0.1:9392 -L"
  echo "  kafka-topics.sh --bootstrap-server 127.0.0.1:9392 --command-config $CLUSTER_DIR/client.properties --list"
  echo "  chronik --admin http://127.0.0.1:9592 --token \$(cat $PKI/admin.token) users"
}

case "${1:-start}" in
  start) start ;;
  stop|status) [[ -f "$PKI/admin.token" ]] && cluster "$1" ;;
  clean) [[ -f "$PKI/admin.token" ]] && cluster stop; rm -rf "$CLUSTER_DIR"; echo "removed $CLUSTER_DIR" ;;
  *) echo "usage: $0 start|stop|status|clean" >&2; exit 2 ;;
esac
