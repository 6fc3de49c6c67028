package io.pgbeacon;

import io.pgbeacon.agent.ReplyBoard;
import io.pgbeacon.agent.ReplyPolicy;
import io.pgbeacon.config.Config;
import io.pgbeacon.config.ConfigLoader;
import io.pgbeacon.health.Freshness;
import io.pgbeacon.health.NodeHealth;
import io.pgbeacon.health.TimeSource;
import io.pgbeacon.metrics.Metrics;
import io.pgbeacon.support.VerdictOnly;
import io.vertx.core.Vertx;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * pgbeacon's agent side in this JVM, without the monitor: the real {@link AgentVerticle}, deployed the way
 * {@link PgBeacon} deploys it, answering from a real {@link ReplyBoard} whose verdict the caller sets (and which
 * never calls it stale); with an {@code http} block, also the real HTTP endpoints ({@link HttpVerticle}: /primary,
 * /replica) answering from the same verdict. For the agent benchmark and for HAProxy tests that need agent ports
 * and health endpoints saying something known ({@code up}, {@code down}).
 */
public final class InProcessAgent implements AutoCloseable {

  private final Vertx vertx;
  private final ReplyBoard board;
  private final AgentVerticle verticle;
  private final HttpVerticle http;

  private InProcessAgent(Vertx vertx, ReplyBoard board, AgentVerticle verticle, HttpVerticle http) {
    this.vertx = vertx;
    this.board = board;
    this.verticle = verticle;
    this.http = http;
  }

  /**
   * Binds every listener of {@code yaml}'s {@code agent} block (port 0: a free port) and answers {@code health}
   * until {@link #show} changes it. {@code yaml} is a pgbeacon configuration, e.g.
   * {@code agent: {listen: [{address: 127.0.0.11, port: 0, view: primary}]}}; only what the agent side reads
   * matters. Without an {@code http} block there is no HTTP listener (not the daemon's default one).
   */
  public static InProcessAgent start(String yaml, NodeHealth health) throws Exception {
    return start(yaml, health, null);
  }

  /** As {@link #start(String, NodeHealth)}, counting every reply in {@code metrics} as the daemon does; null: not. */
  public static InProcessAgent start(String yaml, NodeHealth health, Metrics metrics) throws Exception {
    Config config = ConfigLoader.parse(yaml, ConfigLoader.Overrides.none(), Map.of());
    Vertx vertx = PgBeacon.newVertx();
    ReplyBoard board = new ReplyBoard(health, ReplyPolicy.of(config), Freshness.UNBOUNDED, TimeSource.SYSTEM);
    AgentVerticle verticle = new AgentVerticle(config.agent(), board, metrics);
    HttpVerticle http = yaml.contains("http:") && config.http().isPresent()
        ? new HttpVerticle(config, new VerdictOnly(board::health, () -> true), Metrics.none(), "test",
        Freshness.UNBOUNDED) : null;
    try {
      PgBeacon.deployAgent(vertx, verticle).toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
      if (http != null) {
        vertx.deployVerticle(http).toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
      }
    } catch (Exception e) {
      vertx.close();
      throw e;
    }
    return new InProcessAgent(vertx, board, verticle, http);
  }

  /** The HTTP port, when started with an {@code http} block. */
  public int httpPort() {
    return http == null ? 0 : http.port();
  }


  /** The bound ports, in the order of {@code config.listen()}. */
  public List<Integer> ports() {
    return verticle.ports();
  }

  /** Whether Vert.x runs on the native (epoll) transport rather than the JDK's selector. */
  public boolean nativeTransport() {
    return vertx.isNativeTransportEnabled();
  }

  /** The next connection on every port answers this verdict. */
  public void show(NodeHealth health) {
    board.set(health);
  }

  @Override
  public void close() throws Exception {
    vertx.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
  }
}
