#!/usr/bin/env bash
# scripts/bench-propagation.sh — how fast each consumer follows a switchover, pgbeacon next to Patroni's own
# consul.register_service, measured in the same run on the same switchovers.
#
# Usage: sudo bash scripts/bench-propagation.sh [SWITCHOVERS] [PATRONI]   (defaults: 6 switchovers, Patroni 3)
# Starts its own lab (LAB_DIR /tmp/pgbeacon-bench-lab, ports from 15600: see scripts/lab.sh), stops it at the end.
# Prints, per switchover and as median/p95, the seconds from Patroni's leader key changing hands until each
# consumer names only the new primary, and how long each showed two primaries or none.
set -euo pipefail
cd "$(dirname "$0")/.."
switchovers=${1:-6}
patroni=${2:-3}
exec mvn -B -ntp -q -Pbench-propagation verify -Dswitchovers="$switchovers" -Dpgbeacon.lab.patroni="$patroni"
