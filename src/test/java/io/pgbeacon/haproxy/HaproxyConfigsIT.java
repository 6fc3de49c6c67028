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
import java.util.TreeMap;
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
 * 100-200 ms in the rewritten copies ({@link #fast}).
 */
class HaproxyConfigsIT {

  static final List<String> SHIPPED = List.of("a-patroni-httpchk.cfg", "b-agent-pgbouncer.cfg",
      "c-agent-fallback.cfg", "d-pgbeacon-httpchk.cfg", "dns-srv.cfg", "read-only-fallback.cfg",
      "replicas-lag-weights.cfg", "sync-reads.cfg");
  static final Duration CONVERGE = Duration.ofSeconds(10);
  /** The rewritten copies' check timing ({@link #fast}); {@code fall} is the shipped one of B, C and lag weights. */
  static final Duration INTER = Duration.ofMillis(200);
  static final Duration FASTINTER = Duration.ofMillis(100);
  static final Duration TIMEOUT_CHECK = Duration.ofMillis(500);
  static final int FALL = 3;
  /** Beyond a bound computed from the timing: stats polling, scheduling on a busy machine. */
  static final Duration SLACK = Duration.ofSeconds(2);

  /**
   * How a pgbeacon dies as HAProxy sees it: the regular check's status when it fails, and how long HAProxy may
   * take to call the server DOWN: the time to the next check, then fall checks fastinter apart, each taking as
   * long as HAProxy 2.6 waits for a reply when none comes, the longer of timeout check and min(inter, timeout
   * connect) (measured; timeout check here).
   */
  enum Death {
    /** SIGKILL, OOM: nothing listens on the agent ports, connections are refused. */
    KILLED("L4CON", "comment: 'pgbeacon'", INTER.plus(FASTINTER.multipliedBy(FALL - 1))),
    /** SIGSTOP: the kernel still accepts connections on the agent ports, nothing answers. */
    HUNG("L7TOUT", "comment: 'no reply line from pgbeacon'",
        INTER.plus(TIMEOUT_CHECK.multipliedBy(FALL)).plus(FASTINTER.multipliedBy(FALL - 1)));

    final String checkStatus;
    /** How HAProxy's message on the failed check ends: the comment of the shipped tcp-check step that failed. */
    final String failedStep;
    final Duration bound;

    Death(String checkStatus, String failedStep, Duration bound) {
      this.checkStatus = checkStatus;
      this.failedStep = failedStep;
      this.bound = bound;
    }
  }

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
          5480, 19080 + n * 100, 5481, 19081 + n * 100, 5482, 19082 + n * 100, 8009, 19009 + n * 100));
    }
    String code = cfg.text().lines().filter(l -> !l.strip().startsWith("#")).collect(Collectors.joining("\n"));
    assertFalse(code.contains("10.0.0."), () -> "a production address is left:\n" + code);
    assertFalse(code.contains("/run/haproxy"), () -> "the production socket is left:\n" + code);
    String check = Haproxy.check(cfg.write(dir)); // each node has its own ports here, as on the lab
    assertFalse(check.contains("[WARNING]"), () -> file + " rewritten: haproxy -c warns:\n" + check);
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

    nodes.show(1, health(critical("PgBouncer: Connection refused: /127.0.0.11:6432"), wrongRole("master")));
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
   * Scenario B: a killed or hung pgbeacon takes its node out (the agent's last "up ready" would stay in force),
   * also after another node became primary; its parked servers stay MAINT; it is back once pgbeacon answers.
   */
  @Test
  void bADeadOrHungPgbeaconTakesItsNodeOut() throws Exception {
    Nodes nodes = new Nodes();
    nodes.primary(1);
    HaproxyConfig cfg = fast(loopback(HaproxyConfig.load("haproxy/b-agent-pgbouncer.cfg"), nodes));
    Haproxy haproxy = start(cfg);
    int write = cfg.port(5000);
    int read = cfg.port(5001);
    Map<String, String> writeHealthy = Map.of("pg1", "UP", "pg2", "MAINT", "pg3", "MAINT");
    Map<String, String> readHealthy = Map.of("pg1", "MAINT", "pg2", "UP", "pg3", "UP");
    awaitStates(haproxy, "pg_write", writeHealthy);
    awaitStates(haproxy, "pg_read", readHealthy);

    // The primary's pgbeacon and a replica's die together.
    eachDeath(nodes, cfg, haproxy, new int[] {1, 2}, List.of("pg_write/pg1", "pg_read/pg2"), () -> {
      assertStates(haproxy, "pg_write", Map.of("pg2", "MAINT", "pg3", "MAINT")); // parked: not checked, no alarm
      assertStates(haproxy, "pg_read", Map.of("pg1", "MAINT", "pg3", "UP"));
      awaitRoute(write, "");
      awaitRoute(read, "pgbouncer pg3");
    }, () -> {
      awaitStates(haproxy, "pg_write", writeHealthy);
      awaitStates(haproxy, "pg_read", readHealthy);
      awaitRoute(write, "pgbouncer pg1");
    });

    // The case that made this check necessary: pg1's pgbeacon dies, then pg2 is promoted.
    long since = System.nanoTime();
    nodes.kill(Death.KILLED, 1);
    awaitTakenOut(cfg, haproxy, Death.KILLED, since, "pg_write/pg1");
    nodes.primary(2);
    awaitStates(haproxy, "pg_write", Map.of("pg1", "DOWN", "pg2", "UP", "pg3", "MAINT"));
    awaitRoute(write, "pgbouncer pg2");
    nodes.revive(1); // back as a replica: parked in pg_write, serving reads
    awaitStates(haproxy, "pg_write", Map.of("pg1", "MAINT", "pg2", "UP", "pg3", "MAINT"));
    awaitStates(haproxy, "pg_read", Map.of("pg1", "UP", "pg2", "MAINT", "pg3", "UP"));
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
    nodes.show(1, health(critical("PgBouncer: Connection refused: /127.0.0.11:6432"), wrongRole("master")));
    awaitStates(haproxy, "pgbouncer_alive", Map.of("pg1", "DOWN", "pg2", "UP", "pg3", "UP"));
    awaitRoute(write, "postgres pg1");

    // It comes back: through PgBouncer again.
    nodes.pgbouncer(1).start();
    nodes.primary(1);
    awaitRoute(write, "pgbouncer pg1");
    awaitStates(haproxy, "pgbouncer_alive", Map.of("pg1", "UP", "pg2", "UP", "pg3", "UP"));

    // Switchover requested: pgbeacon withdraws pg1 at once; Patroni's /primary still names pg1 for a while.
    nodes.show(1, health(critical("switchover to pg2 requested"), wrongRole("master")));
    awaitStates(haproxy, "pg_write_pgbouncer", Map.of("pg1", "DOWN (agent)"));
    assertEquals("UP", haproxy.stat("pg_write_direct", "pg1").status());
    for (int i = 0; i < 3; i++) {
      assertEquals("", route(write), "writes must wait, not go to the demoting primary");
    }

    // pg2 promoted: Patroni and pgbeacon agree.
    nodes.patroni(1).primary(false);
    nodes.patroni(2).primary(true);
    nodes.show(1, health(wrongRole("replica"), passing("replica, lag 0B")));
    nodes.show(2, health(passing("primary, timeline 3"), wrongRole("master")));
    awaitRoute(write, "pgbouncer pg2");
  }

  /**
   * Scenario C: a killed or hung pgbeacon on the primary takes it out of pg_write_pgbouncer; with its PgBouncer
   * alive that is no reason to fall back (writes wait), and a PgBouncer failure still falls back without pgbeacon.
   */
  @Test
  void cADeadOrHungPgbeaconTakesThePrimaryOutWithoutFallingBack() throws Exception {
    Nodes nodes = new Nodes();
    nodes.primary(1);
    HaproxyConfig cfg = fast(loopback(HaproxyConfig.load("haproxy/c-agent-fallback.cfg"), nodes));
    Haproxy haproxy = start(cfg);
    int write = cfg.port(5000);
    Map<String, String> healthy = Map.of("pg1", "UP", "pg2", "MAINT", "pg3", "MAINT");
    awaitStates(haproxy, "pg_write_pgbouncer", healthy);
    awaitStates(haproxy, "pg_write_direct", Map.of("pg1", "UP", "pg2", "DOWN", "pg3", "DOWN"));
    awaitRoute(write, "pgbouncer pg1");

    eachDeath(nodes, cfg, haproxy, new int[] {1}, List.of("pg_write_pgbouncer/pg1"), () -> {
      assertStates(haproxy, "pg_write_pgbouncer", Map.of("pg2", "MAINT", "pg3", "MAINT"));
      assertStates(haproxy, "pgbouncer_alive", Map.of("pg1", "UP", "pg2", "UP", "pg3", "UP"));
      assertStates(haproxy, "pg_write_direct", Map.of("pg1", "UP"));
      awaitRoute(write, "");

      // Its PgBouncer fails as well: the fallback asks Patroni and PgBouncer, not pgbeacon.
      nodes.pgbouncer(1).stop();
      awaitRoute(write, "postgres pg1");
      nodes.pgbouncer(1).start();
      awaitRoute(write, "");
    }, () -> {
      awaitStates(haproxy, "pg_write_pgbouncer", healthy);
      awaitRoute(write, "pgbouncer pg1");
    });
  }

  /** Reads: weights from the replica view's N%, the primary (primary view) as backup when no replica is left. */
  @Test
  void replicasWeighByLagAndThePrimaryIsTheBackup() throws Exception {
    Nodes nodes = new Nodes();
    // Scripted agents: the replica view's lag weights are the agent's N%, whatever pgbeacon's version says.
    TcpStub[] replicaView = new TcpStub[4];
    TcpStub[] primaryView = new TcpStub[4];
    for (int n = 1; n <= 3; n++) {
      replicaView[n] = closing(TcpStub.start(Nodes.address(n), 0, n == 1 ? "up maint #primary"
          : "up ready 100% #replica, lag 0B"));
      primaryView[n] = closing(TcpStub.start(Nodes.address(n), 0, n == 1 ? "up ready 100% #primary, timeline 2"
          : "up maint #replica"));
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

  /**
   * Reads: a killed or hung pgbeacon takes its replica out, and the primary's takes the backup out (its regular
   * check asks the replica view too); the parked servers of both stay MAINT; both are back once pgbeacon answers.
   */
  @Test
  void replicasLagWeightsADeadOrHungPgbeaconTakesItsServersOut() throws Exception {
    Nodes nodes = new Nodes();
    nodes.primary(1);
    HaproxyConfig cfg = fast(loopback(HaproxyConfig.load("haproxy/replicas-lag-weights.cfg"), nodes));
    Haproxy haproxy = start(cfg);
    int read = cfg.port(5001);
    Map<String, String> healthy = Map.of("pg1", "MAINT", "pg2", "UP", "pg3", "UP", "pg1_primary", "UP",
        "pg2_primary", "MAINT", "pg3_primary", "MAINT");
    awaitStates(haproxy, "pg_read", healthy);

    eachDeath(nodes, cfg, haproxy, new int[] {1, 2}, List.of("pg_read/pg2", "pg_read/pg1_primary"), () -> {
      assertStates(haproxy, "pg_read", Map.of("pg1", "MAINT", "pg2_primary", "MAINT", "pg3", "UP"));
      awaitRoute(read, "pgbouncer pg3");
    }, () -> awaitStates(haproxy, "pg_read", healthy));
  }

  /**
   * Synchronous reads (agent-send "sync"): only the synchronous standby, following Patroni's choice; the primary
   * (agent-send "primary", backup) while there is none; a killed or hung pgbeacon takes its servers out.
   */
  @Test
  void syncReadsGoToTheSynchronousStandbyAndToThePrimaryWhenThereIsNone() throws Exception {
    Nodes nodes = new Nodes();
    nodes.primary(1);
    nodes.show(2, replica(passing("replica, lag 0B"), true));
    HaproxyConfig cfg = fast(loopback(HaproxyConfig.load("haproxy/sync-reads.cfg"), nodes));
    Haproxy haproxy = start(cfg);
    int read = cfg.port(5002);
    Map<String, String> pg2Sync = Map.of("pg1", "MAINT", "pg2", "UP", "pg3", "MAINT", "pg1_primary", "UP",
        "pg2_primary", "MAINT", "pg3_primary", "MAINT");
    awaitStates(haproxy, "pg_read_sync", pg2Sync);
    awaitRoute(read, "pgbouncer pg2");

    // Patroni picks pg3 instead: the sync view follows, no edit of HAProxy's configuration.
    nodes.show(2, replica(passing("replica, lag 0B"), false));
    nodes.show(3, replica(passing("replica, lag 0B"), true));
    awaitStates(haproxy, "pg_read_sync", Map.of("pg2", "MAINT", "pg3", "UP"));
    awaitRoute(read, "pgbouncer pg3");

    // The synchronous standby stops streaming (past the grace): no synchronous standby, reads on the primary.
    nodes.show(3, replica(critical("not streaming (no replication_state) for 11s, past streaming-grace 10s"), true));
    awaitStates(haproxy, "pg_read_sync", Map.of("pg2", "MAINT", "pg3", "DOWN (agent)", "pg1_primary", "UP"));
    awaitRoute(read, "pgbouncer pg1");
    nodes.show(3, replica(passing("replica, lag 0B"), true));
    awaitRoute(read, "pgbouncer pg3");

    // pg3's pgbeacon (the synchronous standby's) and pg1's (the primary's, the backup) die together.
    eachDeath(nodes, cfg, haproxy, new int[] {1, 3}, List.of("pg_read_sync/pg3", "pg_read_sync/pg1_primary"), () -> {
      assertStates(haproxy, "pg_read_sync", Map.of("pg1", "MAINT", "pg2", "MAINT", "pg3_primary", "MAINT"));
      awaitRoute(read, ""); // no synchronous standby and no primary: refused, never an asynchronous replica
    }, () -> {
      awaitStates(haproxy, "pg_read_sync", Map.of("pg1", "MAINT", "pg2", "MAINT", "pg3", "UP", "pg1_primary", "UP"));
      awaitRoute(read, "pgbouncer pg3");
    });
  }

  /**
   * Read-only traffic (agent-send "replica", the primary by agent-send "primary" as backup): the replicas serve; the
   * primary only once none can (one behind past max-lag and drained, one not streaming); a killed or hung pgbeacon
   * takes its servers out.
   */
  @Test
  void readOnlyGoesToTheReplicasAndToThePrimaryOnlyWhenNoneCanServe() throws Exception {
    Nodes nodes = new Nodes();
    nodes.primary(1);
    HaproxyConfig cfg = fast(loopback(HaproxyConfig.load("haproxy/read-only-fallback.cfg"), nodes));
    Haproxy haproxy = start(cfg);
    int read = cfg.port(5001);
    Map<String, String> healthy = Map.of("pg1", "MAINT", "pg2", "UP", "pg3", "UP", "pg1_primary", "UP",
        "pg2_primary", "MAINT", "pg3_primary", "MAINT");
    awaitStates(haproxy, "pg_read", healthy);
    Await.until("reads on pg2", CONVERGE, () -> route(read), "pgbouncer pg2"::equals);
    Await.until("reads on pg3", CONVERGE, () -> route(read), "pgbouncer pg3"::equals);

    nodes.show(2, replica(Verdict.pastMaxLag("replica lag 17MB exceeds max-lag 16MB"), false));
    awaitStates(haproxy, "pg_read", Map.of("pg2", "DRAIN (agent)", "pg3", "UP"));
    for (int i = 0; i < 3; i++) {
      assertEquals("pgbouncer pg3", route(read), "a drained replica and the backup get no new reads");
    }
    nodes.show(3, replica(critical("not streaming (no replication_state) for 11s, past streaming-grace 10s"), false));
    awaitStates(haproxy, "pg_read", Map.of("pg2", "DRAIN (agent)", "pg3", "DOWN (agent)", "pg1_primary", "UP"));
    awaitRoute(read, "pgbouncer pg1");
    nodes.show(3, replica(passing("replica, lag 0B"), false));
    awaitRoute(read, "pgbouncer pg3");
    nodes.primary(1);
    awaitStates(haproxy, "pg_read", healthy);

    eachDeath(nodes, cfg, haproxy, new int[] {1, 2}, List.of("pg_read/pg2", "pg_read/pg1_primary"), () -> {
      assertStates(haproxy, "pg_read", Map.of("pg1", "MAINT", "pg2_primary", "MAINT", "pg3", "UP"));
      awaitRoute(read, "pgbouncer pg3");
    }, () -> awaitStates(haproxy, "pg_read", healthy));
  }

  /**
   * Scenario D: pgbeacon's /primary and /replica decide through {@code option httpchk}: the verdict's withdrawal
   * takes the primary out, the wrong role is DOWN, and a killed or hung pgbeacon fails the check by itself.
   */
  @Test
  void dFollowsPgbeaconsHealthEndpointsAndADeadOrHungPgbeaconFailsTheCheck() throws Exception {
    Nodes nodes = new Nodes();
    nodes.primary(1);
    HaproxyConfig cfg = fast(loopback(HaproxyConfig.load("haproxy/d-pgbeacon-httpchk.cfg"), nodes));
    Haproxy haproxy = start(cfg);
    int write = cfg.port(5000);
    int read = cfg.port(5001);
    Map<String, String> writeHealthy = Map.of("pg1", "UP", "pg2", "DOWN", "pg3", "DOWN");
    Map<String, String> readHealthy = Map.of("pg1", "DOWN", "pg2", "UP", "pg3", "UP");
    awaitStates(haproxy, "pg_write", writeHealthy);
    awaitStates(haproxy, "pg_read", readHealthy);
    awaitRoute(write, "pgbouncer pg1");
    Haproxy.StatRow replica = haproxy.stat("pg_write", "pg2");
    // pgbeacon's reason is HTTP's reason phrase: HAProxy shows why.
    assertEquals("L7STS", replica.checkStatus(), replica::toString);
    assertEquals("critical: replica", replica.lastCheck(), replica::toString);

    // A withdrawal (switchover requested): pg1 out of pg_write, no server for writes.
    nodes.show(1, health(critical("switchover to pg2 requested"), wrongRole("master")));
    awaitStates(haproxy, "pg_write", Map.of("pg1", "DOWN"));
    awaitRoute(write, "");
    nodes.primary(2);
    awaitStates(haproxy, "pg_write", Map.of("pg1", "DOWN", "pg2", "UP", "pg3", "DOWN"));
    awaitRoute(write, "pgbouncer pg2");

    // pg2's pgbeacon (the primary's) and pg3's (a replica's) die together; their last answers do not stay.
    for (Death death : Death.values()) {
      long since = System.nanoTime();
      nodes.kill(death, 2, 3);
      awaitTakenOut(cfg, haproxy, death, "", since,
          "pg_write/pg2", "pg_read/pg3");
      awaitRoute(write, "");
      awaitRoute(read, "pgbouncer pg1");
      nodes.revive(2, 3);
      awaitStates(haproxy, "pg_write", Map.of("pg1", "DOWN", "pg2", "UP", "pg3", "DOWN"));
      awaitStates(haproxy, "pg_read", Map.of("pg1", "UP", "pg2", "DOWN", "pg3", "UP"));
      awaitRoute(write, "pgbouncer pg2");
    }
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
    put(consul, "/v1/agent/service/register", "{\"ID\": \"" + service + "/demo/pg" + n + "\", \"Name\": \"" + service + "\", \"Address\": \""
        + Nodes.address(n) + "\", \"Port\": " + port + ", \"Check\": {\"TTL\": \"1m\", \"Status\": \""
        + (passing ? "passing" : "critical") + "\"}}");
  }

  /** A TTL update, as pgbeacon pushes a change of verdict. */
  static void ttl(ConsulDevAgent consul, String service, int n, boolean passing) throws Exception {
    put(consul, "/v1/agent/check/" + (passing ? "pass" : "fail") + "/service:" + service + "/demo/pg" + n, "");
  }

  static void put(ConsulDevAgent consul, String path, String body) throws Exception {
    HttpResponse<String> r = HttpClient.newHttpClient().send(HttpRequest.newBuilder(
            URI.create("http://" + consul.address() + path))
        .PUT(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
    assertEquals(200, r.statusCode(), () -> path + ": " + r.body());
  }

  // ---------------------------------------------------------------------------------------------------------

  /**
   * Three nodes on 127.0.0.11-13: a pgbeacon agent (a port for the primary view, one for the replica view and one
   * without a view, where agent-send names one; the same ports on every node, as in production), a PgBouncer, a
   * PostgreSQL, a Patroni each. A node's pgbeacon can die ({@link #kill}) and come back ({@link #revive}) with the
   * verdict it was last shown.
   */
  final class Nodes {
    private final Map<Integer, InProcessAgent> agents = new HashMap<>(); // the live ones
    private final Map<Integer, List<TcpStub>> hung = new HashMap<>();
    private final Map<Integer, NodeHealth> shown = new HashMap<>();
    private final Map<Integer, TcpStub> pgbouncers = new HashMap<>();
    private final Map<Integer, TcpStub> postgres = new HashMap<>();
    private final Map<Integer, PatroniStub> patronis = new HashMap<>();
    private final int primaryView;
    private final int replicaView;
    /** The listener without a view: HAProxy's agent-send names one. */
    private final int anyView;
    private final int http;

    Nodes() throws Exception {
      closing((AutoCloseable) this::stopAgents);
      for (int n = 1; n <= 3; n++) {
        shown.put(n, starting());
      }
      agents.put(1, startAgent(1, 0, 0, 0, 0)); // free ports, which the other nodes take too
      primaryView = agents.get(1).ports().get(0);
      replicaView = agents.get(1).ports().get(1);
      anyView = agents.get(1).ports().get(2);
      http = agents.get(1).httpPort();
      for (int n = 2; n <= 3; n++) {
        agents.put(n, startAgent(n, primaryView, replicaView, anyView, http));
      }
      for (int n = 1; n <= 3; n++) {
        String address = address(n);
        pgbouncers.put(n, closing(TcpStub.start(address, 0, "pgbouncer pg" + n)));
        postgres.put(n, closing(TcpStub.start(address, 0, "postgres pg" + n)));
        patronis.put(n, closing(PatroniStub.start(address, 0).primary(false)));
      }
    }

    static String address(int n) {
      return "127.0.0.1" + n;
    }

    private InProcessAgent startAgent(int n, int primaryPort, int replicaPort, int anyPort, int httpPort) {
      try {
        return InProcessAgent.start("agent: {listen: [{address: " + address(n) + ", port: " + primaryPort
            + ", view: primary}, {address: " + address(n) + ", port: " + replicaPort + ", view: replica},"
            + " {address: " + address(n) + ", port: " + anyPort + "}]}\n"
            + "http: {address: " + address(n) + ", port: " + httpPort + "}", shown.get(n));
      } catch (Exception e) {
        throw new IllegalStateException("pgbeacon agent of pg" + n, e);
      }
    }

    /** Node n's pgbeacon answers this verdict (once it is back, if it is dead). */
    void show(int n, NodeHealth health) {
      shown.put(n, health);
      if (agents.containsKey(n)) {
        agents.get(n).show(health);
      }
    }

    /** These nodes' pgbeacons die: their agent ports refuse connections, or accept them and never answer. */
    void kill(Death death, int... ns) throws Exception {
      for (int n : ns) {
        agents.remove(n).close();
        if (death == Death.HUNG) {
          hung.put(n, List.of(TcpStub.silent(address(n), primaryView), TcpStub.silent(address(n), replicaView),
              TcpStub.silent(address(n), anyView), TcpStub.silent(address(n), http)));
        }
      }
    }

    /** These nodes' pgbeacons are back on their ports, answering what they were last shown. */
    void revive(int... ns) {
      for (int n : ns) {
        hung.getOrDefault(n, List.of()).forEach(TcpStub::stop);
        hung.remove(n);
        agents.put(n, startAgent(n, primaryView, replicaView, anyView, http));
      }
    }

    private void stopAgents() throws Exception {
      for (InProcessAgent agent : agents.values()) {
        agent.close();
      }
      hung.values().forEach(stubs -> stubs.forEach(TcpStub::stop));
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
        show(i, i == n ? health(passing("primary, timeline 2"), wrongRole("master"))
            : health(wrongRole("replica"), passing("replica, lag 0B")));
        patronis.get(i).primary(i == n);
      }
    }

    /** The documented topology's ports of node n → this node's stand-ins. */
    Map<Integer, Integer> ports(int n) {
      return Map.of(5432, postgres.get(n).port(), 6432, pgbouncers.get(n).port(), 8008, patronis.get(n).port(),
          5480, primaryView, 5481, replicaView, 5482, anyView, 8009, http);
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
    return cfg.replace("(?<=\\s)inter \\d+m?s", "inter " + INTER.toMillis() + "ms")
        .replace("fastinter \\d+m?s", "fastinter " + FASTINTER.toMillis() + "ms")
        .replace("agent-inter \\d+m?s", "agent-inter 100ms")
        .replace("timeout connect \\d+s", "timeout connect 500ms")
        .replace("timeout check \\d+s", "timeout check " + TIMEOUT_CHECK.toMillis() + "ms");
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

  /** Each named server shows the status now. */
  static void assertStates(Haproxy haproxy, String backend, Map<String, String> expected) {
    Map<String, String> seen = new TreeMap<>();
    haproxy.stat(backend).forEach(r -> seen.put(r.server(), r.status()));
    expected.forEach((server, status) -> assertEquals(status, seen.get(server), () -> backend + ": " + seen));
  }

  /**
   * Waits until each server ({@code backend/server}) is DOWN because the regular check's pgbeacon step failed the
   * way {@code death} makes it fail, each within death's bound (plus slack) from {@code since}; prints the times.
   */
  /** A step of a test, which may throw. */
  interface Step {
    void run() throws Exception;
  }

  /**
   * For each way a pgbeacon dies (killed, hung): on nodes {@code victims}; {@code servers} must be taken out within
   * the regular check's bound, {@code whileDead} checked meanwhile; then they come back and {@code healthyAgain}.
   */
  static void eachDeath(Nodes nodes, HaproxyConfig cfg, Haproxy haproxy, int[] victims, List<String> servers,
      Step whileDead, Step healthyAgain) throws Exception {
    for (Death death : Death.values()) {
      // The last regular check of every server passed: a check that failed while the victims came back from the
      // previous death must not count as this one's (HAProxy reports the last check's cause).
      Await.until(servers + " last checks passed", CONVERGE, () -> servers.stream().map(name -> {
        String[] backendServer = name.split("/");
        return haproxy.stat(backendServer[0], backendServer[1]).checkStatus();
      }).toList(), checks -> checks.stream().allMatch(c -> c.matches("L[4-7]OK")));
      long since = System.nanoTime();
      nodes.kill(death, victims);
      awaitTakenOut(cfg, haproxy, death, since, servers.toArray(String[]::new));
      whileDead.run();
      nodes.revive(victims);
      healthyAgain.run();
    }
  }

  static void awaitTakenOut(HaproxyConfig cfg, Haproxy haproxy, Death death, long since, String... servers) {
    awaitTakenOut(cfg, haproxy, death, death.failedStep, since, servers);
  }

  /** As above; {@code failedStep}: how HAProxy's message on the failed check ends. */
  static void awaitTakenOut(HaproxyConfig cfg, Haproxy haproxy, Death death, String failedStep, long since,
      String... servers) {
    Map<String, Haproxy.StatRow> down = new TreeMap<>();
    Map<String, Duration> took = new TreeMap<>();
    Await.until(List.of(servers) + " DOWN after pgbeacon " + death, death.bound.plus(SLACK), () -> {
      Map<String, Haproxy.StatRow> now = new TreeMap<>();
      for (String name : servers) {
        String[] backendServer = name.split("/");
        now.put(name, haproxy.stat(backendServer[0], backendServer[1]));
        if (!down.containsKey(name) && now.get(name).status().equals("DOWN")) {
          took.put(name, Duration.ofNanos(System.nanoTime() - since));
          down.put(name, now.get(name));
        }
      }
      return now;
    }, now -> down.size() == servers.length);
    down.forEach((name, row) -> {
      System.out.printf("%s: %s DOWN %d ms after pgbeacon %s (bound %d ms): %s%n", cfg, name,
          took.get(name).toMillis(), death, death.bound.toMillis(), row.lastCheck());
      assertEquals(death.checkStatus, row.checkStatus(), row::toString);
      assertTrue(row.lastCheck().endsWith(failedStep), row::toString);
    });
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

  /** A replica whose replica view is {@code replica}; {@code sync}: Patroni's synchronous standby now. */
  static NodeHealth replica(Verdict replica, boolean sync) {
    return Healths.replica("pg").version("3.0.2").sync(sync).replicaView(replica).build();
  }

  static Verdict passing(String reason) {
    return Verdict.passing(reason);
  }

  static Verdict critical(String reason) {
    return Verdict.critical(reason);
  }

  static Verdict wrongRole(String reason) {
    return Verdict.wrongRole(reason);
  }
}
