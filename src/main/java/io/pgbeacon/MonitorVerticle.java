package io.pgbeacon;

import io.pgbeacon.config.Config;
import io.pgbeacon.consul.ConsulAgent;
import io.pgbeacon.consul.ConsulRegistrar;
import io.pgbeacon.consul.KeyWatch;
import io.pgbeacon.health.DcsLeader;
import io.pgbeacon.health.HealthEvaluator;
import io.pgbeacon.health.HealthPolicy;
import io.pgbeacon.health.NodeHealth;
import io.pgbeacon.patroni.FailoverRequest;
import io.pgbeacon.patroni.PatroniClient;
import io.pgbeacon.patroni.PatroniReading;
import io.pgbeacon.patroni.Role;
import io.pgbeacon.pgbouncer.PgBouncerProbe;
import io.pgbeacon.pgbouncer.PgBouncerStatus;
import io.vertx.core.Future;
import io.vertx.core.VerticleBase;
import java.time.Duration;
import java.util.Optional;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Polls Patroni and PgBouncer, watches Patroni's leader and failover keys, turns what it knows into one verdict,
 * and hands it to the board (agent ports) and the Consul registrar.
 *
 * <p>Everything here runs on this verticle's event loop. The next poll is scheduled when the current one ends,
 * so polls never overlap; both probes have deadlines. After an outcome change, or when the leader key moves to
 * this node, it polls faster for a short while (faster still while PostgreSQL is being promoted), so a promotion
 * is published within a fraction of a second. When the leader key leaves this node, or a switchover away from it
 * is requested, the verdict is recomputed at once from the last readings: the primary is withdrawn without
 * waiting for a poll.
 *
 * <p>The DCS watches can only withdraw the primary, never grant it:
 * <ul>
 *   <li>a watch event whose re-decision would raise the primary view (a request cleared) is not published; a
 *       fresh poll decides instead;
 *   <li>a poll that began before an event that can withdraw may not raise the primary view: Patroni's answer may
 *       predate the switchover;
 *   <li>a failing watch changes nothing it knew: a leader key naming another node, or a pending request, stays in
 *       force until a successful read says otherwise;
 *   <li>until both watches have answered once (or {@code consul.timeout} has passed), the primary is not granted.
 * </ul>
 */
final class MonitorVerticle extends VerticleBase {

  private static final Logger log = LoggerFactory.getLogger(MonitorVerticle.class);
  private static final Duration FAST_INTERVAL = Duration.ofMillis(100);
  /** While Patroni holds the lock and PostgreSQL is still leaving recovery: the end of it is the news. */
  private static final Duration PROMOTING_INTERVAL = Duration.ofMillis(25);
  private static final Duration PROMOTING_LIMIT = Duration.ofSeconds(30);
  private static final Duration FAST_WINDOW = Duration.ofSeconds(3);
  private static final Duration WATCH_WAIT = Duration.ofSeconds(20);

  private final Config config;
  private final HealthBoard board;
  private final ConsulAgent consul;
  private final String version;
  private final HealthPolicy policy;

  private PatroniClient patroni;
  private PgBouncerProbe pgbouncer;
  private ConsulRegistrar registrar;
  private KeyWatch watch;
  private KeyWatch failoverWatch;
  private DcsLeader dcsLeader = DcsLeader.UNWATCHED;
  private boolean leaderKeySeen;
  private boolean leaderAnswered;
  private boolean failoverAnswered;
  private long watchesStartedAt;
  private String leaderWatchError;
  private String failoverWatchError;
  /** System.nanoTime() of the last DCS event that can withdraw the primary: polls begun earlier may not grant it. */
  private long dcsChangedAt;
  /** Patroni's name for this node once seen: kept while Patroni is unreachable, so Consul is still told. */
  private Optional<String> learnedNode = Optional.empty();
  private boolean warnedNameUnknown;
  private PatroniReading lastReading;
  private PgBouncerStatus lastBouncer;
  private long timer = -1;
  private long fastUntil;
  private long promotingSince = -1;
  private boolean first = true;
  private boolean stopping;

  MonitorVerticle(Config config, HealthBoard board, ConsulAgent consul, String version) {
    this.config = config;
    this.board = board;
    this.consul = consul;
    this.version = version;
    this.policy = HealthPolicy.of(config);
  }

  @Override
  public Future<?> start() {
    dcsChangedAt = fastUntil = System.nanoTime();
    patroni = new PatroniClient(vertx, config.patroni());
    pgbouncer = config.pgbouncer().map(c -> new PgBouncerProbe(vertx, c)).orElse(null);
    registrar = new ConsulRegistrar(vertx, consul, config, version);
    registrar.start();
    registrar.publish(board.health());
    tick();
    return Future.succeededFuture();
  }

  private void tick() {
    timer = -1;
    long started = System.nanoTime();
    Future<PatroniReading> patroniReading = patroni.read();
    Future<PgBouncerStatus> bouncer = pgbouncer == null
        ? Future.succeededFuture(PgBouncerStatus.NOT_CONFIGURED) : pgbouncer.probe();
    Future.join(patroniReading, bouncer).onComplete(done -> {
      if (stopping) {
        return;
      }
      boolean askAgain = false;
      try {
        lastReading = patroniReading.result();
        lastBouncer = bouncer.result();
        startWatchOnce();
        NodeHealth health = evaluate();
        if (!raisesPrimary(health) || mayGrant(started)) {
          publish(health);
        } else {
          // Held back. An answer older than the last withdrawing DCS event may predate the switchover: ask again at
          // once. Watches that have not answered yet will poll again themselves when they do.
          askAgain = started - dcsChangedAt < 0;
        }
      } catch (RuntimeException e) {
        // The loop's boundary: a bug in one tick must not end the polling.
        log.error("poll failed unexpectedly", e);
      } finally {
        long next = askAgain ? 1 : Math.max(1, nextInterval().toMillis());
        timer = vertx.setTimer(next, id -> tick());
      }
    });
  }

  private Duration nextInterval() {
    long now = System.nanoTime();
    boolean promoting = lastReading instanceof PatroniReading.Observed o && o.status().role() == Role.REPLICA
        && o.status().holdsLeaderLock();
    if (!promoting) {
      promotingSince = -1;
    } else {
      if (promotingSince < 0) {
        promotingSince = now;
      }
      if (now - promotingSince < PROMOTING_LIMIT.toNanos()) {
        return PROMOTING_INTERVAL;
      }
    }
    return fastUntil - now > 0 ? FAST_INTERVAL : config.pollInterval();
  }

  /** Polls at once if idle; a poll in flight is followed by fast polling instead. */
  private void pollSoon() {
    fastUntil = System.nanoTime() + FAST_WINDOW.toNanos();
    if (timer >= 0 && vertx.cancelTimer(timer)) {
      tick();
    }
  }

  private NodeHealth evaluate() {
    NodeHealth health = HealthEvaluator.evaluate(lastReading, lastBouncer, dcsLeader, policy);
    // The name Patroni gave before, only when this reading names no one (Patroni unreachable): a renamed member
    // or a lookup that now finds another name wins.
    return health.node().isPresent() || learnedNode.isEmpty() ? health
        : HealthEvaluator.evaluate(lastReading, lastBouncer, dcsLeader, policy.orNode(learnedNode));
  }

  /** Whether {@code health} has a better primary view than the one published. */
  private boolean raisesPrimary(NodeHealth health) {
    return health.primary().status().compareTo(board.health().primary().status()) < 0;
  }

  /**
   * Whether a poll begun at {@code started} may raise the primary view: it began after the last DCS event that can
   * withdraw, and both watches have answered since they started (or {@code consul.timeout} has passed).
   */
  private boolean mayGrant(long started) {
    boolean answered = (watch == null || leaderAnswered) && (failoverWatch == null || failoverAnswered)
        || System.nanoTime() - watchesStartedAt > config.consul().timeout().toNanos();
    return answered && started - dcsChangedAt >= 0;
  }

  private Optional<String> self() {
    return policy.node().or(() -> learnedNode);
  }

  private void publish(NodeHealth health) {
    NodeHealth before = board.health();
    board.set(health);
    registrar.publish(health);
    learnedNode = health.node().or(() -> learnedNode);
    if (health.node().isEmpty() && lastReading instanceof PatroniReading.Observed && !warnedNameUnknown) {
      warnedNameUnknown = true;
      log.warn("this node's Patroni name is unknown (Patroni before 3.2 does not report it, and no member of its"
          + " /cluster has api_url {}): nothing is registered in Consul until it is; set `node:`",
          config.patroni().url());
    }
    String node = health.node().orElse("?");
    if (first || health.outcomeDiffers(before)) {
      first = false;
      fastUntil = System.nanoTime() + FAST_WINDOW.toNanos();
      log.info("[{}] verdict: primary {} ({}), replica {} ({})", node,
          health.primary().status().consul(), health.primary().reason(),
          health.replica().status().consul(), health.replica().reason());
    } else if (log.isDebugEnabled()) {
      log.debug("[{}] tick: primary {}, replica {}", node, health.primary().reason(), health.replica().reason());
    }
  }

  /** The keys are known once Patroni has told us its scope. */
  private void startWatchOnce() {
    if (watch != null || !(lastReading instanceof PatroniReading.Observed observed)) {
      return;
    }
    Optional<String> scope = observed.status().scope();
    Optional<String> key = scope.flatMap(config.patroni().leaderKey()::resolve);
    if (key.isEmpty()) {
      return;
    }
    watchesStartedAt = System.nanoTime();
    watch = new KeyWatch(vertx, consul, key.get(), WATCH_WAIT, this::onLeaderKey, this::onLeaderWatchFailure);
    watch.start();
    scope.flatMap(config.patroni().leaderKey()::resolveFailover).ifPresent(failoverKey -> {
      failoverWatch = new KeyWatch(vertx, consul, failoverKey, WATCH_WAIT, this::onFailoverKey,
          this::onFailoverWatchFailure);
      failoverWatch.start();
    });
  }

  /** A switchover or failover request: the primary it moves away from is withdrawn before Patroni demotes it. */
  private void onFailoverKey(Optional<String> value) {
    if (stopping) {
      return;
    }
    failoverWatchError = null;
    boolean awayBefore = dcsLeader.switchingAwayFrom(self());
    Optional<FailoverRequest> request = FailoverRequest.parse(value).filter(r -> !r.scheduled());
    request.ifPresent(r -> log.info("[{}] Patroni was asked to move the leadership from {} to {}",
        board.health().node().orElse("?"), r.leader().orElse("the leader"), r.candidate().orElse("any member")));
    dcsLeader = dcsLeader.withRequest(request);
    // Only a request away from this node, made or cleared, can make an answer read before it stale here; the
    // candidate's own promotion is not held up when the request towards it is cleared.
    redecide(awayBefore || dcsLeader.switchingAwayFrom(self()));
    failoverAnswered = answered(failoverAnswered);
  }

  private void onLeaderKey(Optional<String> holder) {
    if (stopping) {
      return;
    }
    leaderWatchError = null;
    if (holder.isEmpty() && config.patroni().leaderKey().auto() && !leaderKeySeen) {
      // Never seen in this Consul: Patroni's DCS is probably elsewhere, so absence says nothing.
      dcsLeader = dcsLeader.unwatched();
      leaderAnswered = answered(leaderAnswered);
      return;
    }
    leaderKeySeen = true;
    dcsLeader = dcsLeader.heldBy(holder);
    log.info("[{}] leader key now names {}", board.health().node().orElse("?"), holder.orElse("no one"));
    boolean toSelf = self().isPresent() && holder.equals(self());
    redecide(!toSelf);
    if (toSelf) {
      pollSoon(); // promotion under way here: publish it as soon as PostgreSQL is out of recovery
    }
    leaderAnswered = answered(leaderAnswered);
  }

  /** A failure lifts nothing the watch knew (KeyWatch reports the value again once it reads again). */
  private void onLeaderWatchFailure(String error) {
    if (!stopping) {
      leaderWatchError = warnOnce(leaderWatchError, error);
      leaderAnswered = answered(leaderAnswered);
    }
  }

  private void onFailoverWatchFailure(String error) {
    if (!stopping) {
      failoverWatchError = warnOnce(failoverWatchError, error);
      failoverAnswered = answered(failoverAnswered);
    }
  }

  /** A watch's first answer (value or failure) may be what a held-back grant waits for: poll again then. */
  private boolean answered(boolean before) {
    if (!before) {
      pollSoon();
    }
    return true;
  }

  /**
   * Decides again at once after a DCS event — to withdraw only: when the change would raise the primary view
   * instead, a fresh poll decides. {@code canWithdraw}: the event may mean this node should not lead, so polls
   * begun before it may not raise the primary view either.
   */
  private void redecide(boolean canWithdraw) {
    if (canWithdraw) {
      dcsChangedAt = System.nanoTime();
    }
    if (lastReading == null) {
      return;
    }
    NodeHealth health = evaluate();
    if (raisesPrimary(health)) {
      pollSoon();
    } else {
      publish(health);
    }
  }

  /** One WARN per watch for a run of the same error. */
  private String warnOnce(String previous, String error) {
    if (!error.equals(previous)) {
      log.warn("[{}] DCS key watch: {} (keeping what it last saw until it reads again)",
          board.health().node().orElse("?"), error);
    }
    return error;
  }

  @Override
  public Future<?> stop() {
    stopping = true;
    if (timer >= 0) {
      vertx.cancelTimer(timer);
    }
    if (watch != null) {
      watch.stop();
    }
    if (failoverWatch != null) {
      failoverWatch.stop();
    }
    board.set(board.health().stopping("pgbeacon stopping"));
    patroni.close();
    if (pgbouncer != null) {
      pgbouncer.close();
    }
    return registrar.stop();
  }
}
