package io.pgbeacon.http;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.net.httpserver.HttpServer;
import io.pgbeacon.config.Config;
import io.pgbeacon.support.FreePorts;
import io.pgbeacon.support.TcpStub;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/**
 * Where {@code pgbeacon status} asks, and what it makes of servers that do not answer with a status: refused, hung,
 * not HTTP, an error status, not JSON. (A real daemon's answer: {@code StatusCommandIT}.)
 */
class StatusClientTest {

  private static final Duration DEADLINE = Duration.ofMillis(500);

  @Test
  void asksTheConfiguredListenerAndAWildcardOneOnLoopback() {
    assertEquals(URI.create("http://127.0.0.1:8009/status"), StatusClient.url(new Config.Http("127.0.0.1", 8009)));
    assertEquals(URI.create("http://127.0.0.1:8009/status"), StatusClient.url(new Config.Http("0.0.0.0", 8009)));
    assertEquals(URI.create("http://[::1]:8009/status"), StatusClient.url(new Config.Http("::", 8009)));
    assertEquals(URI.create("http://[fd00::11]:9000/status"), StatusClient.url(new Config.Http("fd00::11", 9000)));
    assertEquals(URI.create("http://db1.example:8009/status"), StatusClient.url(new Config.Http("db1.example", 8009)));
  }

  @Test
  void aGivenUrlIsTheBaseOfTheEndpointsOrTheStatusEndpointItself() {
    assertEquals(URI.create("http://10.0.0.11:8009/status"), StatusClient.url("http://10.0.0.11:8009"));
    assertEquals(URI.create("http://10.0.0.11:8009/status"), StatusClient.url("http://10.0.0.11:8009/"));
    assertEquals(URI.create("https://h:443/status"), StatusClient.url("https://h:443/status"));
    assertEquals(URI.create("http://h/pgbeacon/status"), StatusClient.url("http://h/pgbeacon/"));
    assertEquals(URI.create("http://[::1]:8009/status"), StatusClient.url("http://[::1]:8009"));
    for (String bad : new String[] {"10.0.0.11:8009", "ftp://h/", "/status", "http:///status", "http://a b/", ""}) {
      assertThrows(IllegalArgumentException.class, () -> StatusClient.url(bad), bad);
    }
  }

  @Test
  void nothingListeningIsNamedWithTheUrl() {
    URI url = URI.create("http://127.0.0.1:" + FreePorts.next() + "/status");
    StatusClient.NoStatus e = assertThrows(StatusClient.NoStatus.class, () -> StatusClient.fetch(url, DEADLINE));
    assertEquals("pgbeacon not reachable at " + url + ": connection refused (is it running, with http on?)",
        e.getMessage());
  }

  @Test
  void aHungDaemonIsGivenUpOnAtTheDeadline() {
    try (TcpStub hung = TcpStub.silent("127.0.0.1", 0)) {
      URI url = URI.create("http://127.0.0.1:" + hung.port() + "/status");
      long start = System.nanoTime();
      StatusClient.NoStatus e = assertThrows(StatusClient.NoStatus.class, () -> StatusClient.fetch(url, DEADLINE));
      long tookMillis = (System.nanoTime() - start) / 1_000_000;
      assertEquals("pgbeacon did not answer at " + url + " within 500 ms", e.getMessage());
      // Beyond the deadline: the first HttpClient of a JVM loads its TLS defaults (0.5–2 s here) before it connects.
      assertTrue(tookMillis < DEADLINE.toMillis() + 4000, "gave up after " + tookMillis + " ms");
    }
  }

  @Test
  void somethingElseThanHttpOnThePortIsNoStatus() {
    try (TcpStub agent = TcpStub.start("127.0.0.1", 0, "up ready 100% #primary, timeline 3")) {
      URI url = URI.create("http://127.0.0.1:" + agent.port() + "/status");
      StatusClient.NoStatus e = assertThrows(StatusClient.NoStatus.class, () -> StatusClient.fetch(url, DEADLINE));
      assertTrue(e.getMessage().startsWith("pgbeacon not reachable at " + url + ": "), e.getMessage());
    }
  }

  @Test
  void anErrorStatusIsNamedWithItsFirstLine() throws Exception {
    HttpServer server = serving(404, "no such endpoint: try /metrics, /status\nmore\n");
    try {
      URI url = URI.create("http://127.0.0.1:" + server.getAddress().getPort() + "/status");
      StatusClient.NoStatus e = assertThrows(StatusClient.NoStatus.class, () -> StatusClient.fetch(url, DEADLINE));
      assertEquals("pgbeacon at " + url + " answered HTTP 404: no such endpoint: try /metrics, /status",
          e.getMessage());
    } finally {
      server.stop(0);
    }
  }

  @Test
  void aBodyThatIsNoJsonObjectIsNoStatus() throws Exception {
    for (String body : new String[] {"<html>proxy login</html>", "[1, 2]", "", "{\"node\": "}) {
      HttpServer server = serving(200, body);
      try {
        URI url = URI.create("http://127.0.0.1:" + server.getAddress().getPort() + "/status");
        StatusClient.NoStatus e = assertThrows(StatusClient.NoStatus.class, () -> StatusClient.fetch(url, DEADLINE),
            body);
        assertTrue(e.getMessage().startsWith("pgbeacon at " + url + " answered no status"), e.getMessage());
      } finally {
        server.stop(0);
      }
    }
  }

  @Test
  void aStatusIsTheBodyAsSentAndAsRead() throws Exception {
    HttpServer server = serving(200, "{\n  \"node\" : \"node1\"\n}\n");
    try {
      StatusClient.Answer answer = StatusClient.fetch(URI.create("http://127.0.0.1:" + server.getAddress().getPort()
          + "/status"), DEADLINE);
      assertEquals("{\n  \"node\" : \"node1\"\n}\n", answer.body());
      assertEquals("node1", answer.json().path("node").asText());
    } finally {
      server.stop(0);
    }
  }

  /** A server answering every request with {@code code} and {@code body}: the faults a pgbeacon does not make. */
  private static HttpServer serving(int code, String body) throws IOException {
    HttpServer server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 10);
    byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
    server.createContext("/", exchange -> {
      try (exchange) {
        exchange.sendResponseHeaders(code, bytes.length == 0 ? -1 : bytes.length);
        exchange.getResponseBody().write(bytes);
      }
    });
    server.start();
    return server;
  }
}
