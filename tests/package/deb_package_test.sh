#!/usr/bin/env bash
# Builds the .deb packages from BUILD_DIR with cpack, unpacks relaykv into a
# temporary root (dpkg-deb -x: no scripts run, nothing touches this machine)
# and checks what a DBA gets: the binaries run, the systemd unit starts
# relaykvd as user relaykv with /etc/relaykv/relaykvd.cnf, that file is a
# conffile and relaykvd starts with it.
set -euo pipefail
build_dir=$1
work=$(mktemp -d "${TMPDIR:-/tmp}/relaykv-deb-XXXXXX")
pid=
cleanup() {
  if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "deb_package_test: $*" >&2; exit 1; }

cpack --config "$build_dir/CPackConfig.cmake" -B "$work/out" >"$work/cpack.log" 2>&1 ||
  { cat "$work/cpack.log" >&2; fail "cpack failed"; }
deb=$(ls "$work"/out/relaykv_*.deb 2>/dev/null | head -1)
dev=$(ls "$work"/out/relaykv-dev_*.deb 2>/dev/null | head -1)
[ -n "$deb" ] || fail "no relaykv_*.deb in $(ls "$work/out")"
[ -n "$dev" ] || fail "no relaykv-dev_*.deb"

# Control data: Depends from the binaries' libraries, plus adduser.
info=$(dpkg-deb -f "$deb" Package Depends)
grep -q '^Package: relaykv$' <<<"$info" || fail "package name: $info"
grep -q 'adduser' <<<"$info" || fail "Depends lacks adduser: $info"
grep -q 'libgrpc++' <<<"$info" || fail "Depends lacks libgrpc++ (shlibdeps): $info"
dpkg-deb -e "$deb" "$work/control"
grep -qx '/etc/relaykv/relaykvd.cnf' "$work/control/conffiles" || fail "cnf is not a conffile"
for s in postinst prerm postrm; do
  [ -x "$work/control/$s" ] || fail "$s missing or not executable"
  sh -n "$work/control/$s" || fail "$s: syntax error"
done
grep -q 'adduser --system' "$work/control/postinst" || fail "postinst creates no user"

# Files.
root=$work/root
dpkg-deb -x "$deb" "$root"
for f in usr/bin/relaykvd usr/bin/relaykv usr/lib/systemd/system/relaykvd.service \
         etc/relaykv/relaykvd.cnf; do
  [ -e "$root/$f" ] || fail "/$f not in the package"
done
# (Listings into variables: grep -q would cut dpkg-deb's pipe under pipefail.)
deb_files=$(dpkg-deb -c "$deb")
dev_files=$(dpkg-deb -c "$dev")
if grep -q 'include/relaykv' <<<"$deb_files"; then fail "headers belong in relaykv-dev"; fi
grep -q 'usr/include/relaykv/node.h' <<<"$dev_files" || fail "relaykv-dev lacks node.h"
grep -q 'relaykvConfig.cmake' <<<"$dev_files" || fail "relaykv-dev lacks the CMake package"
unit=$root/usr/lib/systemd/system/relaykvd.service
grep -qx 'User=relaykv' "$unit" || fail "unit does not run as relaykv"
grep -qx 'ExecStart=/usr/bin/relaykvd --defaults-file=/etc/relaykv/relaykvd.cnf' "$unit" ||
  fail "unit ExecStart: $(grep ExecStart "$unit")"
grep -q '^datadir *= */var/lib/relaykv' "$root/etc/relaykv/relaykvd.cnf" || fail "cnf datadir"
version=$("$root/usr/bin/relaykvd" --version)
grep -q relaykvd <<<"$version" || fail "relaykvd --version: $version"
"$root/usr/bin/relaykv" --help >/dev/null || fail "relaykv --help"

# The shipped config file is valid: relaykvd starts with it (the data dir,
# port and log moved to the temporary folder) and answers.
"$root/usr/bin/relaykvd" --defaults-file="$root/etc/relaykv/relaykvd.cnf" \
  --datadir="$work/data" --port=0 --log-error="$work/relaykvd.log" &
pid=$!
for _ in $(seq 1 300); do
  [ -s "$work/data/relaykvd.addr" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/relaykvd.log" >&2; fail "relaykvd exited"; }
  sleep 0.1
done
addr=$(cat "$work/data/relaykvd.addr")
answer=$("$root/usr/bin/relaykv" -H "$addr" -e "SHOW VARIABLES LIKE 'rpl_semi_sync_master_enabled'")
grep -q rpl_semi_sync_master_enabled <<<"$answer" || fail "relaykv could not talk to relaykvd: $answer"
kill -TERM "$pid"
wait "$pid" || fail "relaykvd did not stop cleanly"
pid=
echo "deb_package_test: $(basename "$deb") and $(basename "$dev") OK"
