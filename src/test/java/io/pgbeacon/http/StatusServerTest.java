package io.pgbeacon.http;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pgbeacon.config.Config;
import io.pgbeacon.config.ConfigLoader;
import io.pgbeacon.health.Freshness;
import io.pgbeacon.health.NodeHealth;
import io.pgbeacon.metrics.Metrics;
import io.pgbeacon.support.FakeTime;
import io.pgbeacon.support.Healths;
import io.pgbeacon.support.VerdictOnly;
import io.vertx.core.Vertx;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The HTTP endpoints on a real Vert.x server (port 0) in front of a stub daemon ({@link Stub}) and a fake clock:
 * what /health and the view endpoints answer for fresh, stale and unbound states, and how the server treats methods,
 * paths, content negotiation and a daemon that throws.
 */
class StatusServerTest {

  private static final Freshness FRESHNESS = new Freshness(Duration.ofMillis(3500));
  private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();

  private final FakeTime time = new FakeTime();
  private final Stub daemon = new Stub();
  private Vertx vertx;
  private StatusServer server;
  private int port;

  /** A daemon whose verdict, agent ports and failures the test sets. */
  private static final class Stub {
    volatile NodeHealth health;
    volatile boolean listening = true;
    volatile RuntimeException failure;
    final StatusSource source = new VerdictOnly(() -> {
      if (failure != null) {
        throw failure;
      }
      return health;
    }, () -> listening);
  }

  @BeforeEach
  void start() throws Exception {
    daemon.health = Healths.primary("node1").observedAt(time.nanos()).build();
    Config config = ConfigLoader.parse("", ConfigLoader.Overrides.none(), Map.of());
    vertx = Vertx.vertx();
    server = new StatusServer(vertx, config, daemon.source, new Metrics("test", Optional.of("node1")), FRESHNESS, time,
        "test");
    port = server.start(new Config.Http("127.0.0.1", 0)).toCompletionStage().toCompletableFuture()
        .get(10, TimeUnit.SECONDS);
  }

  @AfterEach
  void stop() throws Exception {
    vertx.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
  }

  @Test
  void aFreshPassingVerdictWithTheAgentPortsBoundIsHealthy() {
    assertAnswer(200, "pgbeacon ok: verdicts fresh, agent ports listening\n", get("/health"));
    assertAnswer(200, "passing: primary, timeline 3\n", get("/primary"));
    assertAnswer(503, "critical: primary\n", get("/replica"));
  }

  @Test
  void aStaleVerdictIsUnhealthyAndEveryViewCriticalWithTheFreshnessReason() {
    time.advance(Duration.ofMillis(3501));
    assertAnswer(503, "pgbeacon verdict stale: no observation in the last 3.5s\n", get("/health"));
    assertAnswer(503, "critical: verdict stale: no observation in the last 3.5s\n", get("/primary"));
    assertAnswer(503, "critical: verdict stale: no observation in the last 3.5s\n", get("/replica"));
  }

  @Test
  void aVerdictAtTheLimitIsStillFresh() {
    time.advance(Duration.ofMillis(3500));
    assertEquals(200, get("/health").statusCode());
    assertEquals(200, get("/primary").statusCode());
  }

  @Test
  void agentPortsNotBoundAreUnhealthyThoughTheVerdictIsFresh() {
    daemon.listening = false;
    assertAnswer(503, "pgbeacon agent ports not listening\n", get("/health"));
    assertEquals(200, get("/primary").statusCode(), "the view's decision is the agent's, bound or not");
  }

  @Test
  void aWarningViewIsUpForHaproxy() {
    daemon.health = Healths.replica("node2").replicaView(Healths.warn("replica, lag 13MB")).observedAt(time.nanos())
        .build();
    assertAnswer(200, "warning: replica, lag 13MB\n", get("/replica"));
    assertAnswer(503, "critical: replica\n", get("/primary"));
  }

  @Test
  void everyViewHasItsEndpoint() {
    daemon.health = Healths.replica("node2").sync(true).observedAt(time.nanos()).build();
    assertAnswer(200, "passing: replica, lag 0B\n", get("/sync"));
    assertAnswer(503, "critical: synchronous standby\n", get("/async"));
    assertAnswer(200, "passing: replica, lag 0B\n", get("/read-only"));
    assertAnswer(503, "critical: replica, not a standby leader\n", get("/standby-leader"));
    daemon.health = Healths.primary("node1").observedAt(time.nanos()).build();
    assertAnswer(200, "passing: primary, timeline 3\n", get("/read-only"));
    assertAnswer(503, "critical: primary\n", get("/sync"));
  }

  @Test
  void headAnswersAsGetWithoutTheBody() {
    for (String path : List.of("/health", "/primary", "/replica", "/status", "/metrics", "/nothing")) {
      HttpResponse<String> get = get(path);
      HttpResponse<String> head = send("HEAD", path);
      assertEquals(get.statusCode(), head.statusCode(), path);
      assertEquals("", head.body(), path);
      assertEquals(get.headers().firstValue("Content-Type"), head.headers().firstValue("Content-Type"), path);
      if (!path.equals("/status") && !path.equals("/metrics")) { // those two change between the calls
        assertEquals(Optional.of(Integer.toString(get.body().getBytes(StandardCharsets.UTF_8).length)),
            head.headers().firstValue("Content-Length"), path);
      }
    }
  }

  @Test
  void optionsAnswersAsGetForHaproxysDefaultHttpchk() {
    for (String path : List.of("/health", "/primary", "/replica")) {
      HttpResponse<String> get = get(path);
      HttpResponse<String> options = send("OPTIONS", path);
      assertEquals(get.statusCode(), options.statusCode(), path);
      assertEquals(get.body(), options.body(), path);
    }
  }

  @Test
  void otherMethodsAreNotAllowedAndSayWhichAre() {
    for (String method : List.of("POST", "PUT", "DELETE", "PATCH")) {
      HttpResponse<String> r = send(method, "/primary");
      assertEquals(405, r.statusCode(), method);
      assertEquals("GET, HEAD or OPTIONS\n", r.body(), method);
      assertEquals(Optional.of("GET, HEAD, OPTIONS"), r.headers().firstValue("Allow"), method);
    }
  }

  @Test
  void anUnknownPathIsNotFound() {
    for (String path : List.of("/", "/nothing", "/primary/", "/health/x", "/status.json")) {
      HttpResponse<String> r = get(path);
      assertEquals(404, r.statusCode(), path);
      assertTrue(r.body().startsWith("no such endpoint"), path + ": " + r.body());
    }
  }

  @Test
  void metricsInOpenMetricsWhenAskedForElsePrometheusText() throws Exception {
    HttpResponse<String> open = HTTP.send(request("/metrics").header("Accept",
        "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1").build(),
        HttpResponse.BodyHandlers.ofString());
    assertEquals(200, open.statusCode());
    assertTrue(open.headers().firstValue("Content-Type").orElse("").startsWith("application/openmetrics-text"),
        open.headers().toString());
    assertTrue(open.body().endsWith("# EOF\n"), open.body());

    HttpResponse<String> text = get("/metrics");
    assertTrue(text.headers().firstValue("Content-Type").orElse("").startsWith("text/plain; version=0.0.4"));
    assertTrue(text.body().contains("pgbeacon_build_info{"), text.body());
    assertTrue(!text.body().contains("# EOF"), "no OpenMetrics trailer in Prometheus text");
  }

  @Test
  void aDaemonThatThrowsGetsA500AndTheServerKeepsAnswering() {
    daemon.failure = new IllegalStateException("board broken");
    for (String path : List.of("/health", "/primary", "/status")) {
      HttpResponse<String> r = get(path);
      assertEquals(500, r.statusCode(), path);
      assertEquals("internal error: java.lang.IllegalStateException: board broken\n", r.body(), path);
    }
    assertEquals(500, send("HEAD", "/primary").statusCode());
    assertEquals(200, get("/metrics").statusCode(), "what does not ask the daemon still answers");

    daemon.failure = null;
    assertAnswer(200, "passing: primary, timeline 3\n", get("/primary"));
    assertEquals(200, get("/health").statusCode());
  }

  private static void assertAnswer(int code, String body, HttpResponse<String> response) {
    assertEquals(code, response.statusCode(), response.uri() + ": " + response.body());
    assertEquals(body, response.body(), response.uri().toString());
    assertEquals(Optional.of("no-store"), response.headers().firstValue("Cache-Control"));
  }

  private HttpResponse<String> get(String path) {
    return send("GET", path);
  }

  private HttpResponse<String> send(String method, String path) {
    try {
      return HTTP.send(request(path).method(method, HttpRequest.BodyPublishers.noBody()).build(),
          HttpResponse.BodyHandlers.ofString());
    } catch (Exception e) {
      throw new IllegalStateException(method + " " + path + ": " + e, e);
    }
  }

  private HttpRequest.Builder request(String path) {
    return HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path)).timeout(Duration.ofSeconds(5));
  }
}
