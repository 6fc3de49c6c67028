#!/usr/bin/env bash
# Benchmarks pgbeacon's HAProxy agent-check port the way HAProxy uses it (connect, read the line to EOF,
# close) at 1, 8 and 64 concurrent clients, and prints replies/s, latency percentiles and errors per level.
#
#   scripts/bench-agent.sh                                  # an in-process pgbeacon agent: needs nothing else
#   scripts/bench-agent.sh --host 10.0.0.11 --port 5480     # a running pgbeacon (view: primary listener)
#   scripts/bench-agent.sh --host 127.0.0.1 --port 5555 --send primary   # a listener without view
#   scripts/bench-agent.sh --seconds 10 --clients 1,8,64,256 --fin --strict
#   scripts/bench-agent.sh --compare-counting --pairs 8     # reply counting off vs on, by turns, at 8 clients
#
# Options: --seconds N per level (3), --warmup N (3), --clients LIST (1,8,64), --timeout-ms N (1000),
# --fin (close politely instead of with a reset, as HAProxy does), --strict (exit 1 when the goal at 8 clients
# — 20000 replies/s, p99 <= 2 ms, no errors — is missed), --compare-counting [--pairs N] (6; at least 3): the cost of
# counting replies (pgbeacon_agent_replies_total). BENCH_JVM sets the benchmark JVM's options. What a /metrics
# scrape costs: scripts/bench-scrape.sh.
# Runs through Maven's bench-agent profile (tests skipped); see AgentBenchmark's Javadoc.
set -euo pipefail
cd "$(dirname "$0")/.."
args="${*:-}"
exec mvn -B -ntp -q -Dstyle.color=never -Pbench-agent test -Dbench.args="$args" ${BENCH_JVM:+-Dbench.jvm="$BENCH_JVM"}
