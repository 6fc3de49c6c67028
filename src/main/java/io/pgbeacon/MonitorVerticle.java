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
import io.pgbeacon.pgbouncer.PgBouncerStatus;
import io.vertx.core.Future;
import io.vertx.core.VerticleBase;
import java.time.Duration;
import java.util.Optional;
import java.util.function.UnaryOperator;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Wiring: reads Patroni at {@link PollCadence}'s pace and PgBouncer at the base interval into {@link Observations},
 * decides on every answer and every {@link DcsWatch} event, lets {@link PrimaryGate} say whether the verdict may go
 * out, and hands it to the reply board (agent ports) and the Consul registrar.
 *
 * <p>Everything here runs on this verticle's event loop. Patroni and PgBouncer are read by two {@link ReadLoop}s;
 * each answer decides from the latest of both, so a PgBouncer that hangs (as it does while PostgreSQL demotes behind
 * it) never holds up a withdrawal Patroni already reports.
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
  // Volatile: set at start on this loop, read by other threads (the getters below).
  private volatile ConsulRegistrar registrar;
  private volatile DcsWatch dcs;
  private PrimaryGate gate;
  private PollCadence cadence;
  private ReadLoop<PatroniReading> polls;
  private ReadLoop<PgBouncerStatus> probes;
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
    polls = new ReadLoop<>(vertx, time, config.pollInterval(), this::readPatroni, this::polled, this::failed,
        () -> cadence.next(seen.reading()));
    config.pgbouncer().ifPresent(c -> {
      pgbouncer = new PgBouncerProbe(vertx, c, metrics);
      probes = new ReadLoop<>(vertx, time, config.pollInterval(), pgbouncer::probe, this::probed, this::failed,
          config::pollInterval);
      probes.start();
    });
    polls.start();
    return Future.succeededFuture();
  }

  /** A Patroni answer, decided on at once; the next poll at the cadence's pace, or at once to ask again. */
  private Duration polled(PatroniReading reading, long started) {
    seen.patroni(reading, started);
    if (dcs.startOnce(reading)) {
      gate.watchesStarted();
    }
    long next = decide(PrimaryGate.Source.POLL);
    verdicts.working();
    return next > 0 ? Duration.ofMillis(next) : cadence.next(seen.reading());
  }

  private Future<PatroniReading> readPatroni() {
    if (seen.reading() instanceof PatroniReading.Observed previous && !cadence.clusterDue()) {
      return patroni.read(previous);
    }
    cadence.clusterReading();
    return patroni.read();
  }

  /** A PgBouncer probe's answer; the next probe one base interval after it. */
  private Duration probed(PgBouncerStatus status, long started) {
    seen.pgbouncer(status, started);
    if (seen.any()) {
      decide(PrimaryGate.Source.POLL);
    }
    return config.pollInterval();
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
    polls.now();
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
    boolean again;
    try {
      again = seen.any() && decide(PrimaryGate.Source.DCS_EVENT) == AT_ONCE;
    } catch (RuntimeException e) {
      failed(e); // as at the poll's boundary: the event must not leave the last verdict standing
      again = true;
    }
    if (again || towardsSelf) {
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

  // ---- what a reload, systemd and /status look into, from any thread ----

  /** The latest reads; a reload swaps their thresholds, on this verticle's loop ({@link #context()}). */
  Observations seen() {
    return seen;
  }

  VerdictLog verdicts() {
    return verdicts;
  }

  /** Made at start; empty before. */
  Optional<ConsulRegistrar> registrar() {
    return Optional.ofNullable(registrar);
  }

  Optional<DcsWatch> dcs() {
    return Optional.ofNullable(dcs);
  }

  /** The loop every decision is made on. */
  io.vertx.core.Context context() {
    return context;
  }

  @Override
  public Future<?> stop() {
    stopping = true;
    polls.stop();
    if (probes != null) {
      probes.stop();
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
