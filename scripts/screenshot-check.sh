#!/usr/bin/env bash
# Screenshot smoke check: runs the game in a real window under Xvfb (software Vulkan through
# mesa-vulkan-drivers), saves a PNG after ~100 frames and fails if the run fails or the picture is
# a single colour.
#
#   scripts/screenshot-check.sh [MODE] [OUT.png]     MODE: play (default) or client
#
# Needs: xvfb, mesa-vulkan-drivers (apt-get install -y xvfb mesa-vulkan-drivers), python3.
#
# Sound (play mode, where libasound.so.2 is installed: package libasound2): ALSA's default device
# is pointed at a file (an .asoundrc in a scratch HOME), the ambience is turned down, and the
# check fails unless the game played a coin and the file holds sound, not silence.
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

sound=""
home="${HOME:-/root}"
if [ "$mode" = "play" ] && ldconfig -p 2>/dev/null | grep -q 'libasound\.so\.2'; then
  sound="$scratch/sound.raw"
  home="$scratch/home"
  mkdir -p "$home"
  printf 'pcm.!default { type file; slave.pcm "null"; file "%s"; format "raw" }\n' "$sound" \
    > "$home/.asoundrc"
fi

echo "screenshot-check: $bin $mode, ${frames} frames -> $out"
HOME="$home" BLOXQUARIUM__AUDIO__AMBIENCEVOLUME=0 timeout 600 xvfb-run -a -s "-screen 0 1280x720x24" \
  "$bin" --data "$scratch/data" "$mode" ${BIND_ARGS:-} --screenshot "$out" --screenshot-frames "$frames" \
  > "$scratch/run.log" 2>&1 || { echo "screenshot-check: the game failed:"; tail -40 "$scratch/run.log"; exit 1; }

if [ ! -s "$out" ]; then
  echo "screenshot-check: no screenshot was written"; tail -40 "$scratch/run.log"; exit 1
fi
python3 scripts/png_not_uniform.py "$out"

if [ -n "$sound" ]; then
  grep -q "sound: playing through ALSA" "$scratch/run.log" \
    || { echo "screenshot-check: no sound output opened:"; grep -i sound "$scratch/run.log" | tail; exit 1; }
  grep -q "sound: Coin" "$scratch/run.log" \
    || { echo "screenshot-check: no coin sound was played"; exit 1; }
  python3 - "$sound" <<'PY'
import array, sys
a = array.array("h")
with open(sys.argv[1], "rb") as f:
    a.frombytes(f.read())
loud = sum(1 for x in a if abs(x) > 300)
print(f"ok: {len(a) / 22050:.1f} s of sound written, {loud} samples above the noise floor")
sys.exit(0 if loud > 1000 else 1)
PY
else
  echo "screenshot-check: sound not checked (mode $mode, or no libasound.so.2)"
fi
