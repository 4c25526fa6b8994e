#!/usr/bin/env bash
# Fuzz the parsers that face the network (cargo-fuzz / libFuzzer):
#   bash fuzz/run.sh            # smoke: every target for FUZZ_SECONDS (default 10) each
#   FUZZ_SECONDS=600 bash fuzz/run.sh   # a longer run
# Needs cargo-fuzz (installed here when missing). libFuzzer's instrumentation
# needs nightly flags; the machine has only stable Rust, so RUSTC_BOOTSTRAP=1
# lets stable rustc accept them (no other toolchain can be fetched here).
# A crash leaves its input in fuzz/artifacts/<target>/; turn it into a
# regression test under tests/ and fix the cause.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-10}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
passed=0
failed=0
for target in token list_query cursor task_body; do
  mkdir -p "fuzz/corpus/$target"
  if cargo fuzz run --sanitizer none "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" \
       -- -max_total_time="$seconds" -max_len=8192 2> "target/fuzz-$target.log"; then
    runs=$(grep -oE 'Done [0-9]+ runs' "target/fuzz-$target.log" | tail -n1)
    echo "fuzz $target: ok ($runs in ${seconds}s)"
    passed=$((passed + 1))
  else
    echo "fuzz $target: FAILED"; tail -n 40 "target/fuzz-$target.log"
    failed=$((failed + 1))
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
