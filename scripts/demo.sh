#!/usr/bin/env bash
# The main job: a local relaykv cluster doing real work. Installs what is
# missing, builds, then starts a primary and two replicas (three relaykvd
# processes on 127.0.0.1, data under var/demo/), turns on lossless semi-sync
# replication, writes through the primary, and shows the replicas' status and
# that all three hold identical data; then kills the primary and fails over
# to a replica by hand (RESET SLAVE ALL). Then the same with automatic
# failover through etcd (scripts/demo_auto_failover.sh): a replica takes over
# by itself and the old primary rejoins, truncating its unacknowledged tail.
# Stops everything cleanly at the end.
# --tls: the same over mutual TLS with roles (README "Security"): test
# certificates from scripts/make-test-certs.sh in var/demo/certs, every
# node serving TLS only, replicas connecting with the "repl" identity and
# the client with "admin"; a plaintext client and a read-only identity are
# shown being refused.
set -euo pipefail
tls=0
if [ "${1:-}" = "--tls" ]; then tls=1; elif [ -n "${1:-}" ]; then echo "usage: demo.sh [--tls]" >&2; exit 2; fi
cd "$(dirname "$0")/.."
if [ -z "${RELAYKV_BIN_DIR:-}" ]; then
  bash scripts/setup.sh
  bash scripts/build.sh relaykvd relaykv >/dev/null
fi
BIN=${RELAYKV_BIN_DIR:-$PWD/build/bin}
ROOT=$PWD/var/demo
# shellcheck source=scripts/cluster_lib.sh
source scripts/cluster_lib.sh
stop_leftovers "$ROOT"
rm -rf "$ROOT"
mkdir -p "$ROOT"
trap 'for d in "$ROOT"/replica2 "$ROOT"/replica1 "$ROOT"/primary; do stop_node "$d" >/dev/null 2>&1 || true; done' EXIT

# The client command, and what every node and replica gets (TLS or not).
RELAYKV=("$BIN/relaykv")
NODE_FLAGS=()
REPLICA_FLAGS=()
if [ "$tls" = 1 ]; then
  C=$ROOT/certs
  bash scripts/make-test-certs.sh "$C"
  RELAYKV=("$BIN/relaykv" --ssl-ca "$C/ca.pem" --ssl-cert "$C/admin.pem" --ssl-key "$C/admin.key")
  NODE_FLAGS=(--ssl-ca "$C/ca.pem" --ssl-cert "$C/node.pem" --ssl-key "$C/node.key"
              --require_secure_transport=ON --roles-file "$C/roles.txt")
  REPLICA_FLAGS=(--master-ssl-ca "$C/ca.pem" --master-ssl-cert "$C/repl.pem" --master-ssl-key "$C/repl.key")
  echo "== mutual TLS: certificates in var/demo/certs, roles:"
  grep -v '^#' "$C/roles.txt"
fi

echo "== starting a primary and two replicas (logs in var/demo/*.log)"
start_node PRIMARY "$ROOT/primary" --server-id 1 --rpl_semi_sync_master_enabled=ON \
  --http-listen 127.0.0.1:0 "${NODE_FLAGS[@]}"
start_node REPLICA1 "$ROOT/replica1" --server-id 2 --replicate-from "$PRIMARY" --rpl_semi_sync_slave_enabled=ON \
  "${NODE_FLAGS[@]}" "${REPLICA_FLAGS[@]}"
start_node REPLICA2 "$ROOT/replica2" --server-id 3 --replicate-from "$PRIMARY" --rpl_semi_sync_slave_enabled=ON \
  "${NODE_FLAGS[@]}" "${REPLICA_FLAGS[@]}"
echo "primary $PRIMARY, replicas $REPLICA1 and $REPLICA2"
for _ in $(seq 1 100); do
  clients=$("${RELAYKV[@]}" -H "$PRIMARY" -N -e "show status like 'Rpl_semi_sync_master_clients'" | cut -f2)
  [ "$clients" = 2 ] && break
  sleep 0.1
done

show "${RELAYKV[@]}" -H "$PRIMARY" -t -e "show variables like 'rpl_semi_sync_master%'"

if [ "$tls" = 1 ]; then
  echo
  echo "== refused: a plaintext client, and the read-only identity 'reader' writing"
  show "$BIN/relaykv" -H "$PRIMARY" --timeout 3 get greeting || true
  show "$BIN/relaykv" -H "$PRIMARY" --ssl-ca "$C/ca.pem" --ssl-cert "$C/reader.pem" --ssl-key "$C/reader.key" put k v || true
fi

echo
echo "== writing through the primary: 3 single puts, then 1000 more from a piped script"
show "${RELAYKV[@]}" -H "$PRIMARY" put greeting hello
show "${RELAYKV[@]}" -H "$PRIMARY" put answer 42
show "${RELAYKV[@]}" -H "$PRIMARY" del answer
for i in $(seq 1 1000); do echo "PUT 'user:$i' 'name-$i';"; done | "${RELAYKV[@]}" -H "$PRIMARY"
echo "(1000 PUT statements piped to relaykv -H $PRIMARY)"

show "${RELAYKV[@]}" -H "$PRIMARY" -t -e "show status like 'rpl_semi_sync_master_%'"

# The same through the monitoring port (README "Monitoring"), read with
# bash's /dev/tcp: no HTTP client needed.
http=$(cat "$ROOT/primary/relaykvd.http.addr")
echo
echo "$ GET http://$http/metrics   (a few of its lines)"
exec 3<>"/dev/tcp/${http%:*}/${http##*:}"
printf 'GET /metrics HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$http" >&3
grep -E '^relaykv_(commit_duration_seconds_(count|sum)|semisync_master_(status|clients|yes_tx_total)|replica_lag_seqs|binlog_last_seq)' <&3 || true
exec 3<&-
show "${RELAYKV[@]}" -H "$PRIMARY" -t -e "show replicas"

echo
echo "== reading on a replica, and a write refused there"
show "${RELAYKV[@]}" -H "$REPLICA1" get greeting
show "${RELAYKV[@]}" -H "$REPLICA2" get user:1000
show "${RELAYKV[@]}" -H "$REPLICA1" put not allowed || true

# Replicas apply asynchronously after their ACK: wait until both caught up.
want=$("${RELAYKV[@]}" -H "$PRIMARY" -N -e "show master status" | cut -f3)
for r in "$REPLICA1" "$REPLICA2"; do
  for _ in $(seq 1 100); do
    got=$("${RELAYKV[@]}" -H "$r" -N -e "checksum" | cut -f1)
    [ "$got" = "$want" ] && break
    sleep 0.1
  done
done
show "${RELAYKV[@]}" -H "$REPLICA1" -e "show slave status\G"

echo
echo "== checksums of the whole keyspace on all three nodes"
if same_data "$PRIMARY" "$REPLICA1" "$REPLICA2"; then
  echo "all three nodes hold identical data (same GTID, hash and key count)"
else
  echo "MISMATCH between nodes" >&2
  exit 1
fi

echo
echo "== failover: the primary dies (SIGKILL); replica1 becomes the primary, replica2 follows it"
primary_pid=$(cat "$ROOT/primary.pid")
{ kill -KILL "$primary_pid" && wait "$primary_pid"; } 2>/dev/null || true
echo "(relaykvd primary, pid $primary_pid, killed with SIGKILL)"
rm -f "$ROOT/primary.pid"
show "${RELAYKV[@]}" -H "$REPLICA1" -e "STOP SLAVE; RESET SLAVE ALL; SET GLOBAL rpl_semi_sync_master_enabled = 1"
show "${RELAYKV[@]}" -H "$REPLICA2" -e "STOP SLAVE; CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=${REPLICA1##*:}; START SLAVE"
for _ in $(seq 1 100); do
  clients=$("${RELAYKV[@]}" -H "$REPLICA1" -N -e "show status like 'Rpl_semi_sync_master_clients'" | cut -f2)
  [ "$clients" = 1 ] && break
  sleep 0.1
done
echo "(a write on the new primary: its GTID starts a new epoch, and it waits for replica2's ACK)"
show "${RELAYKV[@]}" -H "$REPLICA1" put after failover
show "${RELAYKV[@]}" -H "$REPLICA1" get user:1000
show "${RELAYKV[@]}" -H "$REPLICA1" -t -e "show status like 'rpl_semi_sync_master_yes_tx'"
want=$("${RELAYKV[@]}" -H "$REPLICA1" -N -e "show master status" | cut -f3)
for _ in $(seq 1 100); do
  got=$("${RELAYKV[@]}" -H "$REPLICA2" -N -e "checksum" | cut -f1)
  [ "$got" = "$want" ] && break
  sleep 0.1
done
new_primary=$("${RELAYKV[@]}" -H "$REPLICA1" -N -e "checksum")
follower=$("${RELAYKV[@]}" -H "$REPLICA2" -N -e "checksum")
printf '%-18s %s\n%-18s %s\n' "$REPLICA1" "$new_primary" "$REPLICA2" "$follower"
if [ "$new_primary" = "$follower" ]; then
  echo "the new primary and its replica hold identical data"
else
  echo "MISMATCH after failover" >&2
  exit 1
fi

if [ "$tls" = 1 ]; then
  echo
  echo "== audit lines (every admin statement, with identity and address) in the new primary's log"
  grep 'audit:' "$ROOT/replica1.log" | tail -n 5
fi

echo
echo "== stopping cleanly (SIGTERM)"
trap - EXIT
stop_node "$ROOT/replica2"
stop_node "$ROOT/replica1"
stop_node "$ROOT/primary"

if [ "$tls" = 0 ]; then
  RELAYKV_BIN_DIR=$BIN bash scripts/demo_auto_failover.sh || [ $? = 77 ]
fi
