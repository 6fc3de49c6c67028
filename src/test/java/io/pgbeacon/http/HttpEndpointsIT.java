package io.pgbeacon.http;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.pgbeacon.PgBeacon;
import io.pgbeacon.config.ConfigLoader;
import io.pgbeacon.support.Await;
import io.pgbeacon.support.ConsulDevAgent;
import io.pgbeacon.support.ConsulHttp;
import io.pgbeacon.support.FreePorts;
import io.pgbeacon.support.Promtool;
import io.pgbeacon.support.RecordedPatroni;
import java.io.InputStream;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashSet;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The HTTP endpoints of a running daemon (in this JVM) against a real Consul agent and node1 of the recorded Patroni
 * 4.1.5 lab, a healthy leader: /metrics as Prometheus's own promtool reads it, /status, /health, /primary, /replica.
 */
class HttpEndpointsIT {

  private static final Duration SOON = Duration.ofSeconds(15);
  private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
  private static final ObjectMapper JSON = new ObjectMapper();

  @TempDir static Path dir;
  static ConsulDevAgent consul;
  static RecordedPatroni patroni;
  static PgBeacon beacon;
  static int agentPort;
  static String base;

  @BeforeAll
  static void start() throws Exception {
    consul = new ConsulDevAgent(dir, null).start();
    patroni = RecordedPatroni.start("4.1.5", "primary.json", true);
    agentPort = FreePorts.next();
    beacon = new PgBeacon(ConfigLoader.parse("""
        patroni: {url: '%s', leader-key: 'off'}
        consul: {address: 'http://%s'}
        agent: {listen: [{address: 127.0.0.1, port: %d, view: primary}]}
        http: {address: 127.0.0.1, port: 0}
        """.formatted(patroni.url(), consul.address(), agentPort), ConfigLoader.Overrides.none(), Map.of()), "test");
    beacon.start().toCompletionStage().toCompletableFuture().get(20, TimeUnit.SECONDS);
    base = "http://127.0.0.1:" + beacon.httpPort();
    Await.until("node1 passing as primary", SOON, () -> get("/primary").statusCode(), code -> code == 200);
  }

  @AfterAll
  static void stop() throws Exception {
    if (beacon != null) {
      beacon.stop().get(20, TimeUnit.SECONDS);
    }
    patroni.close();
    consul.close();
  }

  @Test
  void metricsAreWhatPrometheusAcceptsWithScopeAndNodeOnEverySeries() {
    Await.until("the Consul pushes in the metrics", SOON, () -> get("/metrics").body(),
        b -> b.contains("pgbeacon_consul_push_age_seconds"));
    HttpResponse<String> r = get("/metrics");
    assertEquals(200, r.statusCode());
    assertTrue(r.headers().firstValue("Content-Type").orElse("").startsWith("text/plain; version=0.0.4"));
    Promtool.checkMetrics(r.body());
    String body = r.body();
    for (String series : new String[] {"pgbeacon_build_info{", "pgbeacon_view_status{", "pgbeacon_view_transitions_total{",
        "pgbeacon_view_observation_age_seconds{", "pgbeacon_patroni_request_seconds_bucket{",
        "pgbeacon_consul_call_seconds_count{", "pgbeacon_dcs_watch_up{", "pgbeacon_agent_replies_total{",
        "jvm_memory_used_bytes{", "process_cpu_usage{"}) {
      assertTrue(body.contains(series), series + " missing:\n" + body);
    }
    assertTrue(body.contains("pgbeacon_view_status{node=\"node1\",scope=\"pgbeacon-lab\",status=\"passing\","
        + "view=\"primary\"} 1.0"), body);
    Matcher unlabelled = Pattern.compile("(?m)^(pgbeacon_\\w+)(\\{(?![^}]*node=\"node1\")[^}]*\\})? ").matcher(body);
    if (unlabelled.find()) {
      throw new AssertionError("a series without node=\"node1\": " + unlabelled.group());
    }
  }

  @Test
  void theAgentPortsTheMonitorAndTheEndpointsEachHaveAnEventLoop() {
    // A scrape (about 2 ms of CPU) must never wait in line with agent replies or a verdict.
    Map<String, String> loops = beacon.eventLoops();
    assertEquals(3, loops.size(), loops.toString());
    assertEquals(3, new HashSet<>(loops.values()).size(), "each on its own: " + loops);
  }

  @Test
  void metricsInOpenMetricsWhenAskedFor() throws Exception {
    HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create(base + "/metrics"))
        .header("Accept", "application/openmetrics-text; version=1.0.0").build(), HttpResponse.BodyHandlers.ofString());
    assertEquals(200, r.statusCode());
    assertTrue(r.headers().firstValue("Content-Type").orElse("").startsWith("application/openmetrics-text"));
    assertTrue(r.body().strip().endsWith("# EOF"), r.body());
  }

  @Test
  void agentRepliesAreCountedByListenerAndWord() throws Exception {
    for (int i = 0; i < 5; i++) {
      try (Socket s = new Socket("127.0.0.1", agentPort); InputStream in = s.getInputStream()) {
        in.readAllBytes();
      }
    }
    Pattern up = Pattern.compile("pgbeacon_agent_replies_total\\{listener=\"127\\.0\\.0\\.1:" + agentPort
        + "\",node=\"node1\",reply=\"up\",scope=\"pgbeacon-lab\"} (\\d+)\\.0");
    Await.until("five up replies counted", SOON, () -> {
      Matcher m = up.matcher(get("/metrics").body());
      return m.find() ? Integer.parseInt(m.group(1)) : 0;
    }, n -> n >= 5);
  }

  @Test
  void statusShowsTheVerdictTheReadsAndTheConsulPushes() throws Exception {
    JsonNode status = Await.until("the pushes in /status", SOON, () -> json("/status"),
        s -> s.path("consul").path("checks").has("service:patroni-primary/pgbeacon-lab/node1"));
    assertEquals("node1", status.path("node").asText());
    assertEquals("pgbeacon-lab", status.path("scope").asText());
    assertEquals("primary", status.path("role").asText());
    assertEquals("passing", status.path("views").path("primary").path("status").asText());
    assertEquals("wrong_role", status.path("views").path("replica").path("kind").asText());
    assertTrue(status.path("views").path("primary").path("observation_age_seconds").asDouble() < 5);
    assertTrue(status.path("patroni").path("latency_seconds").asDouble() > 0, status.toString());
    JsonNode push = status.path("consul").path("checks").path("service:patroni-primary/pgbeacon-lab/node1");
    assertEquals("passing", push.path("status").asText());
    assertTrue(push.path("ok").asBoolean(), push.toString());
    assertTrue(status.path("config").toString().contains("patroni:"), "the effective config");
  }

  @Test
  void viewEndpointsGiveTheAgentsDecisionForGetHeadAndOptions() throws Exception {
    HttpResponse<String> primary = get("/primary");
    assertEquals(200, primary.statusCode());
    assertEquals("passing: primary, timeline 1\n", primary.body());
    HttpResponse<String> replica = get("/replica");
    assertEquals(503, replica.statusCode());
    assertEquals("critical: primary\n", replica.body());
    assertEquals(200, send("HEAD", "/primary").statusCode());
    assertEquals("", send("HEAD", "/primary").body());
    assertEquals(503, send("OPTIONS", "/replica").statusCode());
    assertEquals(200, get("/health").statusCode());
    assertEquals(404, get("/nothing").statusCode());
  }

  private static HttpResponse<String> get(String path) {
    return send("GET", path);
  }

  private static HttpResponse<String> send(String method, String path) {
    try {
      return HTTP.send(HttpRequest.newBuilder(URI.create(base + path)).method(method,
          HttpRequest.BodyPublishers.noBody()).timeout(Duration.ofSeconds(5)).build(),
          HttpResponse.BodyHandlers.ofString());
    } catch (Exception e) {
      throw new IllegalStateException(method + " " + path + ": " + e, e);
    }
  }

  private static JsonNode json(String path) {
    try {
      return JSON.readTree(get(path).body());
    } catch (Exception e) {
      throw new IllegalStateException(e);
    }
  }
}
