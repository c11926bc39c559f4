#!/usr/bin/env bash
# Replays the MySQL semi-sync tutorial in ../shared/seed/ against a local
# relaykv primary and replica, statement by statement as the tutorial writes
# them (its `//` annotations left out), and checks that the counters move
# as they should:
#   1. plugins "installed" (built in), semi-sync enabled on both sides;
#   2. a healthy write: yes_tx 1, tx_waits 1;
#   3. the replica's IO thread stopped: a write waits the timeout
#      (rpl_semi_sync_master_timeout, 10 s as in the tutorial, or
#      SEED_TIMEOUT_MS), then no_tx 1, no_times 1, status OFF;
#   4. the IO thread started again: status back ON, the next write waits
#      for the ACK again (yes_tx 2).
# Exits non-zero if a step does not behave so. Data under var/seed/.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${RELAYKV_BIN_DIR:-}" ]; then
  bash scripts/setup.sh
  bash scripts/build.sh relaykvd relaykv >/dev/null
fi
BIN=${RELAYKV_BIN_DIR:-$PWD/build/bin}
ROOT=${SEED_DIR:-$PWD/var/seed}
TIMEOUT_MS=${SEED_TIMEOUT_MS:-10000}
# shellcheck source=scripts/cluster_lib.sh
source scripts/cluster_lib.sh
stop_leftovers "$ROOT"
rm -rf "$ROOT"
mkdir -p "$ROOT"
trap 'stop_node "$ROOT/slave" >/dev/null 2>&1 || true; stop_node "$ROOT/master" >/dev/null 2>&1 || true' EXIT

start_node MASTER "$ROOT/master" --server-id 1 --rpl_semi_sync_master_timeout="$TIMEOUT_MS"
start_node SLAVE "$ROOT/slave" --server-id 2 --replicate-from "$MASTER"

# mysql> STATEMENT, then its output as the mysql client prints it.
on() {
  local host=$1 label=$2
  shift 2
  printf '\n[%s] mysql> %s\n' "$label" "$*"
  "$BIN/relaykv" -H "$host" -t -v -e "$*"
}
status_of() {  # status_of HOST NAME -> value
  "$BIN/relaykv" -H "$1" -N -e "show status like '$2'" | cut -f2
}
expect() {  # expect HOST NAME VALUE
  local got
  got=$(status_of "$1" "$2")
  if [ "$got" != "$3" ]; then
    echo "FAILED: $2 is $got, expected $3" >&2
    exit 1
  fi
  echo "  ok: $2 = $3"
}
wait_for() {  # wait_for HOST NAME VALUE (up to 10 s)
  for _ in $(seq 1 100); do
    [ "$(status_of "$1" "$2")" = "$3" ] && return 0
    sleep 0.1
  done
  expect "$1" "$2" "$3"
}

echo "== master: install the plugin, enable semi-sync"
on "$MASTER" master "install plugin rpl_semi_sync_master soname 'semisync_master.so';"
on "$MASTER" master "set global rpl_semi_sync_master_enabled = 1;"
on "$MASTER" master "show variables like 'rpl_semi_sync%';"
on "$MASTER" master "show status like 'rpl_semi_sync%'
;"

echo
echo "== slave: install the plugin, enable, restart the IO thread"
on "$SLAVE" slave "install plugin rpl_semi_sync_slave soname 'semisync_slave.so';"
on "$SLAVE" slave "set global rpl_semi_sync_slave_enabled=1;"
on "$SLAVE" slave "show status like 'rpl_semi_sync%';"
on "$SLAVE" slave "stop slave io_thread;"
on "$SLAVE" slave "start slave io_thread;"
wait_for "$SLAVE" Rpl_semi_sync_slave_status ON
on "$SLAVE" slave "show status like 'rpl_semi_sync%';"
echo "(the tutorial then edits my.cnf; relaykv's equivalent is SET PERSIST)"
on "$SLAVE" slave "set persist rpl_semi_sync_slave_enabled = 1;"
on "$MASTER" master "set persist rpl_semi_sync_master_enabled = 1;"
wait_for "$MASTER" Rpl_semi_sync_master_clients 1
on "$MASTER" master "show status like 'rpl_semi_sync%';"

echo
echo "== test: a write on the master waits for the slave's ACK"
on "$MASTER" master "put 'im_article:1' 'title=1';"
on "$MASTER" master "show status like 'rpl_semi_sync%';"
expect "$MASTER" Rpl_semi_sync_master_yes_tx 1
expect "$MASTER" Rpl_semi_sync_master_tx_waits 1
expect "$MASTER" Rpl_semi_sync_master_no_tx 0

echo
echo "== timeout: stop the slave's IO thread, write on the master"
on "$SLAVE" slave "stop slave io_thread;"
wait_for "$MASTER" Rpl_semi_sync_master_clients 0
start=$(date +%s%N)
on "$MASTER" master "put 'im_article:2' 'title=2';"
took_ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "  the write took $took_ms ms (timeout $TIMEOUT_MS ms)"
if [ "$took_ms" -lt "$TIMEOUT_MS" ]; then
  echo "FAILED: the write returned before the timeout" >&2
  exit 1
fi
on "$MASTER" master "show status like 'rpl_semi_sync%';"
expect "$MASTER" Rpl_semi_sync_master_no_tx 1
expect "$MASTER" Rpl_semi_sync_master_no_times 1
expect "$MASTER" Rpl_semi_sync_master_status OFF

echo
echo "== recovery: start the IO thread; the slave catches up and semi-sync is ON again"
on "$SLAVE" slave "start slave io_thread;"
wait_for "$MASTER" Rpl_semi_sync_master_status ON
on "$MASTER" master "put 'im_article:3' 'title=3';"
on "$MASTER" master "show status like 'rpl_semi_sync%';"
expect "$MASTER" Rpl_semi_sync_master_yes_tx 2
expect "$MASTER" Rpl_semi_sync_master_tx_waits 2
on "$SLAVE" slave "get 'im_article:2';"

trap - EXIT
echo
stop_node "$ROOT/slave"
stop_node "$ROOT/master"
echo "seed walkthrough: every step behaved as the tutorial describes"
