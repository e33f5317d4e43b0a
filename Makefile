# Chronik: common tasks. `make run` starts one node on localhost:9092;
# `make test` installs what the tests need (it/setup.sh) and runs every test.

CARGO      ?= cargo
BIN        := target/release/chronik-server
DATA_DIR   ?= ./data
KBENCH     ?= ../shared/tools/kbench.py
PYTEST     ?= python3 -m pytest
# The tests' Python packages live in the project's virtual environment
# (it/setup.sh makes it); every python3 below is that one.
export PATH := $(CURDIR)/.venv/bin:$(PATH)

.PHONY: build run setup test test-rust test-it compat compat-install bench bench-cluster bench-scale bench-compare soak chaos fuzz fuzz-seeds deps clean cluster cluster-status cluster-add-node cluster-remove-node cluster-stop cluster-clean cluster-secure cluster-secure-stop cluster-secure-clean

build:
	$(CARGO) build --release --workspace

## A single node (a one-node cluster) with data under $(DATA_DIR): kcat -b localhost:9092
run: build
	$(BIN) standalone --data-dir $(DATA_DIR)

## Everything CI runs, on a fresh machine too: installs what the tests need
## (Debian packages as root, a .venv, the compat clients), then the unit tests
## (incl. openraft's storage conformance suite), the integration tests that
## drive the real binary with kcat and confluent-kafka, every client library
## (make compat) and every fault scenario once, bounded (make chaos).
test: setup build test-rust test-it
	$(MAKE) compat
	$(MAKE) chaos DURATION=8
	$(MAKE) fuzz FUZZ_SECONDS=120

## What the tests need (idempotent; quick when it is all there).
setup:
	bash it/setup.sh

test-rust:
	$(CARGO) test --release --workspace

test-it:
	$(PYTEST) -q it

## Client compatibility: one scenario per client library (Java, librdkafka
## via confluent-kafka and kcat, kafka-python, aiokafka, kafkajs, franz-go),
## each with its default producer settings, against a fresh node. Prints a
## table; fails if any client fails. Installs the clients first.
compat: build compat-install
	python3 it/compat/run.py

compat-install: setup

## Throughput and latency for 1 KB messages, acks=all, on a fresh node.
bench: build
	bash it/bench.sh $(KBENCH)

## The same on a fresh 3-node cluster (RF 3), plus latency at 10k msg/s,
## failover time and idle cost with 1,000 partitions.
bench-cluster: build
	bash it/bench_cluster.sh $(KBENCH)

## 10,000 partitions on a fresh 3-node cluster: creation, idle CPU and RSS,
## Metadata latency, produce over 600 more, re-election after a restart.
bench-scale: build
	bash it/bench_scale.sh $(KBENCH)

## Chronik and Apache Kafka 4.4.0 (fetched from Maven Central) side by side:
## one node and three, Kafka by default and with flush.messages=1, ratios.
bench-compare: build
	python3 it/bench_compare.py $(KBENCH)

## Disk use under retention: a topic with a small retention.bytes receives
## 10x that; prints disk use over time and the space amplification, checks
## that no offset is reused and that a consumer keeping up misses nothing.
soak: build
	python3 it/soak.py

## Fault injection against a real 3-node cluster on 127.0.0.11-13 (root and
## iptables): every scenario once, a table of operations, acknowledged,
## lost, duplicated, anomalies and recovery time. Replay: make chaos SEED=n.
## SECURE=1: with security on (SASL_SSL, SCRAM, ACLs, cluster secret, admin tokens).
SECURE   ?=
SEED     ?=
EXCLUDE  ?=
DURATION ?= 20
chaos: build setup
	@command -v iptables >/dev/null || { echo "make chaos needs root and iptables (apt-get install iptables xfsprogs libfaketime)"; exit 2; }
	python3 it/chaos.py $(if $(SEED),--seed $(SEED)) --duration $(DURATION) $(foreach s,$(EXCLUDE),--exclude $(s)) $(if $(SECURE),--secure)

## libFuzzer over the request decoder of every advertised API and version,
## from the compat clients' real frames (fuzz/seeds); fails on a crash or on
## an input that makes the decoder hold far more memory than its size.
FUZZ_SECONDS ?= 900
fuzz:
	bash fuzz/run.sh $(FUZZ_SECONDS)

## Captures new seeds: every request frame the compat clients send.
fuzz-seeds: build compat-install
	python3 it/compat/run.py --capture fuzz/seeds

## A local 3-node cluster (deploy/local/cluster.toml): Kafka 9092-9094,
## Raft 9192-9194, admin 9292-9294, data and logs under .cluster/.
cluster: build
	bash deploy/local/cluster.sh start

cluster-status:
	@bash deploy/local/cluster.sh status

## A new node (the next id, Kafka port 9091+id) joins the running local
## cluster; replicas move onto it (partition_autobalancing = node_add).
cluster-add-node: build
	bash deploy/local/cluster.sh add

## Decommissions node N (make cluster-remove-node 3, or N=3): its replicas move
## to the other nodes, then it leaves the cluster and is stopped.
ifeq (cluster-remove-node,$(firstword $(MAKECMDGOALS)))
  # `make cluster-remove-node 3` as well as N=3.
  N ?= $(word 2,$(MAKECMDGOALS))
  $(eval $(N):;@:)
endif
cluster-remove-node:
	@test -n "$(N)" || { echo "usage: make cluster-remove-node N=<node id>"; exit 2; }
	bash deploy/local/cluster.sh remove $(N)

cluster-stop:
	bash deploy/local/cluster.sh stop

## The local 3-node cluster with security on (README, "A secure cluster"):
## SASL_SSL on 9392-9394 with generated certificates, SCRAM, ACLs, a cluster
## secret, admin API tokens; data, secrets and client settings under .cluster-secure/.
cluster-secure: build
	bash deploy/local/cluster_secure.sh start

cluster-secure-stop:
	bash deploy/local/cluster_secure.sh stop

cluster-secure-clean:
	bash deploy/local/cluster_secure.sh clean

cluster-clean:
	bash deploy/local/cluster.sh clean

## Python packages, Debian packages and client libraries the tests need.
deps: setup

clean:
	rm -rf $(DATA_DIR)
