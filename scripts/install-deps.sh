#!/usr/bin/env bash
# Installs the real components pgbeacon's tests and demo talk to, idempotently:
#   Java 17 + Maven (if missing), PostgreSQL 15 server, PgBouncer, HAProxy, Patroni 3.0.2 (Debian) with
#   python3-consul, python3-venv (for Patroni 4's venv), dig, jq, curl, openssl, procps, tcpdump, Prometheus 2.42
#   (and its promtool), lintian, systemd (for systemd-analyze), man-db, adduser,
#   Consul 1.8.7 (Debian bullseye package), and consul-template (built with Go, scripts/install-consul-template.sh).
#   Patroni 4 (PyPI venv) is scripts/install-patroni4.sh.
# Run as root on Debian 12 (bookworm). Safe to run again: every step checks first.
set -euo pipefail

log() { printf '[install-deps] %s\n' "$*"; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Debian's postinst scripts try to start services; there is no init system here and we start
# everything by hand, so forbid service starts during the install.
with_no_service_start() {
  local policy=/usr/sbin/policy-rc.d created=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod +x "$policy"
    created=1
  fi
  local rc=0
  "$@" || rc=$?  # (under set -e a bare failing "$@" would exit here and leave the policy behind)
  if [ "$created" = 1 ]; then $SUDO rm -f "$policy"; fi
  return $rc
}

apt_packages=()
command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || apt_packages+=(pgbouncer)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || apt_packages+=(haproxy)
command -v patroni >/dev/null 2>&1 || apt_packages+=(patroni)
# patroni depends on "python3-etcd | python3-consul | …" and apt picks etcd: ask for Consul's explicitly.
# Ask Debian's interpreter (the one /usr/bin/patroni runs), isolated (-I): without it the current directory is on
# sys.path, and from this repository's root our own consul/ directory imports as an (empty) namespace package.
/usr/bin/python3 -I -c 'import consul' >/dev/null 2>&1 || apt_packages+=(python3-consul)
command -v jq >/dev/null 2>&1 || apt_packages+=(jq)
command -v pgrep >/dev/null 2>&1 || apt_packages+=(procps)
# scripts/install-patroni4.sh makes a venv with Debian's python3: it needs ensurepip (python3-venv).
/usr/bin/python3 -I -c 'import ensurepip' >/dev/null 2>&1 || apt_packages+=(python3-venv)
command -v curl >/dev/null 2>&1 || apt_packages+=(curl)
[ -x /usr/lib/postgresql/15/bin/postgres ] || apt_packages+=(postgresql-15)
command -v psql >/dev/null 2>&1 || apt_packages+=(postgresql-client-15)
command -v dig >/dev/null 2>&1 || apt_packages+=(dnsutils)
command -v openssl >/dev/null 2>&1 || apt_packages+=(openssl)
# The lab's Prometheus scrapes every pgbeacon; promtool checks /metrics and the shipped alert rules.
[ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ] || apt_packages+=(prometheus)
# scripts/bench-load.sh counts refused Consul connections with it (the benchmark only).
command -v tcpdump >/dev/null 2>&1 || [ -x /usr/bin/tcpdump ] || apt_packages+=(tcpdump)
# PackageIT checks the Debian package with lintian and the units with systemd-analyze verify (systemd need not run
# as PID 1 for that; container images often lack the package), and installs it for real (adduser: its postinst).
command -v lintian >/dev/null 2>&1 || apt_packages+=(lintian)
command -v systemd-analyze >/dev/null 2>&1 || apt_packages+=(systemd)
command -v adduser >/dev/null 2>&1 || [ -x /usr/sbin/adduser ] || apt_packages+=(adduser)
# systemd-analyze verify runs `man` for the units' Documentation=man:pgbeacon(1).
command -v man >/dev/null 2>&1 || apt_packages+=(man-db)
# The build itself: Java 17 and Maven (preinstalled on some images, not on a plain Debian 12).
command -v javac >/dev/null 2>&1 || apt_packages+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null 2>&1 || apt_packages+=(maven)

if [ ${#apt_packages[@]} -gt 0 ]; then
  log "installing ${apt_packages[*]}"
  $SUDO apt-get update -qq
  with_no_service_start $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_packages[@]}"
else
  log "Debian packages already present"
fi

# Consul is not in bookworm; Debian bullseye ships 1.8.7 as a static binary.
if ! command -v consul >/dev/null 2>&1; then
  log "installing consul from Debian bullseye"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/lists/partial"
  echo "deb http://deb.debian.org/debian bullseye main" > "$work/sources.list"
  apt_opts=(-o Dir::Etc::sourcelist="$work/sources.list" -o Dir::Etc::sourceparts=/dev/null
            -o Dir::State::Lists="$work/lists" -o APT::Get::List-Cleanup=0)
  $SUDO apt-get "${apt_opts[@]}" update -qq
  (cd "$work" && apt-get "${apt_opts[@]}" download consul)
  dpkg -x "$work"/consul_*.deb "$work/root"
  $SUDO install -m 0755 "$work/root/usr/bin/consul" /usr/local/bin/consul
fi

# consul-template is built with Go (>= 1.26.4). The tests need it (scripts/test.sh installs it again and fails
# without it); the demo does not, so a machine without a recent Go only gets a warning here.
$SUDO bash "$(dirname "$0")/install-consul-template.sh" \
  || log "WARNING: consul-template not installed (needs Go >= 1.26.4); the tests will fail without it"

log "versions:"
printf '  %s\n' \
  "$(consul version | head -1)" \
  "$(consul-template -v 2>&1 | head -1 || echo 'consul-template: not installed')" \
  "$(/usr/sbin/pgbouncer --version 2>/dev/null | head -1 || pgbouncer --version | head -1)" \
  "$(/usr/sbin/haproxy -v 2>/dev/null | sed -n 1p)" \
  "patroni $(patroni --version 2>/dev/null | awk '{print $2}')" \
  "$(/usr/lib/postgresql/15/bin/postgres --version)" \
  "$(/usr/bin/prometheus --version 2>&1 | head -1)"
