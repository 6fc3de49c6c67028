package io.pgbeacon.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.pgbeacon.support.Await;
import io.pgbeacon.support.ConsulHttp;
import io.pgbeacon.support.Dns;
import io.pgbeacon.support.Lab;
import io.pgbeacon.support.Psql;
import io.pgbeacon.support.SafetySampler;
import io.pgbeacon.support.ViewAnswers;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Several clusters on one Consul, on the real-cluster lab shared with the other e2e classes (cluster A) and two more
 * labs started beside it on A's Consul server and client agents: cluster B (two nodes, its own scope, the same node
 * names node1 and node2, registering through A's node1 and node2 agents: the ID collision case) and S, a Patroni
 * standby cluster of A (one node, replicating through A's HAProxy). Every node runs a pgbeacon. Asserted through
 * Consul's health API, Consul DNS ({@code <scope>.patroni-primary.service.consul}), the agent ports and HTTP views,
 * each pgbeacon's {@code /status} and {@code /metrics}: each cluster's services pass only for its own nodes, S's
 * standby leader is a replica tagged {@code standby-leader} and never a primary; then across a switchover of A.
 */
@ExtendWith(Lab.class)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class MultiClusterIT {

  private static final Duration CONVERGE = Duration.ofSeconds(45);
  private static final ObjectMapper JSON = new ObjectMapper();

  static Lab a;
  static Lab b;
  static Lab s;
  static ConsulHttp consul;

  /** One passing instance of a service, as a consumer of Consul's health API sees it. */
  record Instance(String id, String scope, String node, String address, List<String> tags) {}

  @BeforeAll
  static void startTheOtherClusters() {
    a = Lab.get();
    consul = new ConsulHttp(a.consulAddress());
    a.converged(consul, CONVERGE); // alone on its Consul still: passingNodes counts every scope
    String dir = System.getProperty("pgbeacon.lab.dir", "/tmp/pgbeacon-it-lab");
    int port = Integer.getInteger("pgbeacon.lab.port", 16400);
    String patroni = System.getProperty("pgbeacon.lab.patroni", "3");
    String aDir = a.env("LAB_DIR");
    CompletableFuture<Lab> startB = CompletableFuture.supplyAsync(() -> Lab.startWith(dir + "-b", port + 200, patroni,
        Map.of("LAB_CONSUL_OF", aDir, "LAB_ADDR_BASE", "20", "LAB_NODES", "2", "LAB_SCOPE", a.scope() + "-b")));
    CompletableFuture<Lab> startS = CompletableFuture.supplyAsync(() -> Lab.startWith(dir + "-s", port + 300, patroni,
        Map.of("LAB_CONSUL_OF", aDir, "LAB_STANDBY_OF", aDir, "LAB_ADDR_BASE", "30", "LAB_NODES", "1",
            "LAB_SCOPE", a.scope() + "-s")));
    try {
      b = startB.join();
    } finally {
      s = startS.join();
    }
  }

  @AfterAll
  static void stopTheOtherClusters() {
    // Before A, whose Consul they use; A stays for the other classes.
    try {
      if (s != null) {
        s.stop();
      }
    } finally {
      if (b != null) {
        b.stop();
      }
    }
  }

  @Test
  @Order(1)
  void eachClustersServicesPassOnlyForItsOwnNodesAndTheStandbyLeaderIsNoPrimary() {
    String leaderA = apart(CONVERGE);
    String leaderB = b.leader();
    String standby = s.leader();

    // Consul DNS: the scope's tag names each cluster's own primary; the standby cluster has none.
    assertEquals(List.of(a.address(leaderA)), dns(a.scope() + ".patroni-primary"));
    assertEquals(List.of(b.address(leaderB)), dns(b.scope() + ".patroni-primary"));
    assertEquals(List.of(), dns(s.scope() + ".patroni-primary"));
    assertEquals(List.of(s.address(standby)), dns(s.scope() + ".patroni-replica"));
    assertEquals(List.of(s.address(standby)), dns("standby-leader.patroni-replica"));
    // Without the prefix the name is every cluster's primary: what the prefix is for.
    assertEquals(sorted(a.address(leaderA), b.address(leaderB)), dns("patroni-primary"));
    // SRV, as HAProxy's server-template asks: _<scope> is the tag, _tcp none.
    assertEquals(List.of(b.port(leaderB, "PGBOUNCER")), srvPorts("_patroni-primary._" + b.scope()));
    assertEquals(sorted(a.port(leaderA, "PGBOUNCER"), b.port(leaderB, "PGBOUNCER")), srvPorts("_patroni-primary._tcp"));

    // The agent ports and HTTP views of every node agree with Consul.
    for (Lab lab : List.of(a, b)) {
      String leader = lab.leader();
      for (String node : lab.nodeNames()) {
        assertEquals(node.equals(leader), traffic(lab, node, "primary"), lab.scope() + " " + node + " primary");
        assertEquals(!node.equals(leader), traffic(lab, node, "replica"), lab.scope() + " " + node + " replica");
      }
    }
    assertEquals(false, traffic(s, standby, "primary"), "the standby leader's primary view");
    assertEquals(true, traffic(s, standby, "replica"), "the standby leader's replica view");
    assertTrue(ViewAnswers.http(pgbeacon(s, standby) + "/standby-leader", Duration.ofSeconds(2)).startsWith("200 "));

    // Each pgbeacon watches its own scope's leader key, registered its own IDs, labels its metrics with its scope.
    for (Lab lab : List.of(a, b, s)) {
      for (String node : lab.nodeNames()) {
        String who = lab.scope() + " " + node;
        JsonNode status = json(pgbeacon(lab, node) + "/status");
        assertEquals(lab.scope(), status.path("scope").asText(), who);
        List<String> keys = new ArrayList<>();
        status.path("dcs_watches").forEach(w -> keys.add(w.path("key").asText()));
        String leaderKey = lab.env("LAB_LEADER_KEY"); // <namespace>/<scope>/leader
        String prefix = leaderKey.substring(0, leaderKey.length() - "leader".length());
        assertTrue(leaderKey.endsWith("/" + lab.scope() + "/leader"), leaderKey);
        assertTrue(keys.contains(leaderKey), who + " watches " + keys);
        assertTrue(keys.stream().allMatch(k -> k.startsWith(prefix)), who + " watches " + keys);
        for (String service : List.of("patroni-primary", "patroni-replica")) {
          assertTrue(status.path("consul").path("registered").has(service + "/" + lab.scope() + "/" + node),
              who + " registered " + status.path("consul").path("registered"));
        }
        String metrics = ViewAnswers.http(pgbeacon(lab, node) + "/metrics", Duration.ofSeconds(2));
        Matcher m = Pattern.compile("(?m)^pgbeacon_view_status\\{([^}]*)\\}").matcher(metrics);
        int lines = 0;
        while (m.find()) {
          lines++;
          assertTrue(m.group(1).contains("scope=\"" + lab.scope() + "\"") && m.group(1).contains("node=\"" + node + "\""),
              who + ": " + m.group());
        }
        assertTrue(lines >= 18, who + ": " + lines + " view status lines"); // six views, three statuses
      }
    }
  }

  @Test
  @Order(2)
  void aSwitchoverOfOneClusterLeavesTheOtherAloneAndTheStandbyFollowing() {
    String leaderA = apart(CONVERGE);
    String leaderB = b.leader();
    String standby = s.leader();
    Map<String, String> transitionsB = transitions(b);

    SafetySampler samplerA = SafetySampler.start(() -> leaderKey(a),
        List.of(new SafetySampler.Source(a.scope() + " in Consul", () -> primaryNodes(a.scope()))));
    SafetySampler samplerB = SafetySampler.start(() -> leaderKey(b),
        List.of(new SafetySampler.Source(b.scope() + " in Consul", () -> primaryNodes(b.scope()))));
    SafetySampler samplerS = SafetySampler.start(() -> leaderKey(s),
        List.of(new SafetySampler.Source(s.scope() + " in Consul", () -> primaryNodes(s.scope()))));
    List<SafetySampler.Result> results = new ArrayList<>();
    long started = System.nanoTime();
    String newLeaderA;
    try {
      a.run(Duration.ofSeconds(90), "switchover");
      newLeaderA = apart(CONVERGE);
    } finally {
      results.addAll(samplerA.stop());
      results.addAll(samplerB.stop());
      results.addAll(samplerS.stop());
      results.forEach(r -> System.out.println("MultiClusterIT " + r));
    }
    System.out.printf("MultiClusterIT switchover of %s %s -> %s converged in %d ms%n", a.scope(), leaderA, newLeaderA,
        (System.nanoTime() - started) / 1_000_000);
    assertTrue(!newLeaderA.equals(leaderA), "A switched over: " + newLeaderA);
    for (SafetySampler.Result r : results) {
      assertTrue(r.samples() > 20, r.toString());
      assertEquals(List.of(), r.violations(), "no non-leader passing primary: " + r);
    }
    SafetySampler.Result b0 = results.get(1);
    SafetySampler.Result s0 = results.get(2);
    assertEquals(1, b0.maxPrimaries(), b0.toString());
    assertEquals(0, b0.longestNoneMillis(), "B always had its primary: " + b0);
    assertEquals(0, s0.maxPrimaries(), "the standby cluster never passed a primary: " + s0);

    assertEquals(List.of(a.address(newLeaderA)), dns(a.scope() + ".patroni-primary"));
    assertEquals(List.of(b.address(leaderB)), dns(b.scope() + ".patroni-primary"));
    assertEquals(leaderB, b.leader());
    assertEquals(transitionsB, transitions(b), "no view of B changed during A's switchover");
    assertEquals(List.of(), dns(s.scope() + ".patroni-primary"));

    // The standby leader follows A's new primary: a row written there reaches it.
    String mark = "switchover-" + System.nanoTime();
    Psql.Result write = Psql.run(a.haproxyAddress(), a.haproxyPort("write"), a.env("LAB_SUPERUSER"),
        a.env("LAB_SUPERUSER_PASSWORD"), "CREATE TABLE IF NOT EXISTS e2e_multi (mark text);"
            + " INSERT INTO e2e_multi VALUES ('" + mark + "')");
    assertTrue(write.ok(), write.toString());
    Await.until("the row written on A's new primary on the standby leader", CONVERGE,
        () -> Psql.run(s.address(standby), s.port(standby, "PG"), s.env("LAB_SUPERUSER"),
            s.env("LAB_SUPERUSER_PASSWORD"), "SELECT count(*) FROM e2e_multi WHERE mark = '" + mark + "'").output(),
        out -> out.strip().equals("1"));
    assertEquals(standby, s.leader());
  }

  /**
   * Waits until every passing instance in Consul is exactly what the three clusters' Patroni say: for A and B the
   * leader in patroni-primary and the others in patroni-replica, for S its standby leader in patroni-replica tagged
   * standby-leader and nothing in patroni-primary; each with its own scope's ID, address and node. Returns A's leader.
   */
  private static String apart(Duration deadline) {
    Await.until("each cluster's services pass for its own nodes only", deadline, MultiClusterIT::mismatch,
        String::isEmpty);
    return a.leader();
  }

  /** What differs from the expected picture; empty when nothing does. */
  private static String mismatch() {
    List<Instance> primaries = passing("patroni-primary");
    List<Instance> replicas = passing("patroni-replica");
    List<String> wrong = new ArrayList<>();
    Map<String, Lab> labs = new LinkedHashMap<>();
    for (Lab lab : List.of(a, b, s)) {
      labs.put(lab.scope(), lab);
    }
    for (Instance i : concat(primaries, replicas)) {
      Lab lab = labs.get(i.scope());
      String service = i.id().contains("/") ? i.id().substring(0, i.id().indexOf('/')) : "(old form)";
      if (lab == null || !lab.nodeNames().contains(i.node()) || !i.address().equals(lab.address(i.node()))
          || !i.id().equals(service + "/" + i.scope() + "/" + i.node())) {
        wrong.add("not its cluster's: " + i);
      }
    }
    for (Lab lab : labs.values()) {
      String leader = lab.leader();
      List<String> wantPrimary = lab == s ? List.of() : List.of(leader);
      List<String> wantReplica = lab == s ? List.of(leader)
          : lab.nodeNames().stream().filter(n -> !n.equals(leader)).sorted().toList();
      List<String> gotPrimary = nodes(primaries, lab.scope());
      List<String> gotReplica = nodes(replicas, lab.scope());
      if (!gotPrimary.equals(wantPrimary) || !gotReplica.equals(wantReplica)) {
        wrong.add(lab.scope() + ": leader " + leader + ", primary " + gotPrimary + ", replica " + gotReplica);
      }
    }
    replicas.stream().filter(i -> i.scope().equals(s.scope()) && !i.tags().contains("standby-leader"))
        .forEach(i -> wrong.add("standby leader without its tag: " + i));
    return String.join("; ", wrong);
  }

  private static List<Instance> passing(String service) {
    List<Instance> out = new ArrayList<>();
    for (JsonNode e : consul.get("/v1/health/service/" + service + "?passing")) {
      JsonNode svc = e.path("Service");
      List<String> tags = new ArrayList<>();
      svc.path("Tags").forEach(t -> tags.add(t.asText()));
      out.add(new Instance(svc.path("ID").asText(), svc.path("Meta").path("scope").asText(),
          svc.path("Meta").path("node").asText(), svc.path("Address").asText(), tags));
    }
    return out;
  }

  private static List<String> primaryNodes(String scope) {
    return nodes(passing("patroni-primary"), scope);
  }

  private static List<String> nodes(List<Instance> instances, String scope) {
    return instances.stream().filter(i -> i.scope().equals(scope)).map(Instance::node).sorted().toList();
  }

  private static List<Instance> concat(List<Instance> x, List<Instance> y) {
    List<Instance> all = new ArrayList<>(x);
    all.addAll(y);
    return all;
  }

  private static String leaderKey(Lab lab) {
    try {
      JsonNode entries = consul.get("/v1/kv/" + lab.env("LAB_LEADER_KEY"));
      return new String(Base64.getDecoder().decode(entries.path(0).path("Value").asText()), StandardCharsets.UTF_8);
    } catch (IllegalStateException e) {
      return "(none)";
    }
  }

  private static List<String> dns(String name) {
    return Dns.a(a.consulDnsAddress(), a.consulDnsPort(), name + ".service.consul");
  }

  private static List<Integer> srvPorts(String name) {
    return Dns.srvPorts(a.consulDnsAddress(), a.consulDnsPort(), name + ".service.consul");
  }

  private static List<Integer> sorted(int... ports) {
    return java.util.Arrays.stream(ports).sorted().boxed().toList();
  }

  private static List<String> sorted(String... addresses) {
    return java.util.Arrays.stream(addresses).sorted().toList();
  }

  /** Whether the node's agent port for {@code view} lets traffic in; its HTTP view must say the same. */
  private static boolean traffic(Lab lab, String node, String view) {
    ViewAnswers.Pair pair = Await.until(lab.scope() + " " + node + ": agent port and /" + view + " agree",
        Duration.ofSeconds(5), () -> ViewAnswers.ask(lab, node, view), ViewAnswers.Pair::agree);
    return pair.http().startsWith("200 ");
  }

  private static String pgbeacon(Lab lab, String node) {
    return lab.env("LAB_NODE" + lab.index(node) + "_PGBEACON_HTTP");
  }

  private static JsonNode json(String url) {
    String answer = ViewAnswers.http(url, Duration.ofSeconds(2));
    try {
      return JSON.readTree(answer.substring(answer.indexOf(' ') + 1));
    } catch (IOException e) {
      throw new AssertionError(url + ": " + answer, e);
    }
  }

  /** Every node's view transition counters of {@code lab}: "node view" → count. */
  private static Map<String, String> transitions(Lab lab) {
    Map<String, String> all = new LinkedHashMap<>();
    Pattern line = Pattern.compile("(?m)^pgbeacon_view_transitions_total\\{[^}]*view=\"([^\"]+)\"[^}]*\\} (\\S+)$");
    for (String node : lab.nodeNames()) {
      Matcher m = line.matcher(ViewAnswers.http(pgbeacon(lab, node) + "/metrics", Duration.ofSeconds(2)));
      while (m.find()) {
        all.put(node + " " + m.group(1), m.group(2));
      }
    }
    assertTrue(all.size() >= lab.nodes(), "transition counters of " + lab.scope() + ": " + all);
    return all;
  }
}
