package io.pgbeacon.haproxy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pgbeacon.InProcessAgent;
import io.pgbeacon.health.NodeHealth;
import io.pgbeacon.health.Status;
import io.pgbeacon.health.Verdict;
import io.pgbeacon.support.Await;
import io.pgbeacon.support.Components;
import io.pgbeacon.support.ConsulDevAgent;
import io.pgbeacon.support.FreePorts;
import io.pgbeacon.support.Haproxy;
import io.pgbeacon.support.HaproxyConfig;
import io.pgbeacon.support.Healths;
import io.pgbeacon.support.PatroniStub;
import io.pgbeacon.support.TcpStub;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The shipped {@code haproxy/*.cfg} against the real HAProxy 2.6: each is valid as shipped and rewritten to
 * loopback, and each does what its header says, with stand-ins where a cluster would be: pgbeacon's real agent
 * side in this JVM ({@link InProcessAgent}), one per node on 127.0.0.11-13; PgBouncer and PostgreSQL as ports that
 * greet with their name ({@link TcpStub}); Patroni's health endpoints ({@link PatroniStub}). Checks run every
 * 100-200 ms in the rewritten copies.
 */
class HaproxyConfigsIT {

  static final List<String> SHIPPED = List.of("a-patroni-httpchk.cfg", "b-agent-pgbouncer.cfg",
      "c-agent-fallback.cfg", "dns-srv.cfg", "replicas-lag-weights.cfg");
  static final Duration CONVERGE = Duration.ofSeconds(10);

  @TempDir
  Path dir;

  final List<AutoCloseable> resources = new ArrayList<>();

  @AfterEach
  void tearDown() throws Exception {
    for (int i = resources.size() - 1; i >= 0; i--) {
      resources.get(i).close();
    }
  }

  static Stream<String> shipped() {
    return SHIPPED.stream();
  }

  @Test
  void shipsOneConfigurationPerScenario() {
    assertEquals(SHIPPED, HaproxyConfig.shipped().stream().map(p -> p.getFileName().toString()).toList());
  }

  @ParameterizedTest
  @MethodSource("shipped")
  void isValidAsShipped(String file) {
    Haproxy.check(Components.repoFile("haproxy/" + file));
  }

  @ParameterizedTest
  @MethodSource("shipped")
  void isValidRewrittenToLoopback(String file) {
    HaproxyConfig cfg = HaproxyConfig.load("haproxy/" + file).nameserver("consul", "127.0.0.1:" + FreePorts.next());
    for (int n = 1; n <= 3; n++) { // "-c" binds nothing: any ports do
      cfg.node(n, Nodes.address(n), Map.of(5432, 19032 + n * 100, 6432, 19064 + n * 100, 8008, 19008 + n * 100,
          5480, 19080 + n * 100, 5481, 19081 + n * 100));
    }
    String code = cfg.text().lines().filter(l -> !l.strip().startsWith("#")).collect(Collectors.joining("\n"));
    assertFalse(code.contains("10.0.0."), () -> "a production address is left:\n" + code);
    assertFalse(code.contains("/run/haproxy"), () -> "the production socket is left:\n" + code);
    Haproxy.check(cfg.write(dir));
  }

  /** Scenario B: the primary view's "down" takes the primary out of pg_write at once, "up" brings it back. */
  @Test
  void bAgentDownTakesThePrimaryOutAndUpBringsItBack() throws Exception {
    Nodes nodes = new Nodes();
    nodes.primary(1);
    HaproxyConfig cfg = fast(loopback(HaproxyConfig.load("haproxy/b-agent-pgbouncer.cfg"), nodes));
    Haproxy haproxy = start(cfg);
    int write = cfg.port(5000);
    int read = cfg.port(5001);

    awaitStates(haproxy, "pg_write", Map.of("pg1", "UP", "pg2", "MAINT", "pg3", "MAINT"));
    awaitStates(haproxy, "pg_read", Map.of("pg1", "MAINT", "pg2", "UP", "pg3", "UP"));
    awaitRoute(write, "pgbouncer pg1");
    assertTrue(route(read).matches("pgbouncer pg[23]"));

    nodes.agent(1).show(health(critical("PgBouncer: Connection refused: /127.0.0.11:6432"), wrongRole("master")));
    Haproxy.StatRow down = awaitStates(haproxy, "pg_write", Map.of("pg1", "DOWN (agent)")).get("pg1");
    assertTrue(down.lastAgentCheck().contains("PgBouncer: Connection refused"), down::toString);
    awaitRoute(write, "");

    nodes.primary(1);
    awaitStates(haproxy, "pg_write", Map.of("pg1", "UP", "pg2", "MAINT", "pg3", "MAINT"));
    awaitRoute(write, "pgbouncer pg1");
  }

  /** Scenario B: a dead PgBouncer is caught by the regular check even while the agent still says up. */
  @Test
  void bRegularCheckCatchesADeadPgBouncerTheAgentDoesNotReport() throws Exception {
    Nodes nodes = new Nodes();
    nodes.primary(1);
    HaproxyConfig cfg = fast(loopback(HaproxyConfig.load("haproxy/b-agent-pgbouncer.cfg"), nodes));
    Haproxy haproxy = start(cfg);
    awaitStates(haproxy, "pg_write", Map.of("pg1", "UP"));

    nodes.pgbouncer(1).stop();
    awaitStates(haproxy, "pg_write", Map.of("pg1", "DOWN"));
    nodes.pgbouncer(1).start();
    awaitStates(haproxy, "pg_write", Map.of("pg1", "UP"));
  }

  /**
   * Scenario C: writes go through PgBouncer normally, straight to PostgreSQL when the primary's PgBouncer fails,
   * and nowhere (never to a demoting primary) while pgbeacon withdraws the primary for a switchover.
   */
  @Test
  void cFallsBackToPostgresOnlyWhenThePrimarysPgBouncerFails() throws Exception {
    Nodes nodes = new Nodes();
    nodes.primary(1);
    HaproxyConfig cfg = fast(loopback(HaproxyConfig.load("haproxy/c-agent-fallback.cfg"), nodes));
    Haproxy haproxy = start(cfg);
    int write = cfg.port(5000);

    awaitStates(haproxy, "pg_write_pgbouncer", Map.of("pg1", "UP", "pg2", "MAINT", "pg3", "MAINT"));
    awaitStates(haproxy, "pg_write_direct", Map.of("pg1", "UP", "pg2", "DOWN", "pg3", "DOWN"));
    awaitRoute(write, "pgbouncer pg1");

    // PgBouncer on the primary dies: pgbeacon says down, its TCP check fails: straight to PostgreSQL.
    nodes.pgbouncer(1).stop();
    nodes.agent(1).show(health(critical("PgBouncer: Connection refused: /127.0.0.11:6432"), wrongRole("master")));
    awaitStates(haproxy, "pgbouncer_alive", Map.of("pg1", "DOWN", "pg2", "UP", "pg3", "UP"));
    awaitRoute(write, "postgres pg1");

    // It comes back: through PgBouncer again.
    nodes.pgbouncer(1).start();
    nodes.primary(1);
    awaitRoute(write, "pgbouncer pg1");
    awaitStates(haproxy, "pgbouncer_alive", Map.of("pg1", "UP", "pg2", "UP", "pg3", "UP"));

    // Switchover requested: pgbeacon withdraws pg1 at once; Patroni's /primary still names pg1 for a while.
    nodes.agent(1).show(health(critical("switchover to pg2 requested"), wrongRole("master")));
    awaitStates(haproxy, "pg_write_pgbouncer", Map.of("pg1", "DOWN (agent)"));
    assertEquals("UP", haproxy.stat("pg_write_direct", "pg1").status());
    for (int i = 0; i < 3; i++) {
      assertEquals("", route(write), "writes must wait, not go to the demoting primary");
    }

    // pg2 promoted: Patroni and pgbeacon agree.
    nodes.patroni(1).primary(false);
    nodes.patroni(2).primary(true);
    nodes.agent(1).show(health(wrongRole("replica"), passing("replica, lag 0B")));
    nodes.agent(2).show(health(passing("primary, timeline 3"), wrongRole("master")));
    awaitRoute(write, "pgbouncer pg2");
  }

  /** Reads: weights from the replica view's N%, the primary (primary view) as backup when no replica is left. */
  @Test
  void replicasWeighByLagAndThePrimaryIsTheBackup() throws Exception {
    Nodes nodes = new Nodes();
    // Scripted agents: the replica view's lag weights are the agent's N%, whatever pgbeacon's version says.
    TcpStub[] replicaView = new TcpStub[4];
    TcpStub[] primaryView = new TcpStub[4];
    for (int n = 1; n <= 3; n++) {
      replicaView[n] = closing(TcpStub.start(Nodes.address(n), 0, n == 1 ? "up maint #primary" : "up ready 100%"));
      primaryView[n] = closing(TcpStub.start(Nodes.address(n), 0, n == 1 ? "up ready 100%" : "up maint #replica"));
    }
    replicaView[3].reply("up ready 40% #replica, lag 9MB");
    HaproxyConfig cfg = HaproxyConfig.load("haproxy/replicas-lag-weights.cfg");
    for (int n = 1; n <= 3; n++) {
      cfg.node(n, Nodes.address(n), Map.of(6432, nodes.pgbouncer(n).port(), 5480, primaryView[n].port(),
          5481, replicaView[n].port()));
    }
    fast(cfg);
    Haproxy haproxy = start(cfg);
    int read = cfg.port(5001);

    awaitStates(haproxy, "pg_read", Map.of("pg1", "MAINT", "pg2", "UP", "pg3", "UP", "pg1_primary", "UP",
        "pg2_primary", "MAINT", "pg3_primary", "MAINT"));
    Await.until("weights 100 and 40", CONVERGE, () -> weights(haproxy, "pg_read"),
        w -> w.get("pg2") == 100 && w.get("pg3") == 40);
    assertTrue(route(read).matches("pgbouncer pg[23]"));

    replicaView[2].reply("down #replica lag 17MB exceeds max-lag 16MB");
    replicaView[3].reply("down #PostgreSQL crashed (role replica)");
    awaitStates(haproxy, "pg_read", Map.of("pg2", "DOWN (agent)", "pg3", "DOWN (agent)", "pg1_primary", "UP"));
    awaitRoute(read, "pgbouncer pg1");
  }

  /** Scenario A, the baseline: Patroni's /primary and /replica decide; the wrong role is DOWN, not parked. */
  @Test
  void aFollowsPatronisHealthEndpoints() throws Exception {
    Nodes nodes = new Nodes();
    nodes.primary(1);
    HaproxyConfig cfg = fast(loopback(HaproxyConfig.load("haproxy/a-patroni-httpchk.cfg"), nodes));
    Haproxy haproxy = start(cfg);

    awaitStates(haproxy, "pg_write", Map.of("pg1", "UP", "pg2", "DOWN", "pg3", "DOWN"));
    awaitStates(haproxy, "pg_read", Map.of("pg1", "DOWN", "pg2", "UP", "pg3", "UP"));
    awaitRoute(cfg.port(5000), "pgbouncer pg1");

    // The gap pgbeacon closes: PgBouncer on the primary refuses clients, Patroni still says 200, pg1 stays UP.
    nodes.pgbouncer(1).stop();
    awaitRoute(cfg.port(5000), "");
    assertEquals("UP", haproxy.stat("pg_write", "pg1").status(), "httpchk checks Patroni, not PgBouncer");
  }

  /** Consul DNS: the servers are whatever patroni-primary / patroni-replica list as passing, ports included. */
  @Test
  void dnsSrvFollowsConsulsPassingInstances() throws Exception {
    Nodes nodes = new Nodes();
    ConsulDevAgent consul = closing(new ConsulDevAgent(dir, null).start());
    for (int n = 1; n <= 3; n++) {
      register(consul, "patroni-primary", n, nodes.pgbouncer(n).port(), n == 1);
      register(consul, "patroni-replica", n, nodes.pgbouncer(n).port(), n != 1);
    }
    HaproxyConfig cfg = fast(HaproxyConfig.load("haproxy/dns-srv.cfg")
        .nameserver("consul", "127.0.0.1:" + consul.dnsPort())
        .replace("hold valid \\d+m?s", "hold valid 200ms"));
    Haproxy haproxy = start(cfg);
    int write = cfg.port(5000);
    int read = cfg.port(5001);

    Await.until("pg_write filled from Consul DNS", CONVERGE, () -> haproxy.serversState("pg_write"),
        servers -> servers.stream().filter(Haproxy.ServerState::up).map(s -> s.address() + ":" + s.port())
            .toList().equals(List.of("127.0.0.11:" + nodes.pgbouncer(1).port())));
    awaitRoute(write, "pgbouncer pg1");
    Await.until("reads on both replicas", CONVERGE, () -> route(read), g -> g.equals("pgbouncer pg2"));
    Await.until("reads on both replicas", CONVERGE, () -> route(read), g -> g.equals("pgbouncer pg3"));

    // pgbeacon on pg1 turns its primary check critical, pg2's passes: HAProxy follows at its next resolution.
    ttl(consul, "patroni-primary", 1, false);
    ttl(consul, "patroni-primary", 2, true);
    awaitRoute(write, "pgbouncer pg2");
  }

  /** dns-srv.cfg's optional agent check: HAProxy asks the agent at the address the SRV record resolved to. */
  @Test
  void dnsSrvWithTheAgentCheckAsksTheResolvedNodesAgent() throws Exception {
    Nodes nodes = new Nodes();
    int agentPort = FreePorts.next(); // one port on every node address, as in production
    InProcessAgent[] agents = new InProcessAgent[4];
    for (int n = 1; n <= 3; n++) {
      agents[n] = closing(InProcessAgent.start("agent: {listen: [{address: " + Nodes.address(n) + ", port: "
          + agentPort + ", view: primary}]}", n == 1 ? health(passing("primary"), wrongRole("master"))
              : health(wrongRole("replica"), passing("replica, lag 0B"))));
    }
    ConsulDevAgent consul = closing(new ConsulDevAgent(dir, null).start());
    for (int n = 1; n <= 3; n++) {
      register(consul, "patroni-primary", n, nodes.pgbouncer(n).port(), n == 1);
    }
    String template = "server-template pg 3 _patroni-primary._tcp.service.consul resolvers consul resolve-prefer ipv4"
        + " check";
    HaproxyConfig cfg = fast(HaproxyConfig.load("haproxy/dns-srv.cfg")
        .nameserver("consul", "127.0.0.1:" + consul.dnsPort())
        .replace("hold valid \\d+m?s", "hold valid 200ms")
        .set(template + "\n", template + " agent-check agent-port 5480 agent-inter 1s\n")
        .ports(Map.of(5480, agentPort)));
    assertTrue(cfg.text().contains("agent-port " + agentPort), cfg::text);
    Haproxy haproxy = start(cfg);
    awaitRoute(cfg.port(5000), "pgbouncer pg1");

    // Consul still lists pg1, its pgbeacon already says down (e.g. PgBouncer failing before the TTL push).
    agents[1].show(health(critical("PgBouncer: Connection refused"), wrongRole("master")));
    Await.until("pg1's slot DOWN by its agent", CONVERGE, () -> haproxy.stat("pg_write"),
        rows -> rows.stream().anyMatch(r -> r.status().equals("DOWN (agent)")
            && r.lastAgentCheck().contains("PgBouncer: Connection refused")));
    awaitRoute(cfg.port(5000), "");
  }

  /** What pgbeacon's registrar does, in short: one service instance per node with a TTL check in a given state. */
  static void register(ConsulDevAgent consul, String service, int n, int port, boolean passing) throws Exception {
    put(consul, "/v1/agent/service/register", "{\"ID\": \"" + service + "-pg" + n + "\", \"Name\": \"" + service + "\", \"Address\": \""
        + Nodes.address(n) + "\", \"Port\": " + port + ", \"Check\": {\"TTL\": \"1m\", \"Status\": \""
        + (passing ? "passing" : "critical") + "\"}}");
  }

  /** A TTL update, as pgbeacon pushes a change of verdict. */
  static void ttl(ConsulDevAgent consul, String service, int n, boolean passing) throws Exception {
    put(consul, "/v1/agent/check/" + (passing ? "pass" : "fail") + "/service:" + service + "-pg" + n, "");
  }

  static void put(ConsulDevAgent consul, String path, String body) throws Exception {
    HttpResponse<String> r = HttpClient.newHttpClient().send(HttpRequest.newBuilder(
            URI.create("http://" + consul.address() + path))
        .PUT(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
    assertEquals(200, r.statusCode(), () -> path + ": " + r.body());
  }

  // ---------------------------------------------------------------------------------------------------------

  /** Three nodes on 127.0.0.11-13: a pgbeacon agent (both views), a PgBouncer, a PostgreSQL, a Patroni each. */
  final class Nodes {
    private final Map<Integer, InProcessAgent> agents = new HashMap<>();
    private final Map<Integer, TcpStub> pgbouncers = new HashMap<>();
    private final Map<Integer, TcpStub> postgres = new HashMap<>();
    private final Map<Integer, PatroniStub> patronis = new HashMap<>();

    Nodes() throws Exception {
      for (int n = 1; n <= 3; n++) {
        String address = address(n);
        agents.put(n, closing(InProcessAgent.start("agent: {listen: [{address: " + address + ", port: 0,"
            + " view: primary}, {address: " + address + ", port: 0, view: replica}]}", starting())));
        pgbouncers.put(n, closing(TcpStub.start(address, 0, "pgbouncer pg" + n)));
        postgres.put(n, closing(TcpStub.start(address, 0, "postgres pg" + n)));
        patronis.put(n, closing(PatroniStub.start(address, 0).primary(false)));
      }
    }

    static String address(int n) {
      return "127.0.0.1" + n;
    }

    InProcessAgent agent(int n) {
      return agents.get(n);
    }

    TcpStub pgbouncer(int n) {
      return pgbouncers.get(n);
    }

    PatroniStub patroni(int n) {
      return patronis.get(n);
    }

    /** Node n is a healthy primary, the others healthy replicas: for pgbeacon and for Patroni. */
    void primary(int n) {
      for (int i = 1; i <= 3; i++) {
        agents.get(i).show(i == n ? health(passing("primary, timeline 2"), wrongRole("master"))
            : health(wrongRole("replica"), passing("replica, lag 0B")));
        patronis.get(i).primary(i == n);
      }
    }

    /** The documented topology's ports of node n → this node's stand-ins. */
    Map<Integer, Integer> ports(int n) {
      return Map.of(5432, postgres.get(n).port(), 6432, pgbouncers.get(n).port(), 8008, patronis.get(n).port(),
          5480, agents.get(n).ports().get(0), 5481, agents.get(n).ports().get(1));
    }
  }

  static HaproxyConfig loopback(HaproxyConfig cfg, Nodes nodes) {
    for (int n = 1; n <= 3; n++) {
      cfg.node(n, Nodes.address(n), nodes.ports(n));
    }
    return cfg;
  }

  /** Checks every 100-200 ms instead of seconds, and a short queue so that "no server" shows quickly. */
  static HaproxyConfig fast(HaproxyConfig cfg) {
    return cfg.replace("(?<=\\s)inter \\d+m?s", "inter 200ms")
        .replace("fastinter \\d+m?s", "fastinter 100ms")
        .replace("agent-inter \\d+m?s", "agent-inter 100ms")
        .replace("timeout connect \\d+s", "timeout connect 500ms")
        .replace("timeout check \\d+s", "timeout check 1s");
  }

  Haproxy start(HaproxyConfig cfg) throws IOException {
    return closing(Haproxy.start(cfg, dir));
  }

  <T extends AutoCloseable> T closing(T resource) {
    resources.add(resource);
    return resource;
  }

  /** Waits until each named server shows the status ({@code show stat}); returns the rows seen last. */
  static Map<String, Haproxy.StatRow> awaitStates(Haproxy haproxy, String backend, Map<String, String> expected) {
    Map<String, Haproxy.StatRow> rows = new HashMap<>();
    Await.until(backend + " " + expected, CONVERGE, () -> {
      rows.clear();
      haproxy.stat(backend).forEach(r -> rows.put(r.server(), r));
      return rows.values().toString();
    }, seen -> expected.entrySet().stream()
        .allMatch(e -> rows.containsKey(e.getKey()) && rows.get(e.getKey()).status().equals(e.getValue())));
    return rows;
  }

  static Map<String, Integer> weights(Haproxy haproxy, String backend) {
    Map<String, Integer> weights = new HashMap<>();
    haproxy.serversState(backend).forEach(s -> weights.put(s.server(), s.weight()));
    return weights;
  }

  static void awaitRoute(int port, String greeting) {
    Await.until("a client on " + port + " greeted with '" + greeting + "'", CONVERGE, () -> route(port),
        greeting::equals);
  }

  /** Connects through HAProxy and returns the greeting of the server reached, or "" when there is none. */
  static String route(int port) {
    try (Socket socket = new Socket()) {
      socket.connect(new InetSocketAddress("127.0.0.1", port), 2000);
      socket.setSoTimeout(3000);
      ByteArrayOutputStream out = new ByteArrayOutputStream();
      socket.getInputStream().transferTo(out);
      return out.toString(StandardCharsets.US_ASCII).strip();
    } catch (SocketTimeoutException e) {
      return "";
    } catch (IOException e) {
      return ""; // refused or reset: no server
    }
  }

  static NodeHealth starting() {
    return NodeHealth.starting(Optional.of("pg"), System.nanoTime());
  }

  static NodeHealth health(Verdict primary, Verdict replica) {
    return Healths.primary("pg").timeline(2).version("3.0.2").primaryView(primary).replicaView(replica).build();
  }

  static Verdict passing(String reason) {
    return new Verdict(Status.PASSING, false, reason);
  }

  static Verdict critical(String reason) {
    return new Verdict(Status.CRITICAL, false, reason);
  }

  static Verdict wrongRole(String reason) {
    return new Verdict(Status.CRITICAL, true, reason);
  }
}
