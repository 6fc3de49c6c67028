#!/usr/bin/env bash
# The whole test suite, as the README and CI run it: installs the real components the integration tests
# drive (idempotent), then builds the jar and runs unit tests (surefire) and integration tests (failsafe):
# a real Consul agent, real PgBouncer + PostgreSQL, a real 3-node Patroni cluster with one pgbeacon per node.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -eq 0 ]; then
  bash scripts/install-deps.sh
else
  sudo bash scripts/install-deps.sh
fi

exec mvn -B -ntp verify "$@"
