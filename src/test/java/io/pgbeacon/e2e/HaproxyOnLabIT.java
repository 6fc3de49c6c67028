package io.pgbeacon.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pgbeacon.support.Await;
import io.pgbeacon.support.Components;
import io.pgbeacon.support.ConsulHttp;
import io.pgbeacon.support.ConsulTemplate;
import io.pgbeacon.support.FreePorts;
import io.pgbeacon.support.Haproxy;
import io.pgbeacon.support.LabHaproxies;
import io.pgbeacon.support.Lab;
import io.pgbeacon.support.Psql;
import io.pgbeacon.support.ViewAnswers;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every shipped HAProxy configuration ({@code haproxy/*.cfg}) and the consul-template setup ({@code consul/}) in
 * front of the real-cluster lab, each in its own real HAProxy 2.6: rewritten only from the documented example
 * addresses to the lab's. Each is judged the way an application would: a real {@code psql} through its write
 * port must reach the primary, before and after a switchover, and each read port a replica (sync-reads.cfg, with
 * no synchronous standby on the lab, the primary); with PgBouncer stopped on the primary, scenario B takes the
 * primary out and scenario C goes straight to PostgreSQL.
 */
@ExtendWith(Lab.class)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class HaproxyOnLabIT {

  private static final Duration CONVERGE = Duration.ofSeconds(45);

  /** The configurations whose port 5000 is a write port, by file. */
  private static final List<String> WRITE_CONFIGS = List.of("a-patroni-httpchk.cfg", "b-agent-pgbouncer.cfg",
      "c-agent-fallback.cfg", "d-pgbeacon-httpchk.cfg", "dns-srv.cfg");

  @TempDir
  static Path dir;

  static Lab lab;
  static ConsulHttp consul;
  static LabHaproxies haproxies;
  static Process consulTemplate;
  static Process rendered;
  static Path renderedSocket;
  static int renderedWritePort;
  static int renderedReadPort;

  @BeforeAll
  static void start() throws Exception {
    lab = Lab.get();
    consul = new ConsulHttp(lab.consulAddress());
    haproxies = LabHaproxies.start(lab, dir);
    startConsulTemplate();
  }

  @AfterAll
  static void stop() throws Exception {
    if (consulTemplate != null) {
      consulTemplate.destroy();
      consulTemplate.waitFor(10, TimeUnit.SECONDS);
    }
    if (rendered != null) {
      rendered.destroy(); // SIGTERM to the master, which stops its workers
      rendered.waitFor(10, TimeUnit.SECONDS);
    }
    if (haproxies != null) {
      haproxies.close();
    }
  }

  @Test
  @Order(1)
  void everyConfigurationSendsWritesToThePrimaryAndReadsToAReplica() {
    String leader = converged();
    for (String name : WRITE_CONFIGS) {
      writesReach(name, port(name, 5000), leader);
    }
    writesReach("consul-template", renderedWritePort, leader);
    for (String name : List.of("b-agent-pgbouncer.cfg", "replicas-lag-weights.cfg", "c-agent-fallback.cfg",
        "d-pgbeacon-httpchk.cfg", "dns-srv.cfg", "read-only-fallback.cfg")) {
      Psql.Result read = Await.until(name + ": reads reach a replica", CONVERGE, () -> psql(port(name, 5001),
          "select pg_is_in_recovery()"), r -> r.output().equals("t"));
      assertTrue(read.ok());
    }
    Await.until("consul-template: reads reach a replica", CONVERGE,
        () -> psql(renderedReadPort, "select pg_is_in_recovery()").output(), "t"::equals);
    // The lab runs without synchronous_mode: no synchronous standby, so sync-reads.cfg's backup, the primary.
    // (e2e/RoutingIT turns synchronous_mode on and sees these reads on the synchronous standby.)
    Await.until("sync-reads.cfg: with no synchronous standby, reads reach the primary", CONVERGE,
        () -> psql(port("sync-reads.cfg", 5002), "select pg_is_in_recovery(), host(inet_server_addr())").output(),
        ("f|" + lab.address(leader))::equals);
  }

  @Test
  @Order(2)
  void afterASwitchoverEveryWritePortReachesTheNewPrimary() throws IOException {
    String before = converged();
    String candidate = lab.nodeNames().stream().filter(n -> !n.equals(before)).findFirst().orElseThrow();
    long masterPid = rendered.pid();
    String renderedBefore = Files.readString(dir.resolve("consul-template/haproxy.cfg"));
    lab.run(Duration.ofSeconds(90), "switchover", candidate);
    converged();
    for (String name : WRITE_CONFIGS) {
      writesReach(name, port(name, 5000), candidate);
    }
    // consul-template re-rendered haproxy.cfg from Consul and HAProxy reloaded it in place (same master).
    writesReach("consul-template", renderedWritePort, candidate);
    String renderedAfter = Files.readString(dir.resolve("consul-template/haproxy.cfg"));
    assertFalse(renderedAfter.equals(renderedBefore), "consul-template rendered a new haproxy.cfg");
    assertTrue(renderedAfter.contains(lab.address(candidate) + ":" + lab.port(candidate, "PGBOUNCER")));
    assertEquals(masterPid, rendered.pid(), "reloaded, not restarted");
    assertTrue(rendered.isAlive());
  }

  @Test
  @Order(3)
  void withPgBouncerDownOnThePrimaryBAndDTakeItOutAndCGoesStraightToPostgres() {
    String leader = converged();
    int i = lab.index(leader);
    String server = "pg" + i;
    lab.run(Duration.ofSeconds(30), "pgbouncer-stop", Integer.toString(i));
    try {
      Haproxy b = haproxies.haproxy("b-agent-pgbouncer.cfg");
      Await.until("scenario B marks " + server + " DOWN", CONVERGE, () -> b.stat("pg_write", server).status(),
          s -> s.startsWith("DOWN"));
      assertFalse(psql(port("b-agent-pgbouncer.cfg", 5000), "select 1").ok(), "B: no server for writes");
      Haproxy d = haproxies.haproxy("d-pgbeacon-httpchk.cfg");
      Haproxy.StatRow dRow = Await.until("scenario D marks " + server + " DOWN", CONVERGE,
          () -> d.stat("pg_write", server), r -> r.status().startsWith("DOWN"));
      assertTrue(dRow.lastCheck().startsWith("critical: PgBouncer:"), "pgbeacon's reason: " + dRow);
      assertFalse(psql(port("d-pgbeacon-httpchk.cfg", 5000), "select 1").ok(), "D: no server for writes");
      ViewAnswers.assertAgree(lab, CONVERGE);

      // C: PgBouncer is the only thing broken; PostgreSQL on the primary still takes writes directly.
      writesReach("c-agent-fallback.cfg", port("c-agent-fallback.cfg", 5000), leader);
      Haproxy c = haproxies.haproxy("c-agent-fallback.cfg");
      assertTrue(c.stat("pg_write_direct", server).status().startsWith("UP"));
      assertTrue(c.stat("pg_write_pgbouncer", server).status().startsWith("DOWN"));
    } finally {
      lab.run(Duration.ofSeconds(30), "pgbouncer-start", Integer.toString(i));
    }
    Haproxy b = haproxies.haproxy("b-agent-pgbouncer.cfg");
    Await.until("scenario B has " + server + " back", CONVERGE, () -> b.stat("pg_write", server).status(),
        s -> s.startsWith("UP"));
    writesReach("b-agent-pgbouncer.cfg", port("b-agent-pgbouncer.cfg", 5000), leader);
    writesReach("d-pgbeacon-httpchk.cfg", port("d-pgbeacon-httpchk.cfg", 5000), leader);
  }

  // ---- helpers ---------------------------------------------------------------------------------------------

  /** consul-template with the project's config and template, rendering into its own directory for a real HAProxy. */
  private static void startConsulTemplate() throws Exception {
    Path work = Files.createDirectories(dir.resolve("consul-template"));
    Path socket = work.resolve("admin.sock");
    renderedSocket = socket;
    renderedWritePort = FreePorts.next();
    renderedReadPort = FreePorts.next();
    ProcessBuilder pb = ConsulTemplate.command(work, lab.consulAddress(), Optional.empty(), lab.scope(),
        renderedWritePort, renderedReadPort, socket, work.resolve("consul-template.log"));
    consulTemplate = pb.start();
    Path live = work.resolve("haproxy.cfg");
    Await.until("consul-template's first render", Duration.ofSeconds(30), () -> Files.exists(live), e -> e);
    // Master-worker with the PID file the reload script signals (USR2), as Debian's haproxy.service runs it.
    rendered = new ProcessBuilder(Components.haproxy().toString(), "-W", "-db", "-f", live.toString(), "-p",
        work.resolve("haproxy.pid").toString()).directory(work.toFile()).redirectErrorStream(true)
        .redirectOutput(ProcessBuilder.Redirect.appendTo(work.resolve("haproxy.log").toFile())).start();
    Await.until("HAProxy on the rendered config", Duration.ofSeconds(10),
        () -> Haproxy.command(socket, "show info"), info -> info.contains("Pid:"));
  }

  /**
   * Waits until new connections through {@code port} land only on {@code primary} (three in a row) and a write
   * through it succeeds. Scenario A needs the wait: its HTTP check keeps a demoted primary UP for a few seconds
   * (fall 3), and HAProxy balances new connections over both meanwhile.
   */
  private static void writesReach(String what, int port, String primary) {
    String expected = "f|" + lab.address(primary);
    Await.until(what + ": psql through the write port reaches only " + primary + ", and a write succeeds", CONVERGE,
        () -> {
          List<String> seen = new ArrayList<>();
          for (int i = 0; i < 3; i++) {
            seen.add(psql(port, "select pg_is_in_recovery(), host(inet_server_addr())").output());
          }
          if (!seen.stream().allMatch(expected::equals)) {
            return seen.toString();
          }
          Psql.Result write = psql(port, "CREATE TABLE IF NOT EXISTS e2e_haproxy (via text, at timestamptz DEFAULT"
              + " now()); INSERT INTO e2e_haproxy (via) VALUES ('" + what + "')");
          return write.ok() ? "ok" : write.toString();
        }, "ok"::equals);
  }

  private static int port(String config, int original) {
    return haproxies.port(config, original);
  }

  private static Psql.Result psql(int port, String sql) {
    return Psql.run("127.0.0.1", port, lab.env("LAB_SUPERUSER"), lab.env("LAB_SUPERUSER_PASSWORD"), sql);
  }

  /** Consul names Patroni's leader, and every pgbeacon's agent ports and HTTP endpoints say the same. */
  private static String converged() {
    String leader = lab.converged(consul, CONVERGE);
    ViewAnswers.assertAgree(lab, CONVERGE);
    return leader;
  }
}
