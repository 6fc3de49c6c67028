package io.pgbeacon;

import io.pgbeacon.agent.ReplyBoard;
import io.pgbeacon.config.Config;
import io.pgbeacon.consul.ConsulAgent;
import io.pgbeacon.consul.ConsulRegistrar;
import io.pgbeacon.consul.DcsWatch;
import io.pgbeacon.health.Freshness;
import io.pgbeacon.health.HealthPolicy;
import io.pgbeacon.health.NodeHealth;
import io.pgbeacon.health.Observations;
import io.pgbeacon.health.PrimaryGate;
import io.pgbeacon.health.TimeSource;
import io.pgbeacon.metrics.Metrics;
import io.pgbeacon.patroni.PatroniClient;
import io.pgbeacon.patroni.PatroniReading;
import io.pgbeacon.patroni.PollCadence;
import io.pgbeacon.pgbouncer.PgBouncerProbe;
import io.vertx.core.Future;
import io.vertx.core.VerticleBase;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.function.UnaryOperator;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Wiring: reads Patroni at {@link PollCadence}'s pace and PgBouncer at the base interval into {@link Observations},
 * decides on every answer and every {@link DcsWatch} event, lets {@link PrimaryGate} say whether the verdict may go
 * out, and hands it to the reply board (agent ports) and the Consul registrar.
 *
 * <p>Everything here runs on this verticle's event loop. Patroni and PgBouncer are read by two loops of their own,
 * each scheduling its next read when the current one ends (so reads of one kind never overlap, and every read has a
 * deadline); each answer decides from the latest of both. So a PgBouncer that hangs — as it does while PostgreSQL
 * demotes behind it — never holds up a withdrawal Patroni already reports.
 */
final class MonitorVerticle extends VerticleBase implements DcsWatch.Listener {

  private static final Logger log = LoggerFactory.getLogger(MonitorVerticle.class);
  private static final long AT_ONCE = 1;
  /** How long the final word to Consul may take at stop, within systemd's TimeoutStopSec (10 s). */
  static final Duration CONSUL_STOP_BUDGET = Duration.ofSeconds(5);

  private final Config config;
  private final ReplyBoard board;
  private final ConsulAgent consul;
  private final String version;
  private final TimeSource time;
  private final Observations seen;
  private final VerdictLog verdicts;
  private volatile String loop;
  private final Metrics metrics;
  private final UnaryOperator<NodeHealth> verdictStep;

  private PatroniClient patroni;
  private PgBouncerProbe pgbouncer;
  // Volatile: set at start on this loop, read by the HTTP endpoints' loop (the getters below).
  private volatile ConsulRegistrar registrar;
  private volatile DcsWatch dcs;
  private PrimaryGate gate;
  private PollCadence cadence;
  private long timer = -1;
  private long probeTimer = -1;
  private boolean stopping;

  MonitorVerticle(Config config, ReplyBoard board, ConsulAgent consul, String version, TimeSource time,
      Metrics metrics, UnaryOperator<NodeHealth> verdictStep) {
    this.config = config;
    this.board = board;
    this.consul = consul;
    this.version = version;
    this.time = time;
    this.metrics = metrics;
    this.verdictStep = verdictStep;
    this.seen = new Observations(HealthPolicy.of(config), config.pgbouncer().isPresent(), time);
    this.verdicts = new VerdictLog(config.patroni().url(), metrics, time);
  }

  /** The event-loop thread the poll loop runs on, once started. */
  String loop() {
    return loop;
  }

  @Override
  public Future<?> start() {
    loop = Thread.currentThread().getName();
    patroni = new PatroniClient(vertx, config.patroni(), metrics);
    registrar = new ConsulRegistrar(vertx, consul, config, version, Freshness.of(config), time, metrics);
    gate = new PrimaryGate(config.consul().timeout(), time);
    cadence = new PollCadence(config.pollInterval(), time);
    dcs = new DcsWatch(vertx, consul, config.patroni().leaderKey(), time, seen::self, this, metrics);
    registrar.start();
    registrar.publish(board.health());
    config.pgbouncer().ifPresent(c -> {
      pgbouncer = new PgBouncerProbe(vertx, c, metrics);
      probe();
    });
    tick();
    return Future.succeededFuture();
  }

  /** One poll of Patroni; the next is scheduled when it ends, at the cadence's pace. */
  private void tick() {
    timer = -1;
    long started = time.nanos();
    Future<PatroniReading> reading;
    try {
      reading = readPatroni();
    } catch (RuntimeException e) {
      failed(e);
      timer = vertx.setTimer(config.pollInterval().toMillis(), id -> tick());
      return;
    }
    reading.onComplete(done -> {
      if (stopping) {
        return;
      }
      long next = -1;
      try {
        seen.patroni(done.result(), started);
        if (dcs.startOnce(done.result())) {
          gate.watchesStarted();
        }
        next = decide(PrimaryGate.Source.POLL);
        verdicts.working();
      } catch (RuntimeException e) {
        failed(e);
      } finally {
        timer = vertx.setTimer(next > 0 ? next : cadence.next(seen.reading()).toMillis(), id -> tick());
      }
    });
  }

  private Future<PatroniReading> readPatroni() {
    if (seen.reading() instanceof PatroniReading.Observed previous && !cadence.clusterDue()) {
      return patroni.read(previous);
    }
    cadence.clusterReading();
    return patroni.read();
  }

  /** One probe of PgBouncer; the next follows one base interval after it ends. */
  private void probe() {
    probeTimer = -1;
    long started = time.nanos();
    pgbouncer.probe().onComplete(done -> {
      if (stopping) {
        return;
      }
      try {
        seen.pgbouncer(done.result(), started);
        if (seen.any()) {
          decide(PrimaryGate.Source.POLL);
        }
      } catch (RuntimeException e) {
        failed(e);
      } finally {
        probeTimer = vertx.setTimer(config.pollInterval().toMillis(), id -> probe());
      }
    });
  }

  /** Publishes what the gate allows of the latest verdict; {@link #AT_ONCE} when Patroni should be asked again. */
  private long decide(PrimaryGate.Source source) {
    NodeHealth candidate = verdictStep.apply(seen.verdict(dcs.leader())); // the identity, but in a test
    long next = -1;
    if (seen.waitsOnReusedClusterView(candidate, dcs.leader()) && cadence.clusterWanted()) {
      next = AT_ONCE; // else the poll at the cadence's pace reads it once the schedule allows
    }
    switch (gate.decide(candidate, board.health(), source, seen.readingAt())) {
      case PUBLISH -> publish(candidate);
      case HOLD_AND_POLL -> { // the answer may predate a withdrawing DCS event: ask again
        if (source == PrimaryGate.Source.POLL) {
          publish(candidate.withPrimary(board.health().primary())); // fresh, with what the gate holds back kept
        }
        next = AT_ONCE;
      }
      case HOLD -> publish(candidate.withPrimary(board.health().primary())); // the watches' answers poll again
    }
    return next;
  }

  /** The loop's boundary: a bug in one decision must not end the polling, nor leave the last verdict standing. */
  private void failed(RuntimeException e) {
    verdicts.failed(seen.self(), e);
    publish(board.health().critical("internal error: " + e).observedAt(time.nanos()));
  }

  /** Polls Patroni at once if idle; a poll in flight is followed by fast polling instead. */
  private void pollSoon() {
    cadence.quicken();
    if (timer >= 0 && vertx.cancelTimer(timer)) {
      tick();
    }
  }

  /** Re-decides at once after a DCS event, to withdraw only: a raise waits for a fresh poll. */
  @Override
  public void dcsChanged(boolean canWithdraw, boolean towardsSelf) {
    if (stopping) {
      return;
    }
    if (canWithdraw) {
      gate.withdrawing();
    }
    if ((seen.any() && decide(PrimaryGate.Source.DCS_EVENT) == AT_ONCE) || towardsSelf) {
      pollSoon(); // towards self: a promotion under way here, published as soon as PostgreSQL leaves recovery
    }
  }

  @Override
  public void watchesAnswered() {
    gate.watchesAnswered();
    pollSoon();
  }

  private void publish(NodeHealth health) {
    metrics.identify(health.scope(), health.node()); // first: what this verdict counts lands in the labelled registry
    if (verdicts.changed(board.health(), health, seen.reading())) {
      cadence.quicken();
    }
    board.set(health);
    registrar.publish(health);
  }

  // ---- for a reload and systemd ----

  /** Runs {@code work} on this verticle's loop, where every decision is made. */
  <T> Future<T> onLoop(java.util.concurrent.Callable<T> work) {
    io.vertx.core.Promise<T> done = io.vertx.core.Promise.promise();
    context.runOnContext(v -> {
      try {
        done.complete(work.call());
      } catch (Exception e) {
        done.fail(e);
      }
    });
    return done.future();
  }

  /** Decides with {@code next}'s thresholds from the next verdict on; call on this loop ({@link #onLoop}). */
  void thresholds(Config next) {
    seen.policy(HealthPolicy.of(next));
  }

  /** The verdict Consul was last sent, answered or not; null before the first sync. Any thread. */
  NodeHealth synced() {
    ConsulRegistrar r = registrar;
    return r == null ? null : r.synced();
  }

  // ---- for /status, from any thread ----

  Map<Config.View, Instant> since() {
    return verdicts.since();
  }

  Observations.Latest reads() {
    return seen.latest();
  }

  List<DcsWatch.WatchState> watches() {
    DcsWatch d = dcs;
    return d == null ? List.of() : d.states();
  }

  Map<String, ConsulRegistrar.Push> pushes() {
    ConsulRegistrar r = registrar;
    return r == null ? Map.of() : r.pushes();
  }

  Map<String, Instant> registered() {
    ConsulRegistrar r = registrar;
    return r == null ? Map.of() : r.registered();
  }

  @Override
  public Future<?> stop() {
    stopping = true;
    vertx.cancelTimer(timer);
    vertx.cancelTimer(probeTimer);
    dcs.stop();
    board.set(board.health().critical("pgbeacon stopping").observedAt(time.nanos()));
    patroni.close();
    if (pgbouncer != null) {
      pgbouncer.close();
    }
    return registrar.stop(CONSUL_STOP_BUDGET);
  }
}
