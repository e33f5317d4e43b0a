#!/usr/bin/env bash
# Fuzzes the Kafka request decoder with libFuzzer for SECONDS (default 180),
# starting from the committed seeds (real frames of the make compat clients,
# fuzz/seeds) plus what earlier runs here found (fuzz/corpus, not committed).
# Prints executions and coverage; a crash (or an input that makes the decoder
# hold far more memory than its size) fails the run and is kept in
# fuzz/artifacts: copy it to fuzz/regressions/ (NAME.bin) so the Rust tests
# replay it forever. Builds on stable Rust: coverage instrumentation comes
# from rustc's sancov pass, not cargo-fuzz.
#   bash fuzz/run.sh [SECONDS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
SECONDS_TO_RUN=${1:-${FUZZ_SECONDS:-180}}
# FUZZ_JOBS=N runs N fuzzers in parallel (their logs: fuzz/artifacts/fuzz-*.log).
JOBS=${FUZZ_JOBS:-1}
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-$here/target}
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
# An explicit --target keeps the instrumentation out of build scripts.
triple=$(rustc -vV | sed -n 's/^host: //p')
echo "fuzz: building the decoder target (instrumented)..." >&2
(cd "$here" && cargo build --release --target "$triple" --bin decode_request)
bin=$CARGO_TARGET_DIR/$triple/release/decode_request
mkdir -p "$here/corpus" "$here/artifacts"
echo "fuzz: running for ${SECONDS_TO_RUN}s from $(ls "$here/seeds" | wc -l) seeds" >&2
log=$here/artifacts/last-run.log
parallel=()
[ "$JOBS" -gt 1 ] && parallel=(-jobs="$JOBS" -workers="$JOBS")
set +e
(cd "$here/artifacts" && "$bin" "$here/corpus" "$here/seeds" -max_total_time="$SECONDS_TO_RUN" -max_len=262144 \
  -rss_limit_mb=4096 -timeout=20 "${parallel[@]}" -print_final_stats=1 -artifact_prefix="$here/artifacts/" \
  -dict="$here/kafka.dict") 2>&1 | tee "$log" | grep -E "^#[0-9]+.*(INITED|DONE|pulse)|stat::|ERROR|==chronik-fuzz==|SUMMARY" >&2
rc=${PIPESTATUS[0]}
set -e
[ "$JOBS" -gt 1 ] && cat "$here"/artifacts/fuzz-*.log >>"$log"
execs=$(grep -Eo "stat::number_of_executed_units: [0-9]+" "$log" | awk '{s+=$2} END {print s+0}')
cov=$(grep -Eo "cov: [0-9]+" "$log" | tail -1 | awk '{print $2}')
echo "fuzz: ${execs} executions in ${SECONDS_TO_RUN}s, coverage ${cov:-?} edges, exit ${rc}" >&2
if [ "$rc" -ne 0 ]; then
  echo "fuzz: FAILED: see $log; the input is in $here/artifacts/ (copy it to fuzz/regressions/ as NAME.bin)" >&2
  exit 1
fi
