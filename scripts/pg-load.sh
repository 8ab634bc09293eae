#!/usr/bin/env bash
# Many servers on one PostgreSQL under load, with the database restarted in the middle.
#
#   scripts/pg-load.sh [BINARY] [SERVERS] [BOTS] [SECONDS]
#       (default: target/release/bloxquarium 4 256 40; needs the postgresql package; as root
#        the cluster runs as the postgres user)
#
# A throwaway PostgreSQL cluster (fsync and synchronous_commit on, as shipped), SERVERS dedicated
# servers on it sharing one keys folder (auto-save every 5 s), and one load generator per server
# with BOTS bots, each of which buys a fish when the load begins (so its profile changes every
# second and every auto-save writes it). Halfway through, the database is restarted (a fast
# shutdown: every connection is cut). Then the servers stop (their final saves) and the store is
# checked: every bot's purchase is in its saved profile (0 lost). Printed per server: tick p50 and
# p99 under load, store operations per second, failed operations and retries; then the totals.
set -euo pipefail

BIN=$(realpath "${1:-target/release/bloxquarium}")
SERVERS=${2:-4}
BOTS=${3:-256}
SECS=${4:-40}
[ -x "$BIN" ] || { echo "pg-load: no binary at $BIN (cargo build --release first)" >&2; exit 1; }
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$PGBIN" ] || { echo "pg-load: needs PostgreSQL (apt-get install postgresql)" >&2; exit 1; }
command -v curl >/dev/null || { echo "pg-load: needs curl" >&2; exit 1; }

WORK=$(mktemp -d /tmp/bq-pgload.XXXXXX)
chmod 755 "$WORK"
PORT=$((56000 + RANDOM % 4000))
PIDS=()
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  as_pg "$PGBIN/pg_ctl" -D "$WORK/db" -m immediate stop >/dev/null 2>&1 || true
  [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
fail() {
  echo "pg-load: FAILED: $*" >&2
  for f in "$WORK"/*.log; do echo "--- $f" >&2; tail -n 15 "$f" >&2; done
  exit 1
}

mkdir "$WORK/db"
if [ "$(id -u)" = 0 ]; then chown postgres "$WORK" "$WORK/db"; fi
as_pg "$PGBIN/initdb" -D "$WORK/db" -A trust -U bq >/dev/null
pg_start() {
  as_pg "$PGBIN/pg_ctl" -D "$WORK/db" -l "$WORK/postgres.log" -w \
    -o "-k $WORK -p $PORT -c listen_addresses=127.0.0.1 -c max_connections=300" start >/dev/null
}
pg_start
psql() { command psql -h 127.0.0.1 -p "$PORT" -U bq -X -q -t -A "$@"; }
psql -d postgres -c 'CREATE DATABASE game' || fail "no database"
URL="postgres://bq@127.0.0.1:$PORT/game"

mkdir "$WORK/config"
cp config/schema.ron config/default.ron config/roles.ron "$WORK/config/"
cat >"$WORK/config/zz-load.ron" <<EOF
{
    "datastore": { "autosaveInterval": "5s" },
    "network": { "maxConcurrentConnections": $((BOTS + 16)) },
}
EOF
COMMON=(--config "$WORK/config" --keys "$WORK/keys" --store "$URL")

for i in $(seq 1 "$SERVERS"); do
  "$BIN" "${COMMON[@]}" --data "$WORK/d$i" server --bind "127.0.0.1:$((PORT + 10 * i))" \
    --metrics-bind "127.0.0.1:$((PORT + 10 * i + 1))" --login-bind 127.0.0.1:0 \
    --max-clients $((BOTS + 16)) >"$WORK/server$i.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 200); do
    curl -fs "http://127.0.0.1:$((PORT + 10 * i + 1))/ready" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fs "http://127.0.0.1:$((PORT + 10 * i + 1))/ready" >/dev/null || fail "server $i not ready"
done

metric() { # server, name
  curl -fs "http://127.0.0.1:$((PORT + 10 * $1 + 1))/metrics" | awk -v n="$2" '$1 == n { print $2 }'
}
declare -A OPS0 SAVED0
for i in $(seq 1 "$SERVERS"); do
  OPS0[$i]=$(metric "$i" bloxquarium_datastore_operations_total)
  SAVED0[$i]=$(metric "$i" bloxquarium_datastore_profiles_saved_total)
done

LOADS=()
for i in $(seq 1 "$SERVERS"); do
  "$BIN" "${COMMON[@]}" loadtest --server "127.0.0.1:$((PORT + 10 * i))" --clients "$BOTS" \
    --duration "$SECS" --rate 20 --buy-fish --first-player $((1000000000 + 1000000 * i)) --json \
    >"$WORK/load$i.log" 2>&1 &
  LOADS+=($!)
done
# Halfway through the load (after the bots have joined), the database restarts.
sleep $((SECS / 2 + 5))
as_pg "$PGBIN/pg_ctl" -D "$WORK/db" -m fast -w stop >/dev/null
RESTART=$(date +%s.%N)
pg_start
echo "database restarted in $(awk -v a="$RESTART" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
for p in "${LOADS[@]}"; do wait "$p" || fail "a load generator failed"; done

declare -A OPS1 SAVED1 FAILED RETRIES
for i in $(seq 1 "$SERVERS"); do
  OPS1[$i]=$(metric "$i" bloxquarium_datastore_operations_total)
  SAVED1[$i]=$(metric "$i" bloxquarium_datastore_profiles_saved_total)
  FAILED[$i]=$(metric "$i" bloxquarium_datastore_failed_operations_total)
  RETRIES[$i]=$(metric "$i" bloxquarium_datastore_save_retries_total)
done
for p in "${PIDS[@]}"; do kill -TERM "$p"; done
for p in "${PIDS[@]}"; do wait "$p" || fail "a server did not stop cleanly"; done
PIDS=()

total_ops=0
total_saved=0
for i in $(seq 1 "$SERVERS"); do
  json=$(tail -n 1 "$WORK/load$i.log")
  p50=$(echo "$json" | sed -n 's/.*"server_tick_p50_ms":\([0-9.]*\).*/\1/p' | xargs printf '%.2f')
  p99=$(echo "$json" | sed -n 's/.*"server_tick_p99_ms":\([0-9.]*\).*/\1/p' | xargs printf '%.2f')
  conn=$(echo "$json" | sed -n 's/.*"connected":\([0-9]*\).*/\1/p')
  ops=$(awk -v a="${OPS0[$i]}" -v b="${OPS1[$i]}" 'BEGIN { print b - a }')
  total_ops=$(awk -v a="$total_ops" -v b="$ops" 'BEGIN { print a + b }')
  saved=$(awk -v a="${SAVED0[$i]}" -v b="${SAVED1[$i]}" 'BEGIN { print b - a }')
  total_saved=$(awk -v a="$total_saved" -v b="$saved" 'BEGIN { print a + b }')
  printf 'server %d: %s of %d bots; tick p50 %s ms, p99 %s ms; saves %.0f/s, store operations %.0f/s; failed %s, save retries %s\n' \
    "$i" "$conn" "$BOTS" "$p50" "$p99" "$(awk -v o="$saved" -v s="$SECS" 'BEGIN { print o / (s + 10) }')" \
    "$(awk -v o="$ops" -v s="$SECS" 'BEGIN { print o / (s + 10) }')" "${FAILED[$i]}" "${RETRIES[$i]}"
done

# Every bot's purchase is in its saved profile: its leaderboard row (written with each save)
# holds the coins left after the fish (under the starting 100), plus what the fish earned.
expected=$((SERVERS * BOTS))
rows=$(psql -d game -c "SELECT count(*) FROM bq_ranks WHERE player >= 1000000000")
bought=$(psql -d game -c "SELECT count(*) FROM bq_ranks WHERE player >= 1000000000 AND score <> 100")
saves=$(psql -d game -c "SELECT count(*) FROM bq_versions")
echo "saved profiles: $rows of $expected bots; with the fish bought: $bought; versions kept: $saves"
echo "saves, all servers: $(awk -v o="$total_saved" -v s="$SECS" 'BEGIN { printf "%.0f", o / (s + 10) }')/s"
echo "store operations, all servers: $(awk -v o="$total_ops" -v s="$SECS" 'BEGIN { printf "%.0f", o / (s + 10) }')/s"
lost=$(cat "$WORK"/server*.log | { grep -c "could not save\|the last autosave stands" || true; })
[ "$rows" = "$expected" ] || fail "$rows profiles saved, $expected expected"
[ "$bought" = "$expected" ] || fail "$bought purchases saved, $expected expected"
[ "$lost" = 0 ] || fail "servers report unsaved play ($lost lines)"
echo "pg-load: OK (0 lost)"
