package io.pgbeacon.http;

import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.pgbeacon.config.Config;
import io.pgbeacon.config.ConfigSummary;
import io.pgbeacon.consul.ConsulRegistrar;
import io.pgbeacon.consul.DcsWatch;
import io.pgbeacon.health.Freshness;
import io.pgbeacon.health.NodeHealth;
import io.pgbeacon.health.Observations;
import io.pgbeacon.health.Status;
import io.pgbeacon.health.TimeSource;
import io.pgbeacon.health.Verdict;
import io.pgbeacon.metrics.Metrics;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import io.vertx.core.http.HttpHeaders;
import io.vertx.core.http.HttpMethod;
import io.vertx.core.http.HttpServer;
import io.vertx.core.http.HttpServerOptions;
import io.vertx.core.http.HttpServerRequest;
import java.time.Instant;
import java.util.List;
import java.util.Optional;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The HTTP endpoints: {@code /metrics} (Prometheus text, OpenMetrics when asked for), {@code /status} (JSON),
 * {@code /health} (200 while verdicts are fresh and the agent ports bound) and one health endpoint per view —
 * {@code /primary}, {@code /replica}: 200 when the view passes (or warns), 503 otherwise, the body its reason: the
 * agent port's decision, for HAProxy's {@code option httpchk}. {@code HEAD} and {@code OPTIONS} answer as {@code GET}.
 * Runs on an event loop of its own, so a slow scrape never delays a verdict or an agent reply.
 */
public final class StatusServer {

  private static final Logger log = LoggerFactory.getLogger(StatusServer.class);
  private static final JsonMapper JSON = JsonMapper.builder().build();
  private static final String OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8";
  private static final String PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8";

  private final Vertx vertx;
  private final Config config;
  private final StatusSource source;
  private final Metrics metrics;
  private final Freshness freshness;
  private final TimeSource time;
  private final String version;
  private HttpServer server;

  public StatusServer(Vertx vertx, Config config, StatusSource source, Metrics metrics, Freshness freshness,
      TimeSource time, String version) {
    this.vertx = vertx;
    this.config = config;
    this.source = source;
    this.metrics = metrics;
    this.freshness = freshness;
    this.time = time;
    this.version = version;
  }

  /** Listens on {@code http}; the bound port. */
  public Future<Integer> start(Config.Http http) {
    server = vertx.createHttpServer(new HttpServerOptions().setHost(http.address()).setPort(http.port())
        .setReuseAddress(true).setIdleTimeout(30));
    server.requestHandler(this::handle);
    return server.listen().map(s -> {
      log.info("status, metrics and health on http://{}:{}/", http.address(), s.actualPort());
      return s.actualPort();
    });
  }

  public Future<Void> stop() {
    return server == null ? Future.succeededFuture() : server.close();
  }

  private void handle(HttpServerRequest request) {
    HttpMethod method = request.method();
    if (method != HttpMethod.GET && method != HttpMethod.HEAD && method != HttpMethod.OPTIONS) {
      request.response().putHeader("Allow", "GET, HEAD, OPTIONS"); // a 405 must say what is allowed (RFC 9110)
      answer(request, 405, "text/plain; charset=utf-8", "GET, HEAD or OPTIONS\n");
      return;
    }
    try {
      String path = request.path();
      switch (path) {
        case "/metrics" -> {
          String accept = request.getHeader(HttpHeaders.ACCEPT);
          boolean open = accept != null && accept.contains("application/openmetrics-text");
          answer(request, 200, open ? OPENMETRICS : PROMETHEUS_TEXT, metrics.scrape(open ? OPENMETRICS
              : PROMETHEUS_TEXT));
        }
        case "/status" -> answer(request, 200, "application/json", status().toPrettyString() + "\n");
        case "/health" -> health(request);
        default -> {
          Optional<Config.View> view = Config.View.named(path.substring(1));
          if (view.isPresent()) {
            viewHealth(request, view.get());
          } else {
            answer(request, 404, "text/plain; charset=utf-8", "no such endpoint: try /metrics, /status, /health"
                + " or a view: " + java.util.Arrays.stream(Config.View.values()).map(v -> "/" + v.key())
                    .collect(java.util.stream.Collectors.joining(", ")) + "\n");
          }
        }
      }
    } catch (RuntimeException e) {
      log.warn("HTTP {} {} failed: {}", method, request.path(), e.toString());
      answer(request, 500, "text/plain; charset=utf-8", "internal error: " + e + "\n");
    }
  }

  /** The agent port's decision for {@code view}: up (200) for passing and warning, down (503) otherwise. */
  private void viewHealth(HttpServerRequest request, Config.View view) {
    Verdict verdict = freshness.apply(source.health(), time.nanos()).view(view);
    String answer = verdict.status().consul() + ": " + verdict.reason();
    // The reason phrase too: HAProxy shows it as the check's outcome on its stats page and in its log.
    request.response().setStatusMessage(reasonPhrase(answer));
    answer(request, verdict.status() == Status.CRITICAL ? 503 : 200, "text/plain; charset=utf-8", answer + "\n");
  }

  /** {@code text} as an HTTP reason phrase: printable ASCII (others become '?'), at most 120 characters. */
  static String reasonPhrase(String text) {
    StringBuilder b = new StringBuilder(Math.min(text.length(), 120));
    for (int i = 0; i < text.length() && b.length() < 120; i++) {
      char c = text.charAt(i);
      b.append(c >= 0x20 && c < 0x7f ? c : '?');
    }
    return b.toString();
  }

  private void health(HttpServerRequest request) {
    String problem = freshness.stale(source.health(), time.nanos()) ? freshness.reason()
        : !source.listening() ? "agent ports not listening" : null;
    answer(request, problem == null ? 200 : 503, "text/plain; charset=utf-8",
        "pgbeacon " + (problem == null ? "ok: verdicts fresh, agent ports listening" : problem) + "\n");
  }

  private static void answer(HttpServerRequest request, int code, String type, String body) {
    var response = request.response().setStatusCode(code).putHeader(HttpHeaders.CONTENT_TYPE, type)
        .putHeader("Cache-Control", "no-store");
    if (request.method() == HttpMethod.HEAD) {
      response.putHeader(HttpHeaders.CONTENT_LENGTH, Integer.toString(body.getBytes(
          java.nio.charset.StandardCharsets.UTF_8).length)).end();
    } else {
      response.end(body);
    }
  }

  /** The daemon as {@code /status} shows it. */
  ObjectNode status() {
    NodeHealth published = source.health();
    NodeHealth health = freshness.apply(published, time.nanos());
    ObjectNode root = JSON.createObjectNode();
    root.put("pgbeacon", version);
    root.put("node", health.node().orElse(null));
    root.put("scope", health.scope().orElse(null));
    root.put("role", health.role().map(r -> r.word()).orElse(null));
    root.put("patroni_version", health.patroniVersion().orElse(null));
    ObjectNode views = root.putObject("views");
    double age = (time.nanos() - published.observedAt()) / 1e9;
    for (Config.View view : Config.View.values()) {
      Verdict v = health.view(view);
      ObjectNode o = views.putObject(view.key());
      o.put("status", v.status().consul());
      o.put("kind", v.kind().name().toLowerCase(java.util.Locale.ROOT));
      o.put("reason", v.reason());
      o.put("since", text(Optional.ofNullable(source.since().get(view))));
      o.put("observation_age_seconds", age);
    }
    health.lagBytes().ifPresent(l -> root.put("lag_bytes", l));
    Observations.Latest reads = source.reads();
    read(root, "patroni", reads.patroni());
    read(root, "pgbouncer", config.pgbouncer().isPresent() ? reads.pgbouncer() : Optional.empty());
    ArrayNode watches = root.putArray("dcs_watches");
    for (DcsWatch.WatchState w : source.watches()) {
      ObjectNode o = watches.addObject();
      o.put("key", w.key());
      o.put("reading", w.reading());
      o.put("value", w.value().orElse(null));
      o.put("error", w.error().orElse(null));
      o.put("changed_at", text(w.changedAt()));
      o.put("read_at", text(w.readAt()));
    }
    ObjectNode consul = root.putObject("consul");
    consul.put("address", config.consul().address().toString());
    ObjectNode services = consul.putObject("registered");
    source.registered().entrySet().stream().sorted(java.util.Map.Entry.comparingByKey())
        .forEach(e -> services.put(e.getKey(), e.getValue().toString()));
    ObjectNode checks = consul.putObject("checks");
    source.pushes().entrySet().stream().sorted(java.util.Map.Entry.comparingByKey()).forEach(e -> {
      ConsulRegistrar.Push p = e.getValue();
      ObjectNode o = checks.putObject(e.getKey());
      o.put("at", p.at().toString());
      o.put("status", p.status().consul());
      o.put("output", p.output());
      o.put("ok", p.error().isEmpty());
      o.put("error", p.error().orElse(null));
      o.put("last_ok", text(p.lastOk()));
    });
    ArrayNode lines = root.putArray("config");
    List<String> summary = ConfigSummary.lines(config);
    summary.forEach(lines::add);
    return root;
  }

  private static void read(ObjectNode root, String name, Optional<Observations.Read> read) {
    if (read.isEmpty()) {
      root.putNull(name);
      return;
    }
    ObjectNode o = root.putObject(name);
    o.put("outcome", read.get().outcome());
    o.put("latency_seconds", read.get().took().toNanos() / 1e9);
    o.put("at", read.get().at().toString());
  }

  private static String text(Optional<Instant> at) {
    return at.map(Instant::toString).orElse(null);
  }
}
