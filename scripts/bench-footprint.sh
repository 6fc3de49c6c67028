#!/usr/bin/env bash
# scripts/bench-footprint.sh — what one pgbeacon costs over a long steady run: RSS (with Native Memory Tracking's
# breakdown and the classes loaded by library), CPU (% of one core), threads and open FDs at the start, at the end
# and as a slope per hour, and the time from start to the first verdict — for the jar and launcher of a baseline
# commit (its scripts/pgbeacon, and plain `java -jar`) beside the jar and launcher under test, each on a replica
# and on the primary of a lab of its own.
#
# Usage: sudo bash scripts/bench-footprint.sh [--length 10m] [--warmup 60s] [--port 18700] [--patroni 3|4]
#                                             [--scrape 15s|off] [--nmt on|off] [--before-rev REV]
#                                             [--before JAR --before-launcher FILE] [--jar JAR] [--launcher FILE]
#                                             [--also 'LABEL=JVM OPTIONS']...
#   --length    the run, from the last pgbeacon's start (default 10m); --warmup: its first part, left out of
#               the slopes and the steady CPU (class loading, JIT)
#   --port      the lab's base port B (default 18700); the lab takes B..B+60, the pgbeacons B+40..B+59
#   --scrape    each pgbeacon's /metrics is fetched this often (default 15s, Prometheus's default; off: never)
#   --nmt       on (default): a twin of each way of running on the replica with -XX:NativeMemoryTracking=summary
#               and -Xlog:class+load, for the breakdown (NMT costs memory itself: RSS comes from the others)
#   --before-rev  the baseline commit (default 1a6e706): its jar is built once into
#               /tmp/pgbeacon-bench-foot-before/REV/ (git archive + mvn -o package), its launcher taken from git
#   --before, --before-launcher   a baseline jar and launcher script instead
#   --jar       the jar under test (default target/pgbeacon.jar: mvn -B -ntp -q package -DskipTests)
#   --launcher  the launcher under test (default src/main/dist/bin/pgbeacon), run as `sh FILE run --config …` with
#               PGBEACON_JAR set
#   --also      one more way of running (only with --nmt off, up to three): `java OPTIONS -jar JAR`, for trying
#               options side by side
# Starts its own lab (LAB_DIR /tmp/pgbeacon-bench-foot) without the lab's pgbeacons, starts the pgbeacons one after
# another (each once the previous one gave its first verdict), and stops everything at the end, on failure and on
# Ctrl-C. Logs, configs and summary.txt stay in /tmp/pgbeacon-bench-foot/bench/. A default run takes about 13
# minutes (lab start, nine pgbeacons' starts, 10 minutes). See FootprintBenchmark's Javadoc.
set -euo pipefail

die() { echo "bench-footprint: $*" >&2; exit 2; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

repo=$(cd "$(dirname "$0")/.." && pwd)
before_rev=1a6e706 before="" before_launcher=""
jar=$repo/target/pgbeacon.jar launcher=$repo/src/main/dist/bin/pgbeacon
args=()

while [ $# -gt 0 ]; do
  case "$1" in
    --before-rev)      [ $# -ge 2 ] || usage; before_rev=$2; shift 2 ;;
    --before)          [ $# -ge 2 ] || usage; before=$(realpath -m -- "$2"); shift 2 ;;
    --before-launcher) [ $# -ge 2 ] || usage; before_launcher=$(realpath -m -- "$2"); shift 2 ;;
    --jar)             [ $# -ge 2 ] || usage; jar=$(realpath -m -- "$2"); shift 2 ;;
    --launcher)        [ $# -ge 2 ] || usage; launcher=$(realpath -m -- "$2"); shift 2 ;;
    --length|--warmup|--scrape|--port|--patroni|--nmt)
                       [ $# -ge 2 ] || usage; args+=("$1" "$2"); shift 2 ;;
    --also)            [ $# -ge 2 ] || usage; args+=("$1" "$2"); shift 2 ;;
    -h|--help)         usage ;;
    *)                 die "unknown argument '$1' (--help)" ;;
  esac
done

[ "$(id -u)" = 0 ] || die "run as root: the lab runs PostgreSQL as postgres"
[ -f "$jar" ] || die "no jar under test at $jar (build it: mvn -B -ntp -q package -DskipTests)"
[ -f "$launcher" ] || die "no launcher at $launcher"
[[ "$before_rev" =~ ^[0-9a-zA-Z._/-]+$ ]] || die "not a revision: '$before_rev'"

# The baseline: built once per revision, outside LAB_DIR (lab.sh start wipes parts of it).
if [ -z "$before" ] || [ -z "$before_launcher" ]; then
  base=/tmp/pgbeacon-bench-foot-before/$before_rev
  if [ ! -f "$base/pgbeacon.jar" ]; then
    echo "bench-footprint: building the baseline $before_rev into $base (git archive + mvn -o package)"
    rm -rf "$base/src" && mkdir -p "$base/src"
    git -C "$repo" archive "$before_rev" | tar -x -C "$base/src"
    (cd "$base/src" && mvn -B -ntp -q -o -Dstyle.color=never package -DskipTests)
    cp "$base/src/target/pgbeacon.jar" "$base/pgbeacon.jar"
    rm -rf "$base/src"
  fi
  git -C "$repo" show "$before_rev:scripts/pgbeacon" > "$base/pgbeacon"
  [ -n "$before" ] || before=$base/pgbeacon.jar
  [ -n "$before_launcher" ] || before_launcher=$base/pgbeacon
fi
[ -f "$before" ] || die "no baseline jar at $before"
[ -f "$before_launcher" ] || die "no baseline launcher at $before_launcher"

# exec:java splits bench.args on spaces, quotes kept together: quote each argument.
quoted=""
for a in --before "$before" --before-launcher "$before_launcher" --before-rev "$before_rev" --jar "$jar" \
         --launcher "$launcher" "${args[@]}"; do
  case "$a" in *\"*|*\'*) die "arguments must not contain quotes: $a" ;; esac
  quoted+=" \"$a\""
done

cd "$repo"
exec mvn -B -ntp -q -o -Dstyle.color=never -Pbench-footprint test -Dbench.args="$quoted"
