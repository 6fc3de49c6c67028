package io.pgbeacon.consul;

import io.pgbeacon.config.Config;
import io.pgbeacon.health.DcsLeader;
import io.micrometer.core.instrument.Tags;
import io.pgbeacon.health.TimeSource;
import io.pgbeacon.metrics.Metrics;
import io.pgbeacon.net.FailureRun;
import io.pgbeacon.patroni.FailoverRequest;
import io.pgbeacon.patroni.PatroniReading;
import io.vertx.core.Vertx;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Optional;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * pgbeacon's own watch of Patroni's leader key and, beside it, its failover key ({@code patroni.leader-key}), kept
 * as a {@link DcsLeader} that the verdict reads. It tells its {@link Listener} when what it knows may withdraw this
 * node's primary (re-decide now) or moves the leadership here (poll soon); it never calls back for anything else.
 *
 * <p>Rules:
 * <ul>
 *   <li>{@code leader-key: auto}: until the key has been seen in this Consul, an absent key says nothing (Patroni's
 *       DCS is probably elsewhere) and the watch is {@linkplain DcsLeader#unwatched() unwatched};
 *   <li>a failing read keeps what was last seen — a leader key naming another node, a pending request — until a
 *       read succeeds again; each watch logs one WARN when its failures start and one INFO when they end;
 *   <li>a scheduled switchover counts from its time on: the listener hears of it then.
 * </ul>
 *
 * <p>Threading: created, started, read and stopped on the owning verticle's event loop, where the callbacks run.
 */
public final class DcsWatch {

  private static final Logger log = LoggerFactory.getLogger(DcsWatch.class);
  /** Shorter than Patroni's smallest ttl (20 s), so a healthy watch always has a read that recent. */
  static final Duration WAIT = Duration.ofSeconds(10);

  /** What the monitor hears. */
  public interface Listener {
    /**
     * What the watch knows changed.
     *
     * @param canWithdraw this node may no longer be allowed to lead: re-decide now, and let no poll begun earlier
     *     raise the primary view
     * @param towardsSelf the leadership is moving to this node: poll soon to publish the promotion
     */
    void dcsChanged(boolean canWithdraw, boolean towardsSelf);

    /** Both watches have answered (a value or a failure) at least once since they started. */
    void watchesAnswered();
  }

  /** One watch as {@code /status} shows it; immutable, read from any thread. */
  public record WatchState(String key, boolean reading, Optional<String> error, Optional<String> value,
      Optional<Instant> changedAt, Optional<Instant> readAt) {

    static WatchState idle(String key) {
      return new WatchState(key, false, Optional.empty(), Optional.empty(), Optional.empty(), Optional.empty());
    }

    WatchState read(Optional<String> value, boolean changed, Instant now) {
      return new WatchState(key, true, Optional.empty(), value, changed ? Optional.of(now) : changedAt,
          Optional.of(now));
    }

    WatchState failed(String error) {
      return new WatchState(key, false, Optional.of(error), value, changedAt, readAt);
    }
  }

  private final Vertx vertx;
  private final ConsulAgent agent;
  private final Config.LeaderKey config;
  private final TimeSource time;
  private final Supplier<Optional<String>> self;
  private final Listener listener;
  private KeyWatch leaderWatch;
  private KeyWatch failoverWatch;
  private FailureRun leaderFailures;
  private FailureRun failoverFailures;
  private DcsLeader leader = DcsLeader.UNWATCHED;
  private boolean leaderKeySeen;
  private boolean leaderAnswered;
  private boolean failoverAnswered;
  private long scheduledTimer = -1;
  private volatile WatchState leaderState = WatchState.idle("(not started)");
  private volatile WatchState failoverState = WatchState.idle("(not started)");
  private boolean stopped;
  private boolean scopeSeen;
  private boolean warnedAbsent;
  private String leaderKeyName = "";

  /** @param self this node's Patroni name as far as it is known now */
  public DcsWatch(Vertx vertx, ConsulAgent agent, Config.LeaderKey config, TimeSource time,
      Supplier<Optional<String>> self, Listener listener, Metrics metrics) {
    this.vertx = vertx;
    this.agent = agent;
    this.config = config;
    this.time = time;
    this.self = self;
    this.listener = listener;
    for (String which : List.of("leader", "failover")) {
      Supplier<WatchState> state = () -> which.equals("leader") ? leaderState : failoverState;
      // NaN, not 0, while a watch is off or has not answered yet: an alert on "== 0" then means failing reads only
      // (NaN compares false), and a node whose config turns the watch off never looks like one whose watch fails.
      metrics.gauge("pgbeacon.dcs.watch.up", "1 while the watch of Patroni's key reads, 0 while it fails, NaN while"
          + " it is off or has not answered yet", null, Tags.of("key", which), () -> up(state.get()));
      metrics.gauge("pgbeacon.dcs.watch.last.change.timestamp", "when the watched key last changed (Unix time)",
          "seconds", Tags.of("key", which),
          () -> state.get().changedAt().map(t -> t.toEpochMilli() / 1000.0).orElse(Double.NaN));
    }
  }

  /** The up gauge of one watch: 1 reading, 0 failing, NaN idle (off, or started and not answered yet). */
  static double up(WatchState state) {
    return state.reading() ? 1 : state.error().isPresent() ? 0 : Double.NaN;
  }

  /** The leader-key watch and the failover-key watch as they are now; any thread. */
  public List<WatchState> states() {
    return List.of(leaderState, failoverState);
  }

  /**
   * Starts watching once Patroni has said its scope (in {@code reading}): true when the watches start now, false
   * before, after, or when the config turns them off.
   */
  public boolean startOnce(PatroniReading reading) {
    if (scopeSeen || !(reading instanceof PatroniReading.Observed o)) {
      return false;
    }
    Optional<String> scope = o.status().scope().or(() -> o.cluster().flatMap(c -> c.scope()));
    scopeSeen = scope.isPresent();
    return scope.isPresent() && start(scope.get());
  }

  /** Starts watching the keys of {@code scope}; false when the config turns the watch off. */
  boolean start(String scope) {
    Optional<String> key = config.resolve(scope);
    if (key.isEmpty()) {
      return false;
    }
    leaderKeyName = key.get();
    leaderState = WatchState.idle(key.get());
    leaderFailures = new FailureRun(log, "DCS watch of " + key.get(), time);
    leaderWatch = new KeyWatch(vertx, agent, key.get(), WAIT, new KeyWatch.Reader() {
      @Override
      public void value(Optional<String> value, boolean changed) {
        leaderState = leaderState.read(value, changed, time.wall());
        onLeaderKey(value, changed);
      }

      @Override
      public void failed(String error) {
        leaderState = leaderState.failed(error);
        onFailure(leaderFailures, error, true);
      }
    });
    Optional<String> failoverKey = config.resolveFailover(scope);
    failoverAnswered = failoverKey.isEmpty();
    failoverKey.ifPresent(k -> {
      failoverState = WatchState.idle(k);
      failoverFailures = new FailureRun(log, "DCS watch of " + k, time);
      failoverWatch = new KeyWatch(vertx, agent, k, WAIT, new KeyWatch.Reader() {
        @Override
        public void value(Optional<String> value, boolean changed) {
          failoverState = failoverState.read(value, changed, time.wall());
          onFailoverKey(value, changed);
        }

        @Override
        public void failed(String error) {
          failoverState = failoverState.failed(error);
          onFailure(failoverFailures, error, false);
        }
      });
    });
    leaderWatch.start();
    if (failoverWatch != null) {
      failoverWatch.start();
    }
    return true;
  }

  /** What the watches know now. */
  public DcsLeader leader() {
    return leader;
  }

  private void onLeaderKey(Optional<String> holder, boolean changed) {
    if (stopped) {
      return;
    }
    leaderFailures.succeeded();
    if (holder.isEmpty() && config.auto() && !leaderKeySeen) {
      // Never seen in this Consul: Patroni's DCS is probably elsewhere, so absence says nothing.
      leader = leader.unwatched();
      answered(true);
      return;
    }
    if (holder.isEmpty() && !leaderKeySeen && !warnedAbsent) {
      // An explicit key that is not there denies the primary on every node: most likely a wrong namespace or scope.
      warnedAbsent = true;
      log.warn("[{}] the leader key {} does not exist in this Consul: no node passes as primary while it is absent;"
          + " check patroni.leader-key against Patroni's namespace and scope", self.get().orElse("?"),
          leaderKeyName);
    }
    leaderKeySeen |= holder.isPresent();
    leader = leader.heldBy(holder, time.nanos());
    if (changed) {
      log.info("[{}] leader key now names {}", self.get().orElse("?"), holder.orElse("no one"));
      boolean toSelf = self.get().isPresent() && holder.equals(self.get());
      listener.dcsChanged(!toSelf, toSelf);
    }
    answered(true);
  }

  /** A switchover or failover request: the primary it moves away from is withdrawn before Patroni demotes it. */
  private void onFailoverKey(Optional<String> value, boolean changed) {
    if (stopped) {
      return;
    }
    failoverFailures.succeeded();
    if (changed) {
      Instant now = time.wall();
      boolean awayBefore = leader.switchingAwayFrom(self.get(), now);
      Optional<FailoverRequest> request = FailoverRequest.parse(value);
      request.ifPresent(r -> log.info("[{}] Patroni was asked to move the leadership from {} to {}{}",
          self.get().orElse("?"), r.leader().orElse("the leader"), r.candidate().orElse("any member"),
          r.scheduledAt().map(at -> " at " + at).orElse("")));
      leader = leader.withRequest(request);
      scheduleWhenDue(request, now);
      // Only a request away from this node, made or cleared, can make an answer read before it stale here; the
      // candidate's own promotion is not held up when the request towards it is cleared.
      boolean awayAfter = leader.switchingAwayFrom(self.get(), now);
      listener.dcsChanged(awayBefore || awayAfter, false);
    }
    answered(false);
  }

  /** A scheduled switchover withdraws this node when its time comes, not before. */
  private void scheduleWhenDue(Optional<FailoverRequest> request, Instant now) {
    if (scheduledTimer >= 0) {
      vertx.cancelTimer(scheduledTimer);
      scheduledTimer = -1;
    }
    Optional<Instant> at = request.flatMap(FailoverRequest::scheduledAt).filter(t -> t.isAfter(now));
    if (at.isPresent()) {
      long millis = Math.max(1, Duration.between(now, at.get()).toMillis());
      scheduledTimer = vertx.setTimer(millis, id -> {
        scheduledTimer = -1;
        if (!stopped) {
          log.info("[{}] the scheduled switchover is due", self.get().orElse("?"));
          listener.dcsChanged(leader.switchingAwayFrom(self.get(), time.wall()), false);
        }
      });
    }
  }

  /** A failure lifts nothing the watch knew (KeyWatch reports the value again once it reads again). */
  private void onFailure(FailureRun failures, String error, boolean leaderKey) {
    if (!stopped) {
      failures.failed(error + "; keeping what it last saw", "retrying every second");
      answered(leaderKey);
    }
  }

  private void answered(boolean leaderKey) {
    boolean before = leaderAnswered && failoverAnswered;
    if (leaderKey) {
      leaderAnswered = true;
    } else {
      failoverAnswered = true;
    }
    if (!before && leaderAnswered && failoverAnswered) {
      listener.watchesAnswered();
    }
  }

  public void stop() {
    stopped = true;
    if (scheduledTimer >= 0) {
      vertx.cancelTimer(scheduledTimer);
    }
    if (leaderWatch != null) {
      leaderWatch.stop();
    }
    if (failoverWatch != null) {
      failoverWatch.stop();
    }
  }
}
