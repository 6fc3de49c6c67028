package io.pgbeacon.health;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;

import io.pgbeacon.config.ConfigLoader;
import io.pgbeacon.support.FakeTime;
import io.pgbeacon.support.Healths;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;

class FreshnessTest {

  @Test
  void theLimitIsWhatAHealthyLoopNeverReaches() throws Exception {
    // poll.interval 500ms + 2 × the longer probe deadline (1s) + 1s of slack
    assertEquals(Duration.ofMillis(3500), Freshness.of(ConfigLoader.parse("", ConfigLoader.Overrides.none(),
        Map.of())).limit());
    assertEquals(Duration.ofMillis(2000 + 2 * 4000 + 1000), Freshness.of(ConfigLoader.parse(
        "poll: {interval: 2s}\npatroni: {timeout: 1s}\npgbouncer: {timeout: 4s}\nconsul: {ttl: 20s}\n", ConfigLoader.Overrides.none(),
        Map.of())).limit());
  }

  @Test
  void aVerdictOlderThanTheLimitIsPublishedAsCriticalStale() {
    FakeTime time = new FakeTime();
    Freshness freshness = new Freshness(Duration.ofMillis(3500));
    NodeHealth passing = Healths.primary("node1").observedAt(time.nanos()).build();

    time.advance(Duration.ofMillis(3500));
    assertSame(passing, freshness.apply(passing, time.nanos()), "at the limit: still fresh");

    time.advance(Duration.ofMillis(1));
    NodeHealth stale = freshness.apply(passing, time.nanos());
    assertEquals(Status.CRITICAL, stale.primary().status());
    assertEquals(Status.CRITICAL, stale.replica().status());
    assertEquals("verdict stale: no observation in the last 3.5s", stale.primary().reason());
    assertEquals(passing.node(), stale.node(), "the facts stay, so Consul is still told who it is");
  }
}
