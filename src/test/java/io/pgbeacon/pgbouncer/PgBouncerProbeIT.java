package io.pgbeacon.pgbouncer;

import io.pgbeacon.metrics.Metrics;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pgbeacon.config.Config;
import io.pgbeacon.config.Secret;
import io.pgbeacon.support.Await;
import io.pgbeacon.support.Components;
import io.pgbeacon.support.FreePorts;
import io.pgbeacon.support.Lab;
import io.pgbeacon.support.OwnSockets;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/** The probe against the lab's real PgBouncer 1.18 in front of real PostgreSQL 15. */
@ExtendWith(Lab.class)
class PgBouncerProbeIT {

  Lab lab;
  Vertx vertx;
  String node;
  Secret password;

  @BeforeEach
  void setUp() throws Exception {
    lab = Lab.get();
    vertx = Vertx.vertx();
    node = lab.nodeNames().get(lab.nodes() - 1);
    password = new Secret(Files.readString(Path.of(lab.env("LAB_PGBEACON_PASSWORD_FILE"))).strip(), "lab");
  }

  @AfterEach
  void tearDown() throws Exception {
    vertx.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
  }

  @Test
  void passesWhenAQueryReachesPostgresThroughPgBouncer() throws Exception {
    assertEquals(PgBouncerStatus.ok(), probe(config(lab.port(node, "PGBOUNCER"), password, false)));
  }

  @Test
  void readsTheAdminConsoleWithAStatsUser() throws Exception {
    assertEquals(PgBouncerStatus.ok(), probe(config(lab.port(node, "PGBOUNCER"), password, true)));
  }

  @Test
  void failsWithPostgresReasonOnBadCredentials() throws Exception {
    PgBouncerStatus s = probe(config(lab.port(node, "PGBOUNCER"), new Secret("wrong", "test"), false));
    assertEquals(PgBouncerStatus.State.FAILED, s.state());
    assertTrue(s.detail().contains("password authentication failed"), s.detail());
  }

  @Test
  void failsWhenNothingListens() throws Exception {
    PgBouncerStatus s = probe(config(FreePorts.next(), password, false));
    assertEquals(PgBouncerStatus.State.FAILED, s.state());
    assertTrue(s.detail().contains("Connection refused"), s.detail());
  }

  @Test
  void aPausedDatabaseIsNamedAsSuch() throws Exception {
    admin("PAUSE postgres");
    try {
      PgBouncerStatus s = probe(config(lab.port(node, "PGBOUNCER"), password, true));
      assertEquals(PgBouncerStatus.failed("database postgres is paused in PgBouncer"), s);
      // The probe's query is still waiting in PgBouncer; its socket must not wait with it.
      Await.until("no socket of this JVM to PgBouncer while the query waits", Duration.ofSeconds(5),
          () -> OwnSockets.to(lab.port(node, "PGBOUNCER")), List::isEmpty);
    } finally {
      admin("RESUME postgres");
    }
    assertEquals(PgBouncerStatus.ok(), probe(config(lab.port(node, "PGBOUNCER"), password, true)));
  }

  /**
   * A stopped PgBouncer (SIGSTOP: the kernel still completes the TCP handshake, nothing answers the startup
   * message) is what the daemon probes twice a second for as long as it stays stopped: each probe must end at its
   * deadline with its sockets closed, not leave one behind per connection.
   */
  @Test
  void aHungPgBouncerKeepsNoSocketOpenPastTheProbesDeadline() throws Exception {
    int port = lab.port(node, "PGBOUNCER");
    PgBouncerProbe quick = new PgBouncerProbe(vertx, config(port, password, true, Duration.ofMillis(300)), Metrics.none());
    String index = Integer.toString(lab.index(node));
    lab.run(Duration.ofSeconds(30), "pgbouncer-stop", index, "STOP");
    try {
      List<Integer> held = new ArrayList<>();
      List<String> last = List.of();
      for (int i = 0; i < 20; i++) {
        PgBouncerStatus s = get(quick.probe());
        assertEquals(PgBouncerStatus.State.FAILED, s.state());
        assertTrue(s.detail().contains("no answer within the deadline"), s.detail());
        last = OwnSockets.to(port);
        held.add(last.size());
      }
      // At most the two connections of the probe that just ended, which its deadline is closing as we look.
      assertTrue(held.stream().allMatch(n -> n <= 2), "this JVM's sockets to the stopped PgBouncer after each of "
          + "20 probes: " + held + ", the last ones " + OwnSockets.summary(last));
      Await.until("no socket of this JVM to the stopped PgBouncer", Duration.ofSeconds(5), () -> OwnSockets.to(port),
          List::isEmpty);
      // Stopping the daemon meanwhile: closing the probe must not wait for PgBouncer to answer the one in flight.
      PgBouncerProbe slow = new PgBouncerProbe(vertx, config(port, password, true, Duration.ofMinutes(1)), Metrics.none());
      Future<PgBouncerStatus> inFlight = slow.probe();
      Await.until("the probe's connections to the stopped PgBouncer", Duration.ofSeconds(5), () -> OwnSockets.to(port),
          sockets -> sockets.size() == 2);
      get(slow.close());
      assertEquals(PgBouncerStatus.State.FAILED, get(inFlight).state());
      assertEquals(List.of(), OwnSockets.to(port));
    } finally {
      lab.run(Duration.ofSeconds(30), "pgbouncer-stop", index, "CONT");
    }
    Await.until("PgBouncer answering again", Duration.ofSeconds(20),
        () -> probe(config(port, password, true)), PgBouncerStatus.ok()::equals);
    get(quick.close());
  }

  private PgBouncerStatus probe(Config.PgBouncer config) {
    return get(new PgBouncerProbe(vertx, config, Metrics.none()).probe());
  }

  private static <T> T get(Future<T> future) {
    try {
      return future.toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
    } catch (Exception e) {
      throw new IllegalStateException(e);
    }
  }

  private Config.PgBouncer config(int port, Secret secret, boolean admin) {
    return config(port, secret, admin, Duration.ofSeconds(2));
  }

  private Config.PgBouncer config(int port, Secret secret, boolean admin, Duration timeout) {
    return new Config.PgBouncer(lab.address(node), port, "postgres", "pgbeacon", Optional.of(secret), true,
        timeout, admin ? Optional.of("pgbeacon") : Optional.empty(), admin ? Optional.of(secret) : Optional.empty());
  }

  /** PgBouncer's admin console through the real psql, as the lab's admin user. */
  private void admin(String command) throws Exception {
    String psql = Components.require("psql", "/usr/bin/psql").toString();
    ProcessBuilder pb = new ProcessBuilder(psql, "-h", lab.address(node), "-p", Integer.toString(lab.port(node, "PGBOUNCER")),
        "-U", lab.env("LAB_SUPERUSER"), "-d", "pgbouncer", "-c", command).redirectErrorStream(true);
    pb.environment().put("PGPASSWORD", lab.env("LAB_SUPERUSER_PASSWORD"));
    Process p = pb.start();
    String out = new String(p.getInputStream().readAllBytes());
    assertTrue(p.waitFor(10, TimeUnit.SECONDS) && p.exitValue() == 0, command + ": " + out);
  }
}
