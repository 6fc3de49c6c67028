#!/usr/bin/env bash
# Installs Patroni 4.x (from PyPI) into a virtualenv, idempotently, for `LAB_PATRONI=4 scripts/lab.sh start`.
#
#   PATRONI4_VENV     venv directory (default /opt/pgbeacon/patroni4); binary: $PATRONI4_VENV/bin/patroni
#   PATRONI4_VERSION  Patroni version to pin (default 4.1.5)
#   PATRONI4_PYTHON   interpreter for the venv (default /usr/bin/python3, Debian's python)
#
# The venv must be readable and executable by user `postgres` (Patroni runs postgres, which refuses root):
# a venv under /opt with the default umask is. Extras: `consul` pulls py-consul, `psycopg3` pulls
# psycopg 3; we ask for psycopg[binary] so no libpq headers or compiler are needed.
set -euo pipefail

VENV="${PATRONI4_VENV:-/opt/pgbeacon/patroni4}"
VERSION="${PATRONI4_VERSION:-4.1.5}"
PYTHON="${PATRONI4_PYTHON:-/usr/bin/python3}"

log() { printf '[install-patroni4] %s\n' "$*"; }

installed_version() {
  [ -x "$VENV/bin/patroni" ] || return 1
  "$VENV/bin/patroni" --version 2>/dev/null | awk '{print $2}'
}

# -I: not from the current directory (this repository's consul/ would pass for the consul module).
imports_ok() {
  "$VENV/bin/python" -I -c 'import consul, psycopg' 2>/dev/null
}

create_venv() {
  # bin/pip, not bin/python: a venv whose ensurepip failed (no python3-venv) has a python but no pip.
  if [ ! -x "$VENV/bin/pip" ]; then
    log "creating venv $VENV with $PYTHON"
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    "$PYTHON" -m venv "$VENV" || { rm -rf "$VENV"; log "python3 -m venv failed (apt-get install -y python3-venv)"; exit 1; }
  fi
}

install_patroni() {
  log "installing patroni[consul,psycopg3]==$VERSION"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "patroni[consul,psycopg3]==$VERSION" "psycopg[binary]>=3.1"
}

main() {
  if [ "$(installed_version || true)" = "$VERSION" ] && imports_ok; then
    log "patroni $VERSION already installed in $VENV"
  else
    create_venv
    install_patroni
  fi
  # postgres must be able to traverse and execute the venv.
  chmod -R a+rX "$VENV"
  log "$("$VENV/bin/patroni" --version)"
}

main "$@"
