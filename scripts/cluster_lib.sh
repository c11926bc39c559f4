# Shell helpers for the scripts that run a local relaykv cluster: start a
# relaykvd on 127.0.0.1 with an OS-chosen port, wait for it, stop it.
# Source it; set BIN (build/bin) first.

# start_node NAME DATA_DIR [relaykvd flags...]: starts it in the background,
# logs to DATA_DIR.log, and sets the variable NAME to its HOST:PORT.
start_node() {
  local name=$1 dir=$2
  shift 2
  rm -f "$dir/relaykvd.addr"
  mkdir -p "$dir"
  "$BIN/relaykvd" --data-dir "$dir" --listen 127.0.0.1:0 "$@" 2>"$dir.log" &
  echo $! >"$dir.pid"
  for _ in $(seq 1 300); do
    if [ -s "$dir/relaykvd.addr" ]; then
      printf -v "$name" '%s' "$(cat "$dir/relaykvd.addr")"
      return 0
    fi
    if ! kill -0 "$(cat "$dir.pid")" 2>/dev/null; then
      echo "relaykvd in $dir failed to start:" >&2
      cat "$dir.log" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "relaykvd in $dir did not start within 30 s" >&2
  return 1
}

# stop_node DATA_DIR: SIGTERM, wait, report the exit status.
stop_node() {
  local dir=$1 pid status
  [ -f "$dir.pid" ] || return 0
  pid=$(cat "$dir.pid")
  rm -f "$dir.pid"
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid"
  status=0
  wait "$pid" || status=$?
  echo "relaykvd $(basename "$dir") stopped, exit status $status"
  return "$status"
}

# stop_leftovers ROOT: stops relaykvds a previous run left under ROOT.
stop_leftovers() {
  local f
  for f in "$1"/*.pid; do
    [ -e "$f" ] || continue
    kill -TERM "$(cat "$f")" 2>/dev/null || true
    rm -f "$f"
  done
  sleep 0.5
}

# show CMD...: prints the command, then runs it.
show() {
  printf '\n$'
  printf ' %q' "${@/#$BIN\//}"
  printf '\n'
  "$@"
}

# same_data NODE...: prints each node's CHECKSUM line (through the caller's
# RELAYKV command array) and succeeds if they are all identical.
same_data() {
  local node line first="" same=0
  for node in "$@"; do
    line=$("${RELAYKV[@]}" -H "$node" -N -e "checksum")
    printf '%-18s %s\n' "$node" "$line"
    if [ -z "$first" ]; then first=$line; elif [ "$line" != "$first" ]; then same=1; fi
  done
  return "$same"
}
