package io.pgbeacon.consul;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.pgbeacon.support.FakeTime;
import java.time.Duration;
import java.util.OptionalLong;
import org.junit.jupiter.api.Test;

/** The advertised lag: whole MiB, at most one change a minute, a role change at once. */
class LagMetaTest {

  private static final long MB = 1 << 20;

  final FakeTime time = new FakeTime();
  final LagMeta meta = new LagMeta();

  @Test
  void aLagMovingByBytesAdvertisesNoChange() {
    assertEquals(OptionalLong.of(0), meta.advertise(OptionalLong.of(100), time.nanos()));
    for (long lag = 0; lag < MB; lag += 4096) {
      time.advance(Duration.ofMillis(500));
      assertEquals(OptionalLong.of(0), meta.advertise(OptionalLong.of(lag), time.nanos()));
    }
  }

  @Test
  void aNewValueWaitsAMinuteAfterTheLastChange() {
    assertEquals(OptionalLong.of(2 * MB), meta.advertise(OptionalLong.of(2 * MB + 5), time.nanos()));
    time.advance(Duration.ofSeconds(30));
    assertEquals(OptionalLong.of(2 * MB), meta.advertise(OptionalLong.of(7 * MB), time.nanos()));
    time.advance(Duration.ofSeconds(30));
    assertEquals(OptionalLong.of(7 * MB), meta.advertise(OptionalLong.of(7 * MB), time.nanos()));
    time.advance(Duration.ofSeconds(1));
    assertEquals(OptionalLong.of(7 * MB), meta.advertise(OptionalLong.of(9 * MB), time.nanos()));
  }

  @Test
  void appearingAndDisappearingGoAtOnce() {
    assertEquals(OptionalLong.of(3 * MB), meta.advertise(OptionalLong.of(3 * MB), time.nanos()));
    time.advance(Duration.ofSeconds(1));
    assertEquals(OptionalLong.empty(), meta.advertise(OptionalLong.empty(), time.nanos()), "promoted");
    time.advance(Duration.ofSeconds(1));
    assertEquals(OptionalLong.of(0), meta.advertise(OptionalLong.of(10), time.nanos()), "a replica again");
  }
}
