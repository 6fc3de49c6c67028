package io.pgbeacon;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pgbeacon.config.ConfigLoader;
import io.pgbeacon.health.Status;
import io.pgbeacon.support.Await;
import io.pgbeacon.support.ConsulDevAgent;
import io.pgbeacon.support.ConsulHttp;
import io.pgbeacon.support.FreePorts;
import io.pgbeacon.support.PgBouncerProcess;
import io.pgbeacon.support.RecordedPatroni;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The monitor's ordering rules, in-process: the real daemon (poller, verdict, registrar, key watches) against a
 * real {@code consul agent -dev}, where the test writes Patroni's leader and failover keys itself, and node1 of the
 * recorded Patroni 4.1.5 lab, which can be made to stop answering at a chosen moment.
 */
class MonitorIT {

  private static final String SCOPE = "pgbeacon-lab"; // the recorded lab's
  private static final String LEADER_KEY = "service/" + SCOPE + "/leader";
  private static final String FAILOVER_KEY = "service/" + SCOPE + "/failover";
  private static final String PRIMARY_CHECK = "service:patroni-primary/pgbeacon-lab/node1";
  private static final String REPLICA_CHECK = "service:patroni-replica/pgbeacon-lab/node1";
  private static final Duration SOON = Duration.ofSeconds(10);

  @TempDir static Path dir;
  static ConsulDevAgent consul;
  static ConsulHttp http;

  RecordedPatroni patroni;
  PgBeacon beacon;

  @BeforeAll
  static void startConsul() throws Exception {
    consul = new ConsulDevAgent(dir, null).start();
    http = new ConsulHttp(consul.address());
  }

  @AfterAll
  static void stopConsul() {
    consul.close();
  }

  @AfterEach
  void tearDown() throws Exception {
    if (beacon != null) {
      beacon.stop().get(20, TimeUnit.SECONDS);
    }
    if (patroni != null) {
      patroni.close();
    }
    http.deleteKv(FAILOVER_KEY);
    http.deleteKv(LEADER_KEY);
  }

  @Test
  void aClearedSwitchoverRequestDoesNotGrantThePrimaryFromAnAnswerReadBeforeIt() throws Exception {
    patroni = RecordedPatroni.start("4.1.5", "primary.json", true);
    http.putKv(LEADER_KEY, "node1");
    beacon = start("patroni: {url: '" + patroni.url() + "', timeout: 4s}\n");
    Await.until("node1 passing as primary", SOON, () -> http.checkStatus(PRIMARY_CHECK), "passing"::equals);

    http.putKv(FAILOVER_KEY, "{\"leader\": \"node1\", \"member\": \"node2\"}");
    Await.until("the primary withdrawn on the request, Patroni still answering as primary", SOON,
        () -> http.check(PRIMARY_CHECK).path("Output").asText(), "switchover to node2 requested"::equals);
    assertEquals("critical", http.checkStatus(PRIMARY_CHECK));

    // Patroni stops answering, so the last answer pgbeacon has is from before the request. Then the request
    // disappears (as when Patroni completes it): that stale answer must not make node1 primary again.
    patroni.hang(true);
    http.deleteKv(FAILOVER_KEY);
    List<Status> seen = new ArrayList<>();
    long until = System.nanoTime() + Duration.ofSeconds(2).toNanos(); // well inside patroni.timeout
    while (System.nanoTime() < until) {
      seen.add(beacon.health().primary().status());
      Await.pause(Duration.ofMillis(20));
    }
    assertTrue(seen.stream().allMatch(Status.CRITICAL::equals), "primary view while Patroni hung: " + seen);
    assertEquals("critical", http.checkStatus(PRIMARY_CHECK));

    // A fresh answer, read after the request is gone, grants it again.
    patroni.hang(false);
    Await.until("node1 passing again on a fresh answer", SOON, () -> http.checkStatus(PRIMARY_CHECK),
        "passing"::equals);
  }

  @Test
  void aNodeNamedOnlyByPatroniIsStillWithdrawnInConsulWhenPatroniStopsAnswering() throws Exception {
    patroni = RecordedPatroni.start("4.1.5", "primary.json", true);
    // No `node:`: the name comes from Patroni's answer, and so is unknown to the verdict once Patroni is gone.
    beacon = start("patroni: {url: '" + patroni.url() + "', timeout: 500ms, leader-key: 'off'}\n");
    Await.until("node1 passing as primary", SOON, () -> http.checkStatus(PRIMARY_CHECK), "passing"::equals);

    patroni.close(); // connection refused from now on
    // The TTL is 30 s: only pgbeacon's own push can turn the check critical this soon.
    Await.until("the primary check critical, long before its TTL", SOON,
        () -> http.check(PRIMARY_CHECK).path("Output").asText(), o -> o.startsWith("Patroni unreachable"));
    assertEquals("critical", http.checkStatus(PRIMARY_CHECK));

    beacon.stop().get(20, TimeUnit.SECONDS);
    assertEquals("pgbeacon stopped", http.check(PRIMARY_CHECK).path("Output").asText());
  }

  @Test
  void aFailingLeaderWatchDoesNotLiftWhatItLastSaw(@TempDir Path own) throws Exception {
    // Its own Consul agent, to be stopped: the watch then fails every second while Patroni, which still believes it
    // holds the lock (it does until its ttl runs out), keeps answering as primary with the DCS view unchanged.
    ConsulDevAgent local = new ConsulDevAgent(own, null).start();
    try {
      ConsulHttp localHttp = new ConsulHttp(local.address());
      patroni = RecordedPatroni.start("4.1.5", "primary.json", true);
      localHttp.putKv(LEADER_KEY, "node1");
      beacon = start("patroni: {url: '" + patroni.url() + "'}\n", local.address());
      Await.until("node1 passing as primary", SOON, () -> beacon.health().primary().status(), Status.PASSING::equals);

      localHttp.putKv(LEADER_KEY, "node2");
      Await.until("node1 withdrawn: the key names node2", SOON, () -> beacon.health().primary().reason(),
          "leader key names node2, not node1"::equals);

      local.stop(); // every read of the watch fails from now on
      List<Status> seen = new ArrayList<>();
      long until = System.nanoTime() + Duration.ofSeconds(3).toNanos(); // several failed reads (one a second)
      while (System.nanoTime() < until) {
        seen.add(beacon.health().primary().status());
        Await.pause(Duration.ofMillis(20));
      }
      assertTrue(seen.stream().allMatch(Status.CRITICAL::equals), "primary view while the watch failed: " + seen);
    } finally {
      local.close();
    }
  }

  @Test
  void aWithdrawalPatroniReportsDoesNotWaitForAHungPgBouncer(@TempDir Path own) throws Exception {
    // Issue 9, case 6: while the old primary demotes, its PgBouncer stops answering; a poll that waited for it
    // published Patroni's withdrawal up to pgbouncer.timeout late — an overlap without the leader-key watch.
    try (PgBouncerProcess pgbouncer = PgBouncerProcess.start(own)) {
      patroni = RecordedPatroni.start("4.1.5", "primary.json", true);
      beacon = start("patroni: {url: '" + patroni.url() + "', timeout: 1s, leader-key: 'off'}\n"
          + "pgbouncer: {host: 127.0.0.1, port: " + pgbouncer.port() + ", user: pgbeacon, required: false,"
          + " timeout: 4s}\n");
      Await.until("node1 passing as primary", SOON, () -> beacon.health().primary().status(),
          Status.PASSING::equals);

      pgbouncer.signal("STOP");
      try {
        Await.pause(Duration.ofSeconds(1)); // a probe is hung now, and the next ones will be
        long withdrawn = System.nanoTime();
        patroni.serve("primary.json", false); // Patroni: no longer holding the leader lock
        Await.until("the primary withdrawn", SOON, () -> beacon.health().primary().reason(),
            "primary without the leader lock (demoting or isolated)"::equals);
        long millis = (System.nanoTime() - withdrawn) / 1_000_000;
        System.out.printf("withdrawal published %d ms after Patroni reported it, PgBouncer hung%n", millis);
        assertTrue(millis < 2000, "published " + millis + " ms after Patroni reported it (pgbouncer.timeout 4s)");
      } finally {
        pgbouncer.signal("CONT");
      }
    }
  }

  @Test
  void readsTheClusterViewAtTheBaseRateWhilePollingFast() throws Exception {
    // Issue 9, case 10: every GET /cluster is a full DCS read inside Patroni. While a node is promoted (here:
    // holding the lock while still a replica) /primary is polled every 25 ms; /cluster stays at the base rate.
    patroni = RecordedPatroni.start("4.1.5", "replica.json", true);
    beacon = start("patroni: {url: '" + patroni.url() + "', leader-key: 'off'}\npoll: {interval: 500ms}\n");
    Await.until("promoting", SOON, () -> beacon.health().primary().reason(), r -> r.startsWith("promoting"));
    int primary = patroni.requests("/primary");
    int cluster = patroni.requests("/cluster");
    Await.pause(Duration.ofSeconds(3));
    int primaryRate = (patroni.requests("/primary") - primary) / 3;
    int clusterRate = (patroni.requests("/cluster") - cluster) / 3;
    System.out.printf("while promoting: /primary %d/s, /cluster %d/s%n", primaryRate, clusterRate);
    assertTrue(primaryRate >= 10, "/primary polled fast: " + primaryRate + "/s");
    assertTrue(clusterRate <= 3, "/cluster at the base rate (2/s): " + clusterRate + "/s");
  }

  @Test
  void anExceptionInATickPublishesBothViewsCriticalAndThePollingGoesOn() throws Exception {
    // Issue 9, case 3: a RuntimeException on every tick kept the previous verdict, passing included. The loop's
    // boundary (MonitorVerticle.failed) must publish critical in every view, and the next good tick publish again.
    patroni = RecordedPatroni.start("4.1.5", "primary.json", true);
    AtomicReference<String> bug = new AtomicReference<>();
    int primaryPort = FreePorts.next();
    int replicaPort = FreePorts.next();
    String yaml = "patroni: {url: '" + patroni.url() + "', leader-key: 'off'}\n"
        + "consul: {address: 'http://" + consul.address() + "', ttl: 30s}\n"
        + "agent: {listen: [{address: 127.0.0.1, port: " + primaryPort + ", view: primary},"
        + " {address: 127.0.0.1, port: " + replicaPort + ", view: replica}]}\n"
        + "http: {port: 0}\n";
    beacon = new PgBeacon(ConfigLoader.parse(yaml, ConfigLoader.Overrides.none(), Map.of()), "test")
        .verdictsThrough(health -> {
          String message = bug.get();
          if (message != null) {
            throw new IllegalStateException(message);
          }
          return health;
        });
    beacon.start().toCompletionStage().toCompletableFuture().get(20, TimeUnit.SECONDS);
    Await.until("node1 passing as primary", SOON, () -> http.checkStatus(PRIMARY_CHECK), "passing"::equals);
    assertTrue(agentReply(primaryPort).startsWith("up ready"), "the primary port before the bug");
    int polls = patroni.requests("/primary");

    bug.set("a bug in a decision");
    String reason = "internal error: java.lang.IllegalStateException: a bug in a decision";
    // The TTL is 30 s: only pgbeacon's own push can turn the checks critical this soon.
    for (String check : List.of(PRIMARY_CHECK, REPLICA_CHECK)) {
      Await.until(check + " critical with the exception", SOON, () -> http.check(check),
          c -> "critical".equals(c.path("Status").asText()) && reason.equals(c.path("Output").asText()));
    }
    assertEquals("down #" + reason + "\n", agentReply(primaryPort));
    assertEquals("down #" + reason + "\n", agentReply(replicaPort));
    int failing = patroni.requests("/primary");
    Await.until("polling on while every tick throws", SOON, () -> patroni.requests("/primary"),
        n -> n >= failing + 3);
    assertTrue(failing > polls, "the failing ticks polled Patroni");

    bug.set(null);
    Await.until("node1 passing again on the next good tick", SOON, () -> http.checkStatus(PRIMARY_CHECK),
        "passing"::equals);
    assertTrue(agentReply(primaryPort).startsWith("up ready"), "the primary port after the bug");
    Await.until("the replica view back to the wrong role", SOON,
        () -> http.check(REPLICA_CHECK).path("Output").asText(), o -> !o.startsWith("internal error"));
  }

  private PgBeacon start(String patroniYaml) throws Exception {
    return start(patroniYaml, consul.address());
  }

  /** The line the agent port answers (a connection, read to EOF). */
  private static String agentReply(int port) throws java.io.IOException {
    try (java.net.Socket socket = new java.net.Socket("127.0.0.1", port)) {
      socket.setSoTimeout(2000);
      return new String(socket.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.US_ASCII);
    }
  }

  private PgBeacon start(String patroniYaml, String consulAddress) throws Exception {
    String yaml = patroniYaml
        + "consul: {address: 'http://" + consulAddress + "', ttl: 30s}\n"
        + "agent: {listen: [{address: 127.0.0.1, port: " + FreePorts.next() + ", view: primary}]}\n"
        + "http: {port: 0}\n";
    PgBeacon b = new PgBeacon(ConfigLoader.parse(yaml, ConfigLoader.Overrides.none(), Map.of()), "test");
    b.start().toCompletionStage().toCompletableFuture().get(20, TimeUnit.SECONDS);
    return b;
  }
}
