#!/usr/bin/env bash
# Installs consul-template, pinned, idempotently, by building it from source with the Go toolchain:
#   go install github.com/hashicorp/consul-template@v$CONSUL_TEMPLATE_VERSION  →  /usr/local/bin/consul-template
#
#   CONSUL_TEMPLATE_VERSION  version to pin (default 0.43.0, the newest release on the Go module proxy,
#                            checked 2026-11; its go.mod asks for Go ≥ 1.26.4)
#   GO                       the go binary (default: /usr/local/go/bin/go, else `go` on PATH)
#   GOBIN                    where the binary goes (default /usr/local/bin)
#
# Run as root (or with sudo), non-interactively. Skips the build when `consul-template -v` already reports
# the pinned version. Uses the Go module proxy (GOPROXY as configured, proxy.golang.org by default); the
# module has no replace directives, so `go install pkg@version` builds exactly the released go.mod/go.sum.
set -euo pipefail

WORK=""

VERSION="${CONSUL_TEMPLATE_VERSION:-0.43.0}"
GOBIN_DIR="${GOBIN:-/usr/local/bin}"
BIN="$GOBIN_DIR/consul-template"

log() { printf '[install-consul-template] %s\n' "$*"; }

# `consul-template -v` prints "consul-template v0.43.0 ()" (the commit is empty for a go install build).
installed_version() {
  [ -x "$BIN" ] || return 1
  "$BIN" -v 2>&1 | awk '{print $2}' | head -1
}

find_go() {
  if [ -n "${GO:-}" ]; then echo "$GO"; return; fi
  if [ -x /usr/local/go/bin/go ]; then echo /usr/local/go/bin/go; return; fi
  command -v go || { log "no Go toolchain found (set GO=/path/to/go); Go >= 1.26.4 is needed" >&2; exit 1; }
}

main() {
  if [ "$(installed_version || true)" = "v$VERSION" ]; then
    log "consul-template v$VERSION already installed at $BIN"
    return
  fi
  local go
  go=$(find_go)
  log "building consul-template v$VERSION with $("$go" version)"
  # A private GOPATH/cache: nothing is left in root's home, and a failed build leaves no half binary behind.
  WORK=$(mktemp -d)
  trap 'chmod -R u+w "$WORK" 2>/dev/null; rm -rf "$WORK"' EXIT
  # GOTOOLCHAIN=local: build with this toolchain or fail, never download another one behind our back.
  env GOPATH="$WORK/gopath" GOCACHE="$WORK/cache" GOBIN="$WORK/bin" GOTOOLCHAIN=local GOFLAGS= \
    CGO_ENABLED=0 "$go" install -trimpath "github.com/hashicorp/consul-template@v$VERSION"
  mkdir -p "$GOBIN_DIR"
  install -m 0755 "$WORK/bin/consul-template" "$BIN"
  log "$("$BIN" -v 2>&1 | head -1) installed at $BIN"
}

main "$@"
