# consul-template config: keeps HAProxy's config following the Consul services pgbeacon publishes.
#
#   cd /etc/haproxy && consul-template -config /etc/pgbeacon/consul-template.hcl
#
# Paths below are relative to consul-template's working directory (production: /etc/haproxy, e.g. systemd
# WorkingDirectory=/etc/haproxy), so one file serves production and the integration test (a temp directory):
#   haproxy.cfg.ctmpl      the template (consul/haproxy.cfg.ctmpl)
#   haproxy.cfg.rendered   consul-template's output: a staging file, never read by HAProxy
#   haproxy.cfg            the live config: `haproxy -W -f haproxy.cfg -p <pidfile>` (Debian's unit: -Ws)
#   haproxy.cfg.rejected   only while the latest render failed `haproxy -c`
#
# Environment:
#   CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN or CONSUL_HTTP_TOKEN_FILE   the local Consul agent and the token
#       (policy: consul/consul-template-acl-policy.hcl); never put a token in this file
#   PGBEACON_HAPROXY_RELOAD    the reload command (default /usr/local/sbin/pgbeacon-haproxy-reload,
#                              i.e. scripts/haproxy-reload.sh installed there)
#   PGBEACON_HAPROXY_PIDFILE, PGBEACON_HAPROXY_BIN   for the reload command (see scripts/haproxy-reload.sh)
#   PGBEACON_HAPROXY_*, PGBEACON_*   listeners, stats socket, service names: see consul/haproxy.cfg.ctmpl

log_level = "info"

# Stop on SIGTERM (systemd's default stop signal). consul-template's own default is SIGINT, and it ignores a
# SIGTERM (it would only forward it to an `exec` child, which this config has none of).
kill_signal = "SIGTERM"

consul {
  # No address and no token: consul-template takes CONSUL_HTTP_ADDR (default 127.0.0.1:8500) and
  # CONSUL_HTTP_TOKEN / CONSUL_HTTP_TOKEN_FILE from its environment.
  retry {
    enabled = true
    # 0 = retry forever: while Consul is unreachable HAProxy keeps its last config, and consul-template
    # must still be there when Consul comes back (by default it gives up and exits after 12 attempts).
    attempts    = 0
    backoff     = "250ms"
    max_backoff = "5s"
  }
}

# Ask the Consul servers' leader, not any server with data up to 2 s old (consul-template's default): after a
# failover, a stale answer would keep the old primary in the write backend.
max_stale = "0s"

template {
  source      = "haproxy.cfg.ctmpl"
  destination = "haproxy.cfg.rendered"
  perms       = 0644

  # Validate, install, reload: scripts/haproxy-reload.sh. An invalid render never reaches haproxy.cfg nor
  # the running HAProxy. Run through /bin/sh so the environment can name the script.
  command         = "exec \"${PGBEACON_HAPROXY_RELOAD:-/usr/local/sbin/pgbeacon-haproxy-reload}\" haproxy.cfg.rendered haproxy.cfg"
  command_timeout = "30s"

  # Quiescence: render once changes have settled for `min`, at the latest `max` after the first one. A
  # failover is two changes ~1 s apart (old primary critical, new one passing); each is rendered within
  # 100 ms, and a burst (many replicas flapping) still reloads HAProxy at most about once a second.
  wait {
    min = "100ms"
    max = "1s"
  }
}
