package io.pgbeacon.systemd;

import io.pgbeacon.health.Freshness;
import io.pgbeacon.health.NodeHealth;
import io.pgbeacon.health.TimeSource;
import io.pgbeacon.systemd.Heartbeat.Phase;
import io.vertx.core.Vertx;
import java.time.Duration;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Tells systemd what the daemon is doing ({@code Type=notify}), by {@link Heartbeat}'s rules: {@code READY=1} once
 * the agent ports are bound and the first verdict is out; {@code STATUS=} at once with it and whenever a view's
 * outcome changes; {@code WATCHDOG=1} every half {@code WATCHDOG_USEC} while verdicts are fresh;
 * {@code RELOADING=1} (with {@code MONOTONIC_USEC=}) when a reload begins and {@code READY=1} when it ends;
 * {@code STOPPING=1} when the stop begins. Without {@code NOTIFY_SOCKET} it does nothing, not even a timer.
 *
 * <p>Threading: the methods may be called from any thread and are synchronized; the one timer runs on the Vert.x
 * context {@link #bound()} is called on. It reads the board, never the monitor's loop: when that loop hangs, the
 * verdict ages and the pings stop, whichever loop this one is.
 */
public final class ServiceNotifier implements AutoCloseable {

  private static final Logger log = LoggerFactory.getLogger(ServiceNotifier.class);
  private static final Duration STARTING_TICK = Duration.ofMillis(100);
  private static final Duration RUNNING_TICK = Duration.ofSeconds(1);

  private final Vertx vertx;
  private final SdNotify sd;
  private final Optional<Duration> watchdog;
  private final Supplier<NodeHealth> latest;
  private final BooleanSupplier firstVerdictOut;
  private final Freshness freshness;
  private final TimeSource time;

  private Phase phase = Phase.STARTING;
  private long boundAt;
  private long timer = -1;
  private OptionalLong lastPing = OptionalLong.empty();
  private NodeHealth lastStatus;
  private boolean withheld;

  /**
   * @param latest the verdict the agent board holds
   * @param firstVerdictOut true once the first verdict is on the board and Consul was told (answered or failed)
   */
  public ServiceNotifier(Vertx vertx, SdNotify sd, Optional<Duration> watchdog, Supplier<NodeHealth> latest,
      BooleanSupplier firstVerdictOut, Freshness freshness, TimeSource time) {
    this.vertx = vertx;
    this.sd = sd;
    this.watchdog = watchdog;
    this.latest = latest;
    this.firstVerdictOut = firstVerdictOut;
    this.freshness = freshness;
    this.time = time;
    if (sd.enabled()) {
      log.info("systemd notify on; watchdog {}", watchdog.map(d -> "pinged every " + d.toMillis() + "ms while verdicts"
          + " are fresh").orElse("off"));
    }
  }

  /** The agent ports are bound; call on a Vert.x context: its loop runs the timer. */
  public synchronized void bound() {
    if (!sd.enabled() || phase != Phase.STARTING) {
      return;
    }
    boundAt = time.nanos();
    timer = vertx.setPeriodic(STARTING_TICK.toMillis(), id -> tick());
  }

  private synchronized void tick() {
    long now = time.nanos();
    if (phase == Phase.STARTING) {
      boolean out = firstVerdictOut.getAsBoolean();
      if (!Heartbeat.ready(out, Duration.ofNanos(now - boundAt))) {
        return;
      }
      if (!out) {
        log.warn("systemd: READY=1 {} after the agent ports were bound, before the first verdict reached Consul",
            Heartbeat.READY_AT_LATEST.toSeconds() + "s");
      }
      phase = Phase.RUNNING;
      lastStatus = published(now);
      sd.send("READY=1\nSTATUS=" + Heartbeat.status(lastStatus));
      vertx.cancelTimer(timer);
      long every = watchdog.filter(w -> w.dividedBy(2).compareTo(RUNNING_TICK) < 0).map(w -> w.dividedBy(2))
          .orElse(RUNNING_TICK).toMillis();
      timer = vertx.setPeriodic(Math.max(10, every), id -> tick());
    }
    if (phase == Phase.STOPPING) {
      return;
    }
    NodeHealth shown = published(now);
    if (shown.outcomeDiffers(lastStatus)) {
      lastStatus = shown;
      sd.send("STATUS=" + Heartbeat.status(shown));
    }
    watchdog.ifPresent(interval -> {
      boolean stale = freshness.stale(latest.get(), now);
      if (stale != withheld) {
        withheld = stale;
        if (stale) {
          log.warn("systemd: verdicts stale, watchdog not pinged: WatchdogSec= restarts pgbeacon unless they resume");
        } else {
          log.info("systemd: verdicts fresh again, watchdog pinged");
        }
      }
      if (Heartbeat.ping(phase, latest.get(), freshness, now, lastPing, interval)) {
        lastPing = OptionalLong.of(now);
        sd.send("WATCHDOG=1");
      }
    });
  }

  private NodeHealth published(long now) {
    return freshness.apply(latest.get(), now);
  }

  /** A reload begins: {@code RELOADING=1}, stamped with {@code CLOCK_MONOTONIC} as systemd 253+ asks. */
  public synchronized void reloading() {
    if (phase != Phase.RUNNING) {
      return;
    }
    phase = Phase.RELOADING;
    // TimeSource.SYSTEM's nanos are System.nanoTime(), which HotSpot on Linux reads from CLOCK_MONOTONIC.
    sd.send("RELOADING=1\nMONOTONIC_USEC=" + TimeUnit.NANOSECONDS.toMicros(time.nanos()));
  }

  /** The reload ended, applied or refused: {@code READY=1} again, with the status. */
  public synchronized void reloaded() {
    if (phase != Phase.RELOADING) {
      return;
    }
    phase = Phase.RUNNING;
    lastStatus = published(time.nanos());
    sd.send("READY=1\nSTATUS=" + Heartbeat.status(lastStatus));
  }

  /** The stop begins: {@code STOPPING=1}, and nothing after it. Idempotent. */
  public synchronized void stopping() {
    if (phase == Phase.STOPPING) {
      return;
    }
    phase = Phase.STOPPING;
    if (timer >= 0) {
      vertx.cancelTimer(timer);
      timer = -1;
    }
    sd.send("STOPPING=1");
  }

  @Override
  public synchronized void close() {
    sd.close();
  }
}
