package io.pgbeacon.patroni;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pgbeacon.support.FakeTime;
import java.time.Duration;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalLong;
import org.junit.jupiter.api.Test;

/** The poll cadence on a fake clock. */
class PollCadenceTest {

  private static final Duration BASE = Duration.ofMillis(500);

  final FakeTime time = new FakeTime();
  final PollCadence cadence = new PollCadence(BASE, time);

  @Test
  void pollsAtTheBaseIntervalWhenNothingHappens() {
    assertEquals(BASE, cadence.next(reading(Role.PRIMARY, true)));
  }

  @Test
  void pollsFastForThreeSecondsAfterAChange() {
    cadence.quicken();
    assertEquals(Duration.ofMillis(100), cadence.next(reading(Role.PRIMARY, true)));
    time.advance(Duration.ofMillis(2999));
    assertEquals(Duration.ofMillis(100), cadence.next(reading(Role.PRIMARY, true)));
    time.advance(Duration.ofMillis(1));
    assertEquals(BASE, cadence.next(reading(Role.PRIMARY, true)));
  }

  @Test
  void pollsEvery25msWhilePromotingUnderTheLockForAtMost30s() {
    assertEquals(Duration.ofMillis(25), cadence.next(reading(Role.REPLICA, true)));
    time.advance(Duration.ofSeconds(29));
    assertEquals(Duration.ofMillis(25), cadence.next(reading(Role.REPLICA, true)));
    time.advance(Duration.ofSeconds(1));
    assertEquals(BASE, cadence.next(reading(Role.REPLICA, true)), "a promotion stuck for 30 s: base rate");
    assertEquals(BASE, cadence.next(reading(Role.PRIMARY, true)));
    assertEquals(Duration.ofMillis(25), cadence.next(reading(Role.REPLICA, true)), "a new promotion");
  }

  @Test
  void aReplicaWithoutTheLockIsNotPromoting() {
    assertEquals(BASE, cadence.next(reading(Role.REPLICA, false)));
    assertEquals(BASE, cadence.next(new PatroniReading.Unavailable("Patroni unreachable")));
  }

  @Test
  void readsTheClusterViewAtTheBaseRateHoweverFastItPolls() {
    assertTrue(cadence.clusterDue(), "the first poll reads it");
    cadence.clusterReading();
    for (int i = 1; i < 20; i++) { // promoting: 25 ms polls
      time.advance(Duration.ofMillis(25));
      assertFalse(cadence.clusterDue(), "at " + i * 25 + "ms");
    }
    time.advance(Duration.ofMillis(25));
    assertTrue(cadence.clusterDue(), "500 ms after the last read");
  }

  @Test
  void readsTheClusterViewAtOnceWhenAVerdictWaitsOnIt() {
    cadence.clusterReading();
    time.advance(Duration.ofMillis(25));
    cadence.clusterWanted();
    assertTrue(cadence.clusterDue());
    cadence.clusterReading();
    assertFalse(cadence.clusterDue(), "once");
  }

  private static PatroniReading reading(Role role, boolean lock) {
    return new PatroniReading.Observed(new PatroniStatus("running", role, role.name().toLowerCase(), lock,
        OptionalLong.of(1), OptionalLong.of(1), false, false, false, false, Map.of(), Optional.of("demo"),
        Optional.of("node1"), Optional.of("4.1.5"), OptionalLong.empty()), Optional.empty(), Optional.empty());
  }
}
