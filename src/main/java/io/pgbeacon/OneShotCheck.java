package io.pgbeacon;

import io.pgbeacon.agent.AgentClient;
import io.pgbeacon.agent.AgentReply;
import io.pgbeacon.config.Config;
import io.pgbeacon.health.HealthEvaluator;
import io.pgbeacon.metrics.Metrics;
import io.pgbeacon.health.HealthPolicy;
import io.pgbeacon.health.Status;
import io.pgbeacon.health.TimeSource;
import io.pgbeacon.health.Verdict;
import io.pgbeacon.patroni.PatroniClient;
import io.pgbeacon.patroni.PatroniReading;
import io.pgbeacon.pgbouncer.PgBouncerProbe;
import io.pgbeacon.pgbouncer.PgBouncerStatus;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import io.vertx.core.VertxOptions;
import java.time.Duration;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * {@code pgbeacon check primary|replica}: this node's verdict for one view, once, as an exit code — 0 passing,
 * 1 warning, 2 critical, as Consul script checks and keepalived's {@code vrrp_script} read it — and one line.
 *
 * <p>By default it asks the running daemon on its agent port, so the check says what HAProxy hears, and the
 * daemon's leader-key watch counts. {@link Mode#DIRECT} polls Patroni and PgBouncer itself, with the daemon's
 * clients and deadlines and the same pure evaluator, but without Consul (so without the leader-key watch).
 * Everything happens within one overall deadline; whatever goes wrong is critical.
 */
final class OneShotCheck {

  /** Where the verdict comes from. */
  enum Mode {
    /** The running pgbeacon's agent port; no answer is critical. */
    DAEMON,
    /** Patroni and PgBouncer, polled here. */
    DIRECT,
    /** The daemon, given at most half the time; when it does not answer, a direct poll with the rest. */
    DAEMON_THEN_DIRECT
  }

  /** What the check prints and how it exits. */
  record Outcome(Status status, String line) {
    int exitCode() {
      return status.exitCode();
    }
  }

  private OneShotCheck() {}

  static Outcome run(Config config, Config.View view, Mode mode, Duration timeout) {
    long deadline = System.nanoTime() + timeout.toNanos();
    if (mode == Mode.DIRECT) {
      return direct(config, view, deadline, timeout);
    }
    long daemonDeadline = mode == Mode.DAEMON ? deadline : System.nanoTime() + timeout.toNanos() / 2;
    try {
      AgentReply.Heard heard = AgentClient.ask(config.agent().listen(), view, daemonDeadline);
      return new Outcome(heard.status(), heard.reason());
    } catch (AgentClient.NoAnswer e) {
      if (mode == Mode.DAEMON) {
        return new Outcome(Status.CRITICAL, e.getMessage());
      }
      Outcome polled = direct(config, view, deadline, timeout);
      return new Outcome(polled.status(), polled.line() + " (polled directly: " + e.getMessage() + ")");
    }
  }

  private static Outcome direct(Config config, Config.View view, long deadline, Duration timeout) {
    Vertx vertx = Vertx.vertx(new VertxOptions().setEventLoopPoolSize(1).setWorkerPoolSize(1)
        .setInternalBlockingPoolSize(1));
    PatroniClient patroni = new PatroniClient(vertx, config.patroni(), Metrics.none());
    try {
      Future<PatroniReading> reading = patroni.read();
      Future<PgBouncerStatus> bouncer = config.pgbouncer().map(c -> new PgBouncerProbe(vertx, c, Metrics.none()).probe())
          .orElse(Future.succeededFuture(PgBouncerStatus.NOT_CONFIGURED));
      long millis = Math.max(1, TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime()));
      Future.join(reading, bouncer).toCompletionStage().toCompletableFuture().get(millis, TimeUnit.MILLISECONDS);
      Verdict verdict = HealthEvaluator.evaluate(reading.result(), bouncer.result(), HealthPolicy.of(config),
          TimeSource.SYSTEM).view(view);
      return new Outcome(verdict.status(), AgentReply.sanitize(verdict.reason()));
    } catch (TimeoutException e) {
      return new Outcome(Status.CRITICAL, "no verdict within " + timeout.toMillis() + "ms");
    } catch (ExecutionException e) {
      // Neither probe fails its future; if one ever does, that is no verdict either.
      return new Outcome(Status.CRITICAL, "no verdict: " + e.getCause());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return new Outcome(Status.CRITICAL, "interrupted");
    } finally {
      patroni.close();
      try {
        vertx.close().toCompletionStage().toCompletableFuture().get(1, TimeUnit.SECONDS);
      } catch (Exception e) {
        // the answer is decided; a slow close must not change it
      }
    }
  }
}
