package io.pgbeacon.http;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.json.JsonMapper;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Named;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** {@code pgbeacon status}'s printout of {@code /status}: each row a daemon an operator might ask. */
class StatusReportTest {

  private static final JsonMapper JSON = JsonMapper.builder().build();

  static Stream<Arguments> daemons() {
    return Stream.of(
        row("a healthy primary", """
            {"pgbeacon": "0.9.0", "node": "node1", "scope": "pgbeacon-lab", "role": "primary",
             "patroni_version": "4.1.5",
             "views": {
               "primary": {"status": "passing", "kind": "passing", "reason": "primary, timeline 1",
                           "since": "2026-12-01T12:00:00.123456789Z", "observation_age_seconds": 0.2134},
               "replica": {"status": "critical", "kind": "wrong_role", "reason": "primary",
                           "since": "2026-12-01T12:00:00.123456789Z", "observation_age_seconds": 0.2134}},
             "patroni": {"outcome": "primary, running, holds the leader lock", "latency_seconds": 0.003125,
                         "at": "2026-12-01T12:05:00.456Z"},
             "pgbouncer": {"outcome": "SELECT 1 answered", "latency_seconds": 0.0021, "at": "2026-12-01T12:05:00.4Z"},
             "dcs_watches": [
               {"key": "service/pgbeacon-lab/leader", "reading": true, "value": "node1", "error": null,
                "changed_at": "2026-12-01T11:59:59Z", "read_at": "2026-12-01T12:04:59.9Z"},
               {"key": "service/pgbeacon-lab/failover", "reading": true, "value": null, "error": null,
                "changed_at": null, "read_at": "2026-12-01T12:04:59.9Z"}],
             "consul": {"address": "http://127.0.0.1:8500",
               "registered": {"patroni-primary/pgbeacon-lab/node1": "2026-12-01T12:00:00Z"},
               "checks": {
                 "service:patroni-primary/pgbeacon-lab/node1": {"at": "2026-12-01T12:04:58Z", "status": "passing",
                   "output": "primary, timeline 1", "ok": true, "error": null, "last_ok": "2026-12-01T12:04:58Z"},
                 "service:patroni-primary/pgbeacon-lab/node1:pgbeacon": {"at": "2026-12-01T12:04:57Z", "status": "passing",
                   "output": "pgbeacon 0.9.0 running", "ok": true, "error": null,
                   "last_ok": "2026-12-01T12:04:57Z"}}},
             "config": ["patroni: http://127.0.0.1:8008"]}
            """, """
            node node1, scope pgbeacon-lab, role primary, Patroni 4.1.5, pgbeacon 0.9.0
            views:
              primary  passing   primary, timeline 1  (since 2026-12-01T12:00:00.123Z, observed 0.2s ago)
              replica  critical  primary  (wrong role; since 2026-12-01T12:00:00.123Z, observed 0.2s ago)
            last reads:
              patroni    primary, running, holds the leader lock  (took 3.1 ms, at 2026-12-01T12:05:00.456Z)
              pgbouncer  SELECT 1 answered  (took 2.1 ms, at 2026-12-01T12:05:00.400Z)
            DCS watches:
              service/pgbeacon-lab/leader: node1  (changed 2026-12-01T11:59:59Z, read 2026-12-01T12:04:59.900Z)
              service/pgbeacon-lab/failover: no key  (read 2026-12-01T12:04:59.900Z)
            Consul checks (agent http://127.0.0.1:8500), last push:
              service:patroni-primary/pgbeacon-lab/node1           passing   "primary, timeline 1"  at 2026-12-01T12:04:58Z, ok
              service:patroni-primary/pgbeacon-lab/node1:pgbeacon  passing   "pgbeacon 0.9.0 running"  at 2026-12-01T12:04:57Z, ok
            """),
        row("a replica past max-lag, its leader watch and one push failing", """
            {"pgbeacon": "0.9.0", "node": "node2", "scope": "pgbeacon-lab", "role": "replica",
             "patroni_version": "3.0.2",
             "views": {
               "primary": {"status": "critical", "kind": "wrong_role", "reason": "replica",
                           "since": "2026-12-01T12:00:00Z", "observation_age_seconds": 0.4},
               "replica": {"status": "critical", "kind": "past_max_lag", "reason": "replica, lag 17MB",
                           "since": "2026-12-01T12:03:00Z", "observation_age_seconds": 0.4}},
             "lag_bytes": 17825792,
             "patroni": {"outcome": "replica, streaming", "latency_seconds": 0.0042, "at": "2026-12-01T12:05:00Z"},
             "pgbouncer": null,
             "dcs_watches": [
               {"key": "service/pgbeacon-lab/leader", "reading": false, "value": "node1",
                "error": "Consul unreachable", "changed_at": "2026-12-01T11:00:00Z", "read_at": "2026-12-01T12:04:00Z"}],
             "consul": {"address": "http://127.0.0.1:8500", "registered": {},
               "checks": {
                 "service:patroni-replica/pgbeacon-lab/node2": {"at": "2026-12-01T12:04:59Z", "status": "critical",
                   "output": "replica, lag 17MB", "ok": false, "error": "Consul unreachable: Connection refused",
                   "last_ok": "2026-12-01T12:04:40Z"}}}}
            """, """
            node node2, scope pgbeacon-lab, role replica, Patroni 3.0.2, pgbeacon 0.9.0
            views:
              primary  critical  replica  (wrong role; since 2026-12-01T12:00:00Z, observed 0.4s ago)
              replica  critical  replica, lag 17MB  (past max-lag; since 2026-12-01T12:03:00Z, observed 0.4s ago)
            replication lag: 17MB
            last reads:
              patroni    replica, streaming  (took 4.2 ms, at 2026-12-01T12:05:00Z)
              pgbouncer  none
            DCS watches:
              service/pgbeacon-lab/leader: failing (Consul unreachable), last seen node1, read 2026-12-01T12:04:00Z
            Consul checks (agent http://127.0.0.1:8500), last push:
              service:patroni-replica/pgbeacon-lab/node2  critical  "replica, lag 17MB"  at 2026-12-01T12:04:59Z, failed: \
            Consul unreachable: Connection refused (last ok 2026-12-01T12:04:40Z)
            """),
        row("a daemon just started: nothing read, nothing pushed", """
            {"pgbeacon": "0.9.0", "node": null, "scope": null, "role": null, "patroni_version": null,
             "views": {
               "primary": {"status": "critical", "kind": "failing", "reason": "starting", "since": null,
                           "observation_age_seconds": 0.01},
               "replica": {"status": "critical", "kind": "failing", "reason": "starting", "since": null,
                           "observation_age_seconds": 0.01}},
             "patroni": null, "pgbouncer": null,
             "dcs_watches": [
               {"key": "(not started)", "reading": false, "value": null, "error": null, "changed_at": null,
                "read_at": null}],
             "consul": {"address": "http://127.0.0.1:8500", "registered": {}, "checks": {}}}
            """, """
            node ?, scope ?, role ?, Patroni ?, pgbeacon 0.9.0
            views:
              primary  critical  starting  (observed 0.0s ago)
              replica  critical  starting  (observed 0.0s ago)
            last reads:
              patroni    none
              pgbouncer  none
            DCS watches:
              (not started): not watching (leader-key off, or Patroni has not said its scope yet)
            Consul checks (agent http://127.0.0.1:8500), last push:
              none
            """),
        row("an older daemon's partial status: fields missing", """
            {"node": "node3", "views": {"primary": {"status": "passing"}, "replica": {}},
             "patroni": {"outcome": "primary, running"},
             "dcs_watches": [{"key": "service/x/leader"}],
             "consul": {"checks": {"service:patroni-primary/pgbeacon-lab/node3": {"status": "passing"}}}}
            """, """
            node node3, scope ?, role ?, Patroni ?, pgbeacon ?
            views:
              primary  passing   ?  (since ?, observed ? ago)
              replica  ?         ?  (since ?, observed ? ago)
            last reads:
              patroni    primary, running  (took ?, at ?)
              pgbouncer  ?
            DCS watches:
              service/x/leader: ?  (changed ?, read ?)
            Consul checks (agent ?), last push:
              service:patroni-primary/pgbeacon-lab/node3  passing   ?  at ?, ?
            """),
        row("fields of another shape than this version's", """
            {"node": {"name": "node1"}, "views": ["primary"], "lag_bytes": "unknown", "patroni": "down",
             "dcs_watches": {}, "consul": {"checks": []}}
            """, """
            node {"name":"node1"}, scope ?, role ?, Patroni ?, pgbeacon ?
            views:
              ?
            replication lag: unknown
            last reads:
              patroni    down
              pgbouncer  ?
            DCS watches:
              ?
            Consul checks (agent ?), last push:
              ?
            """),
        row("not even an object", "[]", """
            node ?, scope ?, role ?, Patroni ?, pgbeacon ?
            views:
              ?
            last reads:
              patroni    ?
              pgbouncer  ?
            DCS watches:
              ?
            Consul checks (agent ?), last push:
              ?
            """));
  }

  private static Arguments row(String daemon, String json, String printed) {
    return Arguments.of(Named.of(daemon, json), printed.lines().toList());
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("daemons")
  void printsWhatAPersonAsksAbout(String json, List<String> printed) throws Exception {
    assertEquals(printed, StatusReport.lines(JSON.readTree(json)));
  }
}
