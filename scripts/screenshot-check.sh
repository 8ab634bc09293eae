#!/usr/bin/env bash
# Screenshot smoke check: runs the game in a real window under Xvfb (software Vulkan through
# mesa-vulkan-drivers), saves a PNG after ~100 frames and fails if the run fails or the picture is
# a single colour.
#
#   scripts/screenshot-check.sh [MODE] [OUT.png]     MODE: play (default) or client
#
# Needs: xvfb, mesa-vulkan-drivers (apt-get install -y xvfb mesa-vulkan-drivers), python3.
# Uses target/debug/bloxquarium unless BLOXQUARIUM_BIN names another binary; builds it if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-play}"
out="${2:-target/screenshots/${mode}.png}"
bin="${BLOXQUARIUM_BIN:-target/debug/bloxquarium}"
frames="${SCREENSHOT_FRAMES:-100}"
# play binds an ephemeral port so the check never collides with a running server.
BIND_ARGS=""
if [ "$mode" = "play" ]; then BIND_ARGS="--bind 127.0.0.1:0"; fi

if [ ! -x "$bin" ]; then
  cargo build --bin bloxquarium
fi
mkdir -p "$(dirname "$out")"
rm -f "$out"

# The game's own data/config/assets, but data in a scratch folder so a check never touches ./data.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

echo "screenshot-check: $bin $mode, ${frames} frames -> $out"
timeout 600 xvfb-run -a -s "-screen 0 1280x720x24" \
  "$bin" --data "$scratch/data" "$mode" ${BIND_ARGS:-} --screenshot "$out" --screenshot-frames "$frames" \
  > "$scratch/run.log" 2>&1 || { echo "screenshot-check: the game failed:"; tail -40 "$scratch/run.log"; exit 1; }

if [ ! -s "$out" ]; then
  echo "screenshot-check: no screenshot was written"; tail -40 "$scratch/run.log"; exit 1
fi
python3 scripts/png_not_uniform.py "$out"
