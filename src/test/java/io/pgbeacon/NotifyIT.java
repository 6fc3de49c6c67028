package io.pgbeacon;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pgbeacon.config.ConfigLoader;
import io.pgbeacon.support.Await;
import io.pgbeacon.support.ConsulDevAgent;
import io.pgbeacon.support.ConsulHttp;
import io.pgbeacon.support.NotifySocket;
import io.pgbeacon.support.PgBeaconProcess;
import io.pgbeacon.support.RecordedPatroni;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * systemd's notify protocol as PID 1 would hear it: the test binds the NOTIFY_SOCKET (a unix datagram socket, on
 * Netty's epoll transport) and starts pgbeacon with NOTIFY_SOCKET and WATCHDOG_USEC set, against a real Consul agent
 * and node2 of the recorded Patroni 4.1.5 lab (a streaming replica). No systemd runs as PID 1 on these machines.
 */
class NotifyIT {

  private static final String REPLICA_CHECK = "service:patroni-replica/pgbeacon-lab/node2";
  private static final Duration SOON = Duration.ofSeconds(20);

  @TempDir static Path dir;
  static ConsulDevAgent consul;
  static ConsulHttp http;
  static RecordedPatroni patroni;

  PgBeaconProcess pgbeacon;
  PgBeacon beacon;

  @BeforeAll
  static void startComponents() throws Exception {
    consul = new ConsulDevAgent(dir, null).start();
    http = new ConsulHttp(consul.address());
    patroni = RecordedPatroni.start("4.1.5", "replica.json", false);
  }

  @AfterAll
  static void stopComponents() {
    patroni.close();
    consul.close();
  }

  @AfterEach
  void tearDown() throws Exception {
    if (pgbeacon != null) {
      pgbeacon.stop();
    }
    if (beacon != null) {
      beacon.stop().get(20, TimeUnit.SECONDS);
    }
  }

  @Test
  void tellsSystemdReadyStatusWatchdogReloadingAndStoppingInThatOrder(@TempDir Path own) throws Exception {
    try (NotifySocket socket = NotifySocket.at(own.resolve("notify"))) {
      // A cold JVM on a busy 2-core machine may take longer than 200 ms for its first /cluster read (CI saw a first
      // verdict "lag unknown"); this test is about the order of the messages, so its Patroni reads get 2 s.
      pgbeacon = PgBeaconProcess.start(config(own, 18510, "2s"), Map.of("NOTIFY_SOCKET", socket.name(),
          "WATCHDOG_USEC", "1000000"), own.resolve("pgbeacon.log"));

      socket.await("READY=1", 1, SOON);
      // READY=1 comes after the first verdict reached Consul: the check is passing already, not "starting".
      assertEquals("passing", http.checkStatus(REPLICA_CHECK), pgbeacon.log());
      List<NotifySocket.Line> watchdog = socket.await("WATCHDOG=1", 4, SOON).stream()
          .filter(l -> l.text().equals("WATCHDOG=1")).toList();
      for (int i = 1; i < watchdog.size(); i++) { // every half WATCHDOG_USEC
        long gap = TimeUnit.NANOSECONDS.toMillis(watchdog.get(i).at() - watchdog.get(i - 1).at());
        assertTrue(gap >= 300 && gap <= 1500, "WATCHDOG=1 every 500 ms, got a gap of " + gap + " ms");
      }

      pgbeacon.signal("HUP");
      socket.await("READY=1", 2, SOON);
      int pings = count(socket, "WATCHDOG=1");
      socket.await("WATCHDOG=1", pings + 1, SOON); // still pinged after the reload
      assertTrue(pgbeacon.alive());

      assertEquals(143, pgbeacon.stop(), pgbeacon.log());
      socket.await("STOPPING=1", 1, SOON);

      List<String> said = socket.texts().stream().filter(t -> !t.equals("WATCHDOG=1")).toList();
      assertEquals(List.of("READY=1", "STATUS=", "RELOADING=1", "MONOTONIC_USEC=", "READY=1", "STATUS=",
          "STOPPING=1"), said.stream().map(t -> t.startsWith("READY=") || t.startsWith("RELOADING=")
              || t.startsWith("STOPPING=") ? t : t.substring(0, t.indexOf('=') + 1)).toList(), said.toString());
      assertTrue(said.get(1).startsWith("STATUS=primary critical: ") && said.get(1).contains("; replica passing: "),
          said.get(1));
      List<String> texts = socket.texts();
      assertTrue(texts.indexOf("WATCHDOG=1") > texts.indexOf("READY=1"), "no ping before READY=1: " + texts);
      assertEquals("STOPPING=1", texts.get(texts.size() - 1), "nothing after STOPPING=1: " + texts);
    }
  }

  @Test
  void speaksToASocketInTheAbstractNamespace(@TempDir Path own) throws Exception {
    try (NotifySocket socket = NotifySocket.abstractNamed("pgbeacon-notify-it-" + ProcessHandle.current().pid())) {
      pgbeacon = PgBeaconProcess.start(config(own, 18512, "200ms"), Map.of("NOTIFY_SOCKET", socket.name()),
          own.resolve("pgbeacon.log"));
      socket.await("READY=1", 1, SOON);
      assertEquals(143, pgbeacon.stop(), pgbeacon.log());
      socket.await("STOPPING=1", 1, SOON);
      assertTrue(socket.texts().stream().noneMatch("WATCHDOG=1"::equals), "no WATCHDOG_USEC, no pings");
    }
  }

  /**
   * A Patroni that stops answering is not a hung loop: its reads time out, and those are verdicts too, so the pings go
   * on. The poll loop hangs when its event loop is blocked (a bug, a deadlock: no real component can cause it on
   * cue, so the test blocks it): the verdict ages past the freshness limit and the pings stop, so WatchdogSec= would
   * restart the JVM; they resume once the loop runs again.
   */
  @Test
  void stopsPingingTheWatchdogWhileThePollLoopHangs(@TempDir Path own) throws Exception {
    try (NotifySocket socket = NotifySocket.at(own.resolve("notify"))) {
      // Freshness limit: 500 ms poll + 2 × 200 ms timeout + 1 s = 1.9 s.
      Path file = config(own, 18514, "200ms");
      beacon = new PgBeacon(ConfigLoader.load(file, ConfigLoader.Overrides.none(), Map.of()), "test",
          Map.of("NOTIFY_SOCKET", socket.name(), "WATCHDOG_USEC", "1000000"));
      beacon.start().toCompletionStage().toCompletableFuture().get(20, TimeUnit.SECONDS);
      socket.await("WATCHDOG=1", 3, SOON);

      patroni.hang(true);
      try {
        int before = count(socket, "WATCHDOG=1");
        socket.await("WATCHDOG=1", before + 5, Duration.ofSeconds(5)); // 2.5 s of a Patroni that never answers
        Await.until("the replica view critical: Patroni does not answer", SOON, () -> beacon.health(),
            h -> h.replica().status() == io.pgbeacon.health.Status.CRITICAL);
      } finally {
        patroni.hang(false);
      }
      Await.until("the replica view passing again", SOON, () -> beacon.health(),
          h -> h.replica().status() == io.pgbeacon.health.Status.PASSING);

      long blocked = System.nanoTime();
      Duration hang = Duration.ofSeconds(6);
      var unblocked = beacon.onMonitorLoop(() -> {
        Thread.sleep(hang.toMillis());
        return System.nanoTime();
      });
      long resumed = unblocked.toCompletionStage().toCompletableFuture().get(20, TimeUnit.SECONDS);
      int before = count(socket, "WATCHDOG=1");
      socket.await("WATCHDOG=1", before + 2, Duration.ofSeconds(5)); // pings again once verdicts are fresh

      List<Long> pings = socket.lines().stream().filter(l -> l.text().equals("WATCHDOG=1")).map(l -> l.at())
          .toList();
      long stale = blocked + Duration.ofMillis(1900 + 600).toNanos(); // the limit, and one tick
      List<Long> duringTheHang = pings.stream().filter(at -> at > stale && at < resumed)
          .map(at -> TimeUnit.NANOSECONDS.toMillis(at - blocked)).toList();
      assertEquals(List.of(), duringTheHang, "pings (ms after the loop hung) while its verdict was stale");
      assertTrue(pings.stream().anyMatch(at -> at > resumed), "pings resume after the hang");
      beacon.stop().get(20, TimeUnit.SECONDS);
      socket.await("STOPPING=1", 1, SOON);
    }
  }

  private static int count(NotifySocket socket, String text) {
    return (int) socket.texts().stream().filter(text::equals).count();
  }

  private Path config(Path own, int agentPort, String patroniTimeout) throws Exception {
    return Files.writeString(own.resolve("pgbeacon.yml"), "node: node2\n"
        + "patroni: {url: '" + patroni.url() + "', timeout: " + patroniTimeout + ", leader-key: 'off'}\n"
        + "consul: {address: 'http://" + consul.address() + "'}\n"
        + "agent: {listen: [{port: " + agentPort + ", view: replica}]}\n"
        + "http: off\n");
  }
}
