#!/usr/bin/env bash
# Builds every client the compatibility scenario runs besides the Python ones
# (it/setup.sh puts those, with kcat, in place first): kafkajs (npm, pinned in
# package-lock.json), franz-go (Go modules, pinned in go.sum), the Java
# client (Maven, pinned in pom.xml), Kafka Streams and Connect (apps/pom.xml)
# and Apache Kafka's tools (it/kafka/pom.xml). Idempotent; each step is skipped while
# its output is newer than its inputs.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
newer() { # output, inputs...: true when output exists and is newer than every input
  local out=$1; shift
  [ -e "$out" ] || return 1
  for f in "$@"; do [ "$f" -nt "$out" ] && return 1; done
  return 0
}
newer "$here/node/node_modules/.package-lock.json" "$here/node/package-lock.json" \
  || (cd "$here/node" && npm ci --silent --no-audit --no-fund)
newer "$here/go/compat-franz" "$here/go/main.go" "$here/go/go.mod" "$here/go/go.sum" \
  || (cd "$here/go" && go build -o compat-franz .)
java_ok=true
for src in "$here"/java/src/main/java/*.java; do
  newer "$here/java/target/classes/$(basename "$src" .java).class" "$here/java/pom.xml" "$src" || java_ok=false
done
$java_ok || (cd "$here/java" && mvn -q -B package)
# Kafka Streams and Connect 4.4 with the word count and the file connectors.
mapfile -t apps_src < <(find "$here/apps/src/main/java" -name '*.java')
newer "$here/apps/target/built" "$here/apps/pom.xml" "${apps_src[@]}" \
  || (cd "$here/apps" && mvn -q -B package && touch target/built)
# Apache Kafka 4.4's own jars (its CLI tools, for kafka_cli.py), from Maven Central.
kafka_lib="${KAFKA_LIB:-$here/../../target/apache-kafka-4.4.0/lib}"
[ -e "$kafka_lib/kafka-tools-4.4.0.jar" ] \
  || mvn -q -B -f "$here/../kafka/pom.xml" dependency:copy-dependencies -DoutputDirectory="$kafka_lib" -DincludeScope=runtime
echo "compat clients ready"
