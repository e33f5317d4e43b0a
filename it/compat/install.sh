#!/usr/bin/env bash
# Installs every client the compatibility scenario runs: Python packages
# (it/requirements.txt), kcat (Debian), kafkajs (npm, pinned in
# package-lock.json), franz-go (Go modules, pinned in go.sum) and the Java
# client (Maven, pinned in pom.xml). Idempotent.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python3 -m pip install -q -r "$here/../requirements.txt"
command -v kcat >/dev/null || { apt-get update -qq && apt-get install -y -qq kcat; }
(cd "$here/node" && npm ci --silent --no-audit --no-fund)
(cd "$here/go" && go build -o compat-franz .)
(cd "$here/java" && mvn -q -B package)
echo "compat clients installed"
