package io.pgbeacon.health;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.pgbeacon.patroni.PatroniReading;
import io.pgbeacon.patroni.PatroniStatus;
import io.pgbeacon.patroni.Role;
import io.pgbeacon.support.FakeTime;
import java.time.Duration;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalLong;
import org.junit.jupiter.api.Test;

/** The node's name and its cluster's scope, once Patroni gave them, outlast a Patroni that stops answering. */
class ObservationsTest {

  private final FakeTime time = new FakeTime();
  private final Observations seen = new Observations(new HealthPolicy(Optional.empty(), "127.0.0.1", 8008,
      16 << 20, 8 << 20, false, true, Duration.ofSeconds(10)), false, time);

  @Test
  void noScopeBeforePatroniHasAnswered() {
    seen.patroni(new PatroniReading.Unavailable("connection refused"), time.nanos());
    NodeHealth health = seen.verdict(DcsLeader.UNWATCHED);
    assertEquals(Optional.empty(), health.scope());
    assertEquals(Optional.empty(), health.node());
  }

  @Test
  void keepsTheScopeAndTheNodeOncePatroniGaveThem() {
    seen.patroni(primaryOf("alpha"), time.nanos());
    assertEquals(Optional.of("alpha"), seen.verdict(DcsLeader.UNWATCHED).scope());

    seen.patroni(new PatroniReading.Unavailable("connection refused"), time.nanos());
    NodeHealth unreachable = seen.verdict(DcsLeader.UNWATCHED);
    assertEquals(Optional.of("alpha"), unreachable.scope(), "Consul's service IDs and the metrics' labels need it");
    assertEquals(Optional.of("node1"), unreachable.node());
    assertEquals(Status.CRITICAL, unreachable.primary().status());
  }

  @Test
  void aScopePatroniNowReportsWins() {
    seen.patroni(primaryOf("alpha"), time.nanos());
    seen.verdict(DcsLeader.UNWATCHED);
    seen.patroni(primaryOf("beta"), time.nanos());
    assertEquals(Optional.of("beta"), seen.verdict(DcsLeader.UNWATCHED).scope());
  }

  private static PatroniReading primaryOf(String scope) {
    return new PatroniReading.Observed(new PatroniStatus("running", Role.PRIMARY, "primary", true,
        OptionalLong.of(1), OptionalLong.of(1), false, false, false, false, Map.of(), Optional.of(scope),
        Optional.of("node1"), Optional.of("4.1.5"), OptionalLong.empty()), Optional.empty(), Optional.empty());
  }
}
