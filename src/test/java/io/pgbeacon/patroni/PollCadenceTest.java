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
    assertTrue(cadence.clusterWanted(), "the next poll reads it");
    assertTrue(cadence.clusterDue());
    cadence.clusterReading();
    assertFalse(cadence.clusterDue(), "once");
  }

  @Test
  void aReadAVerdictWaitsOnTakesThePlaceOfTheNextScheduledOne() {
    cadence.clusterReading(); // at 0: the next is due at 500 ms
    time.advance(Duration.ofMillis(100));
    assertTrue(cadence.clusterWanted());
    cadence.clusterReading(); // at 100, in place of the one due at 500: the next is due at 1000
    time.advance(Duration.ofMillis(25));
    assertFalse(cadence.clusterWanted(), "a second read brought forward into the same interval");
    time.advance(Duration.ofMillis(374));
    assertFalse(cadence.clusterDue(), "at 499 ms");
    time.advance(Duration.ofMillis(1));
    assertTrue(cadence.clusterDue(), "at 500 ms the verdict that still waits gets it");
    cadence.clusterReading(); // in place of the one due at 1000: the next is due at 1500
    time.advance(Duration.ofMillis(999));
    assertFalse(cadence.clusterDue(), "at 1499 ms");
    time.advance(Duration.ofMillis(1));
    assertTrue(cadence.clusterDue(), "at 1500 ms, on the schedule");
  }

  @Test
  void readsTheClusterViewNoMoreOftenThanTheBaseScheduleWhenEveryVerdictWaitsOnIt() {
    // A node whose every answer waits on a fresher view (promoting, Patroni's view still naming the old leader):
    // before, each one read /cluster again, at the fast poll's pace (40/s).
    int reads = 0;
    for (int poll = 0; poll < 400; poll++) { // 10 s of 25 ms polls
      if (cadence.clusterDue()) {
        cadence.clusterReading();
        reads++;
      }
      cadence.clusterWanted();
      time.advance(Duration.ofMillis(25));
    }
    assertTrue(reads <= 10_000 / BASE.toMillis() + 1, reads + " reads of /cluster in 10 s");
    assertTrue(reads >= 10_000 / BASE.toMillis(), reads + " reads of /cluster in 10 s: each wanted one made");
  }

  private static PatroniReading reading(Role role, boolean lock) {
    return new PatroniReading.Observed(new PatroniStatus("running", role, role.name().toLowerCase(), lock,
        OptionalLong.of(1), OptionalLong.of(1), false, false, false, false, Map.of(), Optional.of("demo"),
        Optional.of("node1"), Optional.of("4.1.5"), OptionalLong.empty()), Optional.empty(), Optional.empty());
  }
}
