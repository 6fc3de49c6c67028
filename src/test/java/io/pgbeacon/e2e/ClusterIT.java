package io.pgbeacon.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.pgbeacon.support.Await;
import io.pgbeacon.support.ConsulHttp;
import io.pgbeacon.support.Dns;
import io.pgbeacon.support.Haproxy;
import io.pgbeacon.support.Lab;
import io.pgbeacon.support.Prometheus;
import io.pgbeacon.support.Promtool;
import io.pgbeacon.support.Psql;
import io.pgbeacon.support.ViewAnswers;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * The main job end to end, on the real-cluster lab ({@code scripts/lab.sh}): three real Patroni nodes (3.0.2 or
 * 4.x, per {@code pgbeacon.lab.patroni}) each on its own loopback address with its own Consul client agent,
 * PostgreSQL, PgBouncer and one pgbeacon process; a Consul server; HAProxy in front, driven by pgbeacon's agent
 * ports; Prometheus scraping every pgbeacon. Every scenario is checked through each consumer a user has: Consul
 * HTTP, Consul DNS, HAProxy's stats socket, a real psql through HAProxy, and Prometheus's query API; each pgbeacon's
 * agent ports and HTTP health endpoints must agree. Scenarios run in order on one lab start; each leaves the
 * cluster healthy.
 */
@ExtendWith(Lab.class)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class ClusterIT {

  private static final Duration CONVERGE = Duration.ofSeconds(30);
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
  private static final String PRIMARY = "patroni-primary.service.consul";
  private static final String REPLICA = "patroni-replica.service.consul";
  private static final String NO_PRIMARY = "PgbeaconNoPrimary";

  static Lab lab;
  static ConsulHttp consul;
  static Prometheus prometheus;

  @BeforeAll
  static void lab() {
    lab = Lab.get();
    consul = new ConsulHttp(lab.consulAddress());
    prometheus = new Prometheus(lab.env("LAB_PROMETHEUS"));
    // Through HAProxy's write port, once it routes: a lab just started may not yet.
    converged();
    Await.until("the e2e table created through HAProxy's write port", CONVERGE, () -> psqlWrite(
        "CREATE TABLE IF NOT EXISTS e2e_writes (id bigserial PRIMARY KEY, note text NOT NULL,"
        + " at timestamptz NOT NULL DEFAULT now())"), Psql.Result::ok);
  }

  @Test
  @Order(1)
  void everyConsumerSeesExactlyTheLeaderAsPrimaryAndTheOthersAsReplicas() {
    String leader = converged();
    List<String> replicas = others(leader);
    consumersFollow(leader);
    assertEquals(replicas.stream().map(lab::address).sorted().toList(), dns(REPLICA));
    assertEquals(replicas.stream().map(n -> lab.port(n, "PGBOUNCER")).sorted().toList(),
        Dns.srvPorts(lab.consulDnsAddress(), lab.consulDnsPort(), REPLICA));
    Await.until("HAProxy's read port serves from " + replicas, CONVERGE,
        () -> Haproxy.up(lab.haproxySocket(), "read"), replicas::equals);
    assertEquals("MAINT", Haproxy.statuses(lab.haproxySocket(), "write").get(replicas.get(0)),
        "a replica is parked in the write backend, not alarmed about");
    Psql.Result read = psql(lab.haproxyPort("read"), "select pg_is_in_recovery()");
    assertEquals("t", read.output(), "HAProxy's read port reaches a replica: " + read);

    JsonNode service = agentOf(leader).service("patroni-primary/" + lab.scope() + "/" + leader);
    JsonNode patroni = patroni(leader);
    assertEquals(lab.scope(), service.path("Meta").path("scope").asText());
    assertEquals(patroni.path("patroni").path("version").asText(), service.path("Meta").path("patroni_version").asText());
    assertEquals(patroni.path("timeline").asText(), service.path("Meta").path("timeline").asText());
    assertEquals(lab.address(leader), service.path("Address").asText());
    // Patroni 3 says "master", 4 says "primary": the tag is Patroni's own word.
    assertTrue(list(service.path("Tags")).contains(patroni.path("role").asText()), service.toString());
    assertTrue(list(agentOf(replicas.get(0)).service("patroni-replica/" + lab.scope() + "/" + replicas.get(0)).path("Tags"))
        .contains("async"));
    everyMetricsPagePassesPromtool();
  }

  @Test
  @Order(2)
  void theAgentPortsAnswerFromEachNodesVerdict() throws IOException {
    String leader = converged();
    String primary = agent(leader, "AGENT_PRIMARY");
    assertTrue(primary.startsWith("up ready 100% #primary, timeline "), primary);
    assertEquals("maint #" + patroni(leader).path("role").asText() + "\n", agent(leader, "AGENT_REPLICA"));
    for (String replica : others(leader)) {
      assertEquals("maint #replica\n", agent(replica, "AGENT_PRIMARY"));
      String reply = agent(replica, "AGENT_REPLICA");
      assertTrue(reply.startsWith("up ready 100% #replica, lag "), reply);
    }
  }

  @Test
  @Order(3)
  void stoppingPgBouncerOnThePrimaryTakesItOutOfEveryConsumer() throws IOException {
    String leader = converged();
    int i = lab.index(leader);
    lab.run(Duration.ofSeconds(30), "pgbouncer-stop", Integer.toString(i));
    try {
      Await.until("no passing primary while PgBouncer is down", CONVERGE,
          () -> consul.passingNodes("patroni-primary"), List::isEmpty);
      JsonNode check = agentOf(leader).check("service:patroni-primary/" + lab.scope() + "/" + leader);
      assertEquals("critical", check.path("Status").asText());
      assertTrue(check.path("Output").asText().startsWith("PgBouncer:"), check.toString());
      assertTrue(agent(leader, "AGENT_PRIMARY").startsWith("down #PgBouncer:"));
      Await.until("HAProxy's write backend has no server up", CONVERGE,
          () -> Haproxy.up(lab.haproxySocket(), "write"), List::isEmpty);
      assertEquals(List.of(), dns(PRIMARY));
    } finally {
      lab.run(Duration.ofSeconds(30), "pgbouncer-start", Integer.toString(i));
    }
    consumersFollow(leader);
  }

  @Test
  @Order(4)
  void aSwitchoverMovesThePrimaryWithoutEverAdvertisingTwo() {
    String before = converged();
    String candidate = others(before).get(0);
    AlertWatch noPrimary = AlertWatch.start(prometheus, NO_PRIMARY);
    AlertWatch twoPrimaries = AlertWatch.start(prometheus, "PgbeaconTwoPrimaries");
    try {
      watched("switchover " + before + " → " + candidate,
          () -> lab.run(Duration.ofSeconds(90), "switchover", candidate), Optional.of(candidate));
      assertEquals(candidate, leader());
      Await.pause(Duration.ofSeconds(6)); // one more evaluation of the rules (every 5 s) after the last change
    } finally {
      noPrimary.stop();
      twoPrimaries.stop();
    }
    // A switchover's gap (1.5-2 s here) is far below the rule's 10 s; two primaries never happen.
    assertEquals(Optional.empty(), noPrimary.stop(), "a switchover does not fire " + NO_PRIMARY);
    assertEquals(Optional.empty(), twoPrimaries.stop(), "PgbeaconTwoPrimaries");
  }

  @Test
  @Order(5)
  void aSwitchoverBackMovesItTheOtherWay() {
    String before = converged();
    // back to the node that led at the start of the run, in the other direction
    String candidate = lab.nodeNames().stream().filter(n -> !n.equals(before)).sorted().findFirst().orElseThrow();
    watched("switchover " + before + " → " + candidate,
        () -> lab.run(Duration.ofSeconds(90), "switchover", candidate), Optional.of(candidate));
  }

  @Test
  @Order(6)
  void aHardFailoverNamesTheNewPrimaryOnlyOnceItLeads() {
    String crashed = converged();
    int i = lab.index(crashed);
    assertEquals(List.of(), prometheus.firing(NO_PRIMARY), "no alert before the failover");
    AlertWatch noPrimary = AlertWatch.start(prometheus, NO_PRIMARY);
    try {
      String winner = watched("hard failover (SIGKILL Patroni + PostgreSQL on " + crashed + ")",
          () -> lab.run(Duration.ofSeconds(60), "crash", Integer.toString(i)), Optional.empty());
      assertNotEquals(crashed, winner);
      assertEquals("critical", agentOf(crashed).checkStatus("service:patroni-primary/" + lab.scope() + "/" + crashed));
      // Without a primary for Patroni's ttl (20 s), longer than the rule's 10 s: Prometheus fired it, for this scope.
      Map<String, String> fired = noPrimary.stop().orElseThrow(() -> new AssertionError(NO_PRIMARY
          + " did not fire while the cluster had no primary"));
      assertEquals(lab.scope(), fired.get("scope"), fired.toString());
      Await.until(NO_PRIMARY + " resolved once " + winner + " is primary", CONVERGE,
          () -> prometheus.firing(NO_PRIMARY), List::isEmpty);
      everyMetricsPagePassesPromtool();
    } finally {
      noPrimary.stop();
      lab.run(Duration.ofSeconds(30), "patroni-start", Integer.toString(i));
      lab.run(Duration.ofSeconds(120), "wait-healthy", "110");
    }
    String leader = converged();
    assertTrue(consul.passingNodes("patroni-replica").contains(crashed), crashed + " rejoined as a replica");
    consumersFollow(leader);
  }

  @Test
  @Order(7)
  void restartingTheConsulAgentOfThePrimaryKeepsItsServicesTrue() {
    String leader = converged();
    int i = lab.index(leader);
    PrimarySampler sampler = PrimarySampler.start(consul, lab.leaderKey());
    long restarted;
    try {
      lab.run(Duration.ofSeconds(30), "consul-stop", Integer.toString(i));
      Await.pause(Duration.ofSeconds(2));
    } finally {
      lab.run(Duration.ofSeconds(40), "consul-start", Integer.toString(i));
      restarted = System.nanoTime();
    }
    consumersFollow(leader);
    // Past one TTL (10 s) after the restart: only pgbeacon's refreshes keep the checks passing.
    Await.pause(Duration.ofNanos(Math.max(0, Duration.ofSeconds(12).toNanos() - (System.nanoTime() - restarted))));
    assertEquals(List.of(leader), consul.passingNodes("patroni-primary"));
    assertEquals(others(leader), sorted(consul.passingNodes("patroni-replica")));
    PrimarySampler.Result result = stopAndCheck(sampler, "Consul agent restart on " + leader);
    System.out.printf("Consul agent restart on %s: %s%n", leader, result);
  }

  @Test
  @Order(8)
  void pausedPatroniAndAReplicaLaggingPastMaxLag() throws IOException {
    String leader = converged();
    String laggard = others(leader).get(0);
    lab.patchPatroniConfig("{\"pause\": true}");
    try {
      Await.until("Patroni paused", CONVERGE, () -> patroni(leader).path("pause").asBoolean(false), p -> p);
      Await.until("the primary's check says Patroni is paused", CONVERGE,
          () -> agentOf(leader).check("service:patroni-primary/" + lab.scope() + "/" + leader).path("Output").asText(),
          o -> o.contains("Patroni paused"));
      assertEquals(List.of(leader), consul.passingNodes("patroni-primary"), "maintenance mode is not a failure");
      consumersFollow(leader);

      // Replay stalls on one replica (Patroni would undo this outside maintenance mode) while WAL keeps coming.
      assertTrue(psqlDirect(laggard, "select pg_wal_replay_pause()").ok());
      Psql.Result fill = psqlWrite("CREATE TABLE e2e_fill AS SELECT g, repeat('x', 200) AS pad"
          + " FROM generate_series(1, 120000) g; DROP TABLE e2e_fill");
      assertTrue(fill.ok(), fill.toString());
      Await.until(laggard + "'s replica check critical for lag", CONVERGE,
          () -> agentOf(laggard).check("service:patroni-replica/" + lab.scope() + "/" + laggard).path("Output").asText(),
          o -> o.contains("exceeds max-lag"));
      assertEquals("critical", agentOf(laggard).checkStatus("service:patroni-replica/" + lab.scope() + "/" + laggard));
      // The client agent syncs the status to the catalog asynchronously: the servers' view follows shortly.
      Await.until("the catalog drops " + laggard + " from the passing replicas", CONVERGE,
          () -> consul.passingNodes("patroni-replica"), nodes -> !nodes.contains(laggard));
      Await.until("Consul DNS drops " + laggard, CONVERGE, () -> dns(REPLICA),
          addresses -> !addresses.contains(lab.address(laggard)));
      // pgbeacon's agent drains it (agent.past-max-lag: drain): no new reads, sessions in flight may finish.
      Await.until("HAProxy drains " + laggard + " on its read port", CONVERGE,
          () -> Haproxy.statuses(lab.haproxySocket(), "read").get(laggard), s -> s.startsWith("DRAIN"));
      assertTrue(agent(laggard, "AGENT_REPLICA").startsWith("up drain "), "lag alone is not a failure");
      ViewAnswers.assertAgree(lab, CONVERGE); // the laggard's /replica: 503, no new reads either
      assertTrue(ViewAnswers.ask(lab, laggard, "replica").http().startsWith("503 critical: "),
          ViewAnswers.all(lab).toString());
      // The other replica received the same 20+ MB; on a loaded machine it may briefly pass max-lag itself and be
      // drained too. It must be serving reads again once it has replayed them, while the laggard stays drained.
      List<String> healthy = others(leader).stream().filter(n -> !n.equals(laggard)).toList();
      Await.until("HAProxy's read port serves from " + healthy + " only", CONVERGE,
          () -> Haproxy.up(lab.haproxySocket(), "read"), healthy::equals);
      assertTrue(Haproxy.statuses(lab.haproxySocket(), "read").get(laggard).startsWith("DRAIN"));
      assertEquals(List.of(leader), consul.passingNodes("patroni-primary"), "a lagging replica moves no primary");
    } finally {
      psqlDirect(laggard, "select pg_wal_replay_resume()");
      lab.patchPatroniConfig("{\"pause\": false}");
    }
    Await.until(laggard + " caught up and back", CONVERGE, () -> sorted(consul.passingNodes("patroni-replica")),
        others(leader)::equals);
    Await.until("HAProxy's read port uses " + laggard + " again", CONVERGE,
        () -> Haproxy.up(lab.haproxySocket(), "read"), up -> up.contains(laggard));
    Await.until("Patroni resumed", CONVERGE, () -> patroni(leader).path("pause").asBoolean(false), p -> !p);
  }

  @Test
  @Order(9)
  void sigtermTurnsBothChecksCriticalAtOnce() {
    String leader = converged();
    String node = leader; // the hardest case: the primary's pgbeacon goes away
    int i = lab.index(node);
    ConsulHttp agent = agentOf(node);
    lab.run(Duration.ofSeconds(30), "pgbeacon-stop", Integer.toString(i), "TERM");
    try {
      // lab.sh returns once the process has exited; the checks must already be critical.
      assertEquals("critical", agent.checkStatus("service:patroni-primary/" + lab.scope() + "/" + node));
      assertEquals("critical", agent.checkStatus("service:patroni-replica/" + lab.scope() + "/" + node));
      assertEquals("pgbeacon stopped", agent.check("service:patroni-primary/" + lab.scope() + "/" + node).path("Output").asText());
      Await.until("the catalog drops the primary", CONVERGE, () -> consul.passingNodes("patroni-primary"),
          List::isEmpty);
    } finally {
      lab.run(Duration.ofSeconds(30), "pgbeacon-start", Integer.toString(i));
    }
    Await.until("primary passing after restart", CONVERGE, () -> consul.passingNodes("patroni-primary"),
        List.of(leader)::equals);
    consumersFollow(leader);
  }

  @Test
  @Order(10)
  void sigkillLetsTheTtlExpireToCritical() {
    String leader = converged();
    String node = others(leader).get(0);
    int i = lab.index(node);
    ConsulHttp agent = agentOf(node);
    lab.run(Duration.ofSeconds(30), "pgbeacon-stop", Integer.toString(i), "KILL");
    try {
      assertEquals("passing", agent.checkStatus("service:patroni-replica/" + lab.scope() + "/" + node),
          "nobody said goodbye: the check passes until its TTL runs out");
      long killed = System.nanoTime();
      Await.until("TTL expiry", Duration.ofSeconds(30), () -> agent.checkStatus("service:patroni-replica/" + lab.scope() + "/" + node),
          "critical"::equals);
      double seconds = (System.nanoTime() - killed) / 1e9;
      System.out.printf("replica check of %s expired %.1fs after SIGKILL (TTL 10s)%n", node, seconds);
      assertTrue(agent.check("service:patroni-replica/" + lab.scope() + "/" + node).path("Output").asText().contains("TTL expired"));
    } finally {
      lab.run(Duration.ofSeconds(30), "pgbeacon-start", Integer.toString(i));
    }
    Await.until("replica passing after restart", CONVERGE, () -> consul.passingNodes("patroni-replica"),
        nodes -> nodes.contains(node));
  }

  // ---- scenario helpers -----------------------------------------------------------------------------------

  /**
   * Runs {@code action} (a switchover or failover) under the safety sampler, waits until every consumer follows
   * the new leader ({@code expected}, or whoever Patroni names), and fails on any two-primary or not-the-leader
   * observation. Returns the new leader.
   */
  private static String watched(String what, Runnable action, Optional<String> expected) {
    String before = leader();
    PrimarySampler sampler = PrimarySampler.start(consul, lab.leaderKey());
    long started = System.nanoTime();
    String winner;
    try {
      action.run();
      winner = expected.orElseGet(() -> Await.until("Patroni names a new leader", Duration.ofSeconds(90),
          ClusterIT::leader, l -> !l.equals(before) && !l.startsWith("(")));
      Await.until("Consul names " + winner, Duration.ofSeconds(60), () -> consul.passingNodes("patroni-primary"),
          List.of(winner)::equals);
      consumersFollow(winner);
    } finally {
      sampler.stopQuietly();
    }
    PrimarySampler.Result result = stopAndCheck(sampler, what);
    System.out.printf("%s: Consul named %s %.2fs after the request; %s%n", what, winner,
        (sampler.firstSeen(winner) - started) / 1e9, result);
    return winner;
  }

  private static PrimarySampler.Result stopAndCheck(PrimarySampler sampler, String what) {
    PrimarySampler.Result result = sampler.stop();
    assertTrue(result.samples() > 10, what + ": the sampler hardly ran: " + result);
    assertTrue(result.maxPassing() <= 1, what + ": two passing patroni-primary instances were seen: " + result);
    assertEquals(0, result.notLeader(), what + ": a passing primary that Patroni's leader key did not name: " + result);
    return result;
  }

  /** Consul HTTP, Consul DNS, HAProxy and psql through HAProxy all lead to {@code primary}; a write succeeds. */
  private static void consumersFollow(String primary) {
    Await.until("Consul HTTP names " + primary, CONVERGE, () -> consul.passingNodes("patroni-primary"),
        List.of(primary)::equals);
    Await.until("Consul DNS answers " + primary + "'s address", CONVERGE, () -> dns(PRIMARY),
        List.of(lab.address(primary))::equals);
    assertEquals(List.of(lab.port(primary, "PGBOUNCER")),
        Dns.srvPorts(lab.consulDnsAddress(), lab.consulDnsPort(), PRIMARY));
    Await.until("HAProxy's write backend has only " + primary + " up", CONVERGE,
        () -> Haproxy.up(lab.haproxySocket(), "write"), List.of(primary)::equals);
    Await.until("psql through HAProxy's write port reaches " + primary, CONVERGE,
        () -> psqlWrite("select pg_is_in_recovery(), host(inet_server_addr())").output(),
        ("f|" + lab.address(primary))::equals);
    Psql.Result write = psqlWrite("INSERT INTO e2e_writes (note) VALUES ('via HAProxy to " + primary + "')"
        + " RETURNING id");
    assertTrue(write.ok() && write.output().matches("\\d+"), "a write through HAProxy succeeds: " + write);
    prometheusNames(primary);
    ViewAnswers.assertAgree(lab, CONVERGE);
  }

  /**
   * Prometheus, scraping every pgbeacon each second, counts exactly one passing primary in the lab's scope, and it
   * is {@code primary}.
   */
  private static void prometheusNames(String primary) {
    Await.until("Prometheus names " + primary + " the only passing primary", CONVERGE,
        () -> prometheus.query("pgbeacon_view_status{view=\"primary\",status=\"passing\"} == 1").stream()
            .map(s -> s.label("node")).toList(), List.of(primary)::equals);
    List<Prometheus.Sample> perScope = prometheus.query(
        "sum by (scope) (pgbeacon_view_status{view=\"primary\",status=\"passing\"}) == 1");
    assertEquals(List.of(lab.scope()), perScope.stream().map(s -> s.label("scope")).toList(), perScope.toString());
  }

  /** Each node's {@code /metrics} as promtool reads it: valid exposition, no lint problem. */
  private static void everyMetricsPagePassesPromtool() {
    for (String node : lab.nodeNames()) {
      HttpResponse<String> r = get(lab.env("LAB_NODE" + lab.index(node) + "_PGBEACON_HTTP") + "/metrics");
      assertEquals(200, r.statusCode(), node + " /metrics");
      assertTrue(r.body().contains("node=\"" + node + "\""), node + "'s series carry its name");
      Promtool.checkMetrics(r.body());
    }
  }

  private static HttpResponse<String> get(String url) {
    HttpRequest request = HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(5)).build();
    try {
      try {
        return HTTP.send(request, HttpResponse.BodyHandlers.ofString());
      } catch (IOException stale) {
        // A kept-alive connection the server closed as idle (30 s) just as it was reused: "EOF reached while
        // reading" (seen once in a clean CI run). A GET is asked again once, on a new connection, as scrapers do.
        return HTTP.send(request, HttpResponse.BodyHandlers.ofString());
      }
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  /** Polls Prometheus's firing alerts every 250 ms on its own thread; remembers the first firing instance. */
  static final class AlertWatch {
    private final Prometheus prometheus;
    private final String alertname;
    private final AtomicBoolean running = new AtomicBoolean(true);
    private final Thread thread;
    private volatile Map<String, String> fired;

    private AlertWatch(Prometheus prometheus, String alertname) {
      this.prometheus = prometheus;
      this.alertname = alertname;
      this.thread = new Thread(this::loop, "alert-watch");
    }

    static AlertWatch start(Prometheus prometheus, String alertname) {
      AlertWatch w = new AlertWatch(prometheus, alertname);
      w.thread.start();
      return w;
    }

    private void loop() {
      while (running.get() && fired == null) {
        try {
          List<Map<String, String>> now = prometheus.firing(alertname);
          if (!now.isEmpty()) {
            fired = now.get(0);
          }
        } catch (RuntimeException e) {
          // a failed read is not an observation
        }
        Await.pause(Duration.ofMillis(250));
      }
    }

    /** Stops watching (again: a no-op); the first firing instance seen, if any. */
    Optional<Map<String, String>> stop() {
      running.set(false);
      try {
        thread.join();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException(e);
      }
      return Optional.ofNullable(fired);
    }
  }

  private static Psql.Result psqlWrite(String sql) {
    return psql(lab.haproxyPort("write"), sql);
  }

  private static Psql.Result psql(int haproxyPort, String sql) {
    return Psql.run(lab.haproxyAddress(), haproxyPort, lab.env("LAB_SUPERUSER"), lab.env("LAB_SUPERUSER_PASSWORD"), sql);
  }

  /** Straight to one node's PostgreSQL, bypassing PgBouncer and HAProxy. */
  private static Psql.Result psqlDirect(String node, String sql) {
    return Psql.run(lab.address(node), lab.port(node, "PG"), lab.env("LAB_SUPERUSER"),
        lab.env("LAB_SUPERUSER_PASSWORD"), sql);
  }

  private static List<String> dns(String name) {
    return Dns.a(lab.consulDnsAddress(), lab.consulDnsPort(), name);
  }

  private static ConsulHttp agentOf(String node) {
    return new ConsulHttp(lab.consulAgent(node));
  }

  /** PATCH /config on the leader (the lab's REST API takes no credentials). */

  // ---- helpers ---------------------------------------------------------------------------------------------

  /** Waits until Consul shows exactly Patroni's leader as primary and every other node as replica. */
  private static String converged() {
    return lab.converged(consul, Duration.ofSeconds(90));
  }

  private static JsonNode patroni(String node) {
    try {
      HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create(lab.rest(node) + "/patroni"))
          .timeout(Duration.ofSeconds(3)).build(), HttpResponse.BodyHandlers.ofString());
      return JSON.readTree(r.body());
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  /** Patroni's leader, as its own REST API names it. */
  static String leader() {
    return lab.leader();
  }

  private static List<String> others(String node) {
    return lab.nodeNames().stream().filter(n -> !n.equals(node)).sorted().toList();
  }

  private static List<String> sorted(List<String> list) {
    return list.stream().sorted().toList();
  }

  private static String agent(String node, String which) throws IOException {
    try (Socket s = new Socket()) {
      s.connect(new InetSocketAddress(lab.address(node), lab.port(node, which)), 2000);
      s.setSoTimeout(3000);
      ByteArrayOutputStream out = new ByteArrayOutputStream();
      s.getInputStream().transferTo(out);
      return out.toString(StandardCharsets.US_ASCII);
    }
  }

  private static List<String> list(JsonNode array) {
    List<String> out = new ArrayList<>();
    array.forEach(n -> out.add(n.asText()));
    return out;
  }

  /** Reads Consul's passing primaries every ~20 ms on its own thread, as a load balancer would. */
  static final class PrimarySampler {
    record Result(int samples, int maxPassing, int notLeader, long longestZeroMillis) {}

    private final ConsulHttp consul;
    private final String leaderKey;
    private int notLeader;
    private final java.util.Map<String, Long> firstSeen = new java.util.HashMap<>();
    private final AtomicBoolean running = new AtomicBoolean(true);
    private final Thread thread;
    private int samples;
    private int maxPassing;
    private long zeroSince = -1;
    private long longestZero;

    private PrimarySampler(ConsulHttp consul, String leaderKey) {
      this.consul = consul;
      this.leaderKey = leaderKey;
      this.thread = new Thread(this::loop, "primary-sampler");
    }

    static PrimarySampler start(ConsulHttp consul, String leaderKey) {
      PrimarySampler s = new PrimarySampler(consul, leaderKey);
      s.thread.start();
      return s;
    }

    private void loop() {
      while (running.get()) {
        try {
          // Patroni's leader key is read before and after: a passing primary must match one of the two reads.
          String keyBefore = leaderKeyHolder();
          List<String> primaries = consul.passingNodes("patroni-primary");
          String keyAfter = leaderKeyHolder();
          int passing = primaries.size();
          long now = System.nanoTime();
          synchronized (this) {
            samples++;
            if (passing == 1) {
              firstSeen.putIfAbsent(primaries.get(0), now);
            }
            if (primaries.stream().anyMatch(p -> !p.equals(keyBefore) && !p.equals(keyAfter))) {
              notLeader++;
              System.out.println("sampler: passing " + primaries + " while the leader key named " + keyBefore
                  + " then " + keyAfter);
            }
            maxPassing = Math.max(maxPassing, passing);
            if (passing == 0 && zeroSince < 0) {
              zeroSince = now;
            } else if (passing > 0 && zeroSince >= 0) {
              longestZero = Math.max(longestZero, now - zeroSince);
              zeroSince = -1;
            }
          }
        } catch (RuntimeException e) {
          // a failed read is not an observation
        }
        Await.pause(Duration.ofMillis(20));
      }
    }

    private String leaderKeyHolder() {
      try {
        JsonNode entries = consul.get("/v1/kv/" + leaderKey);
        return new String(java.util.Base64.getDecoder().decode(entries.path(0).path("Value").asText()),
            StandardCharsets.UTF_8);
      } catch (IllegalStateException e) {
        return "(none)"; // 404: no leader right now
      }
    }

    /** When {@code node} was first seen as the only passing primary (System.nanoTime()). */
    synchronized long firstSeen(String node) {
      return firstSeen.getOrDefault(node, -1L);
    }

    void stopQuietly() {
      running.set(false);
    }

    Result stop() {
      running.set(false);
      try {
        thread.join();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException(e);
      }
      synchronized (this) {
        return new Result(samples, maxPassing, notLeader, longestZero / 1_000_000);
      }
    }
  }
}
