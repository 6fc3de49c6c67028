package io.pgbeacon.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.pgbeacon.support.Await;
import io.pgbeacon.support.ConsulHttp;
import io.pgbeacon.support.Dns;
import io.pgbeacon.support.Haproxy;
import io.pgbeacon.support.Lab;
import io.pgbeacon.support.LabHaproxies;
import io.pgbeacon.support.Psql;
import io.pgbeacon.support.SafetySampler;
import io.pgbeacon.support.ViewAnswers;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * Which nodes each traffic class reaches, on the real-cluster lab shared with the other e2e classes: a replica whose
 * replication connection is broken for real leaves the replica view and comes back once it streams again; with
 * Patroni's {@code synchronous_mode} on, the {@code sync} view names exactly the synchronous standby before and
 * after a switchover, {@code async} the others, and {@code read-only} the primary too. Each is checked through Consul
 * HTTP (passing instances, their {@code sync}/{@code async} tags), Consul DNS, every node's agent ports (a fixed view,
 * and the listener without a view through agent-send) and HTTP endpoints, the lab's HAProxy, and the shipped
 * {@code sync-reads.cfg} and {@code read-only-fallback.cfg} in HAProxies of their own. What a scenario changes is
 * restored in {@code finally}, so a failure leaves the lab as the next class expects it.
 */
@ExtendWith(Lab.class)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class RoutingIT {

  private static final Duration CONVERGE = Duration.ofSeconds(45);
  /** The lab's pgbeacon.yml: poll.interval 500ms, services.replica.streaming-grace as by default. */
  private static final Duration POLL_AND_GRACE = Duration.ofMillis(500).plusSeconds(10);
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
  private static final String REPLICA = "patroni-replica.service.consul";
  private static final List<String> CONFIGS = List.of("read-only-fallback.cfg", "sync-reads.cfg");

  @TempDir
  static Path dir;

  static Lab lab;
  static ConsulHttp consul;
  static LabHaproxies haproxies;

  @BeforeAll
  static void start() throws IOException {
    long started = System.nanoTime();
    lab = Lab.get();
    consul = new ConsulHttp(lab.consulAddress());
    haproxies = LabHaproxies.start(lab, dir, CONFIGS);
    lab.converged(consul, Duration.ofSeconds(90));
    Await.until("the routing table created through HAProxy's write port", CONVERGE, () -> psql(
        lab.haproxyPort("write"), "CREATE TABLE IF NOT EXISTS e2e_routing (id bigserial PRIMARY KEY, note text)"),
        Psql.Result::ok);
    System.out.printf("RoutingIT: ready in %.1fs%n", (System.nanoTime() - started) / 1e9);
  }

  @AfterAll
  static void stop() {
    if (haproxies != null) {
      haproxies.close();
    }
  }

  /**
   * The replication connection of one replica broken for real: its role may no longer log in, and its walsender is
   * terminated on the primary, while writes go on. On a Patroni that reports {@code replication_state} (3.0.4+, the
   * lab's 4.x) the replica leaves the replica view within a poll plus {@code streaming-grace}, a warning until then;
   * on 3.0.2, which does not, it stays in on the lag rules alone (README, "Streaming"). Either way it is back, with
   * every row written meanwhile, once it streams again.
   */
  @Test
  @Order(1)
  void aReplicaWhoseStreamingIsBrokenLeavesTheReplicaViewAndComesBack() {
    long started = System.nanoTime();
    String leader = lab.converged(consul, CONVERGE);
    String victim = others(leader).get(0);
    String healthy = others(leader).get(1);
    Await.until(victim + " streams from " + leader, CONVERGE, () -> walsender(leader, victim), "streaming"::equals);
    boolean reportsStreaming = patroni(victim).has("replication_state");
    assertEquals(lab.env("LAB_PATRONI").equals("4"), reportsStreaming,
        "Patroni 4 reports replication_state, 3.0.2 does not: " + patroni(victim));
    routesReadsTo(List.of(victim, healthy));
    int rows = 0;
    try {
      assertOk(psqlDirect(leader, "ALTER ROLE replicator NOLOGIN"));
      long broken = System.nanoTime();
      Await.until(victim + "'s walsender gone on " + leader, CONVERGE, () -> psqlDirect(leader,
          "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_replication WHERE application_name = '" + victim
              + "'").output(), "0"::equals);
      assertEquals("(none)", walsender(leader, victim), "refused: it cannot connect again");
      rows += writeRows(3);
      if (reportsStreaming) {
        Await.until("Patroni reports " + victim + " not streaming", CONVERGE, () -> replicationState(victim),
            "(none)"::equals);
        // Within the grace it still serves, as a warning that says why.
        String during = Await.until(victim + "'s replica view no longer plainly passing", CONVERGE,
            () -> http(victim, "replica"), a -> !a.startsWith("200 passing"));
        assertTrue(during.startsWith("200 warning: ") && during.contains("within streaming-grace"), during);
        String reason = Await.until(victim + " out of the replica view", POLL_AND_GRACE.plus(CONVERGE),
            () -> http(victim, "replica"), a -> a.startsWith("503 "));
        System.out.printf("RoutingIT: %s out of the replica view %.1fs after its walsender was terminated: %s%n",
            victim, (System.nanoTime() - broken) / 1e9, reason);
        assertTrue(reason.startsWith("503 critical: not streaming (no replication_state)"), reason);
        rows += writeRows(3);
        routesReadsTo(List.of(healthy));
        String agent = agentSend(victim, "replica");
        assertTrue(agent.startsWith("down #not streaming"), agent);
        for (String view : List.of("async", "read-only")) {
          assertTrue(agentSend(victim, view).startsWith("down #not streaming"), view + ": " + agent);
        }
        String output = Await.until("Consul's check of " + victim + " says why", CONVERGE,
            () -> replicaCheckOutput(victim), o -> o.startsWith("not streaming"));
        assertTrue(output.contains("past streaming-grace"), output);
      } else {
        // Nothing tells 3.0.2's pgbeacon: it keeps the replica on the lag rules, past where 4.x would drop it.
        long until = System.nanoTime() + POLL_AND_GRACE.plusSeconds(3).toNanos();
        int samples = 0;
        while (System.nanoTime() < until) {
          rows += writeRows(1);
          assertTrue(consul.passingNodes("patroni-replica").contains(victim), "lag rules only on 3.0.2");
          String agent = agentSend(victim, "replica");
          assertTrue(agent.startsWith("up ready"), agent);
          samples++;
          Await.pause(Duration.ofMillis(500));
        }
        assertTrue(samples > 3, "sampled " + samples);
        System.out.printf("RoutingIT: Patroni 3.0.2, %s kept in the replica view for %.1fs without streaming (%d"
            + " samples)%n", victim, (System.nanoTime() - broken) / 1e9, samples);
        routesReadsTo(List.of(victim, healthy));
      }
    } finally {
      assertOk(psqlDirect(leader, "ALTER ROLE replicator LOGIN"));
    }
    Await.until(victim + " streams again", CONVERGE, () -> walsender(leader, victim), "streaming"::equals);
    Await.until("Patroni reports " + victim + " streaming again", CONVERGE, () -> replicationState(victim),
        s -> s.equals("streaming") || !reportsStreaming);
    Await.until(victim + " has every row written meanwhile", CONVERGE,
        () -> psqlDirect(victim, "SELECT count(*) FROM e2e_routing").output(),
        n -> n.equals(psqlDirect(leader, "SELECT count(*) FROM e2e_routing").output()));
    routesReadsTo(List.of(victim, healthy));
    assertTrue(http(victim, "replica").startsWith("200 passing: replica"), http(victim, "replica"));
    lab.run(Duration.ofSeconds(120), "wait-healthy", "110");
    System.out.printf("RoutingIT: streaming scenario took %.1fs (%d rows written)%n",
        (System.nanoTime() - started) / 1e9, rows);
  }

  /**
   * {@code synchronous_mode} on: {@code sync} is exactly the synchronous standby Patroni names, {@code async} the
   * other replica, {@code read-only} every node with the primary; the same after a switchover to the synchronous
   * standby (Patroni then picks another), with never two primaries on the way.
   */
  @Test
  @Order(2)
  void withSynchronousModeSyncNamesExactlyTheSynchronousStandbyBeforeAndAfterASwitchover() {
    long started = System.nanoTime();
    String leader = lab.converged(consul, CONVERGE);
    try {
      lab.patchPatroniConfig("{\"synchronous_mode\": true}");
      String sync = syncStandby(leader);
      viewsFollow(leader, sync);

      List<SafetySampler.Source> sources = List.of(
          new SafetySampler.Source("Consul patroni-primary (passing)", () -> consul.passingNodes("patroni-primary")),
          new SafetySampler.Source("HAProxy lab write", () -> Haproxy.up(lab.haproxySocket(), "write")));
      SafetySampler sampler = SafetySampler.start(() -> lab.leaderKeyHolder(consul), sources);
      List<SafetySampler.Result> results;
      try {
        // With synchronous_mode on Patroni takes a switchover only to a synchronous standby.
        lab.run(Duration.ofSeconds(90), "switchover", sync);
        lab.converged(consul, CONVERGE);
      } finally {
        results = sampler.stop();
      }
      results.forEach(r -> System.out.println("RoutingIT: switchover to the synchronous standby: " + r));
      for (SafetySampler.Result r : results) {
        assertTrue(r.samples() > 10, "the sampler hardly ran: " + r);
        assertTrue(r.maxPrimaries() <= 1, "two primaries at once: " + r);
        assertEquals(0, r.notLeader(), "a primary the leader key did not name: " + r);
      }
      assertEquals(sync, lab.leader());
      viewsFollow(sync, syncStandby(sync));
    } finally {
      lab.patchPatroniConfig("{\"synchronous_mode\": false}");
    }
    Await.until("no synchronous standby", CONVERGE, () -> roles(lab.leader()), r -> !r.containsValue("sync_standby"));
    String now = lab.converged(consul, CONVERGE);
    Await.until("every replica tagged async again", CONVERGE, () -> passingWithTag("async"), others(now)::equals);
    Await.until("sync-reads.cfg falls back to the primary", CONVERGE, () -> landsOn(5002), now::equals);
    lab.run(Duration.ofSeconds(120), "wait-healthy", "110");
    System.out.printf("RoutingIT: synchronous-mode scenario took %.1fs%n", (System.nanoTime() - started) / 1e9);
  }

  // ---- what each consumer shows --------------------------------------------------------------------------------

  /**
   * Every door names {@code sync} the only synchronous standby and the other replicas asynchronous, and read-only
   * passes everywhere, the primary included.
   */
  private static void viewsFollow(String primary, String sync) {
    List<String> async = others(primary).stream().filter(n -> !n.equals(sync)).toList();
    Await.until("Consul: only " + sync + " tagged sync", CONVERGE, () -> passingWithTag("sync"), List.of(sync)::equals);
    Await.until("Consul: " + async + " tagged async", CONVERGE, () -> passingWithTag("async"), async::equals);
    Await.until("Consul DNS: sync." + REPLICA, CONVERGE, () -> dns("sync." + REPLICA),
        List.of(lab.address(sync))::equals);
    Await.until("Consul DNS: async." + REPLICA, CONVERGE, () -> dns("async." + REPLICA),
        async.stream().map(lab::address).sorted().toList()::equals);
    for (String node : lab.nodeNames()) {
      boolean isSync = node.equals(sync);
      boolean isPrimary = node.equals(primary);
      expect(node, "sync", isSync);
      expect(node, "async", !isSync && !isPrimary);
      expect(node, "read-only", true);
      expect(node, isPrimary ? "primary" : "replica", true);
    }
    assertTrue(agentSend(sync, "async").startsWith("maint #synchronous standby"), agentSend(sync, "async"));
    async.forEach(n -> assertTrue(agentSend(n, "sync").startsWith("maint #asynchronous replica"), n));
    assertTrue(agentSend(primary, "read-only").startsWith("up ready 100% #primary"), "read-only has the primary");
    Haproxy syncReads = haproxies.haproxy("sync-reads.cfg");
    Await.until("sync-reads.cfg: only " + sync + " UP (its backups: only the primary)", CONVERGE,
        () -> upNodes(syncReads, "pg_read_sync"), List.of(sync, primary + " (backup)")::equals);
    Await.until("sync-reads.cfg: psql reaches " + sync, CONVERGE, () -> landsOn(5002), sync::equals);
    for (int i = 0; i < 3; i++) {
      assertEquals(sync, landsOn(5002), "reads with a synchronous standby go nowhere else");
    }
    ViewAnswers.assertAgree(lab, CONVERGE);
  }

  /** Reads reach exactly {@code replicas}: Consul, its DNS, the lab's read backend and read-only-fallback.cfg. */
  private static void routesReadsTo(List<String> replicas) {
    List<String> sorted = replicas.stream().sorted().toList();
    Await.until("Consul passes " + sorted + " as replicas", CONVERGE,
        () -> consul.passingNodes("patroni-replica").stream().sorted().toList(), sorted::equals);
    Await.until("Consul DNS answers " + sorted, CONVERGE, () -> dns(REPLICA),
        sorted.stream().map(lab::address).sorted().toList()::equals);
    Await.until("the lab's HAProxy reads from " + sorted, CONVERGE, () -> Haproxy.up(lab.haproxySocket(), "read"),
        sorted::equals);
    Haproxy readOnly = haproxies.haproxy("read-only-fallback.cfg");
    String primary = lab.leader();
    Await.until("read-only-fallback.cfg reads from " + sorted, CONVERGE, () -> upNodes(readOnly, "pg_read"),
        concat(sorted, List.of(primary + " (backup)"))::equals);
    for (int i = 0; i < 3; i++) {
      String on = landsOn(5001);
      assertTrue(sorted.contains(on), "read-only-fallback.cfg's reads land on " + on + ", not in " + sorted);
    }
    ViewAnswers.assertAgree(lab, CONVERGE);
  }

  /** The agent port without a view (agent-send) and HTTP /{view} both say traffic, or both say none. */
  private static void expect(String node, String view, boolean traffic) {
    String agent = Await.until(node + " agent-send " + view, CONVERGE, () -> agentSend(node, view),
        a -> a.startsWith("up ready") == traffic);
    String http = Await.until(node + " /" + view, CONVERGE, () -> http(node, view),
        a -> a.startsWith("200 ") == traffic);
    assertEquals(traffic, agent.startsWith("up ready"), node + " " + view + ": " + agent + " / " + http);
  }

  /** The nodes whose servers are UP in a shipped configuration's backend: pgN, and pgN_primary as "node (backup)". */
  private static List<String> upNodes(Haproxy haproxy, String backend) {
    List<String> active = new ArrayList<>();
    List<String> backups = new ArrayList<>();
    for (Haproxy.StatRow row : haproxy.stat(backend)) {
      if (row.status().equals("UP")) {
        String node = lab.nodeNames().get(Integer.parseInt(row.server().replaceAll("\\D", "")) - 1);
        if (row.server().endsWith("_primary")) {
          backups.add(node + " (backup)");
        } else {
          active.add(node);
        }
      }
    }
    return concat(active.stream().sorted().toList(), backups.stream().sorted().toList());
  }

  /** The node a new connection through a shipped configuration's {@code bind *:port} reaches, by psql. */
  private static String landsOn(int original) {
    String config = original == 5002 ? "sync-reads.cfg" : "read-only-fallback.cfg";
    Psql.Result r = psql(haproxies.port(config, original), "select host(inet_server_addr())");
    return r.ok() ? lab.nodeNames().stream().filter(n -> lab.address(n).equals(r.output())).findFirst()
        .orElse("(" + r.output() + ")") : "(" + r.output() + ")";
  }

  /** The output of the verdict check of {@code node}'s patroni-replica instance, as Consul's catalog has it. */
  private static String replicaCheckOutput(String node) {
    for (JsonNode entry : consul.get("/v1/health/service/patroni-replica")) {
      if (entry.path("Service").path("Meta").path("node").asText().equals(node)) {
        for (JsonNode check : entry.path("Checks")) {
          String id = check.path("CheckID").asText();
          if (check.path("ServiceID").asText().equals(entry.path("Service").path("ID").asText())
              && !id.endsWith(":pgbeacon")) {
            return check.path("Output").asText();
          }
        }
      }
    }
    return "(no patroni-replica check of " + node + ")";
  }

  /** Node names (meta "node") of passing patroni-replica instances tagged {@code tag}, sorted. */
  private static List<String> passingWithTag(String tag) {
    List<String> nodes = new ArrayList<>();
    for (JsonNode entry : consul.get("/v1/health/service/patroni-replica?passing&tag=" + tag)) {
      nodes.add(entry.path("Service").path("Meta").path("node").asText());
    }
    return nodes.stream().sorted().toList();
  }

  // ---- Patroni and PostgreSQL -----------------------------------------------------------------------------------

  /** Waits until {@code /cluster} names one synchronous standby (not {@code primary}); its name. */
  private static String syncStandby(String primary) {
    Map<String, String> roles = Await.until("Patroni names a synchronous standby", CONVERGE, () -> roles(primary),
        r -> r.values().stream().filter("sync_standby"::equals).count() == 1);
    return roles.entrySet().stream().filter(e -> e.getValue().equals("sync_standby")).findFirst().orElseThrow()
        .getKey();
  }

  /** Member → role in {@code GET /cluster} of {@code node}. */
  private static Map<String, String> roles(String node) {
    Map<String, String> roles = new TreeMap<>();
    for (JsonNode m : get(lab.rest(node) + "/cluster").path("members")) {
      roles.put(m.path("name").asText(), m.path("role").asText());
    }
    return roles;
  }

  /** The state of {@code replica}'s walsender in {@code primary}'s pg_stat_replication, "(none)" without one. */
  private static String walsender(String primary, String replica) {
    Psql.Result r = psqlDirect(primary, "SELECT coalesce(max(state), '(none)') FROM pg_stat_replication"
        + " WHERE application_name = '" + replica + "'");
    return r.ok() ? r.output() : "(" + r.output() + ")";
  }

  /** {@code replication_state} in the node's {@code /patroni}, "(none)" when absent. */
  private static String replicationState(String node) {
    return patroni(node).path("replication_state").asText("(none)");
  }

  private static JsonNode patroni(String node) {
    return get(lab.rest(node) + "/patroni");
  }

  /** PATCH /config on the leader (the lab's REST API takes no credentials). */

  /** {@code n} rows through HAProxy's write port, one transaction each: the write path goes on. */
  private static int writeRows(int n) {
    for (int i = 0; i < n; i++) {
      assertOk(psql(lab.haproxyPort("write"), "INSERT INTO e2e_routing (note) VALUES ('while a replica is cut off')"));
    }
    return n;
  }

  private static void assertOk(Psql.Result r) {
    assertTrue(r.ok(), r.toString());
  }

  private static Psql.Result psql(int haproxyPort, String sql) {
    return Psql.run(lab.haproxyAddress(), haproxyPort, lab.env("LAB_SUPERUSER"), lab.env("LAB_SUPERUSER_PASSWORD"),
        sql);
  }

  /** Straight to one node's PostgreSQL, bypassing PgBouncer and HAProxy. */
  private static Psql.Result psqlDirect(String node, String sql) {
    return Psql.run(lab.address(node), lab.port(node, "PG"), lab.env("LAB_SUPERUSER"),
        lab.env("LAB_SUPERUSER_PASSWORD"), sql);
  }

  // ---- helpers ---------------------------------------------------------------------------------------------------

  /** The reply of node's agent port without a view to {@code view\n}, as HAProxy's agent-send asks; or "(why not)". */
  private static String agentSend(String node, String view) {
    try (Socket s = new Socket()) {
      s.connect(new InetSocketAddress(lab.address(node), lab.port(node, "AGENT_ANY")), 2000);
      s.setSoTimeout(3000);
      OutputStream out = s.getOutputStream();
      out.write((view + "\n").getBytes(StandardCharsets.US_ASCII));
      out.flush();
      ByteArrayOutputStream in = new ByteArrayOutputStream();
      s.getInputStream().transferTo(in);
      return in.toString(StandardCharsets.US_ASCII).strip();
    } catch (IOException e) {
      return "(" + e + ")";
    }
  }

  /** "CODE body" of node's pgbeacon HTTP {@code /view}, or "(why not)". */
  private static String http(String node, String view) {
    return ViewAnswers.http(lab.env("LAB_NODE" + lab.index(node) + "_PGBEACON_HTTP") + "/" + view,
        Duration.ofSeconds(2));
  }

  private static JsonNode get(String url) {
    try {
      HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(3))
          .build(), HttpResponse.BodyHandlers.ofString());
      return JSON.readTree(r.body());
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  private static List<String> dns(String name) {
    return Dns.a(lab.consulDnsAddress(), lab.consulDnsPort(), name);
  }

  private static List<String> others(String node) {
    return lab.nodeNames().stream().filter(n -> !n.equals(node)).sorted().toList();
  }

  private static List<String> concat(List<String> a, List<String> b) {
    List<String> all = new ArrayList<>(a);
    all.addAll(b);
    return all;
  }
}
