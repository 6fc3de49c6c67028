#!/usr/bin/env bash
# Benchmarks what a Prometheus scrape of pgbeacon's /metrics costs: an in-process pgbeacon (a real Consul dev agent,
# the recorded Patroni 4.1.5 node1) scraped back to back over one keep-alive connection; prints the body's bytes and
# series, latency mean/p50/p99, CPU per scrape (JVM, client, the serving event loop, the rest less the daemon's idle)
# and the heap it allocates; then the agent port's replies/s at 8 clients with a scrape a second and without.
#
#   scripts/bench-scrape.sh                                  # 2000 scrapes after 500 of warm-up
#   scripts/bench-scrape.sh --scrapes 5000 --openmetrics     # as Prometheus asks with OpenMetrics negotiation
#   scripts/bench-scrape.sh --agent-seconds 0                # the scrape figures only
#
# Options: --scrapes N (2000), --warmup N (500), --openmetrics, --idle-seconds N (10: the idle CPU taken off),
# --agent-seconds N per run (5; 0 skips the agent part), --agent-pairs N (3), --agent-warmup N (5). Needs consul
# (scripts/install-deps.sh).
# BENCH_JVM sets the benchmark JVM's options. Runs through Maven's bench-scrape profile (tests skipped); see
# ScrapeBenchmark's Javadoc.
set -euo pipefail
cd "$(dirname "$0")/.."
args="${*:-}"
exec mvn -B -ntp -q -Dstyle.color=never -Pbench-scrape test -Dbench.args="$args" ${BENCH_JVM:+-Dbench.jvm="$BENCH_JVM"}
