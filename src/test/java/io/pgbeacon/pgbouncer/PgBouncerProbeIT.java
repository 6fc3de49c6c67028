package io.pgbeacon.pgbouncer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pgbeacon.config.Config;
import io.pgbeacon.config.Secret;
import io.pgbeacon.support.Components;
import io.pgbeacon.support.FreePorts;
import io.pgbeacon.support.Lab;
import io.vertx.core.Vertx;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
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
    } finally {
      admin("RESUME postgres");
    }
    assertEquals(PgBouncerStatus.ok(), probe(config(lab.port(node, "PGBOUNCER"), password, true)));
  }

  private PgBouncerStatus probe(Config.PgBouncer config) throws Exception {
    return new PgBouncerProbe(vertx, config).probe().toCompletionStage().toCompletableFuture()
        .get(10, TimeUnit.SECONDS);
  }

  private Config.PgBouncer config(int port, Secret secret, boolean admin) {
    return new Config.PgBouncer(lab.address(node), port, "postgres", "pgbeacon", Optional.of(secret), true,
        Duration.ofSeconds(2), admin ? Optional.of("pgbeacon") : Optional.empty(),
        admin ? Optional.of(secret) : Optional.empty());
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
