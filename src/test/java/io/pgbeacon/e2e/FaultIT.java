package io.pgbeacon.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.pgbeacon.support.Await;
import io.pgbeacon.support.ConsulHttp;
import io.pgbeacon.support.Haproxy;
import io.pgbeacon.support.Lab;
import io.pgbeacon.support.LabHaproxies;
import io.pgbeacon.support.SafetySampler;
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
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * The first duty under faults, on the real-cluster lab: switchovers and failovers while something fails — the
 * primary's Consul agent stalled (SIGSTOP), pgbeacon killed or stopped, Patroni hung, PgBouncer hung, a paused
 * cluster losing its DCS. Each shipped {@code haproxy/} configuration runs in its own HAProxy beside the lab's.
 * Throughout each scenario a sampler reads, every ~20 ms, Patroni's leader key and what every consumer advertises as
 * the primary: Consul's passing {@code patroni-primary} and the UP servers of each pgbeacon-driven HAProxy write
 * backend. Each scenario fails on two primaries, or on one the leader key did not name, in any of them, and prints
 * each consumer's longest window with no primary. Scenarios run in order on one lab start; each leaves the cluster
 * healthy.
 */
@ExtendWith(Lab.class)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class FaultIT {

  private static final Duration CONVERGE = Duration.ofSeconds(90);
  private static final Duration TTL = Duration.ofSeconds(10); // the lab's consul.ttl
  private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();

  @TempDir
  static Path dir;

  static Lab lab;
  static ConsulHttp consul;
  static LabHaproxies haproxies;

  @BeforeAll
  static void start() throws IOException {
    lab = Lab.get();
    consul = new ConsulHttp(lab.consulAddress());
    haproxies = LabHaproxies.start(lab, dir);
  }

  @AfterAll
  static void stop() {
    if (haproxies != null) {
      haproxies.close();
    }
  }

  @Test
  @Order(1)
  void pgbeaconKilledOnThePrimaryLeavesEveryWriteBackendThenASwitchoverIsSafe() {
    deadPgbeaconThenSwitchover("KILL");
  }

  @Test
  @Order(2)
  void pgbeaconStoppedOnThePrimaryLeavesEveryWriteBackendAndResumesWithoutReadvertisingIt() {
    deadPgbeaconThenSwitchover("STOP");
  }

  /**
   * pgbeacon dies (SIGKILL) or hangs (SIGSTOP) on the primary after saying "up ready": HAProxy keeps an agent's last
   * word, so only a regular check that needs pgbeacon alive takes the node out, within {@code fall × inter}; Consul by
   * the TTL. Then a switchover; a hung pgbeacon then resumes with a verdict from before it and must not publish it.
   */
  private static void deadPgbeaconThenSwitchover(String signal) {
    String leader = converged();
    int i = lab.index(leader);
    String candidate = others(leader).get(0);
    String what = "pgbeacon SIG" + signal + " on the primary " + leader + ", then a switchover to " + candidate;
    SafetySampler sampler = SafetySampler.start(FaultIT::leaderKey, sources());
    long dead = System.nanoTime();
    try {
      run(Duration.ofSeconds(30), "pgbeacon-stop", Integer.toString(i), signal);
      for (Map.Entry<String, Duration> out : withdrawalBounds().entrySet()) {
        SafetySampler.Source source = source(out.getKey());
        Await.until(out.getKey() + " drops " + leader, out.getValue().plus(Duration.ofSeconds(2)),
            () -> source.primaries().get(), p -> !p.contains(leader));
        System.out.printf("%s: %s dropped %s after %.1fs (bound %ss)%n", what, out.getKey(), leader,
            (System.nanoTime() - dead) / 1e9, out.getValue().toSeconds());
      }
      run(Duration.ofSeconds(90), "switchover", candidate);
      everyConsumerNames(candidate);
    } finally {
      if (signal.equals("STOP")) {
        run(Duration.ofSeconds(30), "pgbeacon-stop", Integer.toString(i), "CONT");
      } else {
        run(Duration.ofSeconds(30), "pgbeacon-start", Integer.toString(i));
      }
    }
    everyConsumerNames(candidate);
    assertSafe(what, sampler);
    if (signal.equals("STOP")) { // the resumed pgbeacon runs on, the verdict it resumed with never went out
      run(Duration.ofSeconds(30), "pgbeacon-stop", Integer.toString(i), "TERM");
      run(Duration.ofSeconds(30), "pgbeacon-start", Integer.toString(i));
    }
    converged();
  }

  @Test
  @Order(3)
  void thePrimarysConsulAgentStalledAcrossASwitchover() {
    String leader = converged();
    int i = lab.index(leader);
    String candidate = others(leader).get(0);
    String what = "the Consul agent of " + leader + " stalled (SIGSTOP, 8 s) across a switchover to " + candidate;
    SafetySampler sampler = SafetySampler.start(FaultIT::leaderKey, sources());
    run(Duration.ofSeconds(30), "consul-stop", Integer.toString(i), "STOP");
    try {
      // Through the candidate: the leader's own Patroni cannot reach its DCS now. What follows is Patroni's affair
      // (the leader demotes itself once its DCS is out of reach); pgbeacon must only never name a wrong primary.
      CompletableFuture.runAsync(() -> post(lab.rest(candidate) + "/switchover",
          "{\"leader\": \"" + leader + "\", \"candidate\": \"" + candidate + "\"}"));
      Await.pause(Duration.ofSeconds(8));
    } finally {
      run(Duration.ofSeconds(30), "consul-stop", Integer.toString(i), "CONT");
    }
    run(Duration.ofSeconds(150), "wait-healthy", "140");
    String now = converged();
    everyConsumerNames(now);
    assertSafe(what + " (now led by " + now + ")", sampler);
  }

  @Test
  @Order(4)
  void aStopWhileThePrimarysConsulAgentIsStalledIsTheLastWord() {
    // Issue 9, case 2: SIGSTOP the agent, SIGTERM pgbeacon, SIGCONT 2 s later. Refreshes queued in the stalled
    // agent must not pass the stopped node's checks again, with a fresh TTL and no pgbeacon left to correct it.
    String leader = converged();
    int i = lab.index(leader);
    ConsulHttp agent = new ConsulHttp(lab.consulAgent(leader));
    String what = "pgbeacon stopped on " + leader + " while its Consul agent was stalled";
    SafetySampler sampler = SafetySampler.start(FaultIT::leaderKey, sources());
    CompletableFuture<String> stopped;
    run(Duration.ofSeconds(30), "consul-stop", Integer.toString(i), "STOP");
    try {
      Await.pause(Duration.ofMillis(3500)); // a refresh (every TTL/3) falls due and waits in the agent
      stopped = CompletableFuture.supplyAsync(() ->
          run(Duration.ofSeconds(30), "pgbeacon-stop", Integer.toString(i), "TERM"));
      Await.pause(Duration.ofSeconds(2));
    } finally {
      run(Duration.ofSeconds(30), "consul-stop", Integer.toString(i), "CONT");
    }
    stopped.join();
    try {
      long until = System.nanoTime() + TTL.multipliedBy(2).toNanos();
      List<String> seen = new ArrayList<>();
      while (System.nanoTime() < until) {
        for (String id : List.of("service:patroni-primary/" + lab.scope() + "/" + leader, "service:patroni-replica/" + lab.scope() + "/" + leader)) {
          JsonNode check = agent.check(id);
          String status = check.path("Status").asText("absent");
          if (!status.equals("critical") || !check.path("Output").asText().endsWith("pgbeacon stopped")) {
            seen.add(id + " " + status + " " + check.path("Output").asText());
          }
        }
        Await.pause(Duration.ofMillis(200));
      }
      assertEquals(List.of(), seen.stream().distinct().toList(),
          "a stopped pgbeacon's checks must stay critical 'pgbeacon stopped'");
    } finally {
      run(Duration.ofSeconds(30), "pgbeacon-start", Integer.toString(i));
    }
    run(Duration.ofSeconds(150), "wait-healthy", "140");
    everyConsumerNames(converged());
    assertSafe(what, sampler);
  }

  @Test
  @Order(5)
  void patroniHungOnThePrimaryFailsOverSafely() {
    String leader = converged();
    int i = lab.index(leader);
    String what = "Patroni hung (SIGSTOP) on the primary " + leader;
    SafetySampler sampler = SafetySampler.start(FaultIT::leaderKey, sources());
    String winner;
    run(Duration.ofSeconds(30), "patroni-stop", Integer.toString(i), "STOP");
    try {
      // PostgreSQL still runs as primary, Patroni does not answer: withdrawn at once; the leader key expires after
      // Patroni's ttl and another member takes over.
      Await.until("no consumer names " + leader, Duration.ofSeconds(10),
          () -> sources().stream().allMatch(s -> !s.primaries().get().contains(leader)), all -> all);
      winner = Await.until("another member leads", Duration.ofSeconds(60), FaultIT::leaderKey,
          k -> !k.equals(leader) && !k.equals("(none)"));
      everyConsumerNames(winner);
    } finally {
      run(Duration.ofSeconds(30), "patroni-stop", Integer.toString(i), "CONT");
    }
    run(Duration.ofSeconds(150), "wait-healthy", "140");
    everyConsumerNames(converged());
    assertSafe(what + " (" + winner + " took over)", sampler);
  }

  @Test
  @Order(6)
  void pgbouncerHungOnThePrimaryThenASwitchover() {
    String leader = converged();
    int i = lab.index(leader);
    String candidate = others(leader).get(0);
    String what = "PgBouncer hung (SIGSTOP) on the primary " + leader + ", then a switchover to " + candidate;
    SafetySampler sampler = SafetySampler.start(FaultIT::leaderKey, sources());
    run(Duration.ofSeconds(30), "pgbouncer-stop", Integer.toString(i), "STOP");
    try {
      Await.until("no consumer names " + leader + " (its PgBouncer does not answer)", Duration.ofSeconds(15),
          () -> sources().stream().allMatch(s -> !s.primaries().get().contains(leader)), all -> all);
      run(Duration.ofSeconds(90), "switchover", candidate);
      everyConsumerNames(candidate);
    } finally {
      run(Duration.ofSeconds(30), "pgbouncer-stop", Integer.toString(i), "CONT");
    }
    everyConsumerNames(converged());
    assertSafe(what, sampler);
  }

  @Test
  @Order(7)
  void aPausedPrimaryThatLosesItsDcsIsWithdrawnWithinPatronisTtl() throws IOException {
    // Issue 9, case 7: paused, a Patroni without a DCS view answers 200 on /primary for a running primary, lock
    // or not, and never demotes. Its Consul agent gone, nothing confirms the lock any more: pgbeacon must stop
    // vouching for it within Patroni's smallest ttl (20 s) of its last read of the leader key.
    String leader = converged();
    int i = lab.index(leader);
    patroniConfig(leader, "{\"pause\": true}");
    try {
      Await.until("Patroni paused", CONVERGE, () -> agentReply(leader, "AGENT_PRIMARY"),
          r -> r.contains("Patroni paused"));
      long lost = System.nanoTime();
      run(Duration.ofSeconds(30), "consul-stop", Integer.toString(i));
      try {
        String reply = Await.until(leader + "'s agent port says down", Duration.ofSeconds(45),
            () -> agentReply(leader, "AGENT_PRIMARY"), r -> r.startsWith("down"));
        System.out.printf("paused primary %s without its DCS: agent port '%s' %.1fs after its agent stopped%n",
            leader, reply.strip(), (System.nanoTime() - lost) / 1e9);
        assertTrue(reply.startsWith("down #Patroni paused and no DCS view"), reply);
        ViewAnswers.assertAgree(lab, CONVERGE);
        Await.until("HAProxy's write backend drops " + leader, Duration.ofSeconds(10),
            () -> source("HAProxy lab write").primaries().get(), p -> !p.contains(leader));
      } finally {
        run(Duration.ofSeconds(40), "consul-start", Integer.toString(i));
      }
    } finally {
      patroniConfig(leader, "{\"pause\": false}");
    }
    run(Duration.ofSeconds(150), "wait-healthy", "140");
    everyConsumerNames(converged());
  }

  // ---- consumers --------------------------------------------------------------------------------------------

  /** Every consumer that follows pgbeacon, and what it advertises as the primary now. */
  private static List<SafetySampler.Source> sources() {
    List<SafetySampler.Source> sources = new ArrayList<>();
    sources.add(new SafetySampler.Source("Consul patroni-primary (passing)",
        () -> consul.passingNodes("patroni-primary")));
    sources.add(new SafetySampler.Source("HAProxy lab write", () -> upNodes(lab.haproxySocket(), "write", false)));
    // Consul DNS pollers show Consul's catalog as of their last resolution: hold valid 100ms on the lab, 1s in
    // dns-srv.cfg, whose resolutions may also take up to its 1 s timeout.
    sources.add(new SafetySampler.Source("HAProxy lab write_dns",
        () -> upNodes(lab.haproxySocket(), "write_dns", true), Duration.ofMillis(500)));
    for (String[] backend : List.of(new String[] {"b-agent-pgbouncer.cfg", "pg_write"},
        new String[] {"c-agent-fallback.cfg", "pg_write_pgbouncer"}, new String[] {"d-pgbeacon-httpchk.cfg",
        "pg_write"})) {
      Path socket = haproxies.config(backend[0]).statsSocket();
      sources.add(new SafetySampler.Source(backend[0] + " " + backend[1], () -> upNodes(socket, backend[1], false)));
    }
    Path dnsSrv = haproxies.config("dns-srv.cfg").statsSocket();
    sources.add(new SafetySampler.Source("dns-srv.cfg pg_write", () -> upNodes(dnsSrv, "pg_write", true),
        Duration.ofSeconds(2)));
    return sources;
  }

  private static SafetySampler.Source source(String name) {
    return sources().stream().filter(s -> s.name().equals(name)).findFirst().orElseThrow();
  }

  /**
   * How soon each consumer must drop a primary whose pgbeacon died: the agent-driven backends within their regular
   * check's {@code fall × inter} and {@code timeout check} (measured in HaproxyConfigsIT: 2 s for a refused agent,
   * 5 s for a hung one with the shipped timings); Consul when the TTL runs out; the DNS-driven ones a resolution
   * later.
   */
  private static Map<String, Duration> withdrawalBounds() {
    Map<String, Duration> bounds = new LinkedHashMap<>();
    bounds.put("HAProxy lab write", Duration.ofSeconds(4)); // inter 1s fastinter 250ms fall 2, timeout check 1s
    bounds.put("b-agent-pgbouncer.cfg pg_write", Duration.ofSeconds(5)); // inter 1s fastinter 500ms fall 3
    bounds.put("c-agent-fallback.cfg pg_write_pgbouncer", Duration.ofSeconds(5));
    bounds.put("d-pgbeacon-httpchk.cfg pg_write", Duration.ofSeconds(4)); // inter 1s fastinter 250ms fall 2
    bounds.put("Consul patroni-primary (passing)", TTL.plusSeconds(1));
    bounds.put("HAProxy lab write_dns", TTL.plusSeconds(2));
    bounds.put("dns-srv.cfg pg_write", TTL.plusSeconds(4)); // resolution every 1 s, then its own check
    return bounds;
  }

  /**
   * The nodes whose servers in {@code backend} are UP (taking connections): by server name (pgN, or the node's
   * name) or, for servers found through Consul DNS, by address. (Not by address always: a reply description with a
   * comma, as "primary, timeline 3", shifts the later columns of HAProxy's CSV.)
   */
  private static List<String> upNodes(Path socket, String backend, boolean byAddress) {
    List<String> nodes = new ArrayList<>();
    for (Haproxy.StatRow row : Haproxy.stat(socket, backend)) {
      if (row.status().startsWith("UP")) {
        nodes.add(byAddress ? nodeAt(row.get("addr")) : nodeNamed(row.server()));
      }
    }
    return nodes;
  }

  private static String nodeAt(String address) {
    return lab.nodeNames().stream().filter(n -> address != null && address.startsWith(lab.address(n) + ":"))
        .findFirst().orElse("(address " + address + ")");
  }

  private static String nodeNamed(String server) {
    return server.matches("pg\\d+") ? lab.nodeNames().get(Integer.parseInt(server.substring(2)) - 1) : server;
  }

  private static void everyConsumerNames(String primary) {
    long started = System.nanoTime();
    List<String> waits = new ArrayList<>();
    for (SafetySampler.Source source : sources()) {
      long one = System.nanoTime();
      Await.until(source.name() + " names " + primary, CONVERGE, () -> source.primaries().get(),
          List.of(primary)::equals);
      waits.add(String.format("%s %.1fs", source.name(), (System.nanoTime() - one) / 1e9));
    }
    System.out.printf("  [%6.1fs] every consumer names %s (waited %.1fs: %s)%n",
        (System.nanoTime() - stepClock) / 1e9, primary, (System.nanoTime() - started) / 1e9, waits);
    // Each pgbeacon's two doors say the same, also a dead or hung one's (neither answers).
    ViewAnswers.assertAgree(lab, CONVERGE);
  }

  private static void assertSafe(String what, SafetySampler sampler) {
    List<SafetySampler.Result> results = sampler.stop();
    System.out.println(what + ":");
    results.forEach(r -> System.out.println("  " + r));
    for (SafetySampler.Result r : results) {
      assertTrue(r.samples() > 10, what + ": the sampler hardly ran: " + r);
      assertTrue(r.maxPrimaries() <= 1, what + ": two primaries at once: " + r);
      assertEquals(0, r.notLeader(), what + ": a primary the leader key did not name: " + r);
    }
  }

  // ---- helpers ----------------------------------------------------------------------------------------------

  private static long stepClock = System.nanoTime();

  /** lab.sh COMMAND, with the time it took in the test's output (the suite's time goes into these). */
  private static String run(Duration deadline, String... args) {
    long started = System.nanoTime();
    try {
      return lab.run(deadline, args);
    } finally {
      System.out.printf("  [%6.1fs] lab.sh %s took %.1fs%n", (System.nanoTime() - stepClock) / 1e9,
          String.join(" ", args), (System.nanoTime() - started) / 1e9);
    }
  }

  private static String converged() {
    String leader = lab.converged(consul, CONVERGE);
    everyConsumerNames(leader);
    return leader;
  }

  private static List<String> others(String node) {
    return lab.nodeNames().stream().filter(n -> !n.equals(node)).sorted().toList();
  }

  /** The member Patroni's leader key names, read from the Consul server; "(none)" while there is no key. */
  private static String leaderKey() {
    try {
      JsonNode entries = consul.get("/v1/kv/" + lab.leaderKey());
      return new String(java.util.Base64.getDecoder().decode(entries.path(0).path("Value").asText()),
          StandardCharsets.UTF_8);
    } catch (IllegalStateException e) {
      return "(none)"; // 404
    }
  }

  private static String agentReply(String node, String which) {
    try (Socket s = new Socket()) {
      s.connect(new InetSocketAddress(lab.address(node), lab.port(node, which)), 2000);
      s.setSoTimeout(3000);
      ByteArrayOutputStream out = new ByteArrayOutputStream();
      s.getInputStream().transferTo(out);
      return out.toString(StandardCharsets.US_ASCII);
    } catch (IOException e) {
      return "(" + e + ")";
    }
  }

  private static void patroniConfig(String node, String json) {
    HttpResponse<String> r = send(HttpRequest.newBuilder(URI.create(lab.rest(node) + "/config"))
        .method("PATCH", HttpRequest.BodyPublishers.ofString(json)).timeout(Duration.ofSeconds(5)).build());
    assertEquals(200, r.statusCode(), "PATCH /config " + json + ": " + r.body());
  }

  private static void post(String url, String json) {
    send(HttpRequest.newBuilder(URI.create(url)).POST(HttpRequest.BodyPublishers.ofString(json))
        .timeout(Duration.ofSeconds(30)).build());
  }

  private static HttpResponse<String> send(HttpRequest request) {
    try {
      return HTTP.send(request, HttpResponse.BodyHandlers.ofString());
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }
}
