#!/usr/bin/env bash
# scripts/lab.sh — a throwaway Patroni cluster on loopback for pgbeacon's tests and demos, shaped like a real
# one: each node has its own loopback address (127.0.0.11, .12, ...) running a Consul client agent, Patroni with
# PostgreSQL 15, PgBouncer and (optionally) pgbeacon; one Consul server on 127.0.0.10; HAProxy on 127.0.0.1
# in front, routing its write port to the node whose pgbeacon primary-view agent says "up" and its read port to
# the replicas (pgbeacon's replica-view agent).
#
# Usage: scripts/lab.sh COMMAND [ARGS]
#   start                  start whatever is not running; wait for a leader + N-1 streaming replicas
#   stop                   stop everything this lab started, by PID (safe to run twice)
#   status                 processes and the Patroni role of each node (exit 0 all up, 3 something down)
#   switchover [NODE]      POST /switchover from the leader to NODE (default: the synchronous standby if any, which
#                          Patroni requires with synchronous_mode on, else the first replica); wait
#   env                    KEY=VALUE lines (ports, dirs, names) for tests and `source`
#   pgbeacon-start N | pgbeacon-stop N [SIGNAL]     one pgbeacon (needs LAB_PGBEACON)
#   pgbouncer-start N | pgbouncer-stop N [SIGNAL]   one PgBouncer
#   patroni-start N | patroni-stop N [SIGNAL]       one Patroni (and its PostgreSQL)
#   crash N                SIGKILL node N's Patroni and PostgreSQL together (hard failover)
#   wait-healthy [SECONDS] wait for a leader and N-1 streaming replicas (default 90 s)
#   consul-start [N] | consul-stop [N] [SIGNAL]    node N's Consul client agent (no N: the server);
#                                                   a client keeps its data dir, so it returns with its services
#   haproxy-start | haproxy-stop [SIGNAL] | haproxy-reload   HAProxy (master-worker; reload = USR2)
#   prometheus-start | prometheus-stop              Prometheus (started by `start` when LAB_PGBEACON is set)
# SIGNAL defaults to TERM; for TERM/INT/QUIT/KILL the command waits for the process to exit, for any
# other signal (STOP, CONT, HUP, ...) it only sends it.
#
# Settings (environment):
#   LAB_DIR=/tmp/pgbeacon-lab   LAB_PATRONI=3 (Debian /usr/bin/patroni 3.0.2) | 4 (venv, see below)
#   LAB_NODES=3   LAB_BASE_PORT=15400   LAB_SCOPE=pgbeacon-lab   LAB_START_TIMEOUT=80 (seconds)
#   PATRONI4_VENV=/opt/pgbeacon/patroni4 (made by scripts/install-patroni4.sh)
#   LAB_PGBEACON="java -jar target/pgbeacon.jar"  run as: $LAB_PGBEACON run --config nodeN/pgbeacon.yml
#   LAB_PGBEACON=package   the installed Debian package's /usr/bin/pgbeacon (apt install ./target/pgbeacon_*_all.deb),
#                          with its launcher's JVM options, as the caller (not as user pgbeacon: the lab's files are
#                          the caller's)
#   LAB_SUPERUSER_PASSWORD, LAB_REPLICATION_PASSWORD, LAB_PGBEACON_PASSWORD   (lab defaults below)
#   LAB_PGBOUNCER_AUTH=md5 (PgBouncer auth_type for clients: md5 | scram-sha-256 | plain)
#   LAB_NAMESPACE=/service/   Patroni's namespace (e.g. /postgresql-common/, Debian's): its keys are under
#                          <namespace>/<scope>/ in Consul; `env` prints the leader key as LAB_LEADER_KEY
#   LAB_PGBEACON_CONFIG=explicit | patroni-file   how nodeN/pgbeacon.yml names Patroni and Consul: every key
#                          written out (node, patroni.url, consul.address), or only `patroni.config-file:
#                          nodeN/patroni.yml`, pgbeacon taking name, scope, namespace, REST API and Consul agent from
#                          Patroni's own file (the PgBouncer, services, agent and http keys are the lab's either way)
#   LAB_ADDR_BASE=10       node i listens on 127.0.0.(LAB_ADDR_BASE+i), its own Consul server on 127.0.0.LAB_ADDR_BASE
#   Several clusters on one Consul, and a standby cluster (each lab still has its own LAB_DIR, LAB_BASE_PORT, HAProxy):
#   LAB_CONSUL_OF=<LAB_DIR of a running lab>   no Consul of its own: node i's Patroni and pgbeacon register through
#                          node i's client agent of that lab (so the same node names node1.. meet on one agent, as two
#                          clusters' members do on shared hosts), HAProxy resolves through that lab's server. Needs
#                          its own LAB_SCOPE and LAB_ADDR_BASE (e.g. 20: nodes 127.0.0.21, ...), LAB_NODES no more
#                          than that lab's. `stop` leaves that lab's Consul running; stop this lab before that one.
#   LAB_STANDBY_OF=<LAB_DIR of a running lab>  a Patroni standby cluster of that lab's cluster
#                          (bootstrap.dcs.standby_cluster): its leader replicates through that lab's write_httpchk
#                          listener (127.0.0.1:B+50 of that lab: HAProxy on Patroni's /primary, straight to
#                          PostgreSQL), so it follows that cluster's primary across a switchover; that lab's write
#                          port (B+5) leads to PgBouncer, which carries no replication. Its other nodes replicate
#                          from its leader. Needs its own LAB_SCOPE; usually with LAB_CONSUL_OF.
#   e.g. LAB_DIR=/tmp/a LAB_BASE_PORT=19000 lab.sh start
#        LAB_DIR=/tmp/b LAB_BASE_PORT=19100 LAB_ADDR_BASE=20 LAB_SCOPE=lab-b LAB_NODES=2 LAB_CONSUL_OF=/tmp/a lab.sh start
#        LAB_DIR=/tmp/s LAB_BASE_PORT=19200 LAB_ADDR_BASE=30 LAB_SCOPE=lab-s LAB_NODES=1 LAB_CONSUL_OF=/tmp/a \
#          LAB_STANDBY_OF=/tmp/a lab.sh start
# `start` records the layout in $LAB_DIR/lab.conf; every other command (and `start` while anything is
# still running) uses the recorded layout, so `env`/`stop` need no settings repeated.
#
# Addresses and ports, B = LAB_BASE_PORT (default 15400); several labs can run at once on different B:
#   127.0.0.10  Consul server (127.0.0.LAB_ADDR_BASE; with LAB_CONSUL_OF that lab's address and ports):  B+0 HTTP  B+1 DNS  B+2 server RPC  B+3 serf LAN  B+4 serf WAN   (gRPC off)
#   127.0.0.1   HAProxy:        B+5 write (primary)  B+6 read (replicas)  B+7 stats page (/stats)
#               for comparison: B+8 write via pgbeacon's service in Consul DNS, B+9 write via Patroni's own
#               register_service in Consul DNS, B+50 write via Patroni's /primary HTTP check
#               Prometheus (with LAB_PGBEACON): B+60 HTTP, scraping every pgbeacon each second, with the shipped
#               alert rules (src/main/dist/prometheus/pgbeacon-alerts.yml)
#   127.0.0.1i  node i (1..N; 127.0.0.(LAB_ADDR_BASE+i)), ports B+10*i +0 PostgreSQL  +1 Patroni REST  +2 PgBouncer
#               +3 pgbeacon agent (view primary)  +4 pgbeacon agent (view replica)
#               +5 Consul client HTTP  +6 Consul client DNS  +7 Consul client serf LAN  (LAB_CONSUL_OF: that lab's)
#               +8 pgbeacon HTTP (/metrics, /status, /health, /primary, /replica, /sync, /async, /read-only, ...)
#               +9 pgbeacon agent without a view: HAProxy's agent-send (or a test) names one ("sync\n", ...)
#   e.g. node1 = 127.0.0.11: 15410 pg, 15411 rest, 15412 pgbouncer, 15413/15414/15419 agent, 15415 consul, 15418 pgbeacon
#
# Layout of $LAB_DIR: lab.conf, pgbeacon.password (mode 600), post_bootstrap.sh,
#   consul/{consul.hcl,data/,consul.log,consul.pid}   (the server)
#   haproxy/{haproxy.cfg,haproxy.log,haproxy.pid,admin.sock,master.sock}
#   prometheus/{prometheus.yml,pgbeacon-alerts.yml,data/,prometheus.log,prometheus.pid}
#   nodeN/{patroni.yml,data/,patroni.log,patroni.pid,postgresql.log,
#          pgbouncer.ini,pgbouncer.users,pgbouncer.log,pgbouncer.pid,pgbeacon.yml,pgbeacon.log,pgbeacon.pid,
#          consul/{consul.hcl,data/,consul.log,consul.pid}}
# A fresh `start` (nothing running) wipes nodeN/, consul/ and haproxy/: a lab always bootstraps a new cluster.
#
# Runs as root: Patroni/PostgreSQL/PgBouncer run as postgres (they refuse root), HAProxy drops to user haproxy,
# Consul and pgbeacon run as the caller. Everything listens on loopback (127.0.0.0/8) only. Processes are stopped by PID only, after checking their command line.
set -euo pipefail

readonly PG_BIN="${LAB_PG_BIN:-/usr/lib/postgresql/15/bin}"
readonly PG_USER=postgres

LAB_DIR="${LAB_DIR:-/tmp/pgbeacon-lab}"
LAB_PATRONI="${LAB_PATRONI:-3}"
LAB_NODES="${LAB_NODES:-3}"
LAB_BASE_PORT="${LAB_BASE_PORT:-15400}"
LAB_SCOPE="${LAB_SCOPE:-pgbeacon-lab}"
LAB_ADDR_BASE="${LAB_ADDR_BASE:-10}"
LAB_CONSUL_OF="${LAB_CONSUL_OF:-}"
LAB_STANDBY_OF="${LAB_STANDBY_OF:-}"
PATRONI4_VENV="${PATRONI4_VENV:-/opt/pgbeacon/patroni4}"
LAB_START_TIMEOUT="${LAB_START_TIMEOUT:-80}"
LAB_PGBEACON="${LAB_PGBEACON:-}"
LAB_SUPERUSER_PASSWORD="${LAB_SUPERUSER_PASSWORD:-lab-postgres-pw}"
LAB_REPLICATION_PASSWORD="${LAB_REPLICATION_PASSWORD:-lab-replicator-pw}"
LAB_PGBEACON_PASSWORD="${LAB_PGBEACON_PASSWORD:-lab-pgbeacon-pw}"
LAB_PGBOUNCER_AUTH="${LAB_PGBOUNCER_AUTH:-md5}"
LAB_NAMESPACE="${LAB_NAMESPACE:-/service/}"
LAB_PGBEACON_CONFIG="${LAB_PGBEACON_CONFIG:-explicit}"

T0=$SECONDS

# ---------------------------------------------------------------------------------------------- helpers

log() { printf '[lab %3ds] %s\n' "$((SECONDS - T0))" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Ports, derived from LAB_BASE_PORT (see the header).
readonly HAPROXY_ADDR=127.0.0.1
# other_lab_setting DIR KEY DEFAULT — a setting another lab recorded in its lab.conf.
other_lab_setting() {
  local v; v=$(sed -n "s/^$2=//p" "$1/lab.conf" 2>/dev/null | head -1)
  echo "${v:-$3}"
}
# The Consul this lab uses: its own, or LAB_CONSUL_OF's (that lab's ports and addresses).
consul_base()      { if [ -n "$LAB_CONSUL_OF" ]; then other_lab_setting "$LAB_CONSUL_OF" LAB_BASE_PORT 15400; else echo "$LAB_BASE_PORT"; fi; }
consul_addr_base() { if [ -n "$LAB_CONSUL_OF" ]; then other_lab_setting "$LAB_CONSUL_OF" LAB_ADDR_BASE 10; else echo "$LAB_ADDR_BASE"; fi; }
server_addr()        { echo "127.0.0.$(consul_addr_base)"; }
consul_http_port()   { echo $(($(consul_base) + 0)); }
consul_dns_port()    { echo $(($(consul_base) + 1)); }
consul_server_port() { echo $(($(consul_base) + 2)); }
consul_lan_port()    { echo $(($(consul_base) + 3)); }
consul_wan_port()    { echo $(($(consul_base) + 4)); }
haproxy_write_port() { echo $((LAB_BASE_PORT + 5)); }
haproxy_read_port()  { echo $((LAB_BASE_PORT + 6)); }
haproxy_stats_port() { echo $((LAB_BASE_PORT + 7)); }
haproxy_write_dns_port()         { echo $((LAB_BASE_PORT + 8)); }
haproxy_write_patroni_dns_port() { echo $((LAB_BASE_PORT + 9)); }
haproxy_write_httpchk_port()     { echo $((LAB_BASE_PORT + 50)); }
prometheus_port()                { echo $((LAB_BASE_PORT + 60)); }
# The tag Patroni's register_service gives the leader.
patroni_primary_tag() { if [ "$LAB_PATRONI" = 3 ]; then echo master; else echo primary; fi; }
node_addr()          { echo "127.0.0.$((LAB_ADDR_BASE + $1))"; }
pg_port()            { echo $((LAB_BASE_PORT + 10 * $1 + 0)); }
rest_port()          { echo $((LAB_BASE_PORT + 10 * $1 + 1)); }
pgbouncer_port()     { echo $((LAB_BASE_PORT + 10 * $1 + 2)); }
agent_primary_port() { echo $((LAB_BASE_PORT + 10 * $1 + 3)); }
agent_replica_port() { echo $((LAB_BASE_PORT + 10 * $1 + 4)); }
agent_any_port()     { echo $((LAB_BASE_PORT + 10 * $1 + 9)); }
pgbeacon_http_port() { echo $((LAB_BASE_PORT + 10 * $1 + 8)); }
# Node i's Consul client agent: its own, or with LAB_CONSUL_OF node i's agent of that lab.
node_consul_addr()      { echo "127.0.0.$(($(consul_addr_base) + $1))"; }
node_consul_http_port() { echo $(($(consul_base) + 10 * $1 + 5)); }
node_consul_dns_port()  { echo $(($(consul_base) + 10 * $1 + 6)); }
node_consul_lan_port()  { echo $(($(consul_base) + 10 * $1 + 7)); }

node_name() { echo "node$1"; }
node_dir()  { echo "$LAB_DIR/node$1"; }
nodes()     { seq 1 "$LAB_NODES"; }
rest_url()  { echo "http://$(node_addr "$1"):$(rest_port "$1")"; }

patroni_bin() {
  case "$LAB_PATRONI" in
    3) echo /usr/bin/patroni ;;
    4) echo "$PATRONI4_VENV/bin/patroni" ;;
    *) die "LAB_PATRONI must be 3 or 4, not '$LAB_PATRONI'" ;;
  esac
}
patronictl_bin() { echo "$(dirname "$(patroni_bin)")/patronictl"; }

# Fetch a URL from a local REST API; prints the body, fails quietly.
http_get() { curl -sf --max-time 2 "$1" 2>/dev/null; }

# port_open [ADDRESS] PORT (default address 127.0.0.1)
port_open() {
  if [ $# -eq 1 ]; then set -- 127.0.0.1 "$1"; fi
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# wait_for SECONDS DESCRIPTION COMMAND... — poll COMMAND every 0.5 s until it succeeds.
wait_for() {
  local timeout=$1 what=$2 deadline=$((SECONDS + $1)); shift 2
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || { log "timed out after ${timeout}s waiting for $what"; return 1; }
    sleep 0.5
  done
}

require_tools() {
  local t
  for t in curl jq setsid setpriv pgrep "$PG_BIN/postgres" "$PG_BIN/psql" /usr/sbin/pgbouncer /usr/sbin/haproxy consul \
      /usr/bin/prometheus; do
    command -v "$t" >/dev/null 2>&1 || die "missing $t (run scripts/install-deps.sh)"
  done
  [ -x "$(patroni_bin)" ] || die "missing $(patroni_bin) (LAB_PATRONI=4 needs scripts/install-patroni4.sh)"
  if [ "$LAB_PATRONI" = 3 ]; then
    # -I: not from the current directory, where this repository's consul/ would pass for the module.
    /usr/bin/python3 -I -c 'import consul' 2>/dev/null \
      || die "Patroni 3 needs python3-consul: apt-get install -y python3-consul"
  fi
  case "$(id -un)" in
    root|"$PG_USER") ;;
    *) die "run as root (or as $PG_USER): PostgreSQL must run as $PG_USER" ;;
  esac
}

check_lab_dir() {
  case "$LAB_DIR" in
    /*) ;; *) die "LAB_DIR must be absolute: '$LAB_DIR'" ;;
  esac
  [[ "$LAB_DIR" =~ ^/[A-Za-z0-9._/-]+$ ]] || die "LAB_DIR may only contain [A-Za-z0-9._/-]: '$LAB_DIR'"
  [ "$LAB_DIR" != / ] || die "LAB_DIR must not be /"
  case "$LAB_PGBEACON_CONFIG" in
    explicit|patroni-file) ;; *) die "LAB_PGBEACON_CONFIG must be explicit or patroni-file, not '$LAB_PGBEACON_CONFIG'" ;;
  esac
  [[ "$LAB_NAMESPACE" =~ ^/?[A-Za-z0-9._/-]+$ ]] || die "LAB_NAMESPACE may only contain [A-Za-z0-9._/-]: '$LAB_NAMESPACE'"
}

# ------------------------------------------------------------------------------------------- settings

# Patroni's leader key in Consul: <namespace>/<scope>/leader, without the slashes Patroni drops.
leader_key() {
  local ns; ns=$(printf '%s' "$LAB_NAMESPACE" | tr -s /); ns=${ns#/}; ns=${ns%/}
  echo "${ns:+$ns/}$LAB_SCOPE/leader"
}

readonly LAYOUT_KEYS="LAB_PATRONI LAB_NODES LAB_BASE_PORT LAB_SCOPE PATRONI4_VENV LAB_NAMESPACE LAB_PGBEACON_CONFIG LAB_ADDR_BASE LAB_CONSUL_OF LAB_STANDBY_OF"

record_settings() {
  local key
  for key in $LAYOUT_KEYS; do printf '%s=%s\n' "$key" "${!key}"; done > "$LAB_DIR/lab.conf"
  printf '%s\n' "$LAB_PGBEACON" > "$LAB_DIR/lab.pgbeacon"
}

# Use the layout recorded by the last `start`; LAB_PGBEACON from the environment wins if set.
load_recorded_settings() {
  local key val
  [ -f "$LAB_DIR/lab.conf" ] || return 0
  while IFS='=' read -r key val; do
    case " $LAYOUT_KEYS " in *" $key "*) printf -v "$key" '%s' "$val" ;; esac
  done < "$LAB_DIR/lab.conf"
  if [ -z "$LAB_PGBEACON" ] && [ -f "$LAB_DIR/lab.pgbeacon" ]; then
    IFS= read -r LAB_PGBEACON < "$LAB_DIR/lab.pgbeacon" || true
  fi
}

# -------------------------------------------------------------------------------------------- processes

# Each process is (pid file, a string its command line must contain). The string is a path inside
# LAB_DIR, so a recycled PID never matches another program.
patroni_pidfile()      { echo "$(node_dir "$1")/patroni.pid"; }
patroni_marker()       { echo "$(node_dir "$1")/patroni.yml"; }
pgbouncer_pidfile()    { echo "$(node_dir "$1")/pgbouncer.pid"; }
pgbouncer_marker()     { echo "$(node_dir "$1")/pgbouncer.ini"; }
pgbeacon_pidfile()     { echo "$(node_dir "$1")/pgbeacon.pid"; }
pgbeacon_marker()      { echo "$(node_dir "$1")/pgbeacon.yml"; }

# alive PIDFILE MARKER — true if the PID in PIDFILE runs a command line containing MARKER.
alive() {
  local pidfile=$1 marker=$2 pid
  [ -s "$pidfile" ] || return 1
  pid=$(cat "$pidfile" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "$marker"
}

not_alive() { ! alive "$@"; }

pid_of() { cat "$1" 2>/dev/null || true; }

# spawn PIDFILE LOGFILE USER COMMAND... — start COMMAND detached (own session, stdin /dev/null, output
# appended to LOGFILE) as USER; PIDFILE gets COMMAND's own PID (the shell execs it).
spawn() {
  local pidfile=$1 logfile=$2 user=$3; shift 3
  local -a as_user=()
  rm -f "$pidfile"
  if [ "$user" != "$(id -un)" ]; then
    as_user=(setpriv --reuid="$user" --regid="$user" --init-groups
             env -i HOME="$(dirname "$pidfile")" USER="$user" PATH=/usr/bin:/bin LANG=C.UTF-8)
  fi
  # A job started with & from a script begins with SIGINT and SIGQUIT ignored, and Java and Python keep them so:
  # restore them, so that `pgbeacon-stop N INT` is the Ctrl-C it stands for.
  # shellcheck disable=SC2016 # $$ and $@ belong to the inner shell
  setsid env --default-signal=INT,QUIT "${as_user[@]}" /bin/sh -c 'echo $$ > "$0" && exec "$@"' "$pidfile" "$@" \
    >> "$logfile" 2>&1 < /dev/null &
  wait_for 5 "pid file $pidfile" test -s "$pidfile"
}

# stop_process NAME PIDFILE MARKER [SIGNAL] [TIMEOUT] — signal by PID; for terminating signals wait for
# the exit (escalating to KILL after TIMEOUT) and remove the PID file.
stop_process() {
  local name=$1 pidfile=$2 marker=$3 sig=${4:-TERM} timeout=${5:-30} pid
  sig=${sig#SIG}
  if ! alive "$pidfile" "$marker"; then
    rm -f "$pidfile"
    log "$name: not running"
    return 0
  fi
  pid=$(pid_of "$pidfile")
  log "$name: kill -$sig $pid"
  kill -"$sig" "$pid"
  case "$sig" in
    TERM|INT|QUIT|KILL|15|2|3|9) ;;
    *) return 0 ;;
  esac
  if ! wait_for "$timeout" "$name (pid $pid) to exit" not_alive "$pidfile" "$marker"; then
    log "$name: still running after ${timeout}s, kill -KILL $pid"
    kill -KILL "$pid" 2>/dev/null || true
    wait_for 5 "$name to die" not_alive "$pidfile" "$marker" || true
  fi
  rm -f "$pidfile"
}

# ------------------------------------------------------------------------------------------- configs

prepare_dirs() {
  local i
  mkdir -p "$LAB_DIR"
  chmod 755 "$LAB_DIR"
  for i in $(nodes); do
    mkdir -p "$(node_dir "$i")"
    chown "$PG_USER:" "$(node_dir "$i")"
    chmod 755 "$(node_dir "$i")"
  done
}

# write_file PATH MODE OWNER — stdin to PATH, atomically enough for a lab.
write_file() {
  local path=$1 mode=$2 owner=$3
  cat > "$path.tmp"
  chmod "$mode" "$path.tmp"
  chown "$owner" "$path.tmp"
  mv -f "$path.tmp" "$path"
}

write_post_bootstrap() {
  # Patroni calls this once on the bootstrapping node with a superuser connection string as $1.
  # (bootstrap.users would do in 3.x, but Patroni 4 removed it.) pgbeacon may only connect: no
  # privileges beyond PUBLIC's CONNECT on the databases, enough for SELECT 1.
  write_file "$LAB_DIR/post_bootstrap.sh" 750 "root:$PG_USER" <<EOF
#!/bin/sh
set -eu
exec "$PG_BIN/psql" "\$1" -v ON_ERROR_STOP=1 -qX <<'SQL'
CREATE ROLE pgbeacon LOGIN PASSWORD '$LAB_PGBEACON_PASSWORD'
  NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 20;
SQL
EOF
}

write_patroni_config() {
  local i=$1 dir; dir=$(node_dir "$i")
  write_file "$dir/patroni.yml" 600 "$PG_USER:" <<EOF
# Generated by scripts/lab.sh — Patroni $LAB_PATRONI, node $(node_name "$i") of $LAB_NODES.
scope: $LAB_SCOPE
namespace: $LAB_NAMESPACE
name: $(node_name "$i")

restapi:
  listen: $(node_addr "$i"):$(rest_port "$i")
  connect_address: $(node_addr "$i"):$(rest_port "$i")

consul:
  # the node's own Consul client agent
  host: $(node_consul_addr "$i"):$(node_consul_http_port "$i")
  # Patroni's own service (named after the scope, tagged with the role): measured against pgbeacon's
  register_service: true

bootstrap:
  dcs:
    # Consul rejects session TTLs under 10 s and Patroni's session TTL is ttl/2.
    ttl: 20
    loop_wait: 2
    retry_timeout: 5
    maximum_lag_on_failover: 16777216
$(standby_cluster_config)
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        wal_level: replica
        hot_standby: "on"
        wal_log_hints: "on"
        max_connections: 50
        max_wal_senders: 10
        max_replication_slots: 10
        wal_keep_size: 128MB
  initdb:
    - encoding: UTF8
    - locale: C.UTF-8
    - no-sync
  post_bootstrap: $LAB_DIR/post_bootstrap.sh

postgresql:
  listen: $(node_addr "$i"):$(pg_port "$i")
  connect_address: $(node_addr "$i"):$(pg_port "$i")
  data_dir: $dir/data
  bin_dir: $PG_BIN
  pgpass: $dir/pgpass
  authentication:
    superuser: {username: postgres, password: $LAB_SUPERUSER_PASSWORD}
    replication: {username: replicator, password: $LAB_REPLICATION_PASSWORD}
  basebackup:
    - checkpoint: fast
  remove_data_directory_on_rewind_failure: true
  remove_data_directory_on_diverged_timelines: true
  pg_hba:
    - local all all peer
    - host replication replicator 127.0.0.0/8 scram-sha-256
    - host all all 127.0.0.0/8 scram-sha-256
  parameters:
    unix_socket_directories: $dir
    shared_buffers: 32MB
    fsync: "off"
    logging_collector: "on"
    log_directory: $dir
    log_filename: postgresql.log
    log_file_mode: "0640"
EOF
}

# LAB_STANDBY_OF: this cluster is a Patroni standby cluster of that lab's. It replicates through that lab's
# HAProxy write_httpchk listener (B+50: Patroni's /primary check, straight to PostgreSQL), which follows the source
# cluster's primary across a switchover; the B+5 write port leads to PgBouncer, which carries no replication.
standby_source_port() { echo $(($(other_lab_setting "$LAB_STANDBY_OF" LAB_BASE_PORT 15400) + 50)); }
standby_cluster_config() {
  [ -n "$LAB_STANDBY_OF" ] || return 0
  cat <<EOF
    standby_cluster:
      host: $HAPROXY_ADDR
      port: $(standby_source_port)
      create_replica_methods: [basebackup]
EOF
}

write_pgbouncer_config() {
  local i=$1 dir; dir=$(node_dir "$i")
  # Plain-text passwords let PgBouncer answer md5 or SCRAM to clients and do SCRAM to PostgreSQL.
  write_file "$dir/pgbouncer.users" 600 "$PG_USER:" <<EOF
"pgbeacon" "$LAB_PGBEACON_PASSWORD"
"postgres" "$LAB_SUPERUSER_PASSWORD"
EOF
  write_file "$dir/pgbouncer.ini" 644 "$PG_USER:" <<EOF
; Generated by scripts/lab.sh — PgBouncer for $(node_name "$i"), in front of its own PostgreSQL.
[databases]
postgres = host=$(node_addr "$i") port=$(pg_port "$i") dbname=postgres

[pgbouncer]
listen_addr = $(node_addr "$i")
listen_port = $(pgbouncer_port "$i")
unix_socket_dir = $dir
auth_type = $LAB_PGBOUNCER_AUTH
auth_file = $dir/pgbouncer.users
admin_users = postgres
; SHOW DATABASES/POOLS/LISTS on the admin console (database "pgbouncer") for pgbeacon
stats_users = pgbeacon
pool_mode = session
max_client_conn = 100
default_pool_size = 5
; JDBC-style clients send it; PgBouncer refuses unknown startup parameters otherwise
ignore_startup_parameters = extra_float_digits
server_connect_timeout = 3
server_login_retry = 1
EOF
}

write_pgbeacon_config() {
  local i=$1 dir; dir=$(node_dir "$i")
  local who
  if [ "$LAB_PGBEACON_CONFIG" = patroni-file ]; then
    who="patroni: {config-file: $dir/patroni.yml}"
  else
    who="node: $(node_name "$i")
patroni: {url: $(rest_url "$i"), timeout: 1s}
consul: {address: http://$(node_consul_addr "$i"):$(node_consul_http_port "$i"), ttl: 10s, deregister-critical-after: 1m, on-stop: critical}"
  fi
  write_file "$dir/pgbeacon.yml" 644 "$(id -un):" <<EOF
# Generated by scripts/lab.sh for $(node_name "$i") (LAB_PGBEACON_CONFIG=$LAB_PGBEACON_CONFIG).
$who
pgbouncer: {host: $(node_addr "$i"), port: $(pgbouncer_port "$i"), database: postgres, user: pgbeacon, password-file: $LAB_DIR/pgbeacon.password, required: true, timeout: 1s}
services:
  address: $(node_addr "$i")
  primary: {name: patroni-primary, port: $(pgbouncer_port "$i")}
  replica: {name: patroni-replica, port: $(pgbouncer_port "$i"), max-lag: 16MB}
poll: {interval: 500ms}
agent: {listen: [{address: $(node_addr "$i"), port: $(agent_primary_port "$i"), view: primary}, {address: $(node_addr "$i"), port: $(agent_replica_port "$i"), view: replica}, {address: $(node_addr "$i"), port: $(agent_any_port "$i")}]}
http: {address: $(node_addr "$i"), port: $(pgbeacon_http_port "$i")}
EOF
}

write_configs() {
  local i
  # No trailing newline: the file holds exactly the password.
  printf '%s' "$LAB_PGBEACON_PASSWORD" | write_file "$LAB_DIR/pgbeacon.password" 600 "$(id -un):"
  write_post_bootstrap
  for i in $(nodes); do
    write_patroni_config "$i"
    write_pgbouncer_config "$i"
    write_pgbeacon_config "$i"
  done
  [ -n "$LAB_CONSUL_OF" ] || write_consul_configs
  write_haproxy_config
  [ -z "$LAB_PGBEACON" ] || write_prometheus_config
}

# ---------------------------------------------------------------------------------------------- consul
# One server (127.0.0.10) and one client agent per node, as in production: Patroni and pgbeacon talk to their
# node's client; the catalog lives on the server. Client agents keep their data directory and do not leave the
# cluster on SIGTERM, so a restarted agent comes back as the same node with its services.

# consul_dir [N] — the server's directory, or node N's agent's.
consul_dir() { if [ -n "${1:-}" ]; then echo "$(node_dir "$1")/consul"; else echo "$LAB_DIR/consul"; fi; }
consul_pidfile() { echo "$(consul_dir "${1:-}")/consul.pid"; }
consul_marker()  { echo "$(consul_dir "${1:-}")/consul.hcl"; }
consul_name()    { if [ -n "${1:-}" ]; then echo "consul $(node_name "$1")"; else echo "consul server"; fi; }
consul_addr()    { if [ -n "${1:-}" ]; then node_consul_addr "$1"; else server_addr; fi; }
consul_http()    { if [ -n "${1:-}" ]; then node_consul_http_port "$1"; else consul_http_port; fi; }

write_consul_configs() {
  local i
  mkdir -p "$(consul_dir)"
  write_file "$(consul_marker)" 644 "$(id -un):" <<EOF
# Generated by scripts/lab.sh — the lab's Consul server.
node_name = "consul-server"
datacenter = "dc1"
data_dir = "$(consul_dir)/data"
server = true
bootstrap_expect = 1
ui = true
bind_addr = "$(server_addr)"
client_addr = "$(server_addr)"
ports { http = $(consul_http_port), dns = $(consul_dns_port), server = $(consul_server_port), serf_lan = $(consul_lan_port), serf_wan = $(consul_wan_port), grpc = -1 }
performance { raft_multiplier = 1 }
# The lab's catalog shows check output as soon as it changes (the default syncs output every 5 min).
check_update_interval = "0s"
dns_config { node_ttl = "0s", service_ttl { "*" = "0s" } }
disable_update_check = true
log_level = "INFO"
EOF
  for i in $(nodes); do
    mkdir -p "$(consul_dir "$i")"
    write_file "$(consul_marker "$i")" 644 "$(id -un):" <<EOF
# Generated by scripts/lab.sh — the Consul client agent of $(node_name "$i").
node_name = "$(node_name "$i")"
datacenter = "dc1"
data_dir = "$(consul_dir "$i")/data"
bind_addr = "$(node_consul_addr "$i")"
client_addr = "$(node_consul_addr "$i")"
ports { http = $(node_consul_http_port "$i"), dns = $(node_consul_dns_port "$i"), serf_lan = $(node_consul_lan_port "$i"), serf_wan = -1, grpc = -1 }
retry_join = ["$(server_addr):$(consul_lan_port)"]
# A restart is not a departure: keep the node (and its services) in the catalog.
leave_on_terminate = false
skip_leave_on_interrupt = true
check_update_interval = "0s"
dns_config { node_ttl = "0s", service_ttl { "*" = "0s" } }
disable_update_check = true
log_level = "INFO"
EOF
  done
}

# The server has a leader; a client has joined it (the server's catalog lists the node as alive).
consul_ready() {
  if [ -z "${1:-}" ]; then
    [ -n "$(http_get "http://$(server_addr):$(consul_http_port)/v1/status/leader" | tr -d '"')" ]
  else
    [ -n "$(http_get "http://$(node_consul_addr "$1"):$(node_consul_http_port "$1")/v1/status/leader" | tr -d '"')" ] \
      && http_get "http://$(server_addr):$(consul_http_port)/v1/health/node/$(node_name "$1")" \
        | jq -e '.[] | select(.CheckID == "serfHealth" and .Status == "passing")' >/dev/null 2>&1
  fi
}

consul_start() {
  local n=${1:-}
  if [ -n "$LAB_CONSUL_OF" ]; then
    # Not ours to start: the other lab's server and node agents; they must run.
    wait_for 10 "$(consul_name "$n") of $LAB_CONSUL_OF" consul_ready "$n" \
      || die "$(consul_name "$n") of $LAB_CONSUL_OF ($(consul_addr "$n"):$(consul_http "$n")) is not running: start that lab first"
    return 0
  fi
  if alive "$(consul_pidfile "$n")" "$(consul_marker "$n")"; then
    log "$(consul_name "$n"): already running (pid $(pid_of "$(consul_pidfile "$n")"))"
    return 0
  fi
  port_open "$(consul_addr "$n")" "$(consul_http "$n")" && die "port $(consul_addr "$n"):$(consul_http "$n") is taken by something else"
  log "$(consul_name "$n"): starting ($(consul_addr "$n"):$(consul_http "$n"))"
  spawn "$(consul_pidfile "$n")" "$(consul_dir "$n")/consul.log" "$(id -un)" \
    consul agent -config-file "$(consul_marker "$n")"
  wait_for 30 "$(consul_name "$n") ready" consul_ready "$n" \
    || { tail -20 "$(consul_dir "$n")/consul.log" >&2; die "$(consul_name "$n") did not start"; }
}

consul_stop() {
  if [ -n "$LAB_CONSUL_OF" ]; then log "$(consul_name "${1:-}"): $LAB_CONSUL_OF's, left running"; return 0; fi
  stop_process "$(consul_name "${1:-}")" "$(consul_pidfile "${1:-}")" "$(consul_marker "${1:-}")" "${2:-TERM}" 20
}

# ---------------------------------------------------------------------------------------------- haproxy
# Write port → the node whose pgbeacon primary view says "up"; read port → replicas by pgbeacon's replica view.
# The regular check is a TCP connect to PgBouncer; pgbeacon's agent says whether the node should get traffic.

haproxy_dir()     { echo "$LAB_DIR/haproxy"; }
haproxy_pidfile() { echo "$(haproxy_dir)/haproxy.pid"; }
haproxy_marker()  { echo "$(haproxy_dir)/haproxy.cfg"; }

write_haproxy_config() {
  local i user_lines=""
  mkdir -p "$(haproxy_dir)"
  id haproxy >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && user_lines=$'  user haproxy\n  group haproxy'
  # Each node has its own agent ports, and a tcp-check rule names one port for a whole section: the regular check
  # looks the port up by server name (srv_name) in these maps.
  for i in $(nodes); do echo "$(node_name "$i") $(agent_primary_port "$i")"; done \
    | write_file "$(haproxy_dir)/agent-primary.map" 644 "$(id -un):"
  for i in $(nodes); do echo "$(node_name "$i") $(agent_replica_port "$i")"; done \
    | write_file "$(haproxy_dir)/agent-replica.map" 644 "$(id -un):"
  {
    cat <<EOF
# Generated by scripts/lab.sh — HAProxy in front of the lab, driven by pgbeacon's agent ports.
global
  maxconn 500
  stats socket $(haproxy_dir)/admin.sock mode 600 level admin
$user_lines

defaults
  mode tcp
  log stdout format raw local0 info
  timeout connect 2s
  timeout client 30m
  timeout server 30m
  timeout check 1s
  # The regular check (write, read): PgBouncer accepts connections, then pgbeacon answers a line with a "#" on the
  # node's agent port; the agent (pgbeacon) decides the rest. HAProxy keeps an agent's last reply while the agent
  # cannot be reached, so this is what takes out a node whose pgbeacon was killed (connection refused: DOWN within
  # inter + (fall-1) x fastinter = 1.25 s) or stopped (SIGSTOP: the kernel accepts, nothing answers: DOWN within
  # inter + fall x 1s + (fall-1) x fastinter = 3.25 s; a check waits the longer of timeout check and inter for the
  # reply). A server in MAINT is not checked: it stays MAINT. rise 3: a pgbeacon back from a hang passes the check
  # at once while HAProxy still holds its agent word from before (up ready on an old primary); UP only after
  # (rise-1) x fastinter = 500 ms, longer than agent-inter, so the agent is heard first (haproxy/README.md).
  default-server inter 1s fastinter 250ms fall 2 rise 3 on-marked-down shutdown-sessions agent-inter 200ms

frontend stats
  mode http
  bind $HAPROXY_ADDR:$(haproxy_stats_port)
  stats enable
  stats uri /stats
  stats refresh 1s

listen write
  bind $HAPROXY_ADDR:$(haproxy_write_port)
  option tcp-check
  tcp-check connect comment PgBouncer
  tcp-check connect port srv_name,map_str_int($(haproxy_dir)/agent-primary.map) comment pgbeacon
  tcp-check expect rstring "#.*\n" comment "no reply line from pgbeacon"
EOF
    for i in $(nodes); do
      echo "  server $(node_name "$i") $(node_addr "$i"):$(pgbouncer_port "$i") check agent-check agent-port $(agent_primary_port "$i")"
    done
    cat <<EOF

listen read
  bind $HAPROXY_ADDR:$(haproxy_read_port)
  balance leastconn
  option tcp-check
  tcp-check connect comment PgBouncer
  tcp-check connect port srv_name,map_str_int($(haproxy_dir)/agent-replica.map) comment pgbeacon
  tcp-check expect rstring "#.*\n" comment "no reply line from pgbeacon"
EOF
    for i in $(nodes); do
      echo "  server $(node_name "$i") $(node_addr "$i"):$(pgbouncer_port "$i") check agent-check agent-port $(agent_replica_port "$i")"
    done
    cat <<EOF

# For comparison (scripts/bench-propagation.sh): the same write port found other ways.
resolvers consul
  nameserver server $(server_addr):$(consul_dns_port)
  accepted_payload_size 8192
  resolve_retries 3
  timeout resolve 100ms
  timeout retry 100ms
  hold valid 100ms
  hold nx 100ms
  hold obsolete 0s

# pgbeacon's service through Consul DNS (SRV), the way haproxy/dns-srv.cfg does it; this cluster's instances only
# (the scope tag), as several clusters may share the Consul (LAB_CONSUL_OF)
listen write_dns
  bind $HAPROXY_ADDR:$(haproxy_write_dns_port)
  server-template pgbeacon $LAB_NODES _patroni-primary._$LAB_SCOPE.service.consul resolvers consul resolve-prefer ipv4 init-addr none check

# Patroni's own register_service (service "$LAB_SCOPE", tag $(patroni_primary_tag)) through Consul DNS (SRV)
listen write_patroni_dns
  bind $HAPROXY_ADDR:$(haproxy_write_patroni_dns_port)
  server-template patroni $LAB_NODES _$LAB_SCOPE._$(patroni_primary_tag).service.consul resolvers consul resolve-prefer ipv4 init-addr none check

# The classic setup from Patroni's documentation: HTTP check of Patroni's /primary, straight to PostgreSQL
listen write_httpchk
  bind $HAPROXY_ADDR:$(haproxy_write_httpchk_port)
  option httpchk GET /primary
  http-check expect status 200
  default-server inter 3s fall 3 rise 2 on-marked-down shutdown-sessions
EOF
    for i in $(nodes); do
      echo "  server $(node_name "$i") $(node_addr "$i"):$(pg_port "$i") check port $(rest_port "$i")"
    done
  } | write_file "$(haproxy_marker)" 644 "$(id -un):"
}

haproxy_start() {
  if alive "$(haproxy_pidfile)" "$(haproxy_marker)"; then
    log "haproxy: already running (pid $(pid_of "$(haproxy_pidfile)"))"
    return 0
  fi
  port_open "$HAPROXY_ADDR" "$(haproxy_write_port)" && die "port $(haproxy_write_port) is taken by something else"
  /usr/sbin/haproxy -c -q -f "$(haproxy_marker)" || die "haproxy rejects $(haproxy_marker)"
  log "haproxy: starting (write $HAPROXY_ADDR:$(haproxy_write_port), read $(haproxy_read_port), stats http://$HAPROXY_ADDR:$(haproxy_stats_port)/stats)"
  # Master-worker in the foreground: the PID file holds the master, which reloads on USR2 without closing
  # its listeners.
  spawn "$(haproxy_pidfile)" "$(haproxy_dir)/haproxy.log" "$(id -un)" \
    /usr/sbin/haproxy -W -db -f "$(haproxy_marker)"
  wait_for 10 "haproxy write port" port_open "$HAPROXY_ADDR" "$(haproxy_write_port)" \
    || { tail -20 "$(haproxy_dir)/haproxy.log" >&2; die "haproxy did not start"; }
  # HAProxy 2.5+'s master re-executes itself (wait mode) once its worker runs: for that moment its command line
  # is not yet the new one's, and a status read then would say "stopped" (seen on a loaded machine).
  wait_for 10 "haproxy master" alive "$(haproxy_pidfile)" "$(haproxy_marker)" \
    || { tail -20 "$(haproxy_dir)/haproxy.log" >&2; die "haproxy exited"; }
}

haproxy_reload() {
  alive "$(haproxy_pidfile)" "$(haproxy_marker)" || die "haproxy is not running"
  /usr/sbin/haproxy -c -q -f "$(haproxy_marker)" || die "haproxy rejects $(haproxy_marker); not reloading"
  kill -USR2 "$(pid_of "$(haproxy_pidfile)")"
  log "haproxy: reloaded"
}

haproxy_stop() { stop_process haproxy "$(haproxy_pidfile)" "$(haproxy_marker)" "${1:-TERM}" 10; }

# ------------------------------------------------------------------------------------------ prometheus
# One Prometheus scraping every node's pgbeacon each second and evaluating the shipped alert rules each second:
# what the e2e suite asks through its query API, and what the demo shows.

RULES_FILE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/src/main/dist/prometheus/pgbeacon-alerts.yml"
readonly RULES_FILE
prometheus_dir()     { echo "$LAB_DIR/prometheus"; }
prometheus_pidfile() { echo "$(prometheus_dir)/prometheus.pid"; }
prometheus_marker()  { echo "$(prometheus_dir)/prometheus.yml"; }

write_prometheus_config() {
  local i
  mkdir -p "$(prometheus_dir)/data"
  [ -r "$RULES_FILE" ] || die "missing $RULES_FILE"
  write_file "$(prometheus_dir)/pgbeacon-alerts.yml" 644 "$(id -un):" < "$RULES_FILE"
  {
    cat <<EOF
# Generated by scripts/lab.sh: every pgbeacon of the lab, each second; the shipped alert rules.
global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
rule_files: [$(prometheus_dir)/pgbeacon-alerts.yml]
scrape_configs:
  - job_name: pgbeacon
    static_configs:
      - targets:
EOF
    for i in $(nodes); do echo "          - $(node_addr "$i"):$(pgbeacon_http_port "$i")"; done
  } | write_file "$(prometheus_marker)" 644 "$(id -un):"
}

prometheus_url() { echo "http://$HAPROXY_ADDR:$(prometheus_port)"; }
prometheus_ready() { http_get "$(prometheus_url)/-/ready" >/dev/null; }

prometheus_start() {
  if alive "$(prometheus_pidfile)" "$(prometheus_marker)"; then
    log "prometheus: already running (pid $(pid_of "$(prometheus_pidfile)"))"
    return 0
  fi
  port_open "$HAPROXY_ADDR" "$(prometheus_port)" && die "port $(prometheus_port) is taken by something else"
  /usr/bin/promtool check config "$(prometheus_marker)" >/dev/null || die "promtool rejects $(prometheus_marker)"
  log "prometheus: starting ($(prometheus_url))"
  spawn "$(prometheus_pidfile)" "$(prometheus_dir)/prometheus.log" "$(id -un)" \
    /usr/bin/prometheus --config.file="$(prometheus_marker)" --storage.tsdb.path="$(prometheus_dir)/data" \
    --storage.tsdb.retention.time=1d --web.listen-address="$HAPROXY_ADDR:$(prometheus_port)"
  wait_for 30 "prometheus ready" prometheus_ready \
    || { tail -20 "$(prometheus_dir)/prometheus.log" >&2; die "prometheus did not start"; }
}

prometheus_stop() { stop_process prometheus "$(prometheus_pidfile)" "$(prometheus_marker)" TERM 20; }

# --------------------------------------------------------------------------------------------- patroni

patroni_start() {
  local i=$1
  if alive "$(patroni_pidfile "$i")" "$(patroni_marker "$i")"; then
    log "patroni $(node_name "$i"): already running (pid $(pid_of "$(patroni_pidfile "$i")"))"
    return 0
  fi
  port_open "$(node_addr "$i")" "$(rest_port "$i")" && die "port $(rest_port "$i") is taken by something else"
  log "patroni $(node_name "$i"): starting (pg $(pg_port "$i"), rest $(rest_port "$i"))"
  spawn "$(patroni_pidfile "$i")" "$(node_dir "$i")/patroni.log" "$PG_USER" \
    "$(patroni_bin)" "$(patroni_marker "$i")"
}

# Patroni stops its PostgreSQL on SIGTERM. If Patroni had to be killed, stop the orphaned postmaster too.
patroni_stop() {
  local i=$1 sig=${2:-TERM} dir; dir=$(node_dir "$i")
  stop_process "patroni $(node_name "$i")" "$(patroni_pidfile "$i")" "$(patroni_marker "$i")" "$sig" 40
  case "${sig#SIG}" in TERM|INT|QUIT|KILL|15|2|3|9) stop_orphan_postmaster "$i" ;; esac
}

# A hard crash of node i: SIGKILL to Patroni and, at once, to its postmaster (no demotion, no leader key
# release; the cluster fails over when Patroni's session expires). `patroni-start N` brings the node back.
patroni_crash() {
  local i=$1 dir ppid pmpid; dir=$(node_dir "$i")
  alive "$(patroni_pidfile "$i")" "$(patroni_marker "$i")" || die "patroni $(node_name "$i") is not running"
  ppid=$(pid_of "$(patroni_pidfile "$i")")
  pmpid=$(head -1 "$dir/data/postmaster.pid" 2>/dev/null || true)
  log "crash $(node_name "$i"): kill -KILL patroni $ppid, postmaster ${pmpid:-?}"
  kill -KILL "$ppid"
  if [[ "$pmpid" =~ ^[0-9]+$ ]] && tr '\0' ' ' < "/proc/$pmpid/cmdline" 2>/dev/null | grep -qF -- "$dir/data"; then
    kill -KILL "$pmpid"
  fi
  wait_for 10 "patroni $(node_name "$i") to die" not_alive "$(patroni_pidfile "$i")" "$(patroni_marker "$i")"
  rm -f "$(patroni_pidfile "$i")"
  # PostgreSQL's other processes notice the postmaster's death and exit; a restart needs them gone.
  wait_for 20 "$(node_name "$i")'s postgres processes to exit" no_postgres_processes "$i"
}

no_postgres_processes() {
  local dir pid; dir=$(node_dir "$1")
  for pid in $(pgrep -u "$PG_USER" postgres 2>/dev/null || true); do
    [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$dir/data" ] && return 1
  done
  return 0
}

stop_orphan_postmaster() {
  local dir; dir=$(node_dir "$1")
  [ -s "$dir/data/postmaster.pid" ] || return 0
  local pid; pid=$(head -1 "$dir/data/postmaster.pid")
  [[ "$pid" =~ ^[0-9]+$ ]] && [ -r "/proc/$pid/cmdline" ] || return 0
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "$dir/data" || return 0
  log "postgres $(node_name "$1"): left running (pid $pid), pg_ctl stop -m fast"
  setpriv --reuid="$PG_USER" --regid="$PG_USER" --init-groups \
    "$PG_BIN/pg_ctl" -D "$dir/data" stop -m fast -w -t 30 >/dev/null || true
}

# ---------------------------------------------------------------------------------------- cluster state

# Leader name from GET /cluster of any node that answers.
leader_name() {
  local i name
  for i in $(nodes); do
    name=$(http_get "$(rest_url "$i")/cluster" \
      | jq -r '.members[]? | select(.role == "leader" or .role == "standby_leader")
               | select(.state == "running" or .state == "streaming") | .name' \
      2>/dev/null | head -1)
    [ -n "$name" ] && { echo "$name"; return 0; }
  done
  return 1
}

node_index() { echo "${1#node}"; }

leader_is() { [ "$(leader_name 2>/dev/null)" = "$1" ]; }

# Healthy: a running leader whose /patroni lists at least N-1 streaming standbys, and every replica running. At
# least: a standby cluster of this one (LAB_STANDBY_OF) streams from its leader too, through HAProxy, and neither
# its member name nor its address (all loopback connections come from 127.0.0.1) tells it apart.
cluster_healthy() {
  local leader li i state streaming
  leader=$(leader_name) || return 1
  li=$(node_index "$leader")
  streaming=$(http_get "$(rest_url "$li")/patroni" \
    | jq '[.replication[]? | select(.state == "streaming")] | length' 2>/dev/null) || true
  [[ "$streaming" =~ ^[0-9]+$ ]] && [ "$streaming" -ge $((LAB_NODES - 1)) ] || return 1
  for i in $(nodes); do
    state=$(http_get "$(rest_url "$i")/patroni" | jq -r '.state' 2>/dev/null) || return 1
    [ "$state" = running ] || return 1
  done
}

# wait_cluster_healthy SECONDS — wait for cluster_healthy; give up at once, with the end of its log, when a
# Patroni process has exited (a bad config or a missing DCS module ends it within a second), and print every
# node's role when the time runs out.
wait_cluster_healthy() {
  local timeout=$1 deadline=$((SECONDS + $1)) i
  until cluster_healthy; do
    for i in $(nodes); do
      if not_alive "$(patroni_pidfile "$i")" "$(patroni_marker "$i")"; then
        log "patroni $(node_name "$i") is not running; the end of $(node_dir "$i")/patroni.log:"
        tail -n 12 "$(node_dir "$i")/patroni.log" >&2 2>/dev/null || true
        return 1
      fi
    done
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "timed out after ${timeout}s waiting for a leader and $((LAB_NODES - 1)) streaming replicas"
      node_roles >&2
      return 1
    fi
    sleep 0.5
  done
}

# One line per node: name, role, state, timeline (from each node's own GET /patroni).
node_roles() {
  local i
  for i in $(nodes); do
    http_get "$(rest_url "$i")/patroni" \
      | jq -r --arg n "$(node_name "$i")" '"\($n) role=\(.role) state=\(.state) timeline=\(.timeline // "-")\(if .pause then " paused" else "" end) patroni=\(.patroni.version)"' 2>/dev/null \
      || echo "$(node_name "$i") role=? state=unreachable"
  done
}

# ------------------------------------------------------------------------------------------- pgbouncer

pgbouncer_start() {
  local i=$1
  if alive "$(pgbouncer_pidfile "$i")" "$(pgbouncer_marker "$i")"; then
    log "pgbouncer $(node_name "$i"): already running (pid $(pid_of "$(pgbouncer_pidfile "$i")"))"
    return 0
  fi
  port_open "$(node_addr "$i")" "$(pgbouncer_port "$i")" && die "port $(pgbouncer_port "$i") is taken by something else"
  log "pgbouncer $(node_name "$i"): starting (port $(pgbouncer_port "$i"))"
  spawn "$(pgbouncer_pidfile "$i")" "$(node_dir "$i")/pgbouncer.log" "$PG_USER" \
    /usr/sbin/pgbouncer "$(pgbouncer_marker "$i")"
  wait_for 5 "pgbouncer port $(pgbouncer_port "$i")" port_open "$(node_addr "$i")" "$(pgbouncer_port "$i")"
}

pgbouncer_stop() {
  stop_process "pgbouncer $(node_name "$1")" "$(pgbouncer_pidfile "$1")" "$(pgbouncer_marker "$1")" "${2:-TERM}" 10
}

# SELECT 1 as pgbeacon through node i's PgBouncer, i.e. PgBouncer really reaches PostgreSQL.
pgbouncer_query_ok() {
  PGCONNECT_TIMEOUT=2 "$PG_BIN/psql" -qAtX -c 'select 1' \
    "host=$(node_addr "$1") port=$(pgbouncer_port "$1") dbname=postgres user=pgbeacon password=$LAB_PGBEACON_PASSWORD" \
    2>/dev/null | grep -qx 1
}

# -------------------------------------------------------------------------------------------- pgbeacon

# The command that runs pgbeacon: LAB_PGBEACON, or for LAB_PGBEACON=package the installed package's launcher.
pgbeacon_command() {
  if [ "$LAB_PGBEACON" != package ]; then
    printf '%s\n' "$LAB_PGBEACON"
    return 0
  fi
  dpkg-query -W -f '${Status}' pgbeacon 2>/dev/null | grep -qx 'install ok installed' && [ -x /usr/bin/pgbeacon ] \
    || die "LAB_PGBEACON=package needs the pgbeacon package installed: mvn package && apt install ./target/pgbeacon_*_all.deb"
  echo /usr/bin/pgbeacon
}

pgbeacon_start() {
  local i=$1 command
  [ -n "$LAB_PGBEACON" ] || die "set LAB_PGBEACON, e.g. LAB_PGBEACON='java -jar target/pgbeacon.jar'"
  command=$(pgbeacon_command)
  if alive "$(pgbeacon_pidfile "$i")" "$(pgbeacon_marker "$i")"; then
    log "pgbeacon $(node_name "$i"): already running (pid $(pid_of "$(pgbeacon_pidfile "$i")"))"
    return 0
  fi
  log "pgbeacon $(node_name "$i"): $command run --config $(pgbeacon_marker "$i")"
  # sh -c parses the command (so it may hold quoted arguments) and execs it: the PID stays the same.
  spawn "$(pgbeacon_pidfile "$i")" "$(node_dir "$i")/pgbeacon.log" "$(id -un)" \
    /bin/sh -c "exec $command run --config \"\$0\"" "$(pgbeacon_marker "$i")"
}

# Wait until node i's pgbeacon listens on its agent port; fail if it died.
pgbeacon_wait() {
  local i=$1 deadline=$((SECONDS + 30))
  until port_open "$(node_addr "$i")" "$(agent_primary_port "$i")"; do
    if ! alive "$(pgbeacon_pidfile "$i")" "$(pgbeacon_marker "$i")"; then
      tail -20 "$(node_dir "$i")/pgbeacon.log" >&2
      die "pgbeacon $(node_name "$i") exited (log: $(node_dir "$i")/pgbeacon.log)"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "WARNING: pgbeacon $(node_name "$i") runs but does not listen on $(agent_primary_port "$i") yet"
      return 0
    fi
    sleep 0.5
  done
}

pgbeacon_stop() {
  stop_process "pgbeacon $(node_name "$1")" "$(pgbeacon_pidfile "$1")" "$(pgbeacon_marker "$1")" "${2:-TERM}" 20
}

# -------------------------------------------------------------------------------------------- commands

anything_alive() {
  local i
  alive "$(consul_pidfile)" "$(consul_marker)" && return 0
  alive "$(haproxy_pidfile)" "$(haproxy_marker)" && return 0
  alive "$(prometheus_pidfile)" "$(prometheus_marker)" && return 0
  for i in $(nodes); do
    alive "$(consul_pidfile "$i")" "$(consul_marker "$i")" && return 0
    alive "$(patroni_pidfile "$i")" "$(patroni_marker "$i")" && return 0
    alive "$(pgbouncer_pidfile "$i")" "$(pgbouncer_marker "$i")" && return 0
    alive "$(pgbeacon_pidfile "$i")" "$(pgbeacon_marker "$i")" && return 0
  done
  return 1
}

everything_alive() {
  local i
  [ -n "$LAB_CONSUL_OF" ] || alive "$(consul_pidfile)" "$(consul_marker)" || return 1
  alive "$(haproxy_pidfile)" "$(haproxy_marker)" || return 1
  [ -z "$LAB_PGBEACON" ] || alive "$(prometheus_pidfile)" "$(prometheus_marker)" || return 1
  for i in $(nodes); do
    [ -n "$LAB_CONSUL_OF" ] || alive "$(consul_pidfile "$i")" "$(consul_marker "$i")" || return 1
    alive "$(patroni_pidfile "$i")" "$(patroni_marker "$i")" || return 1
    alive "$(pgbouncer_pidfile "$i")" "$(pgbouncer_marker "$i")" || return 1
    [ -z "$LAB_PGBEACON" ] || alive "$(pgbeacon_pidfile "$i")" "$(pgbeacon_marker "$i")" || return 1
  done
}

wipe_lab_state() {
  log "fresh lab in $LAB_DIR (Patroni $LAB_PATRONI, $LAB_NODES nodes, ports from $LAB_BASE_PORT)"
  rm -rf -- "$(consul_dir)" "$(haproxy_dir)" "$(prometheus_dir)" "$LAB_DIR"/node[0-9]*
}

# LAB_CONSUL_OF / LAB_STANDBY_OF name another lab, started before this one (its lab.conf says its layout).
check_other_labs() {
  [[ "$LAB_ADDR_BASE" =~ ^[0-9]+$ ]] && [ "$LAB_ADDR_BASE" -ge 2 ] && [ $((LAB_ADDR_BASE + LAB_NODES)) -le 254 ] \
    || die "LAB_ADDR_BASE must be a number from 2 to $((254 - LAB_NODES)), not '$LAB_ADDR_BASE'"
  local other
  for other in "$LAB_CONSUL_OF" "$LAB_STANDBY_OF"; do
    [ -z "$other" ] || [ -f "$other/lab.conf" ] || die "no lab in '$other' (no lab.conf): start it first"
    [ "$other" != "$LAB_DIR" ] || die "a lab cannot name itself in LAB_CONSUL_OF or LAB_STANDBY_OF"
  done
  if [ -n "$LAB_CONSUL_OF" ]; then
    [ -z "$(other_lab_setting "$LAB_CONSUL_OF" LAB_CONSUL_OF "")" ] \
      || die "$LAB_CONSUL_OF uses another lab's Consul itself: name that lab in LAB_CONSUL_OF"
    [ "$LAB_NODES" -le "$(other_lab_setting "$LAB_CONSUL_OF" LAB_NODES 3)" ] \
      || die "LAB_NODES=$LAB_NODES: $LAB_CONSUL_OF has fewer node agents"
    [ "$LAB_ADDR_BASE" != "$(consul_addr_base)" ] || die "set LAB_ADDR_BASE: $LAB_CONSUL_OF's nodes use 127.0.0.$LAB_ADDR_BASE+i"
    [ "$LAB_SCOPE" != "$(other_lab_setting "$LAB_CONSUL_OF" LAB_SCOPE pgbeacon-lab)" ] \
      || die "set LAB_SCOPE: $LAB_CONSUL_OF's cluster is $LAB_SCOPE"
  fi
}

# A lab with anything still running keeps its recorded layout; only a stopped lab takes new settings.
adopt_running_layout() {
  if ( load_recorded_settings; anything_alive ); then load_recorded_settings; fi
}

cmd_start() {
  adopt_running_layout
  require_tools
  if everything_alive && cluster_healthy; then
    log "already running"
    cmd_status
    return 0
  fi
  check_other_labs
  anything_alive || wipe_lab_state
  prepare_dirs
  record_settings
  write_configs

  local i
  consul_start
  for i in $(nodes); do consul_start "$i"; done
  for i in $(nodes); do patroni_start "$i"; done
  wait_cluster_healthy "$LAB_START_TIMEOUT" || die "cluster not healthy (logs: $LAB_DIR/node*/patroni.log)"
  log "cluster healthy, leader $(leader_name)"

  for i in $(nodes); do pgbouncer_start "$i"; done
  for i in $(nodes); do
    wait_for 15 "SELECT 1 through pgbouncer $(node_name "$i")" pgbouncer_query_ok "$i" \
      || die "pgbouncer $(node_name "$i") does not pass queries (log: $(node_dir "$i")/pgbouncer.log)"
  done
  log "pgbouncers pass SELECT 1 as pgbeacon"

  if [ -n "$LAB_PGBEACON" ]; then
    for i in $(nodes); do pgbeacon_start "$i"; done
    for i in $(nodes); do pgbeacon_wait "$i"; done
    prometheus_start
  fi
  haproxy_start
  log "started in $((SECONDS - T0))s"
  cmd_status
}

cmd_stop() {
  local i
  load_recorded_settings
  prometheus_stop
  haproxy_stop
  for i in $(nodes); do pgbeacon_stop "$i"; done
  for i in $(nodes); do pgbouncer_stop "$i"; done
  # Replicas first, so the leader does not fail over to a replica about to stop.
  local leader; leader=$(leader_name 2>/dev/null || true)
  for i in $(nodes); do [ "$(node_name "$i")" = "$leader" ] || patroni_stop "$i" & done
  wait
  [ -z "$leader" ] || patroni_stop "$(node_index "$leader")"
  for i in $(nodes); do stop_orphan_postmaster "$i"; done
  for i in $(nodes); do consul_stop "$i"; done
  consul_stop
  log "stopped"
}

process_line() {
  local name=$1 pidfile=$2 marker=$3
  if alive "$pidfile" "$marker"; then
    printf '  %-22s running  pid %s\n' "$name" "$(pid_of "$pidfile")"
  else
    printf '  %-22s stopped\n' "$name"
    return 1
  fi
}

cmd_status() {
  local i rc=0
  load_recorded_settings
  echo "lab $LAB_DIR: Patroni $LAB_PATRONI ($(patroni_bin)), scope $LAB_SCOPE, $LAB_NODES nodes, consul server $(server_addr):$(consul_http_port)"
  if [ -n "$LAB_CONSUL_OF" ]; then echo "  consul: $LAB_CONSUL_OF's (server and node agents)";
  else process_line "consul server" "$(consul_pidfile)" "$(consul_marker)" || rc=3; fi
  process_line haproxy "$(haproxy_pidfile)" "$(haproxy_marker)" || rc=3
  if [ -n "$LAB_PGBEACON" ] || [ -s "$(prometheus_pidfile)" ]; then
    process_line prometheus "$(prometheus_pidfile)" "$(prometheus_marker)" || rc=3
  fi
  for i in $(nodes); do
    [ -n "$LAB_CONSUL_OF" ] || process_line "consul $(node_name "$i")" "$(consul_pidfile "$i")" "$(consul_marker "$i")" || rc=3
    process_line "patroni $(node_name "$i")" "$(patroni_pidfile "$i")" "$(patroni_marker "$i")" || rc=3
    process_line "pgbouncer $(node_name "$i")" "$(pgbouncer_pidfile "$i")" "$(pgbouncer_marker "$i")" || rc=3
    if [ -n "$LAB_PGBEACON" ] || [ -s "$(pgbeacon_pidfile "$i")" ]; then
      process_line "pgbeacon $(node_name "$i")" "$(pgbeacon_pidfile "$i")" "$(pgbeacon_marker "$i")" || rc=3
    fi
  done
  echo "roles:"
  node_roles | sed 's/^/  /'
  return $rc
}

cmd_switchover() {
  load_recorded_settings
  local leader candidate li t_start
  leader=$(leader_name) || die "no leader"
  li=$(node_index "$leader")
  candidate=${1:-}
  if [ -z "$candidate" ]; then
    candidate=$(http_get "$(rest_url "$li")/cluster" \
      | jq -r '[.members[] | select(.role != "leader" and .role != "standby_leader" and .state != "stopped")]
               | (map(select(.role == "sync_standby")) + .)[0].name')
  fi
  if [ -z "$candidate" ] || [ "$candidate" = null ]; then die "no replica to switch over to"; fi
  [ "$candidate" != "$leader" ] || die "$candidate is already the leader"
  log "switchover $leader -> $candidate"
  t_start=$SECONDS
  curl -sS --max-time 30 -X POST -H 'Content-Type: application/json' \
    -d "{\"leader\": \"$leader\", \"candidate\": \"$candidate\"}" "$(rest_url "$li")/switchover" >&2
  echo >&2
  wait_for 60 "$candidate to lead" leader_is "$candidate" \
    || die "switchover did not complete"
  log "new leader $candidate after $((SECONDS - t_start))s"
  wait_for 60 "all replicas streaming again" cluster_healthy || die "replicas did not catch up"
  log "cluster healthy after $((SECONDS - t_start))s"
}

cmd_env() {
  local i p
  load_recorded_settings
  cat <<EOF
LAB_DIR=$LAB_DIR
LAB_SCOPE=$LAB_SCOPE
LAB_NAMESPACE=$LAB_NAMESPACE
LAB_LEADER_KEY=$(leader_key)
LAB_PGBEACON_CONFIG=$LAB_PGBEACON_CONFIG
LAB_PATRONI=$LAB_PATRONI
LAB_PATRONI_BIN=$(patroni_bin)
LAB_PATRONICTL=$(patronictl_bin)
LAB_PG_BIN=$PG_BIN
LAB_NODES=$LAB_NODES
LAB_BASE_PORT=$LAB_BASE_PORT
LAB_CONSUL_HTTP=$(server_addr):$(consul_http_port)
LAB_CONSUL_ADDR=$(server_addr)
LAB_CONSUL_HTTP_PORT=$(consul_http_port)
LAB_CONSUL_DNS_PORT=$(consul_dns_port)
LAB_CONSUL_SERVER_PORT=$(consul_server_port)
LAB_CONSUL_SERF_LAN_PORT=$(consul_lan_port)
LAB_CONSUL_SERF_WAN_PORT=$(consul_wan_port)
LAB_CONSUL_LOG=$(consul_dir)/consul.log
LAB_HAPROXY_ADDR=$HAPROXY_ADDR
LAB_HAPROXY_WRITE_PORT=$(haproxy_write_port)
LAB_HAPROXY_READ_PORT=$(haproxy_read_port)
LAB_HAPROXY_STATS_PORT=$(haproxy_stats_port)
LAB_HAPROXY_WRITE_DNS_PORT=$(haproxy_write_dns_port)
LAB_HAPROXY_WRITE_PATRONI_DNS_PORT=$(haproxy_write_patroni_dns_port)
LAB_HAPROXY_WRITE_HTTPCHK_PORT=$(haproxy_write_httpchk_port)
LAB_PROMETHEUS=$(prometheus_url)
LAB_PATRONI_PRIMARY_TAG=$(patroni_primary_tag)
LAB_HAPROXY_SOCKET=$(haproxy_dir)/admin.sock
LAB_HAPROXY_CONFIG=$(haproxy_marker)
LAB_PATRONI_SERVICE=$LAB_SCOPE
LAB_PRIMARY_SERVICE=patroni-primary
LAB_REPLICA_SERVICE=patroni-replica
LAB_SUPERUSER=postgres
LAB_SUPERUSER_PASSWORD=$LAB_SUPERUSER_PASSWORD
LAB_PGBEACON_USER=pgbeacon
LAB_PGBEACON_PASSWORD_FILE=$LAB_DIR/pgbeacon.password
EOF
  for i in $(nodes); do
    p="LAB_NODE${i}"
    cat <<EOF
${p}_NAME=$(node_name "$i")
${p}_DIR=$(node_dir "$i")
${p}_ADDR=$(node_addr "$i")
${p}_CONSUL_HTTP=$(node_consul_addr "$i"):$(node_consul_http_port "$i")
${p}_CONSUL_DNS_PORT=$(node_consul_dns_port "$i")
${p}_PG_PORT=$(pg_port "$i")
${p}_REST_PORT=$(rest_port "$i")
${p}_REST=$(rest_url "$i")
${p}_PGBOUNCER_PORT=$(pgbouncer_port "$i")
${p}_AGENT_PRIMARY_PORT=$(agent_primary_port "$i")
${p}_AGENT_REPLICA_PORT=$(agent_replica_port "$i")
${p}_AGENT_ANY_PORT=$(agent_any_port "$i")
${p}_PGBEACON_HTTP=http://$(node_addr "$i"):$(pgbeacon_http_port "$i")
${p}_PGBEACON_HTTP_PORT=$(pgbeacon_http_port "$i")
${p}_PGBEACON_CONFIG=$(pgbeacon_marker "$i")
${p}_PGBEACON_LOG=$(node_dir "$i")/pgbeacon.log
${p}_PATRONI_CONFIG=$(patroni_marker "$i")
EOF
  done
}

# Checks N and loads the recorded layout for the per-process subcommands.
node_arg() {
  load_recorded_settings
  if ! [[ "${1:-}" =~ ^[0-9]+$ ]] || [ "$1" -lt 1 ] || [ "$1" -gt "$LAB_NODES" ]; then
    die "expected a node number 1..$LAB_NODES, got '${1:-}'"
  fi
}

# consul-start/stop take an optional node number (none: the server).
consul_node_arg() {
  load_recorded_settings
  [ -z "${1:-}" ] || node_arg "$@"
}

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

main() {
  check_lab_dir
  local cmd=${1:-}; shift || true
  case "$cmd" in
    start)           cmd_start ;;
    stop)            cmd_stop ;;
    status)          cmd_status ;;
    switchover)      cmd_switchover "$@" ;;
    env)             cmd_env ;;
    pgbeacon-start)  node_arg "$@"; pgbeacon_start "$1"; pgbeacon_wait "$1" ;;
    pgbeacon-stop)   node_arg "$@"; pgbeacon_stop "$1" "${2:-TERM}" ;;
    pgbouncer-start) node_arg "$@"; pgbouncer_start "$1" ;;
    pgbouncer-stop)  node_arg "$@"; pgbouncer_stop "$1" "${2:-TERM}" ;;
    patroni-start)   node_arg "$@"; patroni_start "$1" ;;
    patroni-stop)    node_arg "$@"; patroni_stop "$1" "${2:-TERM}" ;;
    crash)           node_arg "$@"; patroni_crash "$1" ;;
    wait-healthy)    load_recorded_settings
                     wait_cluster_healthy "${1:-90}" || die "cluster not healthy" ;;
    consul-start)    consul_node_arg "$@"; consul_start "${1:-}" ;;
    consul-stop)     if [[ "${1:-}" =~ ^[0-9]+$ ]]; then node_arg "$@"; consul_stop "$1" "${2:-TERM}"
                     else load_recorded_settings; consul_stop "" "${1:-TERM}"; fi ;;
    haproxy-start)   load_recorded_settings; haproxy_start ;;
    haproxy-stop)    load_recorded_settings; haproxy_stop "${1:-TERM}" ;;
    haproxy-reload)  load_recorded_settings; haproxy_reload ;;
    prometheus-start) load_recorded_settings; write_prometheus_config; prometheus_start ;;
    prometheus-stop) load_recorded_settings; prometheus_stop ;;
    *)               usage ;;
  esac
}

main "$@"
