package io.pgbeacon.health;

import java.time.Instant;

/**
 * The two clocks pgbeacon's rules read, injected so that each rule is a pure class tested with a fake clock.
 * Monotonic nanoseconds for every age, interval and deadline; wall-clock time only to compare with Patroni's own
 * timestamps (a scheduled switchover's {@code scheduled_at}).
 */
public interface TimeSource {

  /** Monotonic nanoseconds, as {@link System#nanoTime()}: meaningful only as differences. */
  long nanos();

  /** Wall-clock time. */
  Instant wall();

  /** The machine's clocks. */
  TimeSource SYSTEM = new TimeSource() {
    @Override
    public long nanos() {
      return System.nanoTime();
    }

    @Override
    public Instant wall() {
      return Instant.now();
    }
  };
}
