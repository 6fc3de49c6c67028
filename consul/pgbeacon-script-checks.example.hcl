# /etc/consul.d/pgbeacon-script-checks.hcl — Consul services checked by `pgbeacon check`, as script checks.
#
# pgbeacon registers patroni-primary and patroni-replica itself, with TTL checks; you do not need this for
# them. This is for services Consul's own config defines (e.g. from configuration management, or names of
# your own, like pg-writer and pg-reader below) that should follow the same verdict: `pgbeacon check VIEW`
# asks the running pgbeacon on its agent port and exits 0 (passing), 1 (warning), 2 (critical), which is
# exactly how Consul reads a script check's exit code; its one line becomes the check's output.
#
# Needs, on this Consul agent:
#   - enable_local_script_checks = true (below; or in the agent's main config). It allows script checks
#     from the agent's own config files only, not from the HTTP API: do not use enable_script_checks.
#   - /usr/bin/pgbeacon, the launcher the pgbeacon Debian package installs;
#   - read access, for the user Consul runs as, to the config file and to every file it names (token,
#     passwords, certificates are validated on load; an unreadable one is a critical check):
#       usermod -aG pgbeacon consul    # then restart Consul
# Then `consul validate /etc/consul.d` and `consul reload`.
#
# Timing: interval 2s; pgbeacon's own --timeout 2s (including a pgbeacon that does not answer) stays under
# Consul's timeout of 3s, so the output says why instead of Consul's "Timed out". A check starts a JVM
# (about 0.4 s of CPU): for a faster reaction, rely on pgbeacon's own TTL services instead.
#
# Default: ask the running pgbeacon; if it does not answer, the check is critical ("pgbeacon not running:
# …"). Add "--fallback-direct" to poll Patroni and PgBouncer from the check itself then (no leader-key watch),
# or "--direct" to never ask the daemon.

enable_local_script_checks = true

services = [
  {
    id   = "pg-writer"
    name = "pg-writer"
    port = 6432
    checks = [
      {
        id       = "pg-writer-pgbeacon"
        name     = "pgbeacon check primary"
        args     = ["/usr/bin/pgbeacon", "check", "primary", "--config", "/etc/pgbeacon/pgbeacon.yml",
                    "--timeout", "2s"]
        interval = "2s"
        timeout  = "3s"
        # Same meaning as pgbeacon's consul.deregister-critical-after; leave it out to keep the service.
        # deregister_critical_service_after = "1m"
      }
    ]
  },
  {
    id   = "pg-reader"
    name = "pg-reader"
    port = 6432
    checks = [
      {
        id       = "pg-reader-pgbeacon"
        name     = "pgbeacon check replica"
        args     = ["/usr/bin/pgbeacon", "check", "replica", "--config", "/etc/pgbeacon/pgbeacon.yml",
                    "--timeout", "2s"]
        interval = "2s"
        timeout  = "3s"
      }
    ]
  }
]
