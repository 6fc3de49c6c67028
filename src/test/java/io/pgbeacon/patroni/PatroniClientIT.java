package io.pgbeacon.patroni;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pgbeacon.config.Config;
import io.vertx.core.Vertx;
import io.vertx.core.VertxOptions;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Faults a real Patroni cannot be made to produce on demand: a hung socket, garbage, truncated bodies, foreign
 * status codes. Each must become a reading with a reason, within the deadline. (The real Patroni is exercised in
 * the cluster tests.)
 */
class PatroniClientIT {

  private static final Duration DEADLINE = Duration.ofMillis(400);
  Vertx vertx;
  final List<AutoCloseable> fakes = new ArrayList<>();

  @BeforeEach
  void setUp() {
    vertx = Vertx.vertx(new VertxOptions().setPreferNativeTransport(true)); // as the daemon runs (epoll on Linux)
  }

  @AfterEach
  void tearDown() throws Exception {
    for (AutoCloseable f : fakes) {
      f.close();
    }
    vertx.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
  }

  @Test
  void aHungPatroniBecomesUnavailableWithinTheDeadline() throws Exception {
    int port = fake(path -> null); // accepts, never answers
    long started = System.nanoTime();
    PatroniReading r = read(port);
    long millis = (System.nanoTime() - started) / 1_000_000;
    assertEquals("Patroni unreachable: no answer within the deadline", unavailable(r).reason());
    assertTrue(millis < DEADLINE.toMillis() * 3, "took " + millis + "ms");
  }

  @Test
  void garbageJsonBecomesUnavailableWithAReason() throws Exception {
    int port = fake(path -> http(200, "{\"state\": \"running\", \"role\": ]"));
    assertTrue(unavailable(read(port)).reason().startsWith("Patroni sent invalid JSON"));
  }

  @Test
  void aTruncatedBodyBecomesUnavailable() throws Exception {
    int port = fake(path -> "HTTP/1.1 200 OK\r\nContent-Length: 500\r\nContent-Type: application/json\r\n\r\n"
        + "{\"state\": \"run");
    assertTrue(unavailable(read(port)).reason().startsWith("Patroni unreachable"), unavailable(read(port)).reason());
  }

  @Test
  void aForeignStatusCodeIsNotMistakenForPatroni() throws Exception {
    int port = fake(path -> http(404, "<html>not found</html>"));
    assertEquals("Patroni answered HTTP 404 on /primary", unavailable(read(port)).reason());
  }

  @Test
  void refusedConnectionsSaySo() throws Exception {
    int port;
    try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      port = s.getLocalPort();
    }
    // Worded as the JDK transport words it, also on epoll (which would say "finishConnect(..) failed …" first).
    assertEquals("Patroni unreachable: Connection refused: /127.0.0.1:" + port, unavailable(read(port)).reason());
  }

  @Test
  void theStatusCodeOfPrimaryIsTheLeaderLockAndClusterFailuresAreKeptApart() throws Exception {
    String body = "{\"state\":\"running\",\"role\":\"master\",\"timeline\":4,\"xlog\":{\"location\":5},"
        + "\"patroni\":{\"version\":\"3.0.2\",\"scope\":\"demo\"}}";
    int port = fake(path -> path.startsWith("/primary") ? http(503, body) : http(503, "{}"));
    PatroniReading.Observed r = assertInstanceOf(PatroniReading.Observed.class, read(port));
    assertEquals(false, r.status().holdsLeaderLock(), "503 on /primary: no leader lock, whatever role says");
    assertEquals(Role.PRIMARY, r.status().role());
    assertEquals(Optional.of("cluster view unavailable: HTTP 503"), r.clusterProblem());
  }

  private PatroniReading read(int port) throws Exception {
    Config.Patroni config = new Config.Patroni(URI.create("http://127.0.0.1:" + port), DEADLINE, Optional.empty(),
        Optional.empty(), Optional.empty(), Optional.empty(), Optional.empty(), Config.LeaderKey.OFF);
    PatroniClient client = new PatroniClient(vertx, config, io.pgbeacon.metrics.Metrics.none());
    try {
      return client.read().toCompletionStage().toCompletableFuture().get(5, TimeUnit.SECONDS);
    } finally {
      client.close();
    }
  }

  private static PatroniReading.Unavailable unavailable(PatroniReading r) {
    return assertInstanceOf(PatroniReading.Unavailable.class, r);
  }

  private static String http(int code, String body) {
    byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
    return "HTTP/1.1 " + code + " X\r\nContent-Type: application/json\r\nContent-Length: " + bytes.length
        + "\r\n\r\n" + body;
  }

  /** A tiny HTTP fake: reads the request line, writes whatever {@code answer} returns (null: hang), keeps open. */
  private int fake(Function<String, String> answer) throws IOException {
    ServerSocket server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
    List<Socket> open = new ArrayList<>();
    Thread t = new Thread(() -> {
      while (!server.isClosed()) {
        try {
          Socket s = server.accept();
          open.add(s);
          new Thread(() -> serve(s, answer)).start();
        } catch (IOException e) {
          return;
        }
      }
    });
    t.setDaemon(true);
    t.start();
    fakes.add(() -> {
      server.close();
      for (Socket s : open) {
        s.close();
      }
    });
    return server.getLocalPort();
  }

  private static void serve(Socket s, Function<String, String> answer) {
    try {
      var in = new java.io.BufferedReader(new java.io.InputStreamReader(s.getInputStream(), StandardCharsets.US_ASCII));
      String line;
      while ((line = in.readLine()) != null) {
        String path = line.split(" ").length > 1 ? line.split(" ")[1] : "/";
        while ((line = in.readLine()) != null && !line.isEmpty()) {
          // skip headers
        }
        String reply = answer.apply(path);
        if (reply == null) {
          return; // hang: keep the socket open, say nothing
        }
        OutputStream out = s.getOutputStream();
        out.write(reply.getBytes(StandardCharsets.UTF_8));
        out.flush();
      }
    } catch (IOException ignored) {
      // the client gave up: expected for the hung and truncated cases
    }
  }
}
