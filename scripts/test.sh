#!/usr/bin/env bash
# The whole test suite, as the README and CI run it: installs the real components the integration tests
# drive (idempotent), then builds the jar and runs unit tests (surefire) and integration tests (failsafe):
# a real Consul agent, real PgBouncer + PostgreSQL, real 3-node Patroni clusters (3.0.2 and 4.x) with one
# pgbeacon per node, HAProxy and consul-template. Extra arguments go to Maven, e.g. -Dit.test=ClusterIT.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO bash scripts/install-deps.sh
$SUDO bash scripts/install-patroni4.sh         # the end-to-end suite runs on Patroni 3.0.2 and on 4.x
$SUDO bash scripts/install-consul-template.sh  # ConsulTemplateIT renders HAProxy configs with it

exec mvn -B -ntp verify "$@"
