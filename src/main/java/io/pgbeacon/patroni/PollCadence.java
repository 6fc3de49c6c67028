package io.pgbeacon.patroni;

import io.pgbeacon.health.TimeSource;
import java.time.Duration;

/**
 * When to poll Patroni next, and whether to read its cluster view in that poll. Pure, with an injected clock.
 * <ul>
 *   <li>every {@code poll.interval} normally;
 *   <li>every {@link #FAST} for {@link #FAST_WINDOW} after a verdict changed or the leadership moved here, so that
 *       the end of a switchover is seen within a fraction of a second;
 *   <li>every {@link #PROMOTING} while this node holds the leader lock but PostgreSQL is still leaving recovery
 *       (for at most {@link #PROMOTING_LIMIT}): the end of the promotion is the news;
 *   <li>{@code GET /cluster} — a full DCS read inside Patroni — at the base rate only, however fast {@code /primary}
 *       is polled, plus once whenever a verdict waits on a fresher view ({@link #clusterWanted()}).
 * </ul>
 */
public final class PollCadence {

  static final Duration FAST = Duration.ofMillis(100);
  static final Duration PROMOTING = Duration.ofMillis(25);
  static final Duration PROMOTING_LIMIT = Duration.ofSeconds(30);
  static final Duration FAST_WINDOW = Duration.ofSeconds(3);

  private final Duration base;
  private final TimeSource time;
  private long fastUntil;
  private long promotingSince = -1;
  /** When the next {@code /cluster} read is due on the base schedule. */
  private long clusterDueAt;
  private boolean clusterRead;
  private boolean clusterWanted;

  public PollCadence(Duration base, TimeSource time) {
    this.base = base;
    this.time = time;
    this.fastUntil = time.nanos();
  }

  /** Polls fast for a while: a verdict changed, or the leadership is moving. */
  public void quicken() {
    fastUntil = time.nanos() + FAST_WINDOW.toNanos();
  }

  /** The pause before the next poll, after one that read {@code last}. */
  public Duration next(PatroniReading last) {
    long now = time.nanos();
    boolean promoting = last instanceof PatroniReading.Observed o && o.status().role() == Role.REPLICA
        && o.status().holdsLeaderLock();
    if (!promoting) {
      promotingSince = -1;
    } else {
      if (promotingSince < 0) {
        promotingSince = now;
      }
      if (now - promotingSince < PROMOTING_LIMIT.toNanos()) {
        return PROMOTING;
      }
    }
    return fastUntil - now > 0 ? FAST : base;
  }

  /** Whether the poll starting now reads {@code /cluster} too. */
  public boolean clusterDue() {
    return !clusterRead || time.nanos() - clusterDueAt >= 0 || clusterWanted && mayBringForward();
  }

  /** A poll that reads {@code /cluster} began now. */
  public void clusterReading() {
    long now = time.nanos();
    boolean broughtForward = clusterRead && now - clusterDueAt < 0 && clusterWanted;
    // Brought forward, the read takes the place of the one due: the next one is due an interval after that.
    clusterDueAt = (broughtForward ? clusterDueAt : now) + base.toNanos();
    clusterRead = true;
    clusterWanted = false;
  }

  /**
   * The verdict waits on a fresher cluster view than the one reused: read it in the next poll if the schedule allows
   * (no read was brought forward into the current interval yet), else as soon as it does.
   *
   * @return whether the next poll, made at once, reads it
   */
  public boolean clusterWanted() {
    clusterWanted = true;
    return clusterDue();
  }

  private boolean mayBringForward() {
    return time.nanos() - (clusterDueAt - base.toNanos()) >= 0;
  }
}
