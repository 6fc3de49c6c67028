package io.pgbeacon.systemd;

import io.pgbeacon.health.Freshness;
import io.pgbeacon.health.NodeHealth;
import io.pgbeacon.health.Verdict;
import java.time.Duration;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalLong;

/**
 * What pgbeacon tells systemd, and when — the rules alone, pure (times are {@code TimeSource} nanoseconds passed
 * in), so that {@link ServiceNotifier} only wires them to a timer and a socket.
 */
public final class Heartbeat {

  /**
   * READY=1 at the latest this long after the agent ports are bound, first verdict out or not: a node whose name is
   * not known yet (Patroni down, no {@code node:}) registers nothing, and a start that never ends would only make
   * systemd kill, after {@code TimeoutStartSec}, agent ports that were answering {@code down} correctly.
   */
  public static final Duration READY_AT_LATEST = Duration.ofSeconds(10);

  /** How much of each view's reason the status line carries. */
  static final int REASON_CHARS = 60;

  private Heartbeat() {}

  /** The daemon's phases as systemd sees them. */
  public enum Phase {
    /** Started, READY=1 not sent yet. */
    STARTING,
    RUNNING,
    /** Between RELOADING=1 and the READY=1 that ends the reload. */
    RELOADING,
    /** STOPPING=1 sent: nothing more is said. */
    STOPPING
  }

  /**
   * READY=1 once the first verdict is out — on the agent board and pushed to Consul (answered or failed: Consul down
   * must not hold the start) — or {@link #READY_AT_LATEST} after the ports were bound.
   */
  public static boolean ready(boolean firstVerdictOut, Duration sinceBound) {
    return firstVerdictOut || sinceBound.compareTo(READY_AT_LATEST) >= 0;
  }

  /**
   * WATCHDOG=1 now? Only once ready and until the stop, when an interval has passed since the last ping, and only
   * while the latest verdict is fresh: a poll loop that stopped renewing it (hung, dead, a JVM stopped and resumed)
   * stops the pings, and {@code WatchdogSec=} restarts the process — the process-level dead-man's switch beside the
   * Consul TTL. A Patroni that does not answer is not a hung loop: its reads time out and are verdicts too.
   *
   * @param lastPing when the last ping was sent; empty before the first
   */
  public static boolean ping(Phase phase, NodeHealth latest, Freshness freshness, long now, OptionalLong lastPing,
      Duration interval) {
    if (phase != Phase.RUNNING && phase != Phase.RELOADING) {
      return false;
    }
    boolean due = lastPing.isEmpty() || now - lastPing.getAsLong() >= interval.toNanos();
    return due && !freshness.stale(latest, now);
  }

  /**
   * The watchdog's ping interval: half of {@code WATCHDOG_USEC}, as sd_watchdog_enabled(3) advises; empty when there
   * is no watchdog, when {@code WATCHDOG_USEC} is not a positive number, or when {@code WATCHDOG_PID} names another
   * process (the variables were inherited, not meant for us).
   */
  public static Optional<Duration> watchdogInterval(Map<String, String> env, long pid) {
    String usec = env.get("WATCHDOG_USEC");
    if (usec == null || usec.isEmpty()) {
      return Optional.empty();
    }
    String owner = env.get("WATCHDOG_PID");
    try {
      if (owner != null && !owner.isEmpty() && Long.parseLong(owner.strip()) != pid) {
        return Optional.empty();
      }
      long micros = Long.parseLong(usec.strip());
      return micros <= 0 ? Optional.empty() : Optional.of(Duration.ofNanos(micros * 1000 / 2));
    } catch (NumberFormatException e) {
      return Optional.empty();
    }
  }

  /** The STATUS= line: both views' status and the start of their reasons, e.g. for {@code systemctl status}. */
  public static String status(NodeHealth published) {
    return "primary " + words(published.primary()) + "; replica " + words(published.replica());
  }

  private static String words(Verdict verdict) {
    String reason = verdict.reason().replace('\n', ' ').strip();
    if (reason.length() > REASON_CHARS) {
      reason = reason.substring(0, REASON_CHARS - 1) + "…";
    }
    return verdict.status().consul() + (reason.isEmpty() ? "" : ": " + reason);
  }
}
