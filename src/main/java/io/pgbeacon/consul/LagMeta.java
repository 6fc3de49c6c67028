package io.pgbeacon.consul;

import java.time.Duration;
import java.util.OptionalLong;

/**
 * The replica lag advertised in a service's meta ({@code lag_bytes}): rounded down to whole MiB and changed at most
 * once a minute. Meta is part of the registration, so every change re-registers the service and wakes every
 * blocking query on it; a lag that moves by a few bytes on each poll must not do that. (The verdict and the agent's
 * weights follow the exact lag; the meta is for people and templates.) Pure; one per view.
 */
final class LagMeta {

  static final long STEP = 1 << 20;
  static final Duration MIN_INTERVAL = Duration.ofMinutes(1);

  private OptionalLong advertised = OptionalLong.empty();
  private long advertisedAt;
  private boolean first = true;

  /** The value to advertise now for a lag of {@code lag}, at {@code now} (monotonic nanoseconds). */
  OptionalLong advertise(OptionalLong lag, long now) {
    OptionalLong rounded = lag.isPresent() ? OptionalLong.of(lag.getAsLong() / STEP * STEP) : OptionalLong.empty();
    // Appearing or disappearing (a role change) goes at once; a new value waits for the interval.
    boolean due = first || rounded.isPresent() != advertised.isPresent()
        || now - advertisedAt >= MIN_INTERVAL.toNanos();
    if (!rounded.equals(advertised) && due) {
      advertised = rounded;
      advertisedAt = now;
    }
    first = false;
    return advertised;
  }
}
