package io.pgbeacon.consul;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.pgbeacon.config.Config;
import io.pgbeacon.config.ConfigLoader;
import io.pgbeacon.health.NodeHealth;
import io.pgbeacon.health.Status;
import io.pgbeacon.health.Verdict;
import io.pgbeacon.support.Await;
import io.pgbeacon.support.ConsulDevAgent;
import io.pgbeacon.support.ConsulHttp;
import io.vertx.core.Context;
import io.vertx.core.Vertx;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The registrar against a real {@code consul agent -dev} with ACLs on (default deny). */
class ConsulRegistrarIT {

  private static final String TOKEN = "9f1c6a3e-0d4b-4c0e-8a55-4b5f0e2d7c11";
  private static final Duration SOON = Duration.ofSeconds(10);

  @TempDir static Path dir;
  static ConsulDevAgent consul;
  static ConsulHttp http;

  Vertx vertx;
  Context context;
  ConsulRegistrar registrar;

  @BeforeAll
  static void startConsul() throws Exception {
    consul = new ConsulDevAgent(dir, TOKEN).start();
    http = new ConsulHttp(consul.address(), TOKEN);
  }

  @AfterAll
  static void stopConsul() {
    consul.close();
  }

  @BeforeEach
  void setUp() {
    vertx = Vertx.vertx();
    context = vertx.getOrCreateContext();
  }

  @AfterEach
  void tearDown() throws Exception {
    if (registrar != null) {
      onLoop(() -> registrar.stop()).get(10, TimeUnit.SECONDS);
    }
    vertx.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
  }

  @Test
  void registersBothServicesAndFollowsEachVerdictAtOnce() throws Exception {
    registrar = registrar("node1", "critical");
    publish(health("node1", "master", pass("primary, timeline 1"), park("master")));

    // Registration sets the status, the TTL update right after it sets the output.
    Await.until("primary check passing with the verdict's reason", SOON,
        () -> http.check("service:patroni-primary-node1"),
        c -> "passing".equals(c.path("Status").asText()) && "primary, timeline 1".equals(c.path("Output").asText()));
    // The replica service is registered right after the primary's, on the same worker thread.
    Await.until("replica check registered critical", SOON, () -> http.checkStatus("service:patroni-replica-node1"),
        "critical"::equals);

    JsonNode service = http.service("patroni-primary-node1");
    assertEquals("patroni-primary", service.path("Service").asText());
    assertEquals(6432, service.path("Port").asInt());
    assertEquals("127.0.0.1", service.path("Address").asText());
    assertEquals(List.of("master", "demo"), list(service.path("Tags")));
    assertEquals("node1", service.path("Meta").path("node").asText());
    assertEquals("7", service.path("Meta").path("timeline").asText());
    assertEquals("4.1.5", service.path("Meta").path("patroni_version").asText());
    assertEquals(List.of("node1"), http.passingNodes("patroni-primary"));

    // A switchover seen from this node: demoted, then a replica.
    publish(health("node1", "master", fail("PostgreSQL stopping (role master)"), fail("PostgreSQL stopping")));
    Await.until("primary check critical", SOON, () -> http.checkStatus("service:patroni-primary-node1"),
        "critical"::equals);
    publish(health("node1", "replica", park("replica"), pass("replica, lag 0B")));
    Await.until("replica passing", SOON, () -> http.passingNodes("patroni-replica"), List.of("node1")::equals);
    assertEquals(List.of("replica", "async", "demo"), list(http.service("patroni-replica-node1").path("Tags")),
        "tags follow the role");
    assertTrue(http.passingNodes("patroni-primary").isEmpty());
  }

  @Test
  void registersAgainWhenTheAgentForgetsItsServices() throws Exception {
    registrar = registrar("node2", "critical");
    publish(health("node2", "replica", park("replica"), pass("replica, lag 0B")));
    Await.until("replica passing", SOON, () -> http.passingNodes("patroni-replica"),
        nodes -> nodes.contains("node2"));

    consul.restart(); // -dev: the agent comes back empty

    Await.until("replica registered and passing again", SOON, () -> http.passingNodes("patroni-replica"),
        nodes -> nodes.contains("node2"));
    assertEquals("critical", http.checkStatus("service:patroni-primary-node2"));
  }

  @Test
  void marksBothChecksCriticalOnStop() throws Exception {
    registrar = registrar("node3", "critical");
    publish(health("node3", "primary", pass("primary"), park("primary")));
    Await.until("primary passing", SOON, () -> http.checkStatus("service:patroni-primary-node3"), "passing"::equals);

    long started = System.nanoTime();
    onLoop(() -> registrar.stop()).get(5, TimeUnit.SECONDS);
    long millis = (System.nanoTime() - started) / 1_000_000;

    assertEquals("critical", http.checkStatus("service:patroni-primary-node3"));
    assertEquals("pgbeacon stopped", http.check("service:patroni-primary-node3").path("Output").asText());
    assertEquals("critical", http.checkStatus("service:patroni-replica-node3"));
    assertTrue(millis < 1000, "stop took " + millis + "ms");
    registrar = null;
  }

  @Test
  void deregistersOnStopWhenAskedTo() throws Exception {
    registrar = registrar("node4", "deregister");
    publish(health("node4", "replica", park("replica"), pass("replica, lag 0B")));
    Await.until("replica passing", SOON, () -> http.checkStatus("service:patroni-replica-node4"), "passing"::equals);
    onLoop(() -> registrar.stop()).get(5, TimeUnit.SECONDS);
    assertEquals("absent", http.checkStatus("service:patroni-replica-node4"));
    assertTrue(http.service("patroni-primary-node4").isMissingNode());
    registrar = null;
  }

  @Test
  void sendsTheTokenOnlyInTheHeader() throws Exception {
    registrar = registrar("node5", "critical");
    publish(health("node5", "replica", park("replica"), pass("replica, lag 0B")));
    Await.until("replica passing", SOON, () -> http.checkStatus("service:patroni-replica-node5"), "passing"::equals);
    // ACLs deny anonymous writes, so the registration above proves the token was sent; Consul's debug log shows
    // every request URL, so the token must not be in it.
    String log = Files.readString(consul.log());
    assertTrue(log.contains("/v1/agent/service/register"), "the log shows request URLs");
    assertFalse(log.contains(TOKEN), "the ACL token appeared in Consul's request log");
  }

  // ---- helpers ---------------------------------------------------------------------------------------------

  private ConsulRegistrar registrar(String node, String onStop) throws Exception {
    Path tokenFile = Files.writeString(dir.resolve("token-" + node), TOKEN);
    Config config = ConfigLoader.parse("""
        node: %s
        consul: {address: http://%s, ttl: 3s, token-file: %s, on-stop: %s}
        services: {address: 127.0.0.1}
        """.formatted(node, consul.address(), tokenFile, onStop), ConfigLoader.Overrides.none(), Map.of());
    return onLoop(() -> {
      ConsulRegistrar r = new ConsulRegistrar(vertx, new EcwidConsulAgent(config.consul()), config, "test");
      r.start();
      return r;
    }).get(5, TimeUnit.SECONDS);
  }

  private void publish(NodeHealth health) throws Exception {
    onLoop(() -> {
      registrar.publish(health);
      return null;
    }).get(5, TimeUnit.SECONDS);
  }

  private <T> CompletableFuture<T> onLoop(java.util.concurrent.Callable<T> work) {
    CompletableFuture<T> result = new CompletableFuture<>();
    context.runOnContext(v -> {
      try {
        T value = work.call();
        if (value instanceof io.vertx.core.Future<?> f) {
          f.onComplete(ar -> result.complete(value));
        } else {
          result.complete(value);
        }
      } catch (Exception e) {
        result.completeExceptionally(e);
      }
    });
    return result;
  }

  private static NodeHealth health(String node, String role, Verdict primary, Verdict replica) {
    return new NodeHealth(Optional.of(node), Optional.of("demo"), role, OptionalLong.of(7),
        "replica".equals(role) ? OptionalLong.of(0) : OptionalLong.empty(), false, Optional.of("4.1.5"),
        Optional.of("127.0.0.1"), primary, replica);
  }

  private static Verdict pass(String reason) {
    return new Verdict(Status.PASSING, false, reason);
  }

  private static Verdict fail(String reason) {
    return new Verdict(Status.CRITICAL, false, reason);
  }

  private static Verdict park(String reason) {
    return new Verdict(Status.CRITICAL, true, reason);
  }

  private static List<String> list(JsonNode array) {
    List<String> out = new java.util.ArrayList<>();
    array.forEach(n -> out.add(n.asText()));
    return out;
  }
}
