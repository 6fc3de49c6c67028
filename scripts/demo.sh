#!/usr/bin/env bash
# scripts/demo.sh — pgbeacon on a real 3-node Patroni cluster on this machine, in about a minute.
#
# 1. installs what is missing: scripts/install-deps.sh (PostgreSQL 15, Patroni, PgBouncer, HAProxy, Consul,
#    consul-template, dig, jq, Java 17, Maven);
# 2. builds target/pgbeacon.jar if it is missing or older than the sources;
# 3. starts a lab (scripts/lab.sh): a Consul server, three nodes on 127.0.0.11-13 each with a Consul client
#    agent, Patroni + PostgreSQL, PgBouncer and pgbeacon; HAProxy on 127.0.0.1 using pgbeacon's agent ports;
# 4. shows what Consul, Consul DNS, each node's agent-check ports and HAProxy say, and where psql lands
#    through HAProxy's write port;
# 5. performs a switchover and shows them follow, timing Consul by polling it every 50 ms;
# 6. shows what pgbeacon itself says: `pgbeacon status` of each node, a few of its metrics, and what the lab's
#    Prometheus (scraping every pgbeacon each second) counts as the cluster's passing primaries.
#
# Usage: bash scripts/demo.sh [--keep | --stop]
#   --keep   leave the lab running at the end and print how to stop it (the default)
#   --stop   stop the lab at the end
# Ctrl-C at any point stops the lab. Running the demo again reuses a running demo lab, or starts a new one.
#
# Settings (environment):
#   DEMO_LAB_DIR=/tmp/pgbeacon-demo   DEMO_BASE_PORT=15400 (the lab uses ports B..B+60, see scripts/lab.sh)
#   LAB_PATRONI=3 (Debian's Patroni 3.0.2) | 4 (PyPI Patroni 4, installed by scripts/install-patroni4.sh)
# Runs as root, or as a user with sudo (the lab runs PostgreSQL as user postgres).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CALLER_DIR=$PWD
cd "$ROOT"

DEMO_LAB_DIR="${DEMO_LAB_DIR:-/tmp/pgbeacon-demo}"
DEMO_BASE_PORT="${DEMO_BASE_PORT:-15400}"
JAR="$ROOT/target/pgbeacon.jar"
# Each node's pgbeacon through the launcher the package installs as /usr/bin/pgbeacon (src/main/dist/bin/pgbeacon:
# its JVM options), on this build.
LAUNCHER="$ROOT/src/main/dist/bin/pgbeacon"
LAB_PGBEACON="env PGBEACON_JAR=$(printf '%q' "$JAR") $(printf '%q' "$LAUNCHER")"
POLL_MS=50

STOP_AT_END=0
SWITCH_PID=""
T0=$SECONDS

# ---------------------------------------------------------------------------------------------- output

if [ -t 1 ]; then
  BOLD=$'\e[1m' DIM=$'\e[2m' GREEN=$'\e[32m' RED=$'\e[31m' YELLOW=$'\e[33m' RESET=$'\e[0m'
else
  BOLD="" DIM="" GREEN="" RED="" YELLOW="" RESET=""
fi

say()     { printf '%s[demo %3ds]%s %s\n' "$DIM" "$((SECONDS - T0))" "$RESET" "$*"; }
die()     { printf '%s[demo %3ds] ERROR:%s %s\n' "$RED" "$((SECONDS - T0))" "$RESET" "$*" >&2; exit 1; }
section() { printf '\n%s== %s %s\n' "$BOLD" "$*" "$RESET"; }
cmd()     { printf '%s$ %s%s\n' "$DIM" "$*" "$RESET"; }

# Colours a Consul status or an agent reply by what it means for traffic.
paint() {
  case "$1" in
    warning|maint*|*drain*|up*\#*) printf '%s%s%s' "$YELLOW" "$1" "$RESET" ;;
    passing|up*)                   printf '%s%s%s' "$GREEN" "$1" "$RESET" ;;
    *)                             printf '%s%s%s' "$RED" "$1" "$RESET" ;;
  esac
}

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-0}"; }

# ------------------------------------------------------------------------------------- root and the lab

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || die "run as root, or install sudo: the lab runs PostgreSQL as user postgres"
  SUDO=(sudo)
fi
as_root() { "${SUDO[@]}" "$@"; }

# scripts/lab.sh with the demo's settings (sudo resets the environment, so they are passed explicitly).
lab() {
  as_root env LAB_DIR="$DEMO_LAB_DIR" LAB_BASE_PORT="$DEMO_BASE_PORT" LAB_PGBEACON="$LAB_PGBEACON" \
    ${LAB_PATRONI:+LAB_PATRONI="$LAB_PATRONI"} ${LAB_NODES:+LAB_NODES="$LAB_NODES"} \
    bash "$ROOT/scripts/lab.sh" "$@"
}

# How a user types a lab command from where they started the demo.
lab_hint() {
  local script=scripts/lab.sh
  [ "$CALLER_DIR" = "$ROOT" ] || script="$ROOT/scripts/lab.sh"
  printf '%sLAB_DIR=%s %s %s' "${SUDO[*]:+sudo }" "$DEMO_LAB_DIR" "$script" "$*"
}

# True when this demo's Consul server runs (the same test lab.sh makes: PID file + command line).
demo_consul_running() {
  local pid
  pid=$(cat "$DEMO_LAB_DIR/consul/consul.pid" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "$DEMO_LAB_DIR/consul/consul.hcl"
}

stop_lab() {
  [ -f "$DEMO_LAB_DIR/lab.conf" ] || return 0
  say "stopping the lab ($(lab_hint stop))"
  lab stop || true
}

stop_switchover() {
  if [ -n "$SWITCH_PID" ] && kill -0 "$SWITCH_PID" 2>/dev/null; then
    kill -TERM "$SWITCH_PID" 2>/dev/null || true
    wait "$SWITCH_PID" 2>/dev/null || true
  fi
  SWITCH_PID=""
}

on_signal() {
  trap '' INT TERM   # a second Ctrl-C must not cut the clean stop short (lab.sh inherits the ignore)
  echo
  say "interrupted"
  stop_switchover
  stop_lab
  exit 130
}

on_exit() {
  local rc=$?
  trap '' INT TERM
  stop_switchover
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 130 ]; then
    if [ "$STOP_AT_END" = 1 ]; then
      stop_lab
    elif demo_consul_running; then
      printf '\nThe lab is left as it is, for a look at the logs in %s; stop it with:\n  %s\n' \
        "$DEMO_LAB_DIR" "$(lab_hint stop)" >&2
    fi
  fi
}

# --------------------------------------------------------------------------------------------- install

java_major() {
  command -v java >/dev/null 2>&1 || { echo 0; return; }
  java -version 2>&1 | awk -F'"' '/version/ { split($2, v, "."); print (v[1] == "1" ? v[2] : v[1]); exit }'
}

install_missing() {
  say "installing what is missing (scripts/install-deps.sh)"
  as_root bash "$ROOT/scripts/install-deps.sh"
  if [ "${LAB_PATRONI:-3}" = 4 ]; then
    as_root bash "$ROOT/scripts/install-patroni4.sh"
  fi
  local packages=()
  [ "$(java_major)" -ge 17 ] || packages+=(openjdk-17-jdk-headless)
  command -v mvn >/dev/null 2>&1 || packages+=(maven)
  if [ ${#packages[@]} -gt 0 ]; then
    say "installing ${packages[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}"
  fi
}

build_jar() {
  if [ -f "$JAR" ] && [ -z "$(find src pom.xml -newer "$JAR" -print -quit)" ]; then
    say "target/pgbeacon.jar is up to date"
    return 0
  fi
  say "building target/pgbeacon.jar (mvn -B -q -ntp package -DskipTests)"
  # (-q still lets Maven 3.8 print bare colour resets: drop them, keep everything else and the exit code)
  mvn -B -q -ntp package -DskipTests 2>&1 | sed $'s/\e\\[0m//g'
  [ -f "$JAR" ] || die "the build did not produce $JAR"
}

# ---------------------------------------------------------------------------------------------- the lab

declare -A ENV=()

load_lab_env() {
  local key value
  while IFS='=' read -r key value; do ENV[$key]=$value; done < <(lab env)
  [ -n "${ENV[LAB_CONSUL_HTTP_PORT]:-}" ] || die "could not read the lab's layout (lab.sh env)"
  CONSUL="http://${ENV[LAB_CONSUL_HTTP]}"
  DNS_ADDR=${ENV[LAB_CONSUL_ADDR]}
  DNS_PORT=${ENV[LAB_CONSUL_DNS_PORT]}
  SCOPE=${ENV[LAB_SCOPE]}
  PRIMARY_TAG=${ENV[LAB_PATRONI_PRIMARY_TAG]}
  HAPROXY=${ENV[LAB_HAPROXY_ADDR]}
  NODES=()
  local i count=${ENV[LAB_NODES]}
  for ((i = 1; i <= count; i++)); do NODES+=("${ENV[LAB_NODE${i}_NAME]}"); done
}

start_lab() {
  if ! demo_consul_running && (exec 3<>"/dev/tcp/127.0.0.10/$DEMO_BASE_PORT") 2>/dev/null; then
    die "port $DEMO_BASE_PORT is taken by another program (another lab? LAB_DIR=<its dir> scripts/lab.sh stop);" \
      "or give the demo other ports: DEMO_BASE_PORT=15500 bash scripts/demo.sh"
  fi
  say "starting the lab in $DEMO_LAB_DIR: a Consul server, ${LAB_NODES:-3} nodes (Consul agent, Patroni + PostgreSQL 15, PgBouncer, pgbeacon), HAProxy"
  if ! lab start; then
    say "the lab did not come up; stopping it and starting a fresh one"
    lab stop || true
    lab start || die "the lab did not start (logs: $DEMO_LAB_DIR/consul/consul.log, $DEMO_LAB_DIR/node*/*.log)"
  fi
  load_lab_env
  # A demo lab left running by an earlier run may run an older jar: restart those pgbeacons.
  local i
  for ((i = 1; i <= ${#NODES[@]}; i++)); do
    if [ "$JAR" -nt "$DEMO_LAB_DIR/node$i/pgbeacon.pid" ]; then
      say "restarting pgbeacon on ${NODES[i-1]}: the jar is newer than the running process"
      lab pgbeacon-stop "$i"
      lab pgbeacon-start "$i"
    fi
  done
}

# ------------------------------------------------------------------------------------------- observing

consul_get() { curl -sf --max-time 2 "$CONSUL$1"; }

# The nodes whose instance of SERVICE passes, sorted, space-separated ("?" when Consul did not answer).
passing_nodes() {
  local json
  json=$(consul_get "/v1/health/service/$1?passing") || { echo "?"; return; }
  jq -r '[.[].Service.Meta.node] | sort | join(" ")' <<<"$json"
}

wait_until() { # SECONDS DESCRIPTION COMMAND... — poll every 0.25 s; the description is for the reader
  local deadline=$((SECONDS + $1)); shift 2
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.25
  done
}

one_primary()  { local p; p=$(passing_nodes patroni-primary); [ -n "$p" ] && [ "$p" != "?" ] && [ "$(wc -w <<<"$p")" = 1 ]; }
converged_on() { [ "$(passing_nodes patroni-primary)" = "$1" ] && [ "$(passing_nodes patroni-replica)" = "$(others "$1")" ]; }
others()       { local n; for n in "${NODES[@]}"; do [ "$n" = "$1" ] || printf '%s\n' "$n"; done | sort | paste -sd' '; }

node_of_addr() { # a node's address → its name
  local i
  for ((i = 1; i <= ${#NODES[@]}; i++)); do
    [ "${ENV[LAB_NODE${i}_ADDR]}" = "$1" ] && { echo "${NODES[i-1]}"; return; }
  done
  echo "?"
}

agent_reply() { # ADDRESS PORT → the line the agent answers, as HAProxy reads it
  local line
  line=$( (exec 3<>"/dev/tcp/$1/$2" && IFS= read -r -t 2 reply <&3 && printf '%s' "$reply") 2>/dev/null ) || true
  printf '%s' "${line:-(no answer)}"
}

show_consul() {
  local service
  # (the lab's agents set check_update_interval = 0s, so the catalog carries each check's current output)
  cmd "curl -s $CONSUL/v1/health/service/patroni-primary | jq ...   (and patroni-replica)"
  printf '  %s%-16s %-6s %-9s %-27s %-16s %s%s\n' "$BOLD" SERVICE NODE CHECK TAGS ADDRESS OUTPUT "$RESET"
  for service in patroni-primary patroni-replica; do
    consul_get "/v1/health/service/$service" | jq -r '
        sort_by(.Service.Meta.node)[]
        | (.Checks[] | select(.ServiceID != "")) as $check
        | [.Service.Service, .Service.Meta.node, $check.Status, (.Service.Tags | join(",")),
           "\(.Service.Address):\(.Service.Port)", $check.Output] | @tsv' \
      | while IFS=$'\t' read -r name node status tags address output; do
          printf '  %-16s %-6s %s%*s %-27s %-16s %s\n' "$name" "$node" "$(paint "$status")" $((9 - ${#status})) '' \
            "$tags" "$address" "$output"
        done || true  # a failed read shows as an empty table, not the end of the demo
  done
  printf '  passing, as ?passing returns them: patroni-primary = [%s], patroni-replica = [%s]\n' \
    "$(passing_nodes patroni-primary)" "$(passing_nodes patroni-replica)"
}

show_dns() {
  local service type line
  for service in patroni-primary patroni-replica; do
    for type in SRV A; do
      cmd "dig @$DNS_ADDR -p $DNS_PORT $service.service.consul $type +short"
      dig @"$DNS_ADDR" -p "$DNS_PORT" "$service.service.consul" "$type" +short +time=2 +tries=1 | sort \
        | while read -r line; do
            if [ "$type" = A ]; then
              printf '  %-44s %s<- %s%s\n' "$line" "$DIM" "$(node_of_addr "$line")" "$RESET"
            else
              printf '  %s\n' "$line"
            fi
          done || true  # dig exits 9 on a timeout: show no answer, go on
    done
  done
}

show_agents() {
  local i port reply
  local addr
  cmd "read -r line < /dev/tcp/<node address>/<port>   (what HAProxy's agent-check reads)"
  printf '  %s%-6s %-48s %s%s\n' "$BOLD" NODE "PRIMARY VIEW" "REPLICA VIEW" "$RESET"
  for ((i = 1; i <= ${#NODES[@]}; i++)); do
    addr=${ENV[LAB_NODE${i}_ADDR]}
    port=${ENV[LAB_NODE${i}_AGENT_PRIMARY_PORT]}
    reply=$(agent_reply "$addr" "$port")
    printf '  %-6s %s:%s%s %s%*s' "${NODES[i-1]}" "$DIM" "$port" "$RESET" "$(paint "$reply")" $((41 - ${#reply})) ''
    port=${ENV[LAB_NODE${i}_AGENT_REPLICA_PORT]}
    reply=$(agent_reply "$addr" "$port")
    printf ' %s:%s%s %s\n' "$DIM" "$port" "$RESET" "$(paint "$reply")"
  done
}

# HAProxy's view of its write and read backends (its stats page in CSV), and a real psql through each port.
show_haproxy() {
  local stats="http://$HAPROXY:${ENV[LAB_HAPROXY_STATS_PORT]}/stats;csv"
  cmd "curl -s '$stats' | cut -d, -f1,2,18   (pxname, svname, status)"
  curl -sf --max-time 2 "$stats" | awk -F, '($1 == "write" || $1 == "read") && $2 != "FRONTEND" && $2 != "BACKEND" { print $1, $2, $18 }' \
    | while read -r backend server status; do
        printf '  %-6s %-6s %s\n' "$backend" "$server" "$(paint "$status")"
      done || true
  local port answer
  for port in LAB_HAPROXY_WRITE_PORT LAB_HAPROXY_READ_PORT; do
    cmd "psql -h $HAPROXY -p ${ENV[$port]} -U postgres -Atc 'select pg_is_in_recovery(), inet_server_addr()'"
    answer=$(PGPASSWORD=${ENV[LAB_SUPERUSER_PASSWORD]} PGCONNECT_TIMEOUT=3 "${ENV[LAB_PG_BIN]}/psql" -h "$HAPROXY" \
      -p "${ENV[$port]}" -U postgres -d postgres -XAtc 'select pg_is_in_recovery(), host(inet_server_addr())' 2>&1 | head -1) || true  # show psql's error
    printf '  %s   %s<- %s%s\n' "$answer" "$DIM" "$(node_of_addr "${answer#*|}")" "$RESET"
  done
}

# pgbeacon's own account, from its HTTP port: `pgbeacon status` of each node, then a few /metrics lines of the new
# primary, then Prometheus's count of passing primaries per cluster.
show_pgbeacon() {
  local i config
  for ((i = 1; i <= ${#NODES[@]}; i++)); do
    config=${ENV[LAB_NODE${i}_PGBEACON_CONFIG]}
    cmd "pgbeacon status --config $config"
    PGBEACON_JAR=$JAR "$LAUNCHER" status --config "$config" 2>&1 | sed 's/^/  /' || true
  done
  local primary=$1 url
  url=${ENV[LAB_NODE${primary#node}_PGBEACON_HTTP]}/metrics
  cmd "curl -s $url | grep -E '^pgbeacon_(view_status.*passing|view_transitions_total|consul_push_age_seconds)'"
  curl -sf --max-time 2 "$url" \
    | grep -E '^pgbeacon_(view_status\{.*status="passing"|view_transitions_total|consul_push_age_seconds)' \
    | sed 's/^/  /' || true
  local query='sum by (scope) (pgbeacon_view_status{view="primary",status="passing"})'
  cmd "curl -s ${ENV[LAB_PROMETHEUS]}/api/v1/query --data-urlencode 'query=$query'"
  curl -sf --max-time 2 "${ENV[LAB_PROMETHEUS]}/api/v1/query" --data-urlencode "query=$query" \
    | jq -r '.data.result[] | "  scope \(.metric.scope): \(.value[1]) passing primary"' || true
  query='pgbeacon_view_status{view="primary",status="passing"} == 1'
  curl -sf --max-time 2 "${ENV[LAB_PROMETHEUS]}/api/v1/query" --data-urlencode "query=$query" \
    | jq -r '.data.result[] | "  Prometheus names \(.metric.node) (\(.metric.instance))"' || true
}

show_everything() {
  section "Consul: the services pgbeacon registers (a verdict check and a liveness check each)"
  show_consul
  section "Consul DNS"
  show_dns
  section "pgbeacon's HAProxy agent-check ports (one per view on each node)"
  show_agents
  section "HAProxy (write port ${ENV[LAB_HAPROXY_WRITE_PORT]} -> primary, read port ${ENV[LAB_HAPROXY_READ_PORT]} -> replicas)"
  show_haproxy
}

now_ms() { local t=${EPOCHREALTIME//[.,]/}; echo $((t / 1000)); }

# One sample of Consul's passing checks: "<pgbeacon's passing primaries> <count> <Patroni's passing masters>".
sample() {
  # A service passes when every check of it (pgbeacon's verdict and liveness checks) and of its node passes: what
  # ?passing answers, for both services in one call.
  consul_get /v1/health/state/any | jq -r --arg scope "$SCOPE" --arg tag "$PRIMARY_TAG" '
    [.[] | select(.ServiceID == "" and .Status != "passing") | .Node] as $sick
    | [group_by(.Node + "/" + .ServiceID)[] | select(.[0].ServiceID != "" and all(.Status == "passing"))
       | .[0] | select(.Node as $n | $sick | index($n) | not)] as $up
    | ([$up[] | select(.ServiceName == "patroni-primary" and (.ServiceID | startswith("patroni-primary/" + $scope + "/")))
       | .ServiceID | split("/") | last] | sort) as $p
    | [$up[] | select(.ServiceName == $scope and (.ServiceTags // [] | index($tag)))] as $m
    | "\($p | join(",") | if . == "" then "-" else . end) \($p | length) \($m | length)"'
}

switchover() {
  # Not in the lab's directory: under sudo that is root's, and this redirect is the caller's.
  local leader=$1 candidate=$2 log; log=$(mktemp "${TMPDIR:-/tmp}/pgbeacon-demo-switchover.XXXXXX")
  section "Switchover $leader -> $candidate"
  cmd "$(lab_hint switchover "$candidate")"
  printf '  polling Consul every %d ms from the request on...\n' "$POLL_MS"

  local started_at; started_at=$(date '+%Y-%m-%d %H:%M:%S.%3N')   # as pgbeacon's log stamps its lines
  local t0; t0=$(now_ms)
  lab switchover "$candidate" >"$log" 2>&1 &
  SWITCH_PID=$!

  local next=$t0 now line names count masters samples=0 named_ms="" max_pgb=0 max_patroni=0
  local zero_since="" zero_ms=0 deadline=$((t0 + 90000)) switching=1
  while :; do
    now=$(now_ms)
    if line=$(sample 2>/dev/null) && [ -n "$line" ]; then
      read -r names count masters <<<"$line"
      samples=$((samples + 1))
      ((count > max_pgb)) && max_pgb=$count
      ((masters > max_patroni)) && max_patroni=$masters
      if [ "$count" = 0 ]; then
        [ -n "$zero_since" ] || zero_since=$now
      elif [ -n "$zero_since" ]; then
        zero_ms=$((zero_ms + now - zero_since)); zero_since=""
      fi
      if [ -z "$named_ms" ] && [ "$names" = "$candidate" ]; then
        named_ms=$((now - t0))
        printf '  %sConsul names %s the only passing patroni-primary %d.%03d s after the request%s\n' \
          "$BOLD" "$candidate" $((named_ms / 1000)) $((named_ms % 1000)) "$RESET"
      fi
    fi
    if [ "$switching" = 1 ] && ! kill -0 "$SWITCH_PID" 2>/dev/null; then
      switching=0
      if ! wait "$SWITCH_PID"; then
        SWITCH_PID=""
        sed 's/^/  /' "$log" >&2
        die "the switchover failed (log: $log)"
      fi
      SWITCH_PID=""
    fi
    # Sample on until the switchover command is done (replicas streaming again) and Consul has followed.
    [ "$switching" = 0 ] && [ -n "$named_ms" ] && break
    [ "$now" -lt "$deadline" ] || die "Consul did not name $candidate within 90 s (log: $log)"
    next=$((next + POLL_MS))
    now=$(now_ms)
    if ((next > now)); then sleep "$(printf '0.%03d' $((next - now)))"; else next=$now; fi
  done
  [ -z "$zero_since" ] || zero_ms=$((zero_ms + $(now_ms) - zero_since))

  sed -n 's/^\[lab *[0-9]*s\] /  lab.sh: /p' "$log" | grep -E 'switchover|new leader|healthy' || true
  rm -f "$log"
  printf '  %s samples over %d.%d s; passing patroni-primary instances at once: at most %s%s%s;' \
    "$samples" $(( ($(now_ms) - t0) / 1000 )) $(( ($(now_ms) - t0) % 1000 / 100 )) "$BOLD" "$max_pgb" "$RESET"
  printf ' none for %d.%03d s (old primary withdrawn, new one not yet promoted)\n' $((zero_ms / 1000)) $((zero_ms % 1000))
  printf "  Patroni's own register_service (service %s, tag %s), same samples: at most %s%s%s passing at once\n" \
    "$SCOPE" "$PRIMARY_TAG" "$BOLD" "$max_patroni" "$RESET"

  wait_until 30 "Consul to list $candidate as primary and the others as replicas" converged_on "$candidate" \
    || say "Consul has not listed every replica as passing yet (see below)"

  printf '\n  what the two pgbeacons decided meanwhile (verdict changes from their logs):\n'
  local n
  for n in "$leader" "$candidate"; do
    awk -v since="$started_at" '($1 " " $2) >= since && /verdict:/ { t = $2; sub(/^.*MonitorVerticle - /, ""); print "  " t "  " $0 }' \
      "$DEMO_LAB_DIR/node${n#node}/pgbeacon.log"
  done | sort
}

footer() {
  section "Look around"
  cat <<EOF
  Consul UI     $CONSUL/ui/   (loopback only; from elsewhere: ssh -L ${ENV[LAB_CONSUL_HTTP_PORT]}:${ENV[LAB_CONSUL_HTTP]} <this host>)
  Consul CLI    consul members -http-addr=${ENV[LAB_CONSUL_HTTP]}
  HAProxy       http://$HAPROXY:${ENV[LAB_HAPROXY_STATS_PORT]}/stats    psql -h $HAPROXY -p ${ENV[LAB_HAPROXY_WRITE_PORT]} -U postgres (password ${ENV[LAB_SUPERUSER_PASSWORD]})
  pgbeacon      ${ENV[LAB_NODE1_PGBEACON_HTTP]}/status  /metrics  /health  /primary  /replica   (node1; the others alike)
  Prometheus    ${ENV[LAB_PROMETHEUS]}/alerts   (the shipped alert rules, evaluated against the lab)
  Lab status    $(lab_hint status)
  Logs          $DEMO_LAB_DIR/node1/pgbeacon.log (patroni.log, pgbouncer.log, postgresql.log alongside)
                $DEMO_LAB_DIR/consul/consul.log, $DEMO_LAB_DIR/haproxy/haproxy.log
  Try           $(lab_hint switchover)              another switchover
                $(lab_hint pgbouncer-stop 1)        PgBouncer down: node1's checks turn critical
                $(lab_hint pgbouncer-start 1)       ... and back
                $(lab_hint pgbeacon-stop 2 KILL)    no goodbye: node2's TTL (10 s) expires
                $(lab_hint pgbeacon-start 2)        ... and back
                $(lab_hint crash 1)                 hard failover: SIGKILL Patroni + PostgreSQL on node1
EOF
}

# ------------------------------------------------------------------------------------------------ main

main() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --keep) STOP_AT_END=0 ;;
      --stop) STOP_AT_END=1 ;;
      -h|--help) usage 0 ;;
      *) printf 'unknown option: %s\n\n' "$1" >&2; usage 2 >&2 ;;
    esac
    shift
  done
  trap on_signal INT TERM
  trap on_exit EXIT

  install_missing
  build_jar
  start_lab

  say "waiting for Consul to show exactly one passing patroni-primary"
  wait_until 90 "one passing patroni-primary" one_primary \
    || die "Consul does not show exactly one passing patroni-primary: [$(passing_nodes patroni-primary)] (logs: $DEMO_LAB_DIR/node*/pgbeacon.log)"
  local leader; leader=$(passing_nodes patroni-primary)
  wait_until 30 "the replicas" converged_on "$leader" || say "not every replica passes yet (see below)"
  say "Consul names $leader as the primary"

  show_everything

  local candidate; candidate=$(others "$leader" | awk '{print $1}')
  switchover "$leader" "$candidate"

  show_everything
  section "pgbeacon's own account (its HTTP port: /status, /metrics) and the lab's Prometheus"
  # Prometheus scrapes every second: give it a scrape after the last change.
  sleep 2
  show_pgbeacon "$candidate"

  footer
  if [ "$STOP_AT_END" = 1 ]; then
    section "Stopping the lab (--stop)"
    stop_lab
  else
    section "The lab keeps running"
    printf '  Stop it with:  %s\n' "$(lab_hint stop)"
  fi
}

main "$@"
