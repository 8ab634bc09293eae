#!/usr/bin/env bash
# Client frame-time benchmark: runs `play` under Xvfb (software Vulkan) twice, side by side in one
# run: with the player's own fish only, then with 200 extra fish swimming; each run logs the
# frame times of play (p50, p99, mean fps) when it takes its screenshot.
#
#   scripts/frame-bench.sh [FISH] [FRAMES]     defaults: 200 fish, 120 frames of play
#
# Needs what scripts/screenshot-check.sh needs. Uses target/release/bloxquarium when built (else
# target/debug), or BLOXQUARIUM_BIN.
set -euo pipefail
cd "$(dirname "$0")/.."
fish="${1:-200}"
frames="${2:-120}"
bin="${BLOXQUARIUM_BIN:-target/release/bloxquarium}"
[ -x "$bin" ] || bin=target/debug/bloxquarium
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for n in 0 "$fish"; do
  timeout 900 xvfb-run -a -s "-screen 0 1280x720x24" \
    "$bin" --data "$scratch/data-$n" play --bind 127.0.0.1:0 \
    --screenshot "$scratch/shot-$n.png" --screenshot-frames "$frames" --bench-fish "$n" \
    > "$scratch/run-$n.log" 2>&1 || { echo "frame-bench: run with $n fish failed"; tail -20 "$scratch/run-$n.log"; exit 1; }
  line="$(grep -a "frame time over" "$scratch/run-$n.log" | sed 's/.*frame time/frame time/')"
  echo "extra fish $n: ${line:-no figures (did play start?)}"
done
