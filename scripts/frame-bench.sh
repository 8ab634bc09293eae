#!/usr/bin/env bash
# Client frame-time benchmark, side by side in one run on the same renderer (software Vulkan
# under Xvfb) and window size (1280x720):
#   1. the baseline: Bevy's own 3d_scene example (`bloxquarium frame-baseline`, built into the
#      binary so both run on the same Bevy build: src/client/baseline.rs);
#   2. `play` at HIGH quality (level 3): multisampling 4x, the sun's shadows on, two lights (the
#      sun and the tank's point light), the player's tank stocked with 3 fish (+ FISH extra);
#      the quality governor off (assetManager.enableQualityScaling=false), so nothing steps down.
# Each logs the p50 and p99 of the second half of FRAMES frames and its resident memory (RSS)
# at the end and when that half began (memory that grows from frame to frame shows there); the
# script prints both lines and the ratio of the p50s.
#
#   scripts/frame-bench.sh [FISH] [FRAMES]     defaults: 0 extra fish, 120 frames
#
# Needs what scripts/screenshot-check.sh needs. Uses the release build (built if missing), or
# BLOXQUARIUM_BIN.
set -euo pipefail
cd "$(dirname "$0")/.."
fish="${1:-0}"
frames="${2:-120}"
target="${CARGO_TARGET_DIR:-target}"
bin="${BLOXQUARIUM_BIN:-$target/release/bloxquarium}"
[ -x "$bin" ] || cargo build --release --bin bloxquarium
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
xvfb() { timeout 1200 xvfb-run -a -s "-screen 0 1280x720x24" "$@"; }

xvfb "$bin" frame-baseline --frames "$frames" > "$scratch/base.log" 2>&1 \
  || { echo "frame-bench: the baseline failed"; tail -20 "$scratch/base.log"; exit 1; }
base_line="$(grep -a "frame time over" "$scratch/base.log" | sed 's/.*frame time/frame time/')"

mkdir -p "$scratch/home"
printf 'pcm.!default { type null }\n' > "$scratch/home/.asoundrc"
HOME="$scratch/home" \
BLOXQUARIUM__GRAPHICS__QUALITYLEVEL=3 \
BLOXQUARIUM__GRAPHICS__SHADOWS=true \
BLOXQUARIUM__ASSETMANAGER__ENABLEQUALITYSCALING=false \
  xvfb "$bin" --data "$scratch/data" play --bind 127.0.0.1:0 \
    --screenshot "$scratch/shot.png" --screenshot-frames "$frames" --bench-fish "$fish" \
    > "$scratch/play.log" 2>&1 || { echo "frame-bench: play failed"; tail -20 "$scratch/play.log"; exit 1; }
play_line="$(grep -a "frame time over" "$scratch/play.log" | sed 's/.*frame time/frame time/')"
if grep -aq "quality dropped" "$scratch/play.log"; then
  echo "frame-bench: the quality governor stepped down: the settings did not take"; exit 1
fi

echo "baseline (bevy 3d_scene): ${base_line:-no figures}"
echo "play (HIGH: msaa 4x, sun shadows, 2 lights, 3+$fish fish): ${play_line:-no figures}"
p50() { sed -n 's/.*p50 \([0-9.]*\) ms.*/\1/p' <<<"$1"; }
b="$(p50 "$base_line")"; p="$(p50 "$play_line")"
if [ -n "$b" ] && [ -n "$p" ]; then
  python3 -c "print(f'ratio of p50s (play / baseline): {float($p) / float($b):.2f}')"
fi
