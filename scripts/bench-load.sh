#!/usr/bin/env bash
# scripts/bench-load.sh — what one pgbeacon costs its node, two jars side by side in one run: Patroni REST
# requests/s by path (/primary, /cluster, other), Consul calls, CPU (% of one core, /proc/<pid>/stat utime+stime)
# and WARN lines, at steady state (replica and primary), during a promotion and a demotion of the node, during an
# outage of the node's Consul agent and after it.
#
# Usage: sudo bash scripts/bench-load.sh [--baseline JAR] [--jar JAR] [--steady 60s] [--outage 10m]
#                                        [--warmup 60s] [--patroni 3|4] [--lab-dir DIR] [--port N]
#   --baseline  the jar to compare with (default /work/baseline/pgbeacon-1e7f149.jar)
#   --jar       the jar under test (default target/pgbeacon.jar: mvn -B -ntp -q package -DskipTests)
#   --steady    length of each steady-state phase (three of them); --outage: how long the agent is down
#   --warmup    before the first phase (a pgbeacon's CPU falls for about its first minute: class loading, JIT)
#   --patroni   the lab's Patroni: 3 (Debian 3.0.2) or 4 (scripts/install-patroni4.sh)
#   --lab-dir, --port  the lab's LAB_DIR and first port (default /tmp/pgbeacon-bench-load and 17400); the jars'
#               proxies, agent ports and HTTP endpoints are the lab's first port + 70..74 and + 80..84
# Any jar works whose CLI is `java -jar JAR run --config FILE` and that reads the config format of
# consul/pgbeacon.example.yml. Starts its own lab (LAB_DIR /tmp/pgbeacon-bench-load, ports from 17400, see
# scripts/lab.sh) without the lab's pgbeacons, runs both jars on one replica node through counting proxies
# (ports 17470-17474 and 17480-17484 on the node's address), and stops everything at the end, on failure and on
# Ctrl-C. Logs and configs stay in /tmp/pgbeacon-bench-load/bench/. tcpdump (if installed) counts the refused
# Consul connection attempts during the outage. A default run takes about 16 minutes; --steady 20s --outage 1m
# about 5. See LoadBenchmark's Javadoc.
set -euo pipefail

die() { echo "bench-load: $*" >&2; exit 2; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

repo=$(cd "$(dirname "$0")/.." && pwd)
baseline=/work/baseline/pgbeacon-1e7f149.jar
jar=$repo/target/pgbeacon.jar
steady=60s outage=10m warmup=60s patroni=3 labdir=/tmp/pgbeacon-bench-load port=17400

while [ $# -gt 0 ]; do
  case "$1" in
    --baseline) [ $# -ge 2 ] || usage; baseline=$(realpath -m -- "$2"); shift 2 ;;
    --jar)      [ $# -ge 2 ] || usage; jar=$(realpath -m -- "$2"); shift 2 ;;
    --steady)   [ $# -ge 2 ] || usage; steady=$2; shift 2 ;;
    --outage)   [ $# -ge 2 ] || usage; outage=$2; shift 2 ;;
    --warmup)   [ $# -ge 2 ] || usage; warmup=$2; shift 2 ;;
    --patroni)  [ $# -ge 2 ] || usage; patroni=$2; shift 2 ;;
    --lab-dir)  [ $# -ge 2 ] || usage; labdir=$(realpath -m -- "$2"); shift 2 ;;
    --port)     [ $# -ge 2 ] || usage; port=$2; shift 2 ;;
    -h|--help)  usage ;;
    *)          die "unknown argument '$1' (--help)" ;;
  esac
done

for d in "$steady" "$outage" "$warmup"; do
  [[ "$d" =~ ^[0-9]+(ms|s|m|h)$ ]] || die "not a duration (e.g. 20s, 10m): '$d'"
done
[[ "$patroni" =~ ^[34]$ ]] || die "--patroni must be 3 or 4, not '$patroni'"
[[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -ge 1024 ] && [ "$port" -le 65400 ] || die "--port must be 1024..65400, not '$port'"
[ -f "$baseline" ] || die "no baseline jar at $baseline"
[ -f "$jar" ] || die "no jar under test at $jar (build it: mvn -B -ntp -q package -DskipTests)"
case "$baseline$jar$labdir" in *[[:space:]]*) die "jar and lab paths must not contain spaces" ;; esac
[ "$(id -u)" = 0 ] || die "run as root: the lab runs PostgreSQL as postgres, tcpdump needs root"

cd "$repo"
exec mvn -B -ntp -q -Dstyle.color=never -Pbench-load test \
  -Dbench.args="--baseline $baseline --jar $jar --steady $steady --outage $outage --warmup $warmup --patroni $patroni --lab-dir $labdir --port $port"
