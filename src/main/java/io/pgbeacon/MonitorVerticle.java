package io.pgbeacon;

import io.pgbeacon.agent.ReplyBoard;
import io.pgbeacon.config.Config;
import io.pgbeacon.consul.ConsulAgent;
import io.pgbeacon.consul.ConsulRegistrar;
import io.pgbeacon.consul.DcsWatch;
import io.pgbeacon.health.Freshness;
import io.pgbeacon.health.HealthEvaluator;
import io.pgbeacon.health.HealthPolicy;
import io.pgbeacon.health.NodeHealth;
import io.pgbeacon.health.PrimaryGate;
import io.pgbeacon.health.Status;
import io.pgbeacon.health.TimeSource;
import io.pgbeacon.patroni.PatroniClient;
import io.pgbeacon.patroni.PatroniReading;
import io.pgbeacon.patroni.PollCadence;
import io.pgbeacon.pgbouncer.PgBouncerProbe;
import io.pgbeacon.pgbouncer.PgBouncerStatus;
import io.vertx.core.Future;
import io.vertx.core.VerticleBase;
import java.time.Duration;
import java.util.Optional;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Wiring: reads Patroni at {@link PollCadence}'s pace and PgBouncer at the base interval, turns every answer and
 * every {@link DcsWatch} event into a verdict ({@link HealthEvaluator}), lets {@link PrimaryGate} decide whether it
 * may be published, and hands it to the reply board (agent ports) and the Consul registrar.
 *
 * <p>Everything here runs on this verticle's event loop. Patroni and PgBouncer are read by two loops of their own,
 * each scheduling its next read when the current one ends (so reads of one kind never overlap, and every read has a
 * deadline); each answer re-decides from the latest of both. So a PgBouncer that hangs — as it does while
 * PostgreSQL demotes behind it — never holds up a withdrawal Patroni already reports.
 */
final class MonitorVerticle extends VerticleBase {

  private static final Logger log = LoggerFactory.getLogger(MonitorVerticle.class);
  private static final long AT_ONCE = 1;
  /** How long the final word to Consul may take at stop, within systemd's TimeoutStopSec (10 s). */
  static final Duration CONSUL_STOP_BUDGET = Duration.ofSeconds(5);

  private final Config config;
  private final ReplyBoard board;
  private final ConsulAgent consul;
  private final String version;
  private final HealthPolicy policy;
  private final TimeSource time;

  private PatroniClient patroni;
  private PgBouncerProbe pgbouncer;
  private ConsulRegistrar registrar;
  private DcsWatch dcs;
  private PrimaryGate gate;
  private PollCadence cadence;
  private boolean dcsStarted;
  /** The latest Patroni reading and when its poll began; the latest PgBouncer status and when its probe began. */
  private PatroniReading lastReading;
  private long lastStarted;
  private PgBouncerStatus lastBouncer = PgBouncerStatus.NOT_CONFIGURED;
  private long lastBouncerStarted;
  /** Patroni's name for this node once seen: kept while Patroni is unreachable, so Consul is still told. */
  private Optional<String> learnedNode = Optional.empty();
  private boolean warnedNameUnknown;
  private boolean failing;
  private long timer = -1;
  private long probeTimer = -1;
  private boolean first = true;
  private boolean stopping;

  MonitorVerticle(Config config, ReplyBoard board, ConsulAgent consul, String version, TimeSource time) {
    this.config = config;
    this.board = board;
    this.consul = consul;
    this.version = version;
    this.policy = HealthPolicy.of(config);
    this.time = time;
  }

  @Override
  public Future<?> start() {
    patroni = new PatroniClient(vertx, config.patroni());
    registrar = new ConsulRegistrar(vertx, consul, config, version, Freshness.of(config), time);
    gate = new PrimaryGate(config.consul().timeout(), time);
    cadence = new PollCadence(config.pollInterval(), time);
    dcs = new DcsWatch(vertx, consul, config.patroni().leaderKey(), time, this::self, new DcsWatch.Listener() {
      @Override
      public void dcsChanged(boolean canWithdraw, boolean towardsSelf) {
        onDcsChange(canWithdraw, towardsSelf);
      }

      @Override
      public void watchesAnswered() {
        gate.watchesAnswered();
        pollSoon();
      }
    });
    registrar.start();
    registrar.publish(board.health());
    if (config.pgbouncer().isPresent()) {
      pgbouncer = new PgBouncerProbe(vertx, config.pgbouncer().get());
      lastBouncer = PgBouncerStatus.failed("not probed yet");
      lastBouncerStarted = time.nanos();
      probe();
    }
    tick();
    return Future.succeededFuture();
  }

  /** One poll of Patroni; the next is scheduled when it ends, at the cadence's pace. */
  private void tick() {
    timer = -1;
    long started = time.nanos();
    try {
      readPatroni().onComplete(done -> polled(done.result(), started));
    } catch (RuntimeException e) {
      failed(e);
      schedule(config.pollInterval().toMillis());
    }
  }

  private Future<PatroniReading> readPatroni() {
    if (lastReading instanceof PatroniReading.Observed previous && !cadence.clusterDue()) {
      return patroni.read(previous);
    }
    cadence.clusterReading();
    return patroni.read();
  }

  private void polled(PatroniReading reading, long started) {
    if (stopping) {
      return;
    }
    long next = -1;
    try {
      lastReading = reading;
      lastStarted = started;
      startWatchOnce();
      next = decide(PrimaryGate.Source.POLL);
      recovered();
    } catch (RuntimeException e) {
      failed(e);
    } finally {
      schedule(next > 0 ? next : cadence.next(lastReading).toMillis());
    }
  }

  /** One probe of PgBouncer; the next follows one base interval after it ends. */
  private void probe() {
    probeTimer = -1;
    long started = time.nanos();
    try {
      pgbouncer.probe().onComplete(done -> {
        if (stopping) {
          return;
        }
        try {
          lastBouncer = done.result();
          lastBouncerStarted = started;
          if (lastReading != null) {
            decide(PrimaryGate.Source.POLL);
          }
        } catch (RuntimeException e) {
          failed(e);
        } finally {
          probeTimer = vertx.setTimer(config.pollInterval().toMillis(), id -> probe());
        }
      });
    } catch (RuntimeException e) {
      failed(e);
      probeTimer = vertx.setTimer(config.pollInterval().toMillis(), id -> probe());
    }
  }

  /**
   * Decides from the latest Patroni reading and PgBouncer status, and publishes what the gate allows. Returns
   * {@link #AT_ONCE} when Patroni should be asked again at once, else -1.
   */
  private long decide(PrimaryGate.Source source) {
    NodeHealth candidate = evaluate(lastReading);
    long next = -1;
    if (waitsOnReusedClusterView(candidate)) {
      cadence.clusterWanted();
      next = AT_ONCE;
    }
    switch (gate.decide(candidate, board.health(), source, lastStarted)) {
      case PUBLISH -> publish(candidate);
      case HOLD_AND_POLL -> {
        if (source == PrimaryGate.Source.POLL) {
          publish(held(candidate));
        }
        next = AT_ONCE; // the answer may predate a withdrawing DCS event: ask again
      }
      case HOLD -> publish(held(candidate)); // the watches answering will poll again
    }
    return next;
  }

  /** The candidate, fresh, but with the published primary view: what the gate holds back stays as it was. */
  private NodeHealth held(NodeHealth candidate) {
    return candidate.withPrimary(board.health().primary());
  }

  /**
   * True when only the reused cluster view keeps the primary view down (a promotion: the view read before it names
   * the old leader): read {@code /cluster} again at once rather than at the base rate.
   */
  private boolean waitsOnReusedClusterView(NodeHealth candidate) {
    return lastReading instanceof PatroniReading.Observed o && o.clusterReused() && o.cluster().isPresent()
        && candidate.primary().status() == Status.CRITICAL
        && evaluate(o.withoutCluster()).primary().status() != Status.CRITICAL;
  }

  /** The verdict from {@code reading} and the latest PgBouncer status, as old as the older of the two. */
  private NodeHealth evaluate(PatroniReading reading) {
    long observedAt = pgbouncer == null || lastBouncerStarted - lastStarted > 0 ? lastStarted : lastBouncerStarted;
    NodeHealth health = HealthEvaluator.evaluate(reading, lastBouncer, dcs.leader(), policy, observedAt, time);
    // The name Patroni gave before, only when this reading names no one (Patroni unreachable): a renamed member
    // or a lookup that now finds another name wins.
    return health.node().isPresent() || learnedNode.isEmpty() ? health
        : HealthEvaluator.evaluate(reading, lastBouncer, dcs.leader(), policy.orNode(learnedNode), observedAt, time);
  }

  private void schedule(long millis) {
    if (!stopping) {
      timer = vertx.setTimer(Math.max(AT_ONCE, millis), id -> tick());
    }
  }

  /** The loop's boundary: a bug in one tick must not end the polling, nor leave the last verdict standing. */
  private void failed(RuntimeException e) {
    if (!failing) {
      failing = true;
      log.error("[{}] deciding failed unexpectedly; both views critical until it works again",
          self().orElse("?"), e);
    }
    publish(board.health().critical("internal error: " + e).observedAt(time.nanos()));
  }

  private void recovered() {
    if (failing) {
      failing = false;
      log.info("[{}] deciding works again", self().orElse("?"));
    }
  }

  /** Polls Patroni at once if idle; a poll in flight is followed by fast polling instead. */
  private void pollSoon() {
    cadence.quicken();
    if (timer >= 0 && vertx.cancelTimer(timer)) {
      tick();
    }
  }

  /** Re-decides at once after a DCS event, to withdraw only: a raise waits for a fresh poll. */
  private void onDcsChange(boolean canWithdraw, boolean towardsSelf) {
    if (stopping) {
      return;
    }
    if (canWithdraw) {
      gate.withdrawing();
    }
    if (lastReading != null && decide(PrimaryGate.Source.DCS_EVENT) == AT_ONCE) {
      pollSoon();
    }
    if (towardsSelf) {
      pollSoon(); // promotion under way here: publish it as soon as PostgreSQL is out of recovery
    }
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
      cadence.quicken();
      log.info("[{}] verdict: primary {} ({}), replica {} ({})", node,
          health.primary().status().consul(), health.primary().reason(),
          health.replica().status().consul(), health.replica().reason());
    } else if (log.isDebugEnabled()) {
      log.debug("[{}] tick: primary {}, replica {}", node, health.primary().reason(), health.replica().reason());
    }
  }

  /** The keys are known once Patroni has told us its scope. */
  private void startWatchOnce() {
    if (dcsStarted || !(lastReading instanceof PatroniReading.Observed observed)) {
      return;
    }
    Optional<String> scope = observed.status().scope().or(() -> observed.cluster().flatMap(c -> c.scope()));
    if (scope.isEmpty()) {
      return;
    }
    dcsStarted = true;
    if (dcs.start(scope.get())) {
      gate.watchesStarted();
    }
  }

  @Override
  public Future<?> stop() {
    stopping = true;
    for (long t : new long[] {timer, probeTimer}) {
      if (t >= 0) {
        vertx.cancelTimer(t);
      }
    }
    dcs.stop();
    board.set(board.health().critical("pgbeacon stopping").observedAt(time.nanos()));
    patroni.close();
    if (pgbouncer != null) {
      pgbouncer.close();
    }
    return registrar.stop(CONSUL_STOP_BUDGET);
  }
}
