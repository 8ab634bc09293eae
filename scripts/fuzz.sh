#!/usr/bin/env bash
# Builds the fuzz targets (fuzz/, cargo-fuzz on the nightly toolchain) and runs each for SECONDS
# (default 20), starting from its committed seeds (fuzz/seeds/<target>, made by the tests) and
# the corpus kept in fuzz/corpus/<target>. Prints one line per target: runs, coverage, corpus.
# A crash stops with the target's name and the input saved under fuzz/artifacts/<target>/.
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
# No sanitizer: the code is safe Rust (a panic is the failure we look for), and the build is
# half the time with none.
cargo +nightly fuzz build -s none 2>&1 | tail -1
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  log="$(mktemp)"
  if ! cargo +nightly fuzz run -s none "$t" "corpus/$t" "seeds/$t" -- \
      -max_total_time="$secs" -print_final_stats=1 >"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz: $t FAILED (the input is under fuzz/artifacts/$t/)" >&2
    exit 1
  fi
  done_line="$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1)"
  runs="$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')"
  echo "fuzz: $t ${secs}s: $runs runs; $(echo "${done_line#*DONE}" | tr -s ' \t' ' ')"
  rm -f "$log"
done
