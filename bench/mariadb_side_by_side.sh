#!/usr/bin/env bash
# Side by side on this machine, in one run: MariaDB's AFTER_SYNC semi-sync
# (a primary and one replica, two private mariadbd on 127.0.0.1) and
# relaykv's (relaykv-bench, a primary and one replica), under the same
# closed-loop load: autocommit writes of 100-byte values to random keys of a
# 100000-key space, 1 and 64 clients. MariaDB's replica runs once with
# sync_relay_log=0 (its default: the ACK does not wait for an fsync of the
# relay log) and once with sync_relay_log=1 (as relaykv's replica, which
# syncs its relay log before it ACKs); the two settings alternate try by try.
# Prints one table and the ratios relaykv / MariaDB at the highest client
# count. Not part of CI (it installs MariaDB).
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: bench/mariadb_side_by_side.sh [options]

Measures MariaDB semi-sync (AFTER_SYNC, replica sync_relay_log=0 and =1) and
relaykv (async and AFTER_SYNC; unary, stream and async client writes) side by side in one run and
prints commits/s and p50 latency per client count, with the ratios
relaykv / MariaDB at the highest client count.

Installs mariadb-server, mariadb-client and sysbench with apt-get if they are
missing (needs root); the Debian mariadb service is not left running. Both
mariadbd instances are private (own datadirs in a temp dir, unix sockets,
ports on 127.0.0.1 only) and are shut down however the script ends.

Options:
  --relaykv-bench PATH  relaykv-bench binary (default: $RELAYKV_BIN, else
                        build/bin/relaykv-bench of this repository)
  --clients LIST        comma list of client counts (default: 1,64)
  --duration S          measured seconds per try (default: 4)
  --warmup S            unmeasured seconds before each try (default: 1)
  --repeat N            tries per point; the median (by commits/s) is shown (default: 3)
  --keyspace N          distinct keys (default: 100000, as relaykv-bench)
  --value-size N        bytes per value (default: 100, as relaykv-bench)
  --only WHICH          mariadb | relaykv | both (default: both)
  --hold-lock FILE      hold flock(FILE) while measuring (not while installing),
                        e.g. /tmp/relaykv-build.lock so no build runs meanwhile
  --no-install          fail instead of installing missing packages
  --keep-logs DIR       copy the mariadbd error logs and raw outputs to DIR
  -h, --help            this text
EOF
}

repo=$(cd "$(dirname "$0")/.." && pwd)
relaykv_bench=${RELAYKV_BIN:-$repo/build/bin/relaykv-bench}
clients=1,64
duration=4
warmup=1
repeat=3
keyspace=100000
value_size=100
only=both
hold_lock=
install=1
keep_logs=

while [ $# -gt 0 ]; do
  case $1 in
    --relaykv-bench) relaykv_bench=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --keyspace) keyspace=$2; shift 2 ;;
    --value-size) value_size=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --hold-lock) hold_lock=$2; shift 2 ;;
    --no-install) install=0; shift ;;
    --keep-logs) keep_logs=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done
for n in "$duration" "$warmup" "$repeat" "$keyspace" "$value_size"; do
  [[ $n =~ ^[0-9]+$ ]] || { echo "not a whole number: $n" >&2; exit 2; }
done
[[ $clients =~ ^[0-9]+(,[0-9]+)*$ ]] || { echo "--clients: a comma list of numbers" >&2; exit 2; }
case $only in mariadb|relaykv|both) ;; *) echo "--only: mariadb, relaykv or both" >&2; exit 2 ;; esac
[ "$repeat" -ge 1 ] && [ "$duration" -ge 1 ] || { echo "--repeat and --duration must be >= 1" >&2; exit 2; }
IFS=, read -r -a client_counts <<<"$clients"
want_mariadb=0; want_relaykv=0
[ "$only" != relaykv ] && want_mariadb=1
[ "$only" != mariadb ] && want_relaykv=1

log() { echo "[$(date +%T)] $*" >&2; }
die() { log "error: $*"; exit 1; }

if [ "$want_relaykv" = 1 ] && [ ! -x "$relaykv_bench" ]; then
  die "no relaykv-bench at $relaykv_bench (bash scripts/build.sh relaykvd relaykv-bench, or --relaykv-bench)"
fi

# --- packages ---------------------------------------------------------------

# The Debian package may start its own server (not where policy-rc.d forbids
# it, as in containers). One that was not running before the install is
# stopped: only this script's private instances may run.
debian_pid() {
  local f=/run/mysqld/mysqld.pid
  [ -s $f ] && kill -0 "$(cat $f)" 2>/dev/null && cat $f
  return 0
}

install_packages() {
  local missing=()
  command -v mariadbd >/dev/null || missing+=(mariadb-server)
  command -v mariadb >/dev/null || missing+=(mariadb-client)
  command -v sysbench >/dev/null || missing+=(sysbench)
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$install" = 1 ] || die "missing packages: ${missing[*]} (run without --no-install, as root)"
  [ "$(id -u)" = 0 ] || die "missing packages: ${missing[*]}; installing them needs root"
  local running_before
  running_before=$(debian_pid)
  log "installing ${missing[*]} (apt-get) ..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${missing[@]}" >/dev/null
  local pid
  pid=$(debian_pid)
  if [ -z "$running_before" ] && [ -n "$pid" ]; then
    log "the package started the Debian mariadb service (pid $pid): stopping it"
    service mariadb stop >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && die "the Debian mariadb service (pid $pid) did not stop"
  fi
  # A server this script installed is not started at boot either, where
  # there is a service manager (one installed before is left as it was).
  if [[ " ${missing[*]} " == *" mariadb-server "* ]] && command -v systemctl >/dev/null; then
    systemctl disable mariadb >/dev/null 2>&1 || true
  fi
  return 0
}
if [ "$want_mariadb" = 1 ]; then install_packages; fi

# --- temp dir, cleanup ------------------------------------------------------

tmp=$(mktemp -d /tmp/mariadb-sbs.XXXXXX)  # short: unix socket paths are limited to 107 bytes
declare -A mysqld_pid=()
child=
try_result=

stop_instance() {
  local name=$1 pid=${mysqld_pid[$1]:-}
  [ -n "$pid" ] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    timeout 30 mariadb-admin --no-defaults --socket="$tmp/$name/sock" -uroot shutdown >/dev/null 2>&1 || true
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -TERM "$pid" 2>/dev/null && sleep 2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  unset "mysqld_pid[$name]"
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null || true; wait "$child" 2>/dev/null || true; fi
  for name in replica primary; do stop_instance "$name"; done
  # relaykv-bench's relaykvd get SIGTERM when it dies and may still write
  # into the temp dir for a moment: wait for them (bounded) before removing it.
  for _ in $(seq 40); do pgrep -f -- "$tmp/" >/dev/null || break; sleep 0.5; done
  if [ -n "$keep_logs" ]; then
    mkdir -p "$keep_logs"
    for f in "$tmp"/*/error.log; do [ -f "$f" ] && cp "$f" "$keep_logs/$(basename "$(dirname "$f")").error.log"; done
    cp "$tmp"/*.txt "$tmp"/*.json "$tmp"/*.tsv "$keep_logs/" 2>/dev/null || true
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Runs a command in the background and waits for it, so that a signal to the
# script runs the trap at once (and the trap stops the command).
run() {
  "$@" &
  child=$!
  local rc=0
  wait "$child" || rc=$?
  child=
  return $rc
}

if [ -n "$hold_lock" ]; then
  exec 8>"$hold_lock"
  log "waiting for the lock $hold_lock ..."
  flock 8
  log "holding $hold_lock while measuring"
fi

# --- MariaDB ----------------------------------------------------------------

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

sql() {  # sql INSTANCE STATEMENTS: tab-separated rows, no header
  mariadb --no-defaults --socket="$tmp/$1/sock" -uroot -N -B -e "$2"
}

status_var() {  # status_var INSTANCE NAME
  sql "$1" "SHOW GLOBAL STATUS LIKE '$2'" | cut -f2
}

start_instance() {  # start_instance NAME PORT MARIADBD-FLAGS...
  local name=$1 port=$2; shift 2
  local dir=$tmp/$name
  mkdir -p "$dir/data" "$dir/tmp"
  local user=()
  [ "$(id -u)" = 0 ] && user=(--user=root)
  mariadb-install-db --no-defaults --datadir="$dir/data" "${user[@]}" --skip-test-db \
    --auth-root-authentication-method=socket >"$dir/install.log" 2>&1 ||
    { cat "$dir/install.log" >&2; die "mariadb-install-db failed for $name"; }
  # fd 8 (the held lock) is not passed on: the lock ends with this script.
  mariadbd --no-defaults --datadir="$dir/data" "${user[@]}" --socket="$dir/sock" \
    --port="$port" --bind-address=127.0.0.1 --pid-file="$dir/pid" --log-error="$dir/error.log" \
    --tmpdir="$dir/tmp" --skip-name-resolve --performance_schema=OFF \
    --innodb_buffer_pool_size=256M --max_connections=300 "$@" 8>&- 2>"$dir/stderr.log" &
  mysqld_pid[$name]=$!
  for _ in $(seq 120); do
    mariadb-admin --no-defaults --socket="$dir/sock" -uroot ping >/dev/null 2>&1 && return 0
    kill -0 "${mysqld_pid[$name]}" 2>/dev/null || { tail -20 "$dir/error.log" >&2; die "mariadbd $name exited"; }
    sleep 0.5
  done
  tail -20 "$dir/error.log" >&2
  die "mariadbd $name did not answer within 60 s"
}

# Waits until the primary counts one semi-sync replica and semi-sync is ON.
wait_semisync() {
  for _ in $(seq 120); do
    if [ "$(status_var primary Rpl_semi_sync_master_clients)" = 1 ] &&
       [ "$(status_var primary Rpl_semi_sync_master_status)" = ON ]; then
      return 0
    fi
    sleep 0.25
  done
  sql replica "SHOW SLAVE STATUS\G" >&2 || true
  die "the replica did not connect as a semi-sync replica (Rpl_semi_sync_master_clients=$(status_var primary Rpl_semi_sync_master_clients), status=$(status_var primary Rpl_semi_sync_master_status))"
}

# Waits (at most 120 s) until the replica has applied all the primary has,
# so that one try's backlog is not applied during the next.
wait_caught_up() {
  local want
  want=$(sql primary "SELECT @@gtid_binlog_pos")
  for _ in $(seq 480); do
    [ "$(sql replica "SELECT @@gtid_slave_pos")" = "$want" ] && return 0
    sleep 0.25
  done
  log "warning: the replica has not applied up to $want after 120 s; measuring anyway"
}

# Restarts the replica's threads with sync_relay_log=$1 (a dynamic variable
# the I/O thread reads when it starts).
set_sync_relay_log() {
  sql replica "STOP SLAVE; SET GLOBAL sync_relay_log=$1; START SLAVE"
  wait_semisync
}

write_lua() {
  cat >"$tmp/kv_replace.lua" <<'EOF'
-- Closed-loop autocommit writes: REPLACE of a random key of the keyspace
-- ("key<N>", as relaykv-bench writes) with a value of value_size bytes.
-- Each value differs (a per-thread counter at its head): a REPLACE that
-- leaves a row as it was writes no binlog event, so commits without any
-- semi-sync wait would inflate the figures as the table fills.
sysbench.cmdline.options = {
  keyspace = {"distinct keys", 100000},
  value_size = {"bytes per value", 100},
}

function thread_init()
  drv = sysbench.sql.driver()
  con = drv:connect()
  stmt = con:prepare("REPLACE INTO kv(k, v) VALUES (?, ?)")
  param_k = stmt:bind_create(sysbench.sql.type.VARCHAR, 32)
  param_v = stmt:bind_create(sysbench.sql.type.VARCHAR, sysbench.opt.value_size)
  stmt:bind_param(param_k, param_v)
  pad = string.rep("v", sysbench.opt.value_size)
  serial = 0
end

function event()
  serial = serial + 1
  param_k:set("key" .. sysbench.rand.uniform(0, sysbench.opt.keyspace - 1))
  param_v:set(string.sub(string.format("%d-%d-", sysbench.tid, serial) .. pad, 1, sysbench.opt.value_size))
  stmt:execute()
end

function thread_done()
  stmt:close()
  con:disconnect()
end
EOF
}

# One try: sets try_result to "commits_per_s p50_us no_tx yes_tx". The
# warm-up is a sysbench checkpoint report (counters reset), so the last
# report covers the measured window only. Runs in this shell, not in a
# $(...): a signal must reach run's wait at once (a trap waits for a
# command substitution to end).
sysbench_try() {  # sysbench_try CLIENTS OUT
  local threads=$1 out=$2 no_tx0 yes_tx0
  no_tx0=$(status_var primary Rpl_semi_sync_master_no_tx)
  yes_tx0=$(status_var primary Rpl_semi_sync_master_yes_tx)
  local args=(--db-driver=mysql --mysql-socket="$tmp/primary/sock" --mysql-user=bench
              --mysql-password=bench --mysql-db=bench --threads="$threads"
              --time=$((warmup + duration)) --percentile=50 --rand-type=uniform
              --keyspace="$keyspace" --value_size="$value_size")
  [ "$warmup" -gt 0 ] && args+=(--report-checkpoints="$warmup")
  run timeout $((warmup + duration + 60)) sysbench "$tmp/kv_replace.lua" "${args[@]}" run 8>&- >"$out" 2>&1 ||
    { cat "$out" >&2; die "sysbench failed"; }
  local tps p50_ms
  tps=$(grep -E '^ +transactions:' "$out" | tail -1 | sed -E 's/.*\(([0-9.]+) per sec.*/\1/')
  p50_ms=$(grep -E '^ +50th percentile:' "$out" | tail -1 | awk '{print $3}')
  [ -n "$tps" ] && [ -n "$p50_ms" ] || { cat "$out" >&2; die "cannot read sysbench's output"; }
  if [ "$(status_var primary Rpl_semi_sync_master_status)" != ON ]; then
    log "warning: Rpl_semi_sync_master_status is OFF after a try"
  fi
  try_result="$tps $(awk -v m="$p50_ms" 'BEGIN{printf "%.0f", m * 1000}') \
$(( $(status_var primary Rpl_semi_sync_master_no_tx) - no_tx0 )) \
$(( $(status_var primary Rpl_semi_sync_master_yes_tx) - yes_tx0 ))"
}

measure_mariadb() {
  local pport rport
  pport=$(free_port)
  rport=$(free_port)
  [ "$pport" != "$rport" ] || rport=$(free_port)
  log "starting the MariaDB primary (127.0.0.1:$pport) and replica (127.0.0.1:$rport) in $tmp"
  # Semi-sync is switched on after the set-up below: with no replica yet,
  # each set-up statement would wait rpl_semi_sync_master_timeout for an ACK.
  start_instance primary "$pport" --server_id=1 --log_bin=primary-bin --binlog_format=ROW \
    --sync_binlog=1 --innodb_flush_log_at_trx_commit=1 --gtid_strict_mode=ON \
    --rpl_semi_sync_master_enabled=OFF --rpl_semi_sync_master_wait_point=AFTER_SYNC \
    --rpl_semi_sync_master_timeout=600000
  start_instance replica "$rport" --server_id=2 --skip-log-bin --relay_log=replica-relay \
    --innodb_flush_log_at_trx_commit=1 --gtid_strict_mode=ON --skip-slave-start \
    --rpl_semi_sync_slave_enabled=ON --sync_relay_log=0
  sql primary "CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY 'repl';
    GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1';
    CREATE USER 'bench'@'localhost' IDENTIFIED BY 'bench';
    CREATE DATABASE bench; GRANT ALL ON bench.* TO 'bench'@'localhost';
    CREATE TABLE bench.kv (k VARCHAR(32) NOT NULL PRIMARY KEY, v VARCHAR(${value_size}) NOT NULL) ENGINE=InnoDB;
    SET GLOBAL rpl_semi_sync_master_enabled=ON"
  sql replica "SET GLOBAL gtid_slave_pos='';
    CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=$pport, MASTER_USER='repl',
      MASTER_PASSWORD='repl', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1;
    START SLAVE"
  wait_semisync
  wait_caught_up
  log "semi-sync is ON with 1 replica (primary: $(sql primary "SELECT @@rpl_semi_sync_master_wait_point, @@sync_binlog, @@innodb_flush_log_at_trx_commit, @@binlog_format" | tr '\t' ' '))"
  write_lua
  # Tries of the two replica settings alternate, so that both see the same
  # drift of a shared machine.
  local c i srl
  for c in "${client_counts[@]}"; do
    for i in $(seq "$repeat"); do
      for srl in 0 1; do
        set_sync_relay_log "$srl"
        wait_caught_up
        sysbench_try "$c" "$tmp/sysbench-$c-$srl-$i.txt"
        log "  MariaDB sync_relay_log=$srl, $c clients, try $i: commits/s p50_us no_tx yes_tx = $try_result"
        echo "mariadb srl$srl $c $try_result" >>"$tmp/mariadb.tsv"
      done
    done
  done
  log "replica: $(mariadb --no-defaults --socket="$tmp/replica/sock" -uroot -e "SHOW SLAVE STATUS\G" |
    grep -E 'Slave_(IO|SQL)_Running:|Last_(IO_)?Error:' | tr -s ' ' | tr '\n' ' ')"
  log "primary: Rpl_semi_sync_master_status=$(status_var primary Rpl_semi_sync_master_status), no_tx=$(status_var primary Rpl_semi_sync_master_no_tx), yes_tx=$(status_var primary Rpl_semi_sync_master_yes_tx)"
  stop_instance replica
  stop_instance primary
}

measure_relaykv() {
  log "relaykv-bench (a primary and 1 replica) ..."
  run timeout 1200 "$relaykv_bench" --replicas 1 --modes async,after_sync --clients "$clients" \
    --duration "$duration" --warmup "$warmup" --repeat "$repeat" --stream --async --no-reads \
    --keyspace "$keyspace" --value-size "$value_size" --work-dir "$tmp/relaykv" \
    --json "$tmp/relaykv.json" 8>&- >"$tmp/relaykv.txt" ||
    { cat "$tmp/relaykv.txt" >&2; die "relaykv-bench failed"; }
}

log "pid $$; machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
log "load: ${value_size}-byte values, random keys of $keyspace, clients $clients, ${warmup} s warm-up + ${duration} s, median of $repeat"
if [ "$want_mariadb" = 1 ]; then measure_mariadb; fi
if [ "$want_relaykv" = 1 ]; then measure_relaykv; fi
if [ -n "$hold_lock" ]; then flock -u 8; exec 8>&-; fi

# --- the table --------------------------------------------------------------

touch "$tmp/mariadb.tsv"
[ -f "$tmp/relaykv.json" ] || echo '{"runs": []}' >"$tmp/relaykv.json"
python3 - "$tmp/mariadb.tsv" "$tmp/relaykv.json" "$clients" "$repeat" <<'EOF'
import json, sys

mariadb_tsv, relaykv_json, clients_arg, repeat = sys.argv[1:]
counts = [int(c) for c in clients_arg.split(",")]
rows = {}  # (label, clients) -> (commits/s, p50 us, no_tx, tries)

def median_run(tries):  # the try with the median commits/s, as relaykv-bench
    tries = sorted(tries, key=lambda t: t[0])
    return tries[len(tries) // 2]

tries = {}
for line in open(mariadb_tsv):
    _, srl, c, tps, p50, no_tx, _yes = line.split()
    tries.setdefault((srl, int(c)), []).append((float(tps), float(p50), int(no_tx)))
for (srl, c), ts in tries.items():
    label = "MariaDB AFTER_SYNC, replica sync_relay_log=" + srl[-1]
    tps, p50, _ = median_run(ts)
    rows[(label, c)] = (tps, p50, sum(t[2] for t in ts), "/".join(f"{t[0]:.0f}" for t in ts))

with open(relaykv_json) as f:
    for r in json.load(f)["runs"]:
        label = f"relaykv {r['mode'].upper() if r['mode'] == 'after_sync' else r['mode']}, {r['transport']}"
        # relaykv-bench's median is by commits/s, except at one client (by
        # p50 over the machine's floor); list only the commits/s ones.
        each = "" if r["p50_to_floor"] > 0 else "/".join(f"{v:.0f}" for v in r.get("median_of", []))
        rows[(label, int(r["clients"]))] = (r["ops_per_s"], r["p50_us"], r["no_tx"], each)

labels = []
for (label, _c) in rows:
    if label not in labels:
        labels.append(label)
order = lambda l: (0 if l.startswith("MariaDB") else 1 if "AFTER_SYNC" in l else 2, l)
labels.sort(key=order)

head = ["system, durability, transport"]
for c in counts:
    head += [f"{c} cl commits/s", f"p50 µs @{c}"]
head += ["no_tx"]
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for label in labels:
    cells = [label]
    no_tx = 0
    for c in counts:
        v = rows.get((label, c))
        cells += [f"{v[0]:.0f}", f"{v[1]:.0f}"] if v else ["–", "–"]
        no_tx += v[2] if v else 0
    cells.append(str(no_tx))
    print("| " + " | ".join(cells) + " |")

top = counts[-1]
ratios = []
for rk in ("relaykv AFTER_SYNC, async", "relaykv AFTER_SYNC, stream", "relaykv AFTER_SYNC, unary"):
    for srl in ("0", "1"):
        md = f"MariaDB AFTER_SYNC, replica sync_relay_log={srl}"
        a, b = rows.get((rk, top)), rows.get((md, top))
        if a and b and b[0] > 0:
            ratios.append(f"  {rk} / MariaDB (sync_relay_log={srl}): {a[0] / b[0]:.2f}x")
print()
if ratios:
    print(f"Ratios at {top} clients (commits/s), median of {repeat} tries each:")
    print("\n".join(ratios))
tries_text = [f"  {l} @{c}: {rows[(l, c)][3]}" for l in labels for c in counts
              if (l, c) in rows and rows[(l, c)][3]]
if tries_text:
    print("commits/s of every try:")
    print("\n".join(tries_text))
EOF
