#!/usr/bin/env bash
# consul-template's command for consul/haproxy.cfg.ctmpl: validate a fresh render, install it, reload HAProxy.
#
#   haproxy-reload.sh <rendered> <live>
#
#   <rendered>  what consul-template just wrote (a staging file HAProxy never reads)
#   <live>      the config the running HAProxy was started with (`haproxy -W -f <live> -p <pidfile>`)
#
#   PGBEACON_HAPROXY_BIN      haproxy binary (default /usr/sbin/haproxy)
#   PGBEACON_HAPROXY_PIDFILE  pidfile of the master (default /run/haproxy.pid, as Debian's haproxy.service
#                             writes it; in master-worker mode -p holds the master's PID)
#
# 1. `haproxy -c -f <rendered>`. Invalid: <live> is left alone, HAProxy is not signalled and keeps serving its
#    current config; the render is kept as <live>.rejected and haproxy's reasons go to stderr (consul-template's
#    log). Exit 0, so consul-template keeps watching Consul and the next render (new data, or a fixed template
#    after `kill -HUP` of consul-template) gets its chance. Monitor for <live>.rejected.
# 2. Valid: copied next to <live> and renamed over it (atomic: a reload never reads half a file).
#    The rendered file stays in place: consul-template compares its next render with it.
# 3. SIGUSR2 to the master: it re-executes itself on <live>, starts new workers that take over the listening
#    sockets from the old ones (HAProxy 2.6 master-worker passes them over its socketpair), and the old
#    workers stop accepting and finish their sessions (global hard-stop-after): no listener is ever closed.
#    No master running (HAProxy not started yet, or stopped; or the pidfile is stale and its PID now another
#    program's, which is never signalled): the config is installed for its next start.
set -euo pipefail

log() { printf '[haproxy-reload] %s\n' "$*" >&2; }

if [ $# -ne 2 ]; then
  log "usage: haproxy-reload.sh <rendered> <live>"
  exit 2
fi
rendered=$1
live=$2
haproxy="${PGBEACON_HAPROXY_BIN:-/usr/sbin/haproxy}"
pidfile="${PGBEACON_HAPROXY_PIDFILE:-/run/haproxy.pid}"

if ! errors=$("$haproxy" -c -f "$rendered" 2>&1); then
  cp -f "$rendered" "$live.rejected"
  log "REJECTED: $rendered is not a valid HAProxy config; HAProxy keeps running on $live (render kept as $live.rejected):"
  printf '%s\n' "$errors" | { grep -v '^\[NOTICE\]' || true; } | sed 's/^/[haproxy-reload]   /' >&2
  exit 0
fi

tmp=$(mktemp "$live.XXXXXX")
trap 'rm -f "$tmp"' EXIT
cp -f "$rendered" "$tmp"
chmod --reference="$rendered" "$tmp"
mv -f "$tmp" "$live"
rm -f "$live.rejected"

# A pidfile outlives a killed HAProxy and its PID can be reused: signal it only while that PID runs haproxy
# (USR2 would terminate most other programs). /proc/PID/cmdline is readable without privileges.
runs_haproxy() {
  local argv0
  argv0=$(tr '\0' '\n' < "/proc/$1/cmdline" 2>/dev/null | head -1) || return 1
  [ -n "$argv0" ] && [ "$(basename -- "$argv0")" = "$(basename -- "$haproxy")" ]
}

pid=$(cat "$pidfile" 2>/dev/null || true)
if [[ "$pid" =~ ^[0-9]+$ ]] && runs_haproxy "$pid"; then
  kill -USR2 "$pid"
  log "installed $live, reloading HAProxy (master $pid)"
elif [ -n "$pid" ]; then
  log "installed $live; pidfile $pidfile names PID $pid, which is not HAProxy (stale): not signalled"
else
  log "installed $live; no HAProxy master running (pidfile $pidfile): it takes this config when it starts"
fi
