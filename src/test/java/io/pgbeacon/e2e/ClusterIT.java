package io.pgbeacon.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.pgbeacon.support.Await;
import io.pgbeacon.support.ConsulHttp;
import io.pgbeacon.support.Dns;
import io.pgbeacon.support.Lab;
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
import java.util.Optional;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * The main job end to end: three real Patroni nodes (3.0.2 or 4.x, per {@code pgbeacon.lab.patroni}; Consul DCS), a real PgBouncer and one pgbeacon process
 * per node, one Consul agent. Scenarios run in order on one lab start; each leaves the cluster healthy.
 */
@ExtendWith(Lab.class)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class ClusterIT {

  private static final Duration CONVERGE = Duration.ofSeconds(30);
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();

  static Lab lab;
  static ConsulHttp consul;

  @BeforeAll
  static void lab() {
    lab = Lab.get();
    consul = new ConsulHttp(lab.consulAddress());
  }

  @Test
  @Order(1)
  void advertisesExactlyTheLeaderAsPrimaryAndTheOthersAsReplicas() {
    String leader = converged();
    List<String> replicas = others(leader);
    assertEquals(replicas, sorted(consul.passingNodes("patroni-replica")));
    // Consul DNS: in the lab every node is 127.0.0.1, so the SRV port (each node's PgBouncer) names the node.
    assertEquals(List.of(lab.port(leader, "PGBOUNCER")), Dns.srvPorts(lab.consulDnsPort(),
        "patroni-primary.service.consul"));
    assertEquals(List.of("127.0.0.1"), Dns.a(lab.consulDnsPort(), "patroni-primary.service.consul"));
    assertEquals(replicas.stream().map(n -> lab.port(n, "PGBOUNCER")).sorted().toList(),
        Dns.srvPorts(lab.consulDnsPort(), "patroni-replica.service.consul"));

    JsonNode service = consul.service("patroni-primary-" + leader);
    JsonNode patroni = patroni(leader);
    assertEquals(lab.scope(), service.path("Meta").path("scope").asText());
    assertEquals(patroni.path("patroni").path("version").asText(), service.path("Meta").path("patroni_version").asText());
    assertEquals(patroni.path("timeline").asText(), service.path("Meta").path("timeline").asText());
    // Patroni 3 says "master", 4 says "primary": the tag is Patroni's own word.
    assertTrue(list(service.path("Tags")).contains(patroni.path("role").asText()), service.toString());
    assertTrue(list(consul.service("patroni-replica-" + replicas.get(0)).path("Tags")).contains("async"));
  }

  @Test
  @Order(2)
  void theAgentPortsAnswerFromEachNodesVerdict() throws IOException {
    String leader = converged();
    String primary = agent(leader, "AGENT_PRIMARY");
    assertTrue(primary.startsWith("up ready 100% #primary, timeline "), primary);
    assertEquals("up maint #" + patroni(leader).path("role").asText() + "\n", agent(leader, "AGENT_REPLICA"));
    for (String replica : others(leader)) {
      assertEquals("up maint #replica\n", agent(replica, "AGENT_PRIMARY"));
      String reply = agent(replica, "AGENT_REPLICA");
      assertTrue(reply.startsWith("up ready 100% #replica, lag "), reply);
    }
  }

  @Test
  @Order(3)
  void stoppingPgBouncerOnThePrimaryTurnsItsPrimaryCheckCritical() throws IOException {
    String leader = converged();
    int i = lab.index(leader);
    lab.run(Duration.ofSeconds(30), "pgbouncer-stop", Integer.toString(i));
    try {
      Await.until("no passing primary while PgBouncer is down", CONVERGE,
          () -> consul.passingNodes("patroni-primary"), List::isEmpty);
      JsonNode check = consul.check("service:patroni-primary-" + leader);
      assertEquals("critical", check.path("Status").asText());
      assertTrue(check.path("Output").asText().startsWith("PgBouncer:"), check.toString());
      assertTrue(agent(leader, "AGENT_PRIMARY").startsWith("down #PgBouncer:"));
    } finally {
      lab.run(Duration.ofSeconds(30), "pgbouncer-start", Integer.toString(i));
    }
    Await.until("primary passing again", CONVERGE, () -> consul.passingNodes("patroni-primary"),
        List.of(leader)::equals);
  }

  @Test
  @Order(4)
  void aSwitchoverMovesThePrimaryWithoutEverAdvertisingTwo() throws Exception {
    String before = converged();
    String candidate = others(before).get(0);
    PrimarySampler sampler = PrimarySampler.start(consul, "service/" + lab.scope() + "/leader");
    long started = System.nanoTime();
    lab.run(Duration.ofSeconds(90), "switchover", candidate);
    Await.until("Consul names " + candidate, CONVERGE, () -> consul.passingNodes("patroni-primary"),
        List.of(candidate)::equals);
    Await.until("Consul DNS names " + candidate, CONVERGE,
        () -> Dns.srvPorts(lab.consulDnsPort(), "patroni-primary.service.consul"),
        List.of(lab.port(candidate, "PGBOUNCER"))::equals);
    PrimarySampler.Result result = sampler.stop();
    System.out.printf("switchover %s → %s: Consul named the new primary %.2fs after the request; %s%n",
        before, candidate, (sampler.firstSeen(candidate) - started) / 1e9, result);
    assertTrue(result.maxPassing() <= 1, "two passing patroni-primary instances were seen: " + result);
    assertEquals(0, result.notLeader(), "a passing primary that Patroni's leader key did not name: " + result);
    assertEquals(candidate, leader());
    Await.until("old primary listed as replica", CONVERGE, () -> sorted(consul.passingNodes("patroni-replica")),
        others(candidate)::equals);
  }

  @Test
  @Order(5)
  void sigtermTurnsBothChecksCriticalAtOnce() {
    String leader = converged();
    String node = leader; // the hardest case: the primary's pgbeacon goes away
    int i = lab.index(node);
    lab.run(Duration.ofSeconds(30), "pgbeacon-stop", Integer.toString(i), "TERM");
    try {
      // lab.sh returns once the process has exited; the checks must already be critical.
      assertEquals("critical", consul.checkStatus("service:patroni-primary-" + node));
      assertEquals("critical", consul.checkStatus("service:patroni-replica-" + node));
      assertEquals("pgbeacon stopped", consul.check("service:patroni-primary-" + node).path("Output").asText());
      assertTrue(consul.passingNodes("patroni-primary").isEmpty());
    } finally {
      lab.run(Duration.ofSeconds(30), "pgbeacon-start", Integer.toString(i));
    }
    Await.until("primary passing after restart", CONVERGE, () -> consul.passingNodes("patroni-primary"),
        List.of(leader)::equals);
  }

  @Test
  @Order(6)
  void sigkillLetsTheTtlExpireToCritical() {
    String leader = converged();
    String node = others(leader).get(0);
    int i = lab.index(node);
    lab.run(Duration.ofSeconds(30), "pgbeacon-stop", Integer.toString(i), "KILL");
    try {
      assertEquals("passing", consul.checkStatus("service:patroni-replica-" + node),
          "nobody said goodbye: the check passes until its TTL runs out");
      long killed = System.nanoTime();
      Await.until("TTL expiry", Duration.ofSeconds(30), () -> consul.checkStatus("service:patroni-replica-" + node),
          "critical"::equals);
      double seconds = (System.nanoTime() - killed) / 1e9;
      System.out.printf("replica check of %s expired %.1fs after SIGKILL (TTL 10s)%n", node, seconds);
      assertTrue(consul.check("service:patroni-replica-" + node).path("Output").asText().contains("TTL expired"));
    } finally {
      lab.run(Duration.ofSeconds(30), "pgbeacon-start", Integer.toString(i));
    }
    Await.until("replica passing after restart", CONVERGE, () -> consul.passingNodes("patroni-replica"),
        nodes -> nodes.contains(node));
  }

  // ---- helpers ---------------------------------------------------------------------------------------------

  /** Waits until Consul shows exactly Patroni's leader as primary and every other node as replica. */
  private static String converged() {
    return Await.until("exactly Patroni's leader passing as patroni-primary, the rest as replicas", Duration.ofSeconds(90),
        () -> {
          String leader = leader();
          boolean ok = consul.passingNodes("patroni-primary").equals(List.of(leader))
              && sorted(consul.passingNodes("patroni-replica")).equals(others(leader));
          return ok ? leader : "(leader " + leader + ", primary " + consul.passingNodes("patroni-primary")
              + ", replica " + consul.passingNodes("patroni-replica") + ")";
        }, s -> !s.startsWith("("));
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
    for (String node : lab.nodeNames()) {
      try {
        HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create(lab.rest(node) + "/cluster"))
            .timeout(Duration.ofSeconds(2)).build(), HttpResponse.BodyHandlers.ofString());
        for (JsonNode m : JSON.readTree(r.body()).path("members")) {
          if ("leader".equals(m.path("role").asText())) {
            return m.path("name").asText();
          }
        }
      } catch (IOException e) {
        // try the next node
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException(e);
      }
    }
    return "(none)";
  }

  private static List<String> others(String node) {
    return lab.nodeNames().stream().filter(n -> !n.equals(node)).sorted().toList();
  }

  private static List<String> sorted(List<String> list) {
    return list.stream().sorted().toList();
  }

  private static String agent(String node, String which) throws IOException {
    try (Socket s = new Socket()) {
      s.connect(new InetSocketAddress("127.0.0.1", lab.port(node, which)), 2000);
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

    Result stop() throws InterruptedException {
      running.set(false);
      thread.join();
      synchronized (this) {
        return new Result(samples, maxPassing, notLeader, longestZero / 1_000_000);
      }
    }
  }
}
