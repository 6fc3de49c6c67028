package io.pgbeacon.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.pgbeacon.support.Await;
import io.pgbeacon.support.Commands;
import io.pgbeacon.support.Components;
import io.pgbeacon.support.ConsulHttp;
import io.pgbeacon.support.Lab;
import io.pgbeacon.support.ViewAnswers;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * pgbeacon beside a Patroni in Debian's namespace, told nothing but {@code patroni.config-file}: on the lab of the
 * Patroni-4 execution (the pom sets {@code /postgresql-common/} and LAB_PGBEACON_CONFIG=patroni-file for it, so
 * every e2e class of that execution runs this way), each pgbeacon takes its name, REST API, namespace, scope and
 * Consul agent from Patroni's own file, registers, watches the leader key where Patroni writes it, and withdraws the
 * old primary on a switchover before Patroni's own {@code /primary} stops answering 200 — which only the watch of
 * the right failover and leader keys can do.
 */
@ExtendWith(Lab.class)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class PatroniFileIT {

  private static final Duration CONVERGE = Duration.ofSeconds(60);
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(1)).build();

  static Lab lab;
  static ConsulHttp consul;

  @BeforeAll
  static void start() {
    lab = Lab.get();
    consul = new ConsulHttp(lab.consulAddress());
    assertEquals("patroni-file", lab.pgbeaconConfig(), "this class needs the lab's pgbeacons told only Patroni's file"
        + " (pom: pgbeacon.lab.pgbeacon-config in the patroni4 execution)");
    assertEquals("/postgresql-common/", lab.env("LAB_NAMESPACE"), "and Patroni in Debian's namespace");
    lab.converged(consul, CONVERGE);
  }

  /** The lab's pgbeacon.yml names Patroni and Consul only by the file; {@code validate} says where each value is from. */
  @Test
  @Order(1)
  void eachPgbeaconTakesNameRestApiNamespaceAndConsulFromPatronisFile() throws IOException {
    for (String node : lab.nodeNames()) {
      Path dir = Path.of(lab.env("LAB_DIR"), "node" + lab.index(node));
      Path config = dir.resolve("pgbeacon.yml");
      String yaml = Files.readString(config);
      assertTrue(yaml.contains("patroni: {config-file: " + dir.resolve("patroni.yml") + "}"), yaml);
      for (String written : List.of("node:", "url:", "consul:", "leader-key", "namespace")) {
        assertFalse(yaml.contains(written), "pgbeacon.yml of " + node + " says " + written + ":\n" + yaml);
      }
      Commands.Result validate = Commands.run(Duration.ofSeconds(30), "java", "-jar",
          Components.jar().toString(), "validate", "--config", config.toString()).orFail();
      String patroniFile = dir.resolve("patroni.yml") + ": ";
      for (String line : List.of(
          "node:      " + node,
          "patroni:   " + lab.rest(node) + " ",
          "leader key: postgresql-common/{scope}/leader (auto",
          "from:      scope " + lab.scope() + " ← " + patroniFile + "scope",
          "consul:    http://" + lab.consulAgent(node) + ",",
          "from:      node ← " + patroniFile + "name",
          "from:      patroni.url ← " + patroniFile + "restapi.listen",
          "from:      patroni.namespace ← " + patroniFile + "namespace",
          "from:      consul.address ← " + patroniFile + "consul.host")) {
        assertTrue(validate.output().contains(line), "validate of " + node + " lacks '" + line + "':\n"
            + validate.output());
      }
    }
  }

  /** Every pgbeacon watches {@code postgresql-common/<scope>/leader}, the key Patroni holds; none looks under service/. */
  @Test
  @Order(2)
  void eachPgbeaconWatchesTheLeaderKeyInPatronisNamespace() {
    String leader = lab.converged(consul, CONVERGE);
    assertEquals("postgresql-common/" + lab.scope() + "/leader", lab.leaderKey());
    assertEquals(leader, lab.leaderKeyHolder(consul), "Patroni keeps its leader key in its namespace");
    assertEquals("(none)", keysUnder("service/"), "and nothing under service/");
    for (String node : lab.nodeNames()) {
      JsonNode status = Await.until(node + "'s pgbeacon reads the leader key", CONVERGE, () -> status(node),
          s -> watch(s, "leader").path("reading").asBoolean(false));
      assertEquals(lab.leaderKey(), watch(status, "leader").path("key").asText(), status.toString());
      assertEquals(leader, watch(status, "leader").path("value").asText(), status.toString());
      assertEquals("postgresql-common/" + lab.scope() + "/failover", watch(status, "failover").path("key").asText());
    }
  }

  /**
   * A switchover: the old primary's {@code patroni-primary} on its own Consul agent goes critical before Patroni's
   * {@code /primary} on that node stops answering 200 (the failover key, read where Patroni writes it, withdraws it
   * at once), and the new leader is named in Consul.
   */
  @Test
  @Order(3)
  void theOldPrimaryIsWithdrawnBeforePatroniStopsCallingItPrimary() throws InterruptedException {
    String leader = lab.converged(consul, CONVERGE);
    ConsulHttp agent = new ConsulHttp(lab.consulAgent(leader));
    String patroniPrimary = lab.rest(leader) + "/primary";
    assertEquals("passing", aggregated(agent));
    AtomicLong withdrawn = new AtomicLong();
    AtomicLong demoted = new AtomicLong();
    long started = System.nanoTime();
    Thread sampler = new Thread(() -> {
      while (!Thread.currentThread().isInterrupted() && (withdrawn.get() == 0 || demoted.get() == 0)) {
        if (withdrawn.get() == 0 && !"passing".equals(aggregated(agent))) {
          withdrawn.set(System.nanoTime());
        }
        if (demoted.get() == 0 && !ViewAnswers.http(patroniPrimary, Duration.ofMillis(500)).startsWith("200")) {
          demoted.set(System.nanoTime());
        }
        try {
          Thread.sleep(20);
        } catch (InterruptedException e) {
          return;
        }
      }
    }, "patroni-file-sampler");
    sampler.setDaemon(true);
    sampler.start();
    try {
      lab.run(Duration.ofSeconds(120), "switchover");
      sampler.join(Duration.ofSeconds(30).toMillis());
    } finally {
      sampler.interrupt();
    }
    assertTrue(withdrawn.get() != 0 && demoted.get() != 0, "both changes seen");
    System.out.printf("PatroniFileIT: %s withdrawn from patroni-primary %.2fs after the switchover began,"
        + " Patroni's /primary stopped answering 200 after %.2fs%n", leader, (withdrawn.get() - started) / 1e9,
        (demoted.get() - started) / 1e9);
    assertTrue(withdrawn.get() <= demoted.get(), String.format("withdrawn %.2fs after Patroni's /primary stopped"
        + " answering 200", (withdrawn.get() - demoted.get()) / 1e9));
    String next = lab.converged(consul, CONVERGE);
    assertFalse(next.equals(leader), "a new leader");
    assertEquals(next, lab.leaderKeyHolder(consul));
  }

  /** The local agent's aggregated status of {@code patroni-primary} on it: passing, critical or "(why not)". */
  private static String aggregated(ConsulHttp agent) {
    try {
      JsonNode entries = agent.get("/v1/agent/health/service/name/patroni-primary?format=json");
      return entries.path(0).path("AggregatedStatus").asText("(none)");
    } catch (RuntimeException e) {
      // The endpoint answers 503 with the same body while the service is critical: ConsulHttp throws on it.
      return "critical or unreadable (" + e.getMessage() + ")";
    }
  }

  /** The KV keys under {@code prefix}, or "(none)" (Consul answers 404). */
  private static String keysUnder(String prefix) {
    try {
      return consul.get("/v1/kv/" + prefix + "?keys").toString();
    } catch (IllegalStateException e) {
      return "(none)";
    }
  }

  private static JsonNode status(String node) {
    try {
      HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create(lab.env("LAB_NODE" + lab.index(node)
          + "_PGBEACON_HTTP") + "/status")).timeout(Duration.ofSeconds(2)).build(), HttpResponse.BodyHandlers.ofString());
      return JSON.readTree(r.body());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  /** The /status entry of the watch of Patroni's {@code leader} or {@code failover} key. */
  private static JsonNode watch(JsonNode status, String which) {
    for (JsonNode w : status.path("dcs_watches")) {
      if (w.path("key").asText().endsWith("/" + which)) {
        return w;
      }
    }
    return JSON.missingNode();
  }
}
