package io.pgbeacon.systemd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pgbeacon.health.Freshness;
import io.pgbeacon.health.NodeHealth;
import io.pgbeacon.systemd.Heartbeat.Phase;
import io.pgbeacon.support.Healths;
import java.time.Duration;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalLong;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;

class HeartbeatTest {

  private static final Freshness FRESHNESS = new Freshness(Duration.ofMillis(3500));
  private static final Duration INTERVAL = Duration.ofSeconds(10);
  private static final long NOW = 100_000_000_000L;

  @ParameterizedTest(name = "{0}")
  @CsvSource(delimiter = '|', textBlock = """
      the first ping, right after READY=1                        | RUNNING   | 0    | -1    | true
      an interval since the last ping, verdict fresh             | RUNNING   | 400  | 10000 | true
      not due yet                                                | RUNNING   | 400  | 9999  | false
      at the freshness limit: still fresh                        | RUNNING   | 3500 | 10000 | true
      a poll loop that stopped renewing its verdict: no ping     | RUNNING   | 3501 | 10000 | false
      a stale verdict, however long ago the last ping was        | RUNNING   | 3501 | 60000 | false
      a reload does not stop the poll loop                       | RELOADING | 400  | 10000 | true
      before READY=1 the systemd watchdog is not armed           | STARTING  | 0    | -1    | false
      nothing after STOPPING=1                                   | STOPPING  | 0    | 10000 | false
      """)
  void pingsTheWatchdogOnlyWhileVerdictsAreFresh(String situation, Phase phase, long ageMillis,
      long lastPingMillisAgo, boolean ping) {
    NodeHealth latest = Healths.primary("node1").observedAt(NOW - Duration.ofMillis(ageMillis).toNanos()).build();
    OptionalLong last = lastPingMillisAgo < 0 ? OptionalLong.empty()
        : OptionalLong.of(NOW - Duration.ofMillis(lastPingMillisAgo).toNanos());
    assertEquals(ping, Heartbeat.ping(phase, latest, FRESHNESS, NOW, last, INTERVAL), situation);
  }

  @ParameterizedTest(name = "first verdict out {0}, {1} s after the ports were bound → {2}")
  @CsvSource({
      "true, 0, true",
      "false, 9, false",
      "false, 10, true", // a node that cannot register yet still gets to READY=1
  })
  void isReadyOnceTheFirstVerdictIsOutOrAtTheLatestAfterTenSeconds(boolean out, long seconds, boolean ready) {
    assertEquals(ready, Heartbeat.ready(out, Duration.ofSeconds(seconds)));
  }

  @ParameterizedTest(name = "WATCHDOG_USEC={0} WATCHDOG_PID={1} → {2} ms")
  @CsvSource(nullValues = "none", value = {
      "20000000, none, 10000", // WatchdogSec=20s: ping every 10 s
      "20000000, 4242, 10000", // meant for us
      "20000000, 4243, none", // inherited from a parent: not ours
      "none, none, none",
      "0, none, none",
      "soon, none, none",
      "1000000, ' 4242 ', 500",
  })
  void readsTheWatchdogIntervalAsSdWatchdogEnabledDoes(String usec, String pid, Long millis) {
    Map<String, String> env = new java.util.HashMap<>();
    if (usec != null) {
      env.put("WATCHDOG_USEC", usec);
    }
    if (pid != null) {
      env.put("WATCHDOG_PID", pid);
    }
    assertEquals(Optional.ofNullable(millis).map(Duration::ofMillis), Heartbeat.watchdogInterval(env, 4242));
  }

  @Test
  void theStatusLineShowsBothViewsShortly() {
    assertEquals("primary passing: primary, timeline 3; replica critical: primary",
        Heartbeat.status(Healths.primary("node1").build()));
    String longReason = "x".repeat(200);
    String line = Heartbeat.status(Healths.replica("node2").replicaView(Healths.fail(longReason)).build());
    assertTrue(line.endsWith("replica critical: " + "x".repeat(Heartbeat.REASON_CHARS - 1) + "…"), line);
  }
}
