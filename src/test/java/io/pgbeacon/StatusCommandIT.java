package io.pgbeacon;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.pgbeacon.config.ConfigLoader;
import io.pgbeacon.support.Await;
import io.pgbeacon.support.ConsulDevAgent;
import io.pgbeacon.support.FreePorts;
import io.pgbeacon.support.RecordedPatroni;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code pgbeacon status --config FILE} against a running daemon (in this JVM) read from the same file, with a real
 * Consul agent and node1 of the recorded Patroni 4.1.5 lab, a healthy leader; and against a port nothing listens on.
 */
class StatusCommandIT {

  private static final Duration SOON = Duration.ofSeconds(15);

  @TempDir static Path dir;
  static ConsulDevAgent consul;
  static RecordedPatroni patroni;
  static PgBeacon beacon;
  static Path config;
  static int httpPort;

  @BeforeAll
  static void start() throws Exception {
    consul = new ConsulDevAgent(dir, null).start();
    patroni = RecordedPatroni.start("4.1.5", "primary.json", true);
    httpPort = FreePorts.next();
    config = Files.writeString(dir.resolve("pgbeacon.yml"), """
        patroni: {url: '%s', leader-key: 'off'}
        consul: {address: 'http://%s'}
        agent: {listen: [{address: 127.0.0.1, port: %d, view: primary}]}
        http: {address: 127.0.0.1, port: %d}
        """.formatted(patroni.url(), consul.address(), FreePorts.next(), httpPort));
    beacon = new PgBeacon(ConfigLoader.load(config, ConfigLoader.Overrides.none(), Map.of()), "test");
    beacon.start().toCompletionStage().toCompletableFuture().get(20, TimeUnit.SECONDS);
  }

  @AfterAll
  static void stop() throws Exception {
    if (beacon != null) {
      beacon.stop().get(20, TimeUnit.SECONDS);
    }
    patroni.close();
    consul.close();
  }

  @Test
  void printsTheNodeItsViewsAndItsConsulChecks() {
    Run run = Await.until("node1 passing as primary, its check pushed", SOON, () -> status("--config",
        config.toString()),
        r -> r.out.matches("(?s).*\n  primary {9}passing .*\n  service:patroni-primary/pgbeacon-lab/node1 +passing .*"));
    assertEquals(0, run.exit, run.err);
    assertEquals("", run.err);
    assertTrue(run.out.startsWith("node node1, scope pgbeacon-lab, role primary, Patroni 4.1.5, pgbeacon test\n"),
        run.out);
    assertTrue(Pattern.compile("(?m)^  primary {9}passing   primary, timeline 1  \\(since \\S+, observed \\d+\\.\\ds ago\\)$")
        .matcher(run.out).find(), run.out);
    assertTrue(run.out.contains("\n  replica         critical  primary  (wrong role; "), run.out);
    // Every view, in one column wide enough for the longest name.
    assertTrue(run.out.contains("\n  read-only       passing   primary, timeline 1  (since "), run.out);
    assertTrue(run.out.contains("\n  standby-leader  critical  primary  (wrong role; "), run.out);
    assertTrue(Pattern.compile("(?m)^  patroni    primary, running, holds the leader lock  \\(took \\d+\\.\\d ms, at ")
        .matcher(run.out).find(), run.out);
    assertTrue(Pattern.compile("(?m)^  service:patroni-primary/pgbeacon-lab/node1 +passing   \"primary, timeline 1\"  at \\S+, ok$")
        .matcher(run.out).find(), run.out);
  }

  @Test
  void printsTheJsonAsTheDaemonSentIt() throws Exception {
    Run run = status("--config", config.toString(), "--json");
    assertEquals(0, run.exit, run.err);
    JsonNode json = new ObjectMapper().readTree(run.out);
    assertEquals("node1", json.path("node").asText());
    assertEquals("primary", json.path("role").asText());
  }

  @Test
  void aGivenUrlWinsOverTheConfigs() throws Exception {
    Path off = Files.writeString(dir.resolve("off.yml"), "http: off\n");
    Run run = status("--config", off.toString(), "--url", "http://127.0.0.1:" + httpPort);
    assertEquals(0, run.exit, run.err);
    assertTrue(run.out.startsWith("node node1, "), run.out);
  }

  @Test
  void aDaemonNotListeningIsExitOneNamingTheUrl() throws Exception {
    int closed = FreePorts.next();
    Path elsewhere = Files.writeString(dir.resolve("closed.yml"), "http: {address: 127.0.0.1, port: " + closed + "}\n");
    Run run = status("--config", elsewhere.toString());
    assertEquals(1, run.exit, run.out);
    assertEquals("", run.out);
    assertEquals("pgbeacon: pgbeacon not reachable at http://127.0.0.1:" + closed + "/status: connection refused"
        + " (is it running, with http on?)\n", run.err);
  }

  @Test
  void anAgentPortIsNoStatusEndpoint() {
    Run run = status("--config", config.toString(), "--url", "http://127.0.0.1:" + beacon.agentPorts().get(0));
    assertEquals(1, run.exit, run.out);
    assertTrue(run.err.startsWith("pgbeacon: pgbeacon not reachable at http://127.0.0.1:" + beacon.agentPorts().get(0)
        + "/status: "), run.err);
    assertTrue(!run.err.contains("\tat "), "no stack trace: " + run.err);
  }

  private record Run(int exit, String out, String err) {}

  private static Run status(String... args) {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    String[] all = new String[args.length + 1];
    all[0] = "status";
    System.arraycopy(args, 0, all, 1, args.length);
    int exit = Main.execute(Map.of(), new PrintWriter(out, true), new PrintWriter(err, true), all);
    return new Run(exit, out.toString(), err.toString());
  }
}
