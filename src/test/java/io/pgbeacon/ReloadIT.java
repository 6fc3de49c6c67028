package io.pgbeacon;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.pgbeacon.support.Await;
import io.pgbeacon.support.Components;
import io.pgbeacon.support.ConsulDevAgent;
import io.pgbeacon.support.ConsulHttp;
import io.pgbeacon.support.PgBeaconProcess;
import io.pgbeacon.support.RecordedPatroni;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.ConnectException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code systemctl reload} (SIGHUP) on a real pgbeacon process: what is applied while it runs, what is refused, and
 * a Consul token rotated against an ACL-enabled agent. node2 of the recorded Patroni 4.1.5 lab is a streaming
 * replica, so its primary-view port answers the wrong-role reply and its replica check passes.
 */
class ReloadIT {

  private static final String REPLICA_CHECK = "service:patroni-replica/pgbeacon-lab/node2";
  private static final String MASTER = "b1e5e7a0-5d4c-4f3e-9a2b-000000000012";
  private static final Duration SOON = Duration.ofSeconds(20);
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final int PRIMARY_PORT = 18520;
  private static final int REPLICA_PORT = 18521;
  private static final int OTHER_PORT = 18522;

  @TempDir static Path dir;
  static RecordedPatroni patroni;

  ConsulDevAgent consul;
  PgBeaconProcess pgbeacon;

  @BeforeAll
  static void startPatroni() {
    patroni = RecordedPatroni.start("4.1.5", "replica.json", false);
  }

  @AfterAll
  static void stopPatroni() {
    patroni.close();
  }

  @AfterEach
  void tearDown() {
    if (pgbeacon != null) {
      pgbeacon.stop();
    }
    if (consul != null) {
      consul.close();
    }
  }

  @Test
  void aNewWrongRoleReplyIsAnsweredWithoutARestart(@TempDir Path own) throws Exception {
    consul = new ConsulDevAgent(own, null).start();
    Path file = own.resolve("pgbeacon.yml");
    Files.writeString(file, config(consul, "wrong-role: maint", "", PRIMARY_PORT));
    pgbeacon = PgBeaconProcess.start(file, Map.of(), own.resolve("pgbeacon.log"));
    Await.until("the wrong-role reply, maint", SOON, () -> reply(PRIMARY_PORT), r -> r.startsWith("maint #"));
    long pid = pgbeacon.pid();

    Files.writeString(file, config(consul, "wrong-role: down", "", PRIMARY_PORT));
    pgbeacon.signal("HUP");
    Await.until("the wrong-role reply after the reload, down", SOON, () -> reply(PRIMARY_PORT),
        r -> r.startsWith("down #"));
    String log = pgbeacon.awaitLog("reloaded (agent.wrong-role): ", SOON);
    assertTrue(log.contains("agent replies: wrong role down"), "the effective config logged once more: " + log);
    assertTrue(pgbeacon.alive());
    assertEquals(pid, pgbeacon.pid());
    assertEquals(1, log.lines().filter(l -> l.matches(".* PgBeacon - pgbeacon \\S+ starting")).count(),
        "started once: " + log);
    assertTrue(reply(REPLICA_PORT).startsWith("up ready 100% #"), "the replica port unchanged");
  }

  @Test
  void aBrokenEditIsRefusedAndTheRunningConfigKept(@TempDir Path own) throws Exception {
    consul = new ConsulDevAgent(own, null).start();
    ConsulHttp http = new ConsulHttp(consul.address());
    Path file = own.resolve("pgbeacon.yml");
    Files.writeString(file, config(consul, "wrong-role: maint", "", PRIMARY_PORT));
    pgbeacon = PgBeaconProcess.start(file, Map.of(), own.resolve("pgbeacon.log"));
    Await.until("replica check passing", SOON, () -> http.checkStatus(REPLICA_CHECK), "passing"::equals);
    String before = reply(PRIMARY_PORT);

    Files.writeString(file, config(consul, "wrong-role: sideways", "max-lag: lots", PRIMARY_PORT));
    pgbeacon.signal("HUP");
    String log = pgbeacon.awaitLog("reload refused, running config kept", SOON);
    assertTrue(log.contains("reload: agent.wrong-role: must be one of maint|drain|down (got sideways)"), log);
    assertTrue(log.contains("reload: services.replica.max-lag: "), log);
    assertTrue(log.contains("(got lots)"), log);
    assertEquals(before, reply(PRIMARY_PORT), "replies unchanged");
    assertEquals("passing", http.checkStatus(REPLICA_CHECK), "Consul unchanged");
    assertTrue(pgbeacon.alive());

    // A good edit that also moves a listener: the reply words apply, the listener needs a restart and stays.
    Files.writeString(file, config(consul, "wrong-role: drain", "", OTHER_PORT));
    pgbeacon.signal("HUP");
    log = pgbeacon.awaitLog("reloaded (agent.wrong-role)", SOON);
    assertTrue(log.contains("reload: agent.listen changed: needs a restart, kept"), log);
    assertTrue(reply(PRIMARY_PORT).startsWith("up drain #"), reply(PRIMARY_PORT));
    UncheckedIOException closed = assertThrows(UncheckedIOException.class, () -> reply(OTHER_PORT));
    assertTrue(closed.getCause() instanceof ConnectException, closed.toString());
    assertEquals("passing", http.checkStatus(REPLICA_CHECK));
    String reloads = log.substring(log.indexOf("reloading the configuration"));
    assertEquals(0, occurrences(reloads, "→ "), "no check changed status through the reloads: " + reloads);
    assertEquals(0, occurrences(reloads, "registered"), "nothing registered again: " + reloads);
  }

  /**
   * The token file is rewritten with a second token and pgbeacon reloaded; then the first token is deleted in Consul.
   * With a TTL of 3 s, the checks stay passing only if pgbeacon's refreshes (every second) are accepted: they go out
   * with the new token. The old one is refused by then, so without the reload they would fail.
   */
  @Test
  void aRotatedTokenIsUsedAfterTheReload(@TempDir Path own) throws Exception {
    consul = new ConsulDevAgent(own, MASTER).start();
    ConsulHttp admin = new ConsulHttp(consul.address(), MASTER);
    String rules = Files.readString(Components.repoFile("consul/pgbeacon-acl-policy.hcl"));
    admin.put("/v1/acl/policy", JSON.writeValueAsString(Map.of("Name", "pgbeacon", "Rules", rules)));
    JsonNode a = JSON.readTree(admin.put("/v1/acl/token", "{\"Policies\": [{\"Name\": \"pgbeacon\"}]}"));
    JsonNode b = JSON.readTree(admin.put("/v1/acl/token", "{\"Policies\": [{\"Name\": \"pgbeacon\"}]}"));
    Path token = Files.writeString(own.resolve("consul.token"), a.path("SecretID").asText() + "\n");
    Path file = own.resolve("pgbeacon.yml");
    Files.writeString(file, config(consul, "wrong-role: maint", "", PRIMARY_PORT)
        .replace("consul: {", "consul: {token-file: '" + token + "', ttl: 3s, timeout: 500ms, "));
    pgbeacon = PgBeaconProcess.start(file, Map.of(), own.resolve("pgbeacon.log"));
    Await.until("replica check passing with token A", SOON, () -> admin.checkStatus(REPLICA_CHECK),
        "passing"::equals);

    Files.writeString(token, b.path("SecretID").asText() + "\n");
    pgbeacon.signal("HUP");
    pgbeacon.awaitLog("reloaded (consul.token-file)", SOON);
    admin.delete("/v1/acl/token/" + a.path("AccessorID").asText());
    ConsulHttp withA = new ConsulHttp(consul.address(), a.path("SecretID").asText());
    Await.until("token A refused by Consul", Duration.ofSeconds(35), () -> {
      try {
        withA.put("/v1/agent/check/pass/" + REPLICA_CHECK, "");
        return "accepted";
      } catch (IllegalStateException e) {
        return e.getMessage();
      }
    }, answer -> answer.contains("HTTP 403"));

    long until = System.nanoTime() + Duration.ofSeconds(7).toNanos(); // more than two TTLs
    while (System.nanoTime() < until) {
      assertEquals("passing", admin.checkStatus(REPLICA_CHECK), "refreshed with token B: " + pgbeacon.log());
      Await.pause(Duration.ofMillis(250));
    }
    String log = pgbeacon.log();
    assertTrue(!log.contains(b.path("SecretID").asText()) && !log.contains(a.path("SecretID").asText()),
        "no token in the log");
    assertEquals(0, occurrences(log.substring(log.indexOf("reloaded (consul.token-file)")), "WARN"),
        "no failing Consul call after the rotation: " + log);
  }

  // ---- helpers ------------------------------------------------------------------------------------------

  private static String config(ConsulDevAgent consul, String wrongRole, String maxLag, int primaryPort) {
    return "node: node2\n"
        + "patroni: {url: '" + patroni.url() + "', timeout: 200ms, leader-key: 'off'}\n"
        + "consul: {address: 'http://" + consul.address() + "'}\n"
        + (maxLag.isEmpty() ? "" : "services: {replica: {" + maxLag + "}}\n")
        + "agent: {" + wrongRole + ", listen: [{port: " + primaryPort + ", view: primary}, {port: " + REPLICA_PORT
        + ", view: replica}]}\n"
        + "http: off\n";
  }

  /** One agent-check reply, as HAProxy reads it. */
  private static String reply(int port) {
    try (Socket socket = new Socket()) {
      socket.connect(new InetSocketAddress("127.0.0.1", port), 1000);
      socket.setSoTimeout(2000);
      InputStream in = socket.getInputStream();
      return new String(in.readAllBytes(), StandardCharsets.US_ASCII);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private static int occurrences(String text, String part) {
    int n = 0;
    for (int i = text.indexOf(part); i >= 0; i = text.indexOf(part, i + 1)) {
      n++;
    }
    return n;
  }
}
