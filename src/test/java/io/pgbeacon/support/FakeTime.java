package io.pgbeacon.support;

import io.pgbeacon.health.TimeSource;
import java.time.Duration;
import java.time.Instant;

/** A clock that moves only when the test says so; both clocks move together. */
public final class FakeTime implements TimeSource {

  private long nanos = 1_000_000_000L;
  private Instant wall = Instant.parse("2026-12-01T12:00:00Z");

  @Override
  public synchronized long nanos() {
    return nanos;
  }

  @Override
  public synchronized Instant wall() {
    return wall;
  }

  public synchronized FakeTime advance(Duration d) {
    nanos += d.toNanos();
    wall = wall.plus(d);
    return this;
  }
}
