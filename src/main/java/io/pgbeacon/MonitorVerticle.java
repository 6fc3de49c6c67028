package io.pgbeacon;

import io.pgbeacon.config.Config;
import io.pgbeacon.consul.ConsulRegistrar;
import io.pgbeacon.health.HealthEvaluator;
import io.pgbeacon.health.HealthPolicy;
import io.pgbeacon.health.NodeHealth;
import io.pgbeacon.patroni.PatroniClient;
import io.pgbeacon.patroni.PatroniReading;
import io.pgbeacon.pgbouncer.PgBouncerProbe;
import io.pgbeacon.pgbouncer.PgBouncerStatus;
import io.vertx.core.Future;
import io.vertx.core.VerticleBase;
import java.time.Duration;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Polls Patroni and PgBouncer, turns each pair of readings into one verdict, and hands it to the board (agent
 * port) and the Consul registrar.
 *
 * <p>The next poll is scheduled when the current one ends, so polls never overlap; both probes have deadlines
 * shorter than a tick. After an outcome change it polls faster for a short while: a promotion or demotion is
 * then followed within a fraction of a second.
 */
final class MonitorVerticle extends VerticleBase {

  private static final Logger log = LoggerFactory.getLogger(MonitorVerticle.class);
  private static final Duration FAST_INTERVAL = Duration.ofMillis(100);
  private static final Duration FAST_WINDOW = Duration.ofSeconds(3);

  private final Config config;
  private final HealthBoard board;
  private final ConsulRegistrar.Factory registrars;
  private final HealthPolicy policy;

  private PatroniClient patroni;
  private PgBouncerProbe pgbouncer;
  private ConsulRegistrar registrar;
  private long timer = -1;
  private long fastUntil;
  private boolean stopping;

  MonitorVerticle(Config config, HealthBoard board, ConsulRegistrar.Factory registrars) {
    this.config = config;
    this.board = board;
    this.registrars = registrars;
    this.policy = HealthPolicy.of(config);
  }

  @Override
  public Future<?> start() {
    patroni = new PatroniClient(vertx, config.patroni());
    pgbouncer = config.pgbouncer().map(c -> new PgBouncerProbe(vertx, c)).orElse(null);
    registrar = registrars.create(vertx);
    registrar.start();
    registrar.publish(board.health());
    tick();
    return Future.succeededFuture();
  }

  private void tick() {
    timer = -1;
    Future<PatroniReading> patroniReading = patroni.read();
    Future<PgBouncerStatus> bouncer = pgbouncer == null
        ? Future.succeededFuture(PgBouncerStatus.NOT_CONFIGURED) : pgbouncer.probe();
    Future.join(patroniReading, bouncer).onComplete(done -> {
      if (stopping) {
        return;
      }
      try {
        decide(patroniReading.result(), bouncer.result());
      } catch (RuntimeException e) {
        // The loop's boundary: a bug in one tick must not end the polling.
        log.error("poll failed unexpectedly", e);
      }
      long now = System.nanoTime();
      Duration next = now < fastUntil ? FAST_INTERVAL : config.pollInterval();
      timer = vertx.setTimer(Math.max(1, next.toMillis()), id -> tick());
    });
  }

  private void decide(PatroniReading reading, PgBouncerStatus bouncer) {
    NodeHealth before = board.health();
    NodeHealth health = HealthEvaluator.evaluate(reading, bouncer, policy);
    board.set(health);
    registrar.publish(health);
    String node = health.node().orElse("?");
    if (health.outcomeDiffers(before)) {
      fastUntil = System.nanoTime() + FAST_WINDOW.toNanos();
      log.info("[{}] verdict: primary {} ({}), replica {} ({})", node,
          health.primary().status().consul(), health.primary().reason(),
          health.replica().status().consul(), health.replica().reason());
    } else if (log.isDebugEnabled()) {
      log.debug("[{}] tick: primary {}, replica {}", node, health.primary().reason(), health.replica().reason());
    }
  }

  @Override
  public Future<?> stop() {
    stopping = true;
    if (timer >= 0) {
      vertx.cancelTimer(timer);
    }
    board.set(board.health().stopping("pgbeacon stopping"));
    patroni.close();
    return registrar.stop();
  }
}
