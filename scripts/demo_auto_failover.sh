#!/usr/bin/env bash
# Automatic failover through etcd (README "Automatic failover"), the second
# part of the main job (scripts/demo.sh runs it; it can run alone after a
# build). One etcd and three relaykvd nodes with --etcd/--cluster on
# 127.0.0.1, data under var/demo-failover/. A client that knows only etcd
# writes; the primary is killed (SIGKILL) while a write that no replica
# ACKed is in its binlog; a replica takes over by itself; the old primary is
# started again and rejoins as a replica, truncating that tail into a
# quarantine file; checksums match on all three. Stops everything cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${RELAYKV_BIN_DIR:-$PWD/build/bin}
ROOT=${RELAYKV_DEMO_ROOT:-$PWD/var/demo-failover}
if ! command -v etcd >/dev/null; then
  echo "etcd is not installed (scripts/setup.sh installs etcd-server): skipping the automatic failover demo" >&2
  exit 77
fi
# shellcheck source=scripts/cluster_lib.sh
source scripts/cluster_lib.sh
stop_leftovers "$ROOT"
[ -f "$ROOT/etcd.pid" ] && { kill -TERM "$(cat "$ROOT/etcd.pid")" 2>/dev/null || true; sleep 0.5; }
rm -rf "$ROOT"
mkdir -p "$ROOT"

# A loopback port nothing listens on (etcd needs its ports up front).
free_port() {
  local p
  for p in $(shuf -i 20000-45000 -n 100); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  return 1
}
ETCD_PORT=$(free_port)
ETCD_PEER_PORT=$(free_port)
ETCD=127.0.0.1:$ETCD_PORT
etcd --name demo --data-dir "$ROOT/etcd" \
  --listen-client-urls "http://$ETCD" --advertise-client-urls "http://$ETCD" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "demo=http://127.0.0.1:$ETCD_PEER_PORT" 2>"$ROOT/etcd.log" &
echo $! >"$ROOT/etcd.pid"
cleanup() {
  for d in "$ROOT"/n3 "$ROOT"/n2 "$ROOT"/n1; do stop_node "$d" >/dev/null 2>&1 || true; done
  kill -TERM "$(cat "$ROOT/etcd.pid")" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  ETCDCTL_API=3 etcdctl --endpoints "$ETCD" endpoint health >/dev/null 2>&1 && break
  sleep 0.1
done

CLUSTER=(--etcd "$ETCD" --cluster demo)
# Every node: semi-sync both ways (any of them may become the primary), a
# 3 s lease so the demo is quick (default 10 s), no anti-flap wait.
FLAGS=("${CLUSTER[@]}" --lease-ttl 3 --failover-min-interval 0
       --rpl_semi_sync_master_enabled=ON --rpl_semi_sync_slave_enabled=ON
       --rpl_semi_sync_master_timeout=600000)
RELAYKV=("$BIN/relaykv")
status_of() { "${RELAYKV[@]}" -H "$1" -N -e "show status like '$2'" | cut -f2; }
wait_until() {  # wait_until SECONDS CMD...: retries CMD every 0.1 s
  local n=$(($1 * 10))
  shift
  for _ in $(seq 1 "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}
role_is() { [ "$(status_of "$1" Coordinator_role)" = "$2" ]; }

echo
echo "== automatic failover: etcd on $ETCD, three nodes in cluster 'demo' (logs in var/demo-failover/)"
start_node N1 "$ROOT/n1" --server-id 1 "${FLAGS[@]}"
wait_until 30 role_is "$N1" primary
start_node N2 "$ROOT/n2" --server-id 2 --replicate-from "$N1" "${FLAGS[@]}"
start_node N3 "$ROOT/n3" --server-id 3 --replicate-from "$N1" "${FLAGS[@]}"
clients_two() { [ "$(status_of "$N1" Rpl_semi_sync_master_clients)" = 2 ]; }
wait_until 30 clients_two
echo "nodes: n1 $N1 (started as the primary), n2 $N2, n3 $N3"
show "${RELAYKV[@]}" -H "$N1" -t -e "show status like 'Coordinator%'"
show env ETCDCTL_API=3 etcdctl --endpoints "$ETCD" get --prefix /relaykv/demo/leader

echo
echo "== a client that knows only etcd writes 200 keys (relaykv --etcd ... --cluster demo)"
for i in $(seq 1 200); do echo "PUT 'order:$i' 'paid-$i';"; done | "${RELAYKV[@]}" "${CLUSTER[@]}"
show "${RELAYKV[@]}" "${CLUSTER[@]}" get order:200

echo
echo "== a write no replica ACKs: both replicas' IO threads stopped, so it waits in n1's binlog"
"${RELAYKV[@]}" -H "$N2" -e "STOP SLAVE IO_THREAD"
"${RELAYKV[@]}" -H "$N3" -e "STOP SLAVE IO_THREAD"
before=$(status_of "$N1" Binlog_gtid)
("${RELAYKV[@]}" "${CLUSTER[@]}" --timeout 30 put tail never-acked >"$ROOT/tail.out" 2>&1 || true) &
tail_writer=$!
binlog_moved() { [ "$(status_of "$N1" Binlog_gtid)" != "$before" ]; }
wait_until 10 binlog_moved
echo "(n1's binlog went from $before to $(status_of "$N1" Binlog_gtid); the write waits for an ACK)"

echo
echo "== the primary dies (SIGKILL); a replica takes over by itself"
n1_pid=$(cat "$ROOT/n1.pid")
killed_at=$(date +%s.%N)
{ kill -KILL "$n1_pid" && wait "$n1_pid"; } 2>/dev/null || true
rm -f "$ROOT/n1.pid"
wait "$tail_writer" || true
echo "(the waiting client: $(cat "$ROOT/tail.out"))"
wrote() { "${RELAYKV[@]}" "${CLUSTER[@]}" --timeout 2 put after-failover 1; }
wait_until 60 wrote
done_at=$(date +%s.%N)
echo "first acknowledged write after the kill: $(awk -v a="$killed_at" -v b="$done_at" 'BEGIN { printf "%.1f", b - a }') s (lease TTL 3 s)"
NEW=""
for n in "$N2" "$N3"; do role_is "$n" primary && NEW=$n; done
echo "the new primary is $NEW"
show "${RELAYKV[@]}" -H "$NEW" -t -e "show status like 'Coordinator%'"
show "${RELAYKV[@]}" "${CLUSTER[@]}" get order:200

echo
echo "== the old primary comes back (same flags: it was started as the primary)"
start_node N1 "$ROOT/n1" --server-id 1 "${FLAGS[@]}" --listen "$N1"
wait_until 60 role_is "$N1" replica
echo "(n1's log: how it rejoined)"
grep -E "rejoining by truncating|moved to|following" "$ROOT/n1.log" | sed 's/^[^ ]* //' | tail -n 3
show "${RELAYKV[@]}" -H "$N1" -t -e "show status like 'Coordinator_role'"
show "${RELAYKV[@]}" -H "$N1" get tail || echo "(absent: the tail was never acknowledged, and no node keeps it)"

echo
echo "== checksums on all three nodes"
"${RELAYKV[@]}" "${CLUSTER[@]}" put rejoined yes >/dev/null
want=$("${RELAYKV[@]}" -H "$NEW" -N -e "checksum")
same_sum() { [ "$("${RELAYKV[@]}" -H "$1" -N -e "checksum")" = "$want" ]; }
for n in "$N1" "$N2" "$N3"; do wait_until 30 same_sum "$n" || true; done
if same_data "$N1" "$N2" "$N3"; then
  echo "all three nodes hold identical data; the unacknowledged tail is only in n1's quarantine file"
else
  echo "MISMATCH after automatic failover" >&2
  exit 1
fi

echo
echo "== stopping cleanly (SIGTERM)"
trap - EXIT
stop_node "$ROOT/n3"
stop_node "$ROOT/n2"
stop_node "$ROOT/n1"
kill -TERM "$(cat "$ROOT/etcd.pid")" && wait "$(cat "$ROOT/etcd.pid")" 2>/dev/null || true
echo "etcd stopped"
