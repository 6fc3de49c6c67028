package io.pgbeacon.consul;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.pgbeacon.config.Config;
import io.pgbeacon.config.ConfigLoader;
import io.pgbeacon.health.Freshness;
import io.pgbeacon.health.NodeHealth;
import io.pgbeacon.health.TimeSource;
import io.pgbeacon.health.Status;
import io.pgbeacon.health.Verdict;
import io.pgbeacon.metrics.Metrics;
import io.pgbeacon.support.Await;
import io.pgbeacon.support.ConsulDevAgent;
import io.pgbeacon.support.ConsulHttp;
import io.pgbeacon.support.Healths;
import io.pgbeacon.support.LogCapture;
import io.pgbeacon.support.StandInConsul;
import ch.qos.logback.classic.Level;
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
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.io.TempDir;

/** The registrar against a real {@code consul agent -dev} with ACLs on (default deny). */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class ConsulRegistrarIT {

  private static final String TOKEN = "9f1c6a3e-0d4b-4c0e-8a55-4b5f0e2d7c11";
  private static final Duration SOON = Duration.ofSeconds(10);
  private static final Duration STOP_BUDGET = Duration.ofSeconds(5);

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
      stop().get(10, TimeUnit.SECONDS);
    }
    vertx.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
  }

  @Test
  void registersBothServicesAndFollowsEachVerdictAtOnce() throws Exception {
    registrar = registrar("node1", "critical");
    publish(health("node1", "master", Healths.pass("primary, timeline 1"), Healths.park("master")));

    // Registration sets the status, the TTL update right after it sets the output.
    Await.until("primary check passing with the verdict's reason", SOON,
        () -> http.check("service:patroni-primary/demo/node1"),
        c -> "passing".equals(c.path("Status").asText()) && "primary, timeline 1".equals(c.path("Output").asText()));
    // The replica service is registered right after the primary's, on the same worker thread.
    Await.until("replica check registered critical", SOON, () -> http.checkStatus("service:patroni-replica/demo/node1"),
        "critical"::equals);

    JsonNode service = http.service("patroni-primary/demo/node1");
    assertEquals("patroni-primary", service.path("Service").asText());
    assertEquals(6432, service.path("Port").asInt());
    assertEquals("127.0.0.1", service.path("Address").asText());
    assertEquals(List.of("master", "demo"), list(service.path("Tags")));
    assertEquals("node1", service.path("Meta").path("node").asText());
    assertEquals("7", service.path("Meta").path("timeline").asText());
    assertEquals("4.1.5", service.path("Meta").path("patroni_version").asText());
    assertEquals(List.of("node1"), http.passingNodes("patroni-primary"));

    // A switchover seen from this node: demoted, then a replica.
    publish(health("node1", "master", Healths.fail("PostgreSQL stopping (role master)"), Healths.fail("PostgreSQL stopping")));
    Await.until("primary check critical", SOON, () -> http.checkStatus("service:patroni-primary/demo/node1"),
        "critical"::equals);
    publish(health("node1", "replica", Healths.park("replica"), Healths.pass("replica, lag 0B")));
    Await.until("replica passing", SOON, () -> http.passingNodes("patroni-replica"), List.of("node1")::equals);
    assertEquals(List.of("replica", "async", "demo"), list(http.service("patroni-replica/demo/node1").path("Tags")),
        "tags follow the role");
    assertTrue(http.passingNodes("patroni-primary").isEmpty());
  }

  @Test
  void registersAgainWhenTheAgentForgetsItsServices() throws Exception {
    registrar = registrar("node2", "critical");
    publish(health("node2", "replica", Healths.park("replica"), Healths.pass("replica, lag 0B")));
    Await.until("replica passing", SOON, () -> http.passingNodes("patroni-replica"),
        nodes -> nodes.contains("node2"));

    consul.restart(); // -dev: the agent comes back empty

    Await.until("replica registered and passing again", SOON, () -> http.passingNodes("patroni-replica"),
        nodes -> nodes.contains("node2"));
    assertEquals("critical", http.checkStatus("service:patroni-primary/demo/node2"));
  }

  @Test
  void marksBothChecksCriticalOnStop() throws Exception {
    registrar = registrar("node3", "critical");
    publish(health("node3", "primary", Healths.pass("primary"), Healths.park("primary")));
    Await.until("primary passing", SOON, () -> http.checkStatus("service:patroni-primary/demo/node3"), "passing"::equals);

    long started = System.nanoTime();
    stop().get(5, TimeUnit.SECONDS);
    long millis = (System.nanoTime() - started) / 1_000_000;

    assertEquals("critical", http.checkStatus("service:patroni-primary/demo/node3"));
    assertEquals("pgbeacon stopped", http.check("service:patroni-primary/demo/node3").path("Output").asText());
    assertEquals("critical", http.checkStatus("service:patroni-replica/demo/node3"));
    assertEquals("critical", http.checkStatus("service:patroni-primary/demo/node3:pgbeacon"), "the liveness check too");
    assertTrue(millis < 1000, "stop took " + millis + "ms");
    registrar = null;
  }

  @Test
  void deregistersOnStopWhenAskedTo() throws Exception {
    registrar = registrar("node4", "deregister");
    publish(health("node4", "replica", Healths.park("replica"), Healths.pass("replica, lag 0B")));
    Await.until("replica passing", SOON, () -> http.checkStatus("service:patroni-replica/demo/node4"), "passing"::equals);
    stop().get(5, TimeUnit.SECONDS);
    assertEquals("absent", http.checkStatus("service:patroni-replica/demo/node4"));
    assertTrue(http.service("patroni-primary/demo/node4").isMissingNode());
    registrar = null;
  }

  @Test
  void sendsTheTokenOnlyInTheHeader() throws Exception {
    registrar = registrar("node5", "critical");
    publish(health("node5", "replica", Healths.park("replica"), Healths.pass("replica, lag 0B")));
    Await.until("replica passing", SOON, () -> http.checkStatus("service:patroni-replica/demo/node5"), "passing"::equals);
    // ACLs deny anonymous writes, so the registration above proves the token was sent; Consul's debug log shows
    // every request URL, so the token must not be in it.
    String log = Files.readString(consul.log());
    assertTrue(log.contains("/v1/agent/service/register"), "the log shows request URLs");
    assertFalse(log.contains(TOKEN), "the ACL token appeared in Consul's request log");
  }

  @Test
  void aCallThatLandedWithoutAnAnswerLeavesNoStaleRecordBehind() throws Exception {
    // Issue 9, case 1: a call that failed may still have been applied. The registrar must not trust its record of
    // what Consul holds after a failure: a withdrawal equal to that record is still sent. The fault — a request
    // applied and then never answered — is what a real agent cannot do on cue, hence the stand-in.
    try (StandInConsul standIn = StandInConsul.start()) {
      registrar = registrar(config("""
          node: node6
          consul: {address: http://%s, ttl: 30s}
          services: {address: 127.0.0.1}
          """.formatted(standIn.address())), Freshness.UNBOUNDED);
      NodeHealth withdrawn = health("node6", "primary", Healths.fail("switchover to node2 requested"),
          Healths.park("primary"));
      publish(withdrawn);
      Await.until("the primary withdrawn in Consul", SOON, () -> standIn.check("service:patroni-primary/demo/node6"),
          c -> c != null && c.status().equals("critical") && c.output().equals("switchover to node2 requested"));

      // One sync: the primary's pass is applied and answered; the replica's update is applied, never answered.
      Await.until("the first sync's replica update applied too", SOON,
          () -> standIn.check("service:patroni-replica/demo/node6"), c -> c != null && c.output().equals("primary"));
      Await.pause(Duration.ofMillis(300));
      standIn.dropAfterApplying("/service:patroni-replica/demo/node6"); // the update's path: /v1/agent/check/update/<id>
      publish(health("node6", "primary", Healths.pass("primary, timeline 7"), Healths.fail("PostgreSQL restarting")));
      Await.until("the pass applied and the replica's update dropped", SOON,
          () -> standIn.check("service:patroni-primary/demo/node6").status(), "passing"::equals);
      Await.until("the replica's update applied", SOON, () -> standIn.check("service:patroni-replica/demo/node6").output(),
          "PostgreSQL restarting"::equals);

      publish(withdrawn); // exactly what the registrar last knew Consul to hold before the failed sync
      Await.until("the withdrawal reached Consul well before the next refresh (10 s)", Duration.ofSeconds(4),
          () -> standIn.check("service:patroni-primary/demo/node6").status(), "critical"::equals);
    }
  }

  @Test
  void aStopWhileTheAgentIsStalledIsTheLastWordWhenItResumes(@TempDir Path own) throws Exception {
    // Issue 9, case 2, on a real agent: refreshes (every second at ttl 3s) hang in a SIGSTOPped agent; a stop meanwhile
    // must be what the agent ends with once it resumes — not a refresh's pass with a fresh TTL and no pgbeacon left.
    ConsulDevAgent stalled = new ConsulDevAgent(own, null).start();
    try {
      ConsulHttp agent = new ConsulHttp(stalled.address());
      registrar = registrar(config("""
          node: node7
          patroni: {timeout: 500ms}
          consul: {address: http://%s, ttl: 3s, timeout: 500ms}
          services: {address: 127.0.0.1}
          """.formatted(stalled.address())), Freshness.UNBOUNDED);
      publish(health("node7", "primary", Healths.pass("primary, timeline 7"), Healths.park("primary")));
      Await.until("primary passing", SOON, () -> agent.checkStatus("service:patroni-primary/demo/node7"), "passing"::equals);

      CompletableFuture<Void> stopped;
      long stopStarted;
      stalled.signal("STOP");
      try {
        Await.pause(Duration.ofMillis(2500)); // refreshes fall due meanwhile and hang in the agent
        stopStarted = System.nanoTime();
        stopped = stop();
        Await.pause(Duration.ofSeconds(2));
      } finally {
        stalled.signal("CONT");
      }
      stopped.get(10, TimeUnit.SECONDS);
      long stopMillis = (System.nanoTime() - stopStarted) / 1_000_000;
      registrar = null;
      assertTrue(stopMillis < STOP_BUDGET.toMillis() + 1000, "stop took " + stopMillis + "ms");

      // For two TTLs: a pass applied after the stop would show here, passing again with a fresh TTL.
      long until = System.nanoTime() + Duration.ofMillis(6500).toNanos();
      while (System.nanoTime() < until) {
        JsonNode check = agent.check("service:patroni-primary/demo/node7");
        assertEquals("critical", check.path("Status").asText(), check.toString());
        // (once its TTL runs out: "TTL expired (last output before timeout follows): pgbeacon stopped")
        assertTrue(check.path("Output").asText().endsWith("pgbeacon stopped"), check.toString());
        Await.pause(Duration.ofMillis(50));
      }
    } finally {
      stalled.close();
    }
  }

  @Test
  void aStopGivesUpOnAnAgentStalledForItsWholeBudget(@TempDir Path own) throws Exception {
    ConsulDevAgent stalled = new ConsulDevAgent(own, null).start();
    try (LogCapture log = LogCapture.of(ConsulRegistrar.class)) {
      registrar = registrar(config("""
          node: node11
          patroni: {timeout: 500ms}
          consul: {address: http://%s, ttl: 3s, timeout: 500ms}
          services: {address: 127.0.0.1}
          """.formatted(stalled.address())), Freshness.UNBOUNDED);
      publish(health("node11", "replica", Healths.park("replica"), Healths.pass("replica, lag 0B")));
      ConsulHttp agent = new ConsulHttp(stalled.address());
      Await.until("replica passing", SOON, () -> agent.checkStatus("service:patroni-replica/demo/node11"),
          "passing"::equals);
      stalled.signal("STOP");
      try {
        long started = System.nanoTime();
        stop().get(10, TimeUnit.SECONDS);
        long millis = (System.nanoTime() - started) / 1_000_000;
        registrar = null;
        assertTrue(millis < STOP_BUDGET.toMillis() + 1000, "stop took " + millis + "ms");
        assertTrue(log.at(Level.WARN).stream().anyMatch(l -> l.contains("did not confirm the stop")), "warned");
      } finally {
        stalled.signal("CONT");
      }
    } finally {
      stalled.close();
    }
  }

  @Test
  void aVerdictThatIsNotRenewedIsPublishedAsStale() throws Exception {
    registrar = registrar(config("""
        node: node8
        consul: {address: http://%s, ttl: 30s, token-file: %s}
        services: {address: 127.0.0.1}
        """.formatted(consul.address(), tokenFile("node8"))), new Freshness(Duration.ofSeconds(2)));
    publish(health("node8", "primary", Healths.pass("primary, timeline 7"), Healths.park("primary")));
    Await.until("primary passing", SOON, () -> http.checkStatus("service:patroni-primary/demo/node8"), "passing"::equals);
    // No newer verdict: the poll loop stopped. Well before the TTL (30 s) the check says so.
    Await.until("critical: verdict stale", Duration.ofSeconds(5), () -> http.check("service:patroni-primary/demo/node8"),
        c -> "critical".equals(c.path("Status").asText())
            && c.path("Output").asText().startsWith("verdict stale: no observation in the last 2s"));
    publish(health("node8", "primary", Healths.pass("primary, timeline 7"), Healths.park("primary")));
    Await.until("passing again on a fresh verdict", SOON, () -> http.checkStatus("service:patroni-primary/demo/node8"),
        "passing"::equals);
  }

  @Test
  void anOutageIsOneRetryASecondAndTwoLinesOfLog() throws Exception {
    try (StandInConsul standIn = StandInConsul.start(); LogCapture log = LogCapture.of(ConsulRegistrar.class)) {
      registrar = registrar(config("""
          node: node9
          patroni: {timeout: 500ms}
          consul: {address: http://%s, ttl: 3s, timeout: 500ms}
          services: {address: 127.0.0.1}
          """.formatted(standIn.address())), Freshness.UNBOUNDED);
      NodeHealth passing = health("node9", "primary", Healths.pass("primary, timeline 7"), Healths.park("primary"));
      NodeHealth failing = health("node9", "primary", Healths.fail("PgBouncer: refused"), Healths.park("primary"));
      publish(passing);
      Await.until("primary passing", SOON, () -> standIn.check("service:patroni-primary/demo/node9"),
          c -> c != null && c.status().equals("passing"));

      standIn.failing(true);
      int before = standIn.calls();
      long started = System.nanoTime();
      for (int i = 0; i < 50; i++) { // 5 s of verdict changes at the monitor's fast pace, refreshes every second
        publish(i % 2 == 0 ? failing : passing);
        Await.pause(Duration.ofMillis(100));
      }
      double seconds = (System.nanoTime() - started) / 1e9;
      int calls = standIn.calls() - before;
      assertTrue(calls <= seconds + 2, calls + " calls in " + seconds + " s of outage: one retry chain, one a second");
      standIn.failing(false);
      publish(failing);
      Await.until("the latest verdict in Consul once it answers", SOON,
          () -> standIn.check("service:patroni-primary/demo/node9").status(), "critical"::equals);
      assertEquals(1, log.at(Level.WARN).size(), "one WARN for the outage: " + log.at(Level.WARN));
      Await.until("one INFO when it ends", SOON,
          () -> log.at(Level.INFO).stream().filter(l -> l.contains("answering again")).count(), n -> n == 1L);
    }
  }

  /**
   * An upgrade from the ID form {@code <service>-<node>}: this node's old services are removed at start, before the
   * new ones are registered; another cluster's old service of the same node name on the same agent is left alone.
   */
  @Test
  void retiresThisNodesServicesOfTheOldIdFormAndNoOneElses() throws Exception {
    http.put("/v1/agent/service/register", oldForm("patroni-primary", "node15", "demo"));
    http.put("/v1/agent/service/register", oldForm("patroni-replica", "node15", "other"));
    assertEquals("passing", http.checkStatus("service:patroni-primary-node15"));

    registrar = registrar("node15", "critical");
    publish(health("node15", "replica", Healths.park("replica"), Healths.pass("replica, lag 0B")));

    Await.until("the new replica service passing", SOON,
        () -> http.checkStatus("service:patroni-replica/demo/node15"), "passing"::equals);
    assertTrue(http.service("patroni-primary-node15").isMissingNode(), "this cluster's old primary service retired");
    assertEquals("absent", http.checkStatus("service:patroni-primary-node15"));
    assertEquals("other", http.service("patroni-replica-node15").path("Meta").path("scope").asText(),
        "the other cluster's old service of the same node name stays");
    assertEquals("critical", http.checkStatus("service:patroni-primary/demo/node15"));
    http.put("/v1/agent/service/deregister/patroni-replica-node15", "");
  }

  private static String oldForm(String name, String node, String scope) {
    return ("{\"ID\": \"%1$s-%2$s\", \"Name\": \"%1$s\", \"Tags\": [\"%3$s\"], \"Port\": 6432,"
        + " \"Meta\": {\"node\": \"%2$s\", \"scope\": \"%3$s\"},"
        + " \"Check\": {\"CheckID\": \"service:%1$s-%2$s\", \"TTL\": \"60s\", \"Status\": \"passing\"}}")
        .formatted(name, node, scope);
  }

  @Test
  void anOutageOfTheRealAgentIsOneAttemptASecondOneWarnAndOneInfo(@TempDir Path own) throws Exception {
    // Issue 9, case 9, on a real agent: SIGKILLed (its port refuses at once), then started again, empty (-dev), while
    // the verdict changes at the monitor's fast pace. Attempts are counted by the registrar's own account (its INFO
    // line) and by the Consul client's error counter, not by timing.
    ConsulDevAgent agent = new ConsulDevAgent(own, null).start();
    Metrics metrics = new Metrics("test", Optional.of("node14"));
    try (LogCapture log = LogCapture.of(ConsulRegistrar.class)) {
      ConsulHttp agentHttp = new ConsulHttp(agent.address());
      Config config = config("""
          node: node14
          patroni: {timeout: 500ms}
          consul: {address: http://%s, ttl: 3s, timeout: 500ms}
          services: {address: 127.0.0.1}
          """.formatted(agent.address()));
      registrar = onLoop(() -> {
        ConsulRegistrar r = new ConsulRegistrar(vertx, new EcwidConsulAgent(config.consul(), metrics), config,
            "test", Freshness.UNBOUNDED, TimeSource.SYSTEM, metrics);
        r.start();
        return r;
      }).get(5, TimeUnit.SECONDS);
      NodeHealth passing = health("node14", "primary", Healths.pass("primary, timeline 7"), Healths.park("primary"));
      NodeHealth failing = health("node14", "primary", Healths.fail("PgBouncer: refused"), Healths.park("primary"));
      publish(passing);
      Await.until("primary passing", SOON, () -> agentHttp.checkStatus("service:patroni-primary/demo/node14"),
          "passing"::equals);
      double errorsBefore = consulErrors(metrics);
      assertEquals(List.of(), log.at(Level.WARN), "no WARN before the outage");

      long killed = System.nanoTime();
      agent.kill();
      for (int i = 0; i < 60; i++) { // 6 s of verdict changes at the fast poll's pace, refreshes every second
        publish(i % 2 == 0 ? failing : passing);
        Await.pause(Duration.ofMillis(100));
      }
      agent.start(); // the same ports, no services
      Await.until("the agent holds both services again, the primary passing with the latest verdict", SOON,
          () -> agentHttp.check("service:patroni-primary/demo/node14"),
          c -> "passing".equals(c.path("Status").asText())
              && "primary, timeline 7".equals(c.path("Output").asText()));
      double seconds = (System.nanoTime() - killed) / 1e9;
      // The replica service is registered right after the primary's, on the same worker thread.
      Await.until("the replica service back, critical (wrong role)", SOON,
          () -> agentHttp.checkStatus("service:patroni-replica/demo/node14"), "critical"::equals);
      for (String alive : List.of("service:patroni-primary/demo/node14:pgbeacon",
          "service:patroni-replica/demo/node14:pgbeacon")) {
        Await.until(alive + " passing", SOON, () -> agentHttp.checkStatus(alive), "passing"::equals);
      }

      // Logged on the loop once the sync that restored them returns.
      List<String> ends = Await.until("one INFO when they ended", SOON,
          () -> log.at(Level.INFO).stream().filter(l -> l.contains("answering again")).toList(), l -> !l.isEmpty());
      assertEquals(1, ends.size(), "one INFO when they ended: " + ends);
      List<String> warns = log.at(Level.WARN);
      assertEquals(1, warns.size(), "one WARN when the failures started: " + warns);
      assertTrue(warns.get(0).startsWith("Consul: "), warns.get(0));
      java.util.regex.Matcher m = java.util.regex.Pattern.compile("\\((\\d+) failed attempts?\\)").matcher(ends.get(0));
      assertTrue(m.find(), ends.get(0));
      int attempts = Integer.parseInt(m.group(1));
      double errors = consulErrors(metrics) - errorsBefore;
      System.out.printf("Consul down and back in %.1f s: %d failed attempts (registrar), %.0f failed calls (client)%n",
          seconds, attempts, errors);
      // One a second: at most one more than the whole seconds, at least one per two (a loaded machine is late).
      assertTrue(attempts <= seconds + 1, attempts + " attempts in " + seconds + " s: one retry chain, one a second");
      assertTrue(attempts >= seconds / 2 - 1, attempts + " attempts in " + seconds + " s: retrying every second");
      assertTrue(errors >= attempts && errors <= seconds + 2,
          errors + " failed calls for " + attempts + " failed attempts in " + seconds + " s");
    } finally {
      stop().get(10, TimeUnit.SECONDS);
      registrar = null;
      agent.close();
    }
  }

  /** Failed Consul calls so far, of every kind but an unknown check (the agent's answer that makes it register). */
  private static double consulErrors(Metrics metrics) {
    return metrics.scrape("text/plain").lines()
        .filter(l -> l.startsWith("pgbeacon_consul_errors_total{") && !l.contains("kind=\"unknown_check\""))
        .mapToDouble(l -> Double.parseDouble(l.substring(l.lastIndexOf(' ') + 1))).sum();
  }

  @Test
  void aReplicaLagMovingByBytesDoesNotReRegisterIt() throws Exception {
    registrar = registrar("node10", "critical");
    publish(health("node10", "replica", Healths.park("replica"), Healths.pass("replica, lag 100B")));
    Await.until("replica passing", SOON, () -> http.checkStatus("service:patroni-replica/demo/node10"), "passing"::equals);
    long index = catalogIndex("patroni-replica", "node10");
    for (int lag = 200; lag <= 4200; lag += 500) { // refreshes every second (ttl 3s) carry each new lag
      publish(Healths.replica("node10").timeline(7).host("127.0.0.1").lag(lag).build());
      Await.pause(Duration.ofMillis(500));
    }
    assertEquals(index, catalogIndex("patroni-replica", "node10"), "the service was registered again");
    assertEquals("0", http.service("patroni-replica/demo/node10").path("Meta").path("lag_bytes").asText());
  }

  /**
   * Consul removes a service once a check carrying DeregisterCriticalServiceAfter has been critical that long (at
   * least 1 m; its reaper runs every 30 s), also a check critical by design: a healthy replica's primary service.
   * Only the liveness check carries the delay. Consul takes ~1.5 min to reap, so this runs beside the other tests:
   * {@link #startReapingWatch} registers a healthy replica (node12) and a pgbeacon that stops at once (node13) on an
   * agent of their own and samples node12's services; the last test waits for node13's to go.
   */
  @Test
  @Order(Integer.MAX_VALUE)
  void aHealthyNodesWrongRoleServiceIsNeverReapedButAStoppedOnesIs() throws Exception {
    ConsulHttp agent = new ConsulHttp(reaping.address());
    Await.until("node13's services removed after deregister-critical-after (1m)", Duration.ofSeconds(120)
        .minus(Duration.ofNanos(System.nanoTime() - reapingSince)), () -> agent.service("patroni-replica/demo/node13")
        .isMissingNode(), gone -> gone);
    // The reaper pass that removed node13's services is the one that would remove node12's too; a registrar that
    // re-registers at its next refresh leaves a gap of under a second right after it: keep sampling past it.
    Await.pause(Duration.ofSeconds(3));
    reapSampler.interrupt();
    reapSampler.join();
    assertTrue(reapSamples.get() > 100, "sampled " + reapSamples.get() + " times");
    assertEquals(List.of(), reapGaps, "node12's healthy services went missing (sampled every 200 ms)");
  }

  static ConsulDevAgent reaping;
  static Vertx reapingVertx;
  static long reapingSince;
  static Thread reapSampler;
  static final java.util.concurrent.atomic.AtomicInteger reapSamples = new java.util.concurrent.atomic.AtomicInteger();
  static final List<String> reapGaps = new java.util.concurrent.CopyOnWriteArrayList<>();

  @BeforeAll
  static void startReapingWatch() throws Exception {
    reaping = new ConsulDevAgent(java.nio.file.Files.createDirectories(dir.resolve("reaping")), null).start();
    reapingVertx = Vertx.vertx();
    ConsulHttp agent = new ConsulHttp(reaping.address());
    String yaml = """
        node: %s
        consul: {address: http://%s, ttl: 10s, deregister-critical-after: 1m}
        services: {address: 127.0.0.1}
        """;
    Context context = reapingVertx.getOrCreateContext();
    CompletableFuture<Void> started = new CompletableFuture<>();
    context.runOnContext(v -> {
      for (String node : List.of("node12", "node13")) {
        try {
          Config config = config(yaml.formatted(node, reaping.address()));
          ConsulRegistrar r = new ConsulRegistrar(reapingVertx, new EcwidConsulAgent(config.consul()), config,
              "test", Freshness.UNBOUNDED, TimeSource.SYSTEM, io.pgbeacon.metrics.Metrics.none());
          r.start();
          r.publish(health(node, "replica", Healths.park("replica"), Healths.pass("replica, lag 0B")));
          if (node.equals("node13")) {
            reapingVertx.setTimer(2000, id -> r.stop(STOP_BUDGET).onComplete(ar -> started.complete(null)));
          }
        } catch (Exception e) {
          started.completeExceptionally(e);
        }
      }
    });
    started.get(20, TimeUnit.SECONDS);
    reapingSince = System.nanoTime();
    assertEquals("critical", agent.checkStatus("service:patroni-replica/demo/node13:pgbeacon"), "node13 stopped");
    Await.until("node12 registered", SOON, () -> agent.checkStatus("service:patroni-primary/demo/node12"),
        "critical"::equals);
    reapSampler = new Thread(() -> {
      while (!Thread.currentThread().isInterrupted()) {
        try {
          for (String id : List.of("patroni-primary/demo/node12", "patroni-replica/demo/node12")) {
            if (agent.service(id).isMissingNode()) {
              reapGaps.add(id + " at +" + (System.nanoTime() - reapingSince) / 1_000_000 + "ms");
            }
          }
          reapSamples.incrementAndGet();
          Thread.sleep(200);
        } catch (InterruptedException e) {
          return;
        } catch (RuntimeException e) {
          // a failed read is not an observation
        }
      }
    }, "reap-sampler");
    reapSampler.start();
  }

  @AfterAll
  static void stopReapingWatch() throws Exception {
    if (reapSampler != null) {
      reapSampler.interrupt();
    }
    if (reapingVertx != null) {
      reapingVertx.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
    }
    if (reaping != null) {
      reaping.close();
    }
  }

  private long catalogIndex(String service, String node) {
    for (JsonNode entry : http.get("/v1/catalog/service/" + service)) {
      if (node.equals(entry.path("ServiceMeta").path("node").asText())) {
        return entry.path("ModifyIndex").asLong();
      }
    }
    throw new AssertionError(service + " of " + node + " not in the catalog");
  }

  // ---- helpers ---------------------------------------------------------------------------------------------

  private ConsulRegistrar registrar(String node, String onStop) throws Exception {
    return registrar(config("""
        node: %s
        patroni: {timeout: 500ms}
        consul: {address: http://%s, ttl: 3s, timeout: 500ms, token-file: %s, on-stop: %s}
        services: {address: 127.0.0.1}
        """.formatted(node, consul.address(), tokenFile(node), onStop)), Freshness.UNBOUNDED);
  }

  private static Path tokenFile(String node) throws java.io.IOException {
    return Files.writeString(dir.resolve("token-" + node), TOKEN);
  }

  private static Config config(String yaml) throws Exception {
    return ConfigLoader.parse(yaml, ConfigLoader.Overrides.none(), Map.of());
  }

  private ConsulRegistrar registrar(Config config, Freshness freshness) throws Exception {
    return onLoop(() -> {
      ConsulRegistrar r = new ConsulRegistrar(vertx, new EcwidConsulAgent(config.consul()), config, "test",
          freshness, TimeSource.SYSTEM, io.pgbeacon.metrics.Metrics.none());
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

  private CompletableFuture<Void> stop() {
    return onLoop(() -> registrar.stop(STOP_BUDGET)).thenApply(f -> null);
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
    Healths h = "replica".equals(role) ? Healths.replica(node) : Healths.primary(node).role(role);
    return h.timeline(7).host("127.0.0.1").primaryView(primary).replicaView(replica).build();
  }

  private static List<String> list(JsonNode array) {
    List<String> out = new java.util.ArrayList<>();
    array.forEach(n -> out.add(n.asText()));
    return out;
  }
}
