#!/usr/bin/env bash
# Plays across two hosts: a dedicated server in one network namespace, a player in another,
# joined by a veth pair, as on two machines.
#
#   scripts/multihost-check.sh [BINARY]      (as root; default binary: target/debug/bloxquarium)
#
# The server binds 0.0.0.0 and names its veth address with --public-addr; its login service
# listens on 0.0.0.0:5001. The player registers over HTTPS (pinning the self-signed certificate on
# first use), joins the game address the service names, buys a fish and quits. The server
# restarts; the player logs in again (pinned certificate, same account) and finds the fish.
set -euo pipefail

BIN=$(realpath "${1:-target/debug/bloxquarium}")
[ -x "$BIN" ] || { echo "multihost-check: no binary at $BIN (build it first)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "multihost-check: needs root (network namespaces)" >&2; exit 1; }
command -v ip >/dev/null || { echo "multihost-check: needs iproute2 (ip)" >&2; exit 1; }

TAG=bqmh$$
SRV_NS=$TAG-srv CLI_NS=$TAG-cli
SRV_IP=10.231.0.1 CLI_IP=10.231.0.2
WORK=$(mktemp -d /tmp/bq-multihost.XXXXXX)
SERVER_PID=

cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  ip netns del "$SRV_NS" 2>/dev/null || true
  ip netns del "$CLI_NS" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
  echo "multihost-check: FAILED: $*" >&2
  for f in "$WORK"/*.log; do echo "--- $f" >&2; tail -n 25 "$f" >&2; done
  exit 1
}

ip netns add "$SRV_NS"
ip netns add "$CLI_NS"
ip link add "${TAG}a" type veth peer name "${TAG}b"
ip link set "${TAG}a" netns "$SRV_NS"
ip link set "${TAG}b" netns "$CLI_NS"
ip -n "$SRV_NS" addr add "$SRV_IP/24" dev "${TAG}a"
ip -n "$CLI_NS" addr add "$CLI_IP/24" dev "${TAG}b"
for ns in "$SRV_NS" "$CLI_NS"; do
  ip -n "$ns" link set lo up
done
ip -n "$SRV_NS" link set "${TAG}a" up
ip -n "$CLI_NS" link set "${TAG}b" up

# Config and assets from the checkout; each host has its own data directory.
export NO_COLOR=1 RUST_LOG=info
start_server() {
  ip netns exec "$SRV_NS" "$BIN" --data "$WORK/server-data" server \
    --bind 0.0.0.0:5000 --public-addr "$SRV_IP:5000" --login-bind 0.0.0.0:5001 \
    >>"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 150); do
    if ip netns exec "$CLI_NS" bash -c "exec 3<>/dev/tcp/$SRV_IP/5001" 2>/dev/null; then return 0; fi
    kill -0 "$SERVER_PID" 2>/dev/null || fail "the server exited at start"
    sleep 0.2
  done
  fail "the login service did not open on $SRV_IP:5001"
}
stop_server() {
  kill -INT "$SERVER_PID"
  wait "$SERVER_PID" || true
  SERVER_PID=
}
player() { # LOG ARGS...: the player's host runs a headless client for 15 s
  local log=$1; shift
  ip netns exec "$CLI_NS" timeout 60 "$BIN" --data "$WORK/player-data" client --headless \
    --login "$SRV_IP" --user Nemo --password-file "$WORK/password" --exit-after 15 "$@" \
    >"$WORK/$log.log" 2>&1 || fail "the player's client exited with $? ($log)"
}

echo "multihost-check: server on $SRV_IP (bound 0.0.0.0), player on $CLI_IP"
echo 'a long sea password' >"$WORK/password"
start_server
player first --register --then buy-fish:0
grep -q "connected as Nemo" "$WORK/first.log" || fail "the player did not join"
grep -q "tank after the scripted operations: 1 fish" "$WORK/first.log" \
  || fail "the purchase was not acknowledged"
grep -q "^$SRV_IP:5001 " "$WORK/player-data/client/known_hosts" \
  || fail "the certificate was not pinned"
stop_server
start_server
player second
grep -q "connected as Nemo" "$WORK/second.log" || fail "the player did not join after the restart"
grep -q "tank on joining: 1 fish" "$WORK/second.log" || fail "the fish did not survive the restart"
stop_server
echo "multihost-check: ok (registered and logged in over HTTPS across hosts, bought a fish, found it after a restart)"
