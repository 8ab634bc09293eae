#!/usr/bin/env bash
# Plays the game as a person would under Xvfb: clicks and keys through buying, feeding,
# upgrading and every panel, a screenshot (F12) and a check of the game's state dump after each
# step, then quits and restarts on the same data and checks the aquarium is the same.
# Screenshots and logs go to target/playthrough/.
#
#   scripts/playthrough.sh [BIN]     BIN: target/debug/bloxquarium (built if missing)
#
# Needs: xvfb, mesa-vulkan-drivers, xdotool, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-${BLOXQUARIUM_BIN:-target/debug/bloxquarium}}"
out="${PLAYTHROUGH_OUT:-target/playthrough}"
[ -x "$bin" ] || cargo build --bin bloxquarium
command -v xdotool >/dev/null || { echo "playthrough: needs xdotool (apt-get install xdotool)"; exit 1; }
rm -rf "$out"
mkdir -p "$out"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
# Sound off: ALSA's default device is the null device, in a scratch HOME.
mkdir -p "$scratch/home"
printf 'pcm.!default { type null }\n' > "$scratch/home/.asoundrc"
HOME="$scratch/home" timeout 900 xvfb-run -a -s "-screen 0 1280x720x24" \
  python3 scripts/playthrough.py --bin "$bin" --data "$scratch/data" --out "$out" \
  || { echo "playthrough: failed; the game's logs:"; tail -30 "$out"/play-*.log; exit 1; }
echo "playthrough: screenshots in $out"
