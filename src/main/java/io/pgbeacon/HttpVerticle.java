package io.pgbeacon;

import io.pgbeacon.config.Config;
import io.pgbeacon.config.ConfigException;
import io.pgbeacon.health.Freshness;
import io.pgbeacon.health.TimeSource;
import io.pgbeacon.http.StatusServer;
import io.pgbeacon.http.StatusSource;
import io.pgbeacon.metrics.Metrics;
import io.vertx.core.Future;
import io.vertx.core.VerticleBase;
import java.util.List;

/** Serves the HTTP endpoints ({@link StatusServer}) on an event loop of its own: deployed third, it gets the third. */
final class HttpVerticle extends VerticleBase {

  private final Config config;
  private final StatusSource source;
  private final Metrics metrics;
  private final String version;
  private final Freshness freshness;
  private StatusServer server;
  private int port;
  private volatile String loop;

  HttpVerticle(Config config, StatusSource source, Metrics metrics, String version, Freshness freshness) {
    this.config = config;
    this.source = source;
    this.metrics = metrics;
    this.version = version;
    this.freshness = freshness;
  }

  /** The event-loop thread the endpoints run on, once started. */
  String loop() {
    return loop;
  }

  @Override
  public Future<?> start() {
    loop = Thread.currentThread().getName();
    Config.Http http = config.http().orElseThrow();
    server = new StatusServer(vertx, config, source, metrics, freshness, TimeSource.SYSTEM, version);
    // A port taken since the preflight tried it is a config problem: exit 2, naming the key.
    return server.start(http).map(p -> port = p).recover(e -> Future.failedFuture(new ConfigException(List.of(
        "http: cannot listen on " + http.address() + ":" + http.port() + " (" + e.getMessage() + ")"))));
  }

  int port() {
    return port;
  }

  @Override
  public Future<?> stop() {
    return server == null ? Future.succeededFuture() : server.stop();
  }
}
