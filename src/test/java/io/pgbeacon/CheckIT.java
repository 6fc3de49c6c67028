package io.pgbeacon;

import io.pgbeacon.support.Healths;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pgbeacon.agent.AgentServer;
import io.pgbeacon.agent.ReplyPolicy;
import io.pgbeacon.config.Config;
import io.pgbeacon.health.NodeHealth;
import io.pgbeacon.health.Status;
import io.pgbeacon.health.Verdict;
import io.pgbeacon.support.RecordedPatroni;
import io.vertx.core.Vertx;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code pgbeacon check} end to end in-process: the real agent server with a known verdict for the daemon mode,
 * an HTTP server with recorded Patroni 4.1.5 answers for {@code --direct}, and nothing at all for the failures.
 */
class CheckIT {

  private static final long MB = 1 << 20;
  private static final ReplyPolicy POLICY = new ReplyPolicy(Config.WrongRole.MAINT, Config.PastMaxLag.DRAIN,
      12 * MB, 16 * MB, 10, Map.of());
  private static final Config.Agent AGENT = new Config.Agent(List.of(), Config.WrongRole.MAINT,
      Config.PastMaxLag.DRAIN, 12 * MB, 10, Map.of(), Duration.ofMillis(500));

  @TempDir Path dir;
  Vertx vertx;
  final AtomicReference<AgentServer.Replies> replies = new AtomicReference<>();
  int replicaPort;
  int anyViewPort;
  int closedPort;
  RecordedPatroni patroni;

  /** One run of the command: its exit code and what it printed. */
  record Run(int exit, String out, String err) {
    String line() {
      assertEquals(1, out.lines().count(), "exactly one line on stdout: " + out);
      return out.strip();
    }
  }

  @BeforeEach
  void setUp() throws Exception {
    vertx = Vertx.vertx();
    replicaPort = start(Optional.of(Config.View.REPLICA));
    anyViewPort = start(Optional.empty());
    try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      closedPort = s.getLocalPort();
    }
  }

  @AfterEach
  void tearDown() throws Exception {
    if (patroni != null) {
      patroni.close();
    }
    vertx.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
  }

  @Test
  void exitsZeroOneTwoForPassingWarningCritical() throws Exception {
    Path config = config(daemon(), patroniAt(closedPort));
    show(replica(Verdict.passing("replica, lag 0B"), 0));
    assertEquals(new Run(0, "replica, lag 0B\n", ""), check(config, "replica"));

    show(replica(Verdict.warning("replica, lag 14MB, near max-lag 16MB"), 14 * MB));
    assertEquals(new Run(1, "replica, lag 14MB, near max-lag 16MB\n", ""), check(config, "replica"));

    show(replica(Verdict.warning("replica, lag unknown (cluster view unavailable: HTTP 503)"),
        -1));
    assertEquals(1, check(config, "replica").exit(), "a warning at full weight is still a warning");

    // Drained for HAProxy, but critical in Consul: the check agrees with Consul, so DNS drops the replica.
    show(replica(Verdict.pastMaxLag("replica lag 17MB exceeds max-lag 16MB"), 17 * MB));
    assertEquals(new Run(2, "replica lag 17MB exceeds max-lag 16MB\n", ""), check(config, "replica"));

    show(replica(Verdict.critical("PgBouncer: Connection refused"), 0));
    assertEquals(new Run(2, "PgBouncer: Connection refused\n", ""), check(config, "replica"));
  }

  @Test
  void aViewWithoutAPortOfItsOwnIsAskedThroughAgentSend() throws Exception {
    Path config = config(daemon(), patroniAt(closedPort));
    show(replica(Verdict.passing("replica, lag 0B"), 0));
    assertEquals(new Run(2, "replica\n", ""), check(config, "primary"), "a replica is the wrong role: critical");
    show(Healths.primary("node1").build());
    assertEquals(new Run(0, "primary, timeline 3\n", ""), check(config, "PRIMARY"));
    assertEquals(new Run(0, "primary, timeline 3\n", ""), check(config, "read-only"), "the primary serves reads");
    assertEquals(new Run(2, "primary\n", ""), check(config, "sync"));
  }

  @Test
  void aStoppedDaemonIsCritical() throws Exception {
    Path config = config("agent: {listen: [{port: " + closedPort + ", view: replica}]}\n", patroniAt(closedPort));
    assertEquals(new Run(2, "pgbeacon not running: nothing listens on 127.0.0.1:" + closedPort + "\n", ""),
        check(config, "replica"));
  }

  @Test
  void aConfigWithoutAnAgentPortForTheViewIsCritical() throws Exception {
    Path config = config("agent: {listen: [{port: " + replicaPort + ", view: replica}]}\n", patroniAt(closedPort));
    Run run = check(config, "primary");
    assertEquals(2, run.exit());
    assertTrue(run.line().startsWith("no agent port in the config answers the primary view"), run.out());
  }

  @Test
  void aDaemonThatNeverAnswersIsCriticalWithinTheTimeout() throws Exception {
    // The kernel completes the connection into the backlog; nobody ever accepts or writes.
    try (ServerSocket silent = new ServerSocket(0, 5, InetAddress.getLoopbackAddress())) {
      Path config = config("agent: {listen: [{port: " + silent.getLocalPort() + ", view: replica}]}\n",
          patroniAt(closedPort));
      long started = System.nanoTime();
      Run run = check(config, "replica", "--timeout", "500ms");
      long millis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started);
      assertEquals(2, run.exit());
      assertEquals("pgbeacon did not answer on 127.0.0.1:" + silent.getLocalPort() + " in time", run.line());
      assertTrue(millis < 2000, "took " + millis + "ms");
    }
  }

  @Test
  void fallbackDirectPollsPatroniWhenTheDaemonIsDown() throws Exception {
    Path config = config("agent: {listen: [{port: " + closedPort + ", view: replica}]}\n", patroniAt(closedPort));
    Run run = check(config, "replica", "--fallback-direct");
    assertEquals(2, run.exit());
    assertTrue(run.line().startsWith("Patroni unreachable: "), run.out());
    assertTrue(run.line().endsWith("(polled directly: pgbeacon not running: nothing listens on 127.0.0.1:"
        + closedPort + ")"), run.out());

    int patroniPort = fakePatroni();
    Path healthy = config("agent: {listen: [{port: " + closedPort + ", view: replica}]}\n", patroniAt(patroniPort));
    Run polled = check(healthy, "replica", "--fallback-direct");
    assertEquals(0, polled.exit(), polled.toString());
    assertTrue(polled.line().startsWith("replica, lag 0B (polled directly: "), polled.out());
  }

  @Test
  void directPollsPatroniOnceAndDecidesLikeTheDaemon() throws Exception {
    int patroniPort = fakePatroni();
    Path config = config(daemon(), patroniAt(patroniPort));
    assertEquals(new Run(0, "replica, lag 0B\n", ""), check(config, "replica", "--direct"));
    assertEquals(new Run(2, "replica\n", ""), check(config, "primary", "--direct"));
  }

  @Test
  void directWithPatroniDownIsCriticalWithTheCause() throws Exception {
    Path config = config(daemon(), patroniAt(closedPort));
    Run run = check(config, "primary", "--direct");
    assertEquals(2, run.exit());
    assertTrue(run.line().startsWith("Patroni unreachable: "), run.out());
  }

  @Test
  void aBadConfigIsCriticalWithEveryProblemNamed() throws Exception {
    Path config = Files.writeString(dir.resolve("bad.yml"), "agent: {weight-floor: 0%, past-max-lag: maint}\n");
    Run run = check(config, "replica");
    assertEquals(2, run.exit());
    assertEquals("invalid configuration in " + config, run.line());
    assertTrue(run.err().contains("agent.weight-floor: must be 1%..100% (got 0%)"), run.err());
    assertTrue(run.err().contains("agent.past-max-lag: must be one of drain|down (got maint)"), run.err());
    assertEquals(2, check(config(daemon(), patroniAt(closedPort)), "replica", "--timeout", "soon").exit());
  }

  // ---- helpers ------------------------------------------------------------------------------------------

  private Run check(Path config, String view, String... more) {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    String[] args = new String[3 + more.length];
    args[0] = "check";
    args[1] = view;
    args[2] = "--config=" + config;
    System.arraycopy(more, 0, args, 3, more.length);
    int exit = Main.execute(new PrintWriter(out, true), new PrintWriter(err, true), args);
    return new Run(exit, out.toString(), err.toString());
  }

  private String daemon() {
    return "agent: {listen: [{port: " + replicaPort + ", view: replica}, {port: " + anyViewPort + "}]}\n";
  }

  private static String patroniAt(int port) {
    return "node: node2\npatroni: {url: 'http://127.0.0.1:" + port + "', timeout: 2s, leader-key: 'off'}\n";
  }

  private Path config(String agent, String patroni) throws IOException {
    return Files.writeString(dir.resolve("pgbeacon.yml"), agent + patroni);
  }

  private int start(Optional<Config.View> view) throws Exception {
    AgentServer server = new AgentServer(vertx, new Config.Listener("127.0.0.1", 0, view), AGENT, replies::get);
    return server.start().toCompletionStage().toCompletableFuture().get(5, TimeUnit.SECONDS);
  }

  private void show(NodeHealth health) {
    replies.set(new AgentServer.Replies(health, POLICY));
  }

  /** A healthy-looking replica node with the given replica verdict; lag -1 means unknown. */
  private static NodeHealth replica(Verdict verdict, long lag) {
    return Healths.replica("node2").lag(lag).replicaView(verdict).build();
  }

  /** node2 of the recorded 4.1.5 lab: a streaming replica with no lag; /primary says 503 (no leader lock). */
  private int fakePatroni() {
    patroni = RecordedPatroni.start("4.1.5", "replica.json", false);
    return java.net.URI.create(patroni.url()).getPort();
  }
}
