package io.pgbeacon.health;

import io.pgbeacon.config.Config;
import io.pgbeacon.config.Units;
import java.time.Duration;
import java.util.Objects;

/**
 * How old a verdict may be and still be published. Every verdict carries the time of its observations; a
 * publisher that is handed one older than {@link #limit()} publishes critical {@link #reason()} instead, so that a
 * poll loop that stopped producing verdicts (a bug, an {@code Error}, a JVM that was stopped and resumed) cannot
 * keep advertising what it last saw: the Consul TTL and the agent port stay a dead-man's switch.
 *
 * @param limit the oldest a published verdict may be
 */
public record Freshness(Duration limit) {

  /** Slack for scheduling and GC on a busy machine, beyond what a healthy loop can take. */
  static final Duration SLACK = Duration.ofSeconds(1);

  /** For tests and tools that show a fixed verdict as long as they like. */
  public static final Freshness UNBOUNDED = new Freshness(Duration.ofDays(3650));

  public Freshness {
    Objects.requireNonNull(limit, "limit");
    if (limit.isNegative() || limit.isZero()) {
      throw new IllegalArgumentException("freshness limit must be positive");
    }
  }

  /**
   * The limit a healthy loop never reaches: a verdict is replaced when the next poll completes, which begins
   * {@code poll.interval} after the previous one ended; each poll takes at most the longer of the two probe
   * deadlines. So the published verdict is at most interval + 2 × the longer deadline old, plus {@link #SLACK}.
   */
  public static Freshness of(Config config) {
    Duration probe = config.patroni().timeout();
    if (config.pgbouncer().isPresent() && config.pgbouncer().get().timeout().compareTo(probe) > 0) {
      probe = config.pgbouncer().get().timeout();
    }
    return new Freshness(config.pollInterval().plus(probe.multipliedBy(2)).plus(SLACK));
  }

  public boolean stale(NodeHealth health, long now) {
    return now - health.observedAt() > limit.toNanos();
  }

  /** {@code health}, or both views critical with {@link #reason()} when it is older than the limit. */
  public NodeHealth apply(NodeHealth health, long now) {
    return stale(health, now) ? health.critical(reason()) : health;
  }

  /** The reason a stale verdict is published with. */
  public String reason() {
    return "verdict stale: no observation in the last " + Units.formatDuration(limit);
  }
}
