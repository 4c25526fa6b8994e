#!/usr/bin/env bash
# Fuzz the parsers that face the network with libFuzzer:
#   bash fuzz/run.sh                                   # smoke: each target FUZZ_SECONDS (default 10)
#   FUZZ_SECONDS=600 FUZZ_PROFILE=release bash fuzz/run.sh   # a longer run
#
# The targets are ordinary cargo-fuzz targets (`cargo fuzz run token` works
# where cargo-fuzz is installed), but this script builds them itself with the
# same SanitizerCoverage flags cargo-fuzz passes. Those are stable rustc `-C`
# options, so no nightly toolchain, no RUSTC_BOOTSTRAP and no cargo-fuzz
# install (3 minutes on CI) are needed. No sanitizer is enabled (that one
# would need nightly): the parsers are safe Rust, so libFuzzer looks for
# panics, overflows (debug assertions and overflow checks are on) and hangs.
#
# A crash leaves its input in fuzz/artifacts/<target>/; turn it into a
# regression test under tests/ and fix the cause.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-10}"
profile="${FUZZ_PROFILE:-dev}"   # dev builds in half the time; release fuzzes faster
targets=(token list_query cursor task_body)
host=$(rustc -vV | sed -n 's/^host: //p')

export RUSTFLAGS="-Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# --target keeps the instrumentation out of build scripts and proc macros.
cargo build --locked --quiet --manifest-path fuzz/Cargo.toml --target "$host" \
  --profile "$profile" --target-dir target/fuzz --bins
# FUZZ_BUILD_ONLY=1: build the targets and stop (CI builds them early, in
# the background, and runs them at the end; the second build is a no-op).
[ "${FUZZ_BUILD_ONLY:-0}" = 1 ] && { echo "fuzz targets built"; exit 0; }
case "$profile" in dev) dir=debug ;; *) dir="$profile" ;; esac
bin_dir="target/fuzz/$host/$dir"

passed=0
failed=0
for target in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
  log="target/fuzz-$target.log"
  if "$bin_dir/$target" "fuzz/corpus/$target" "fuzz/seeds/$target" \
       -artifact_prefix="fuzz/artifacts/$target/" \
       -max_total_time="$seconds" -max_len=8192 -timeout=10 2> "$log"; then
    echo "fuzz $target: ok ($(grep -oE 'Done [0-9]+ runs' "$log" | tail -n1) in ${seconds}s," \
      "$(grep -oE 'cov: [0-9]+' "$log" | tail -n1))"
    passed=$((passed + 1))
  else
    echo "fuzz $target: FAILED"; tail -n 40 "$log"
    failed=$((failed + 1))
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
