#!/usr/bin/env bash
# Builds the fuzz targets (fuzz/, cargo-fuzz on the nightly toolchain) and runs each for SECONDS
# (default 20), starting from its committed seeds (fuzz/seeds/<target>, made by the tests) and
# the corpus kept in fuzz/corpus/<target>; as many at once as there are cores (FUZZ_JOBS to
# change). Prints one line per target: runs, coverage, corpus. A crash fails with the target's
# name and the input saved under fuzz/artifacts/<target>/.
#   scripts/fuzz.sh [SECONDS] [TARGET ...]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-20}"
shift || true
if ! command -v cargo-fuzz >/dev/null; then
  echo "cargo-fuzz is missing: cargo install cargo-fuzz" >&2
  exit 2
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
jobs="${FUZZ_JOBS:-$(nproc)}"
# No sanitizer: the code is safe Rust (a panic is the failure we look for), and the build is
# half the time with none.
cargo +nightly fuzz build -s none 2>&1 | tail -1
logs="$(mktemp -d)"
run_one() {
  local t="$1"
  mkdir -p "corpus/$t"
  if cargo +nightly fuzz run -s none "$t" "corpus/$t" "seeds/$t" -- \
      -max_total_time="$secs" -print_final_stats=1 >"$logs/$t" 2>&1; then
    echo ok >"$logs/$t.status"
  else
    echo failed >"$logs/$t.status"
  fi
}
running=0
for t in "${targets[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait
failed=0
for t in "${targets[@]}"; do
  if [ "$(cat "$logs/$t.status" 2>/dev/null)" != ok ]; then
    tail -40 "$logs/$t"
    echo "fuzz: $t FAILED (the input is under fuzz/artifacts/$t/)" >&2
    failed=1
    continue
  fi
  done_line="$(grep -E '^#[0-9]+[[:space:]]+DONE' "$logs/$t" | tail -1)"
  runs="$(grep -E '^stat::number_of_executed_units' "$logs/$t" | awk '{print $2}')"
  echo "fuzz: $t ${secs}s: $runs runs; $(echo "${done_line#*DONE}" | tr -s ' \t' ' ')"
done
rm -rf "$logs"
exit "$failed"
