package io.pgbeacon.patroni;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pgbeacon.config.Config;
import io.pgbeacon.support.Components;
import io.vertx.core.Vertx;
import io.vertx.core.http.ClientAuth;
import io.vertx.core.http.HttpServer;
import io.vertx.core.http.HttpServerOptions;
import io.vertx.core.net.PemKeyCertOptions;
import io.vertx.core.net.PemTrustOptions;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Patroni's REST API behind TLS with {@code verify_client: required}: the only way to protect its GET endpoints.
 * Certificates are made by the real openssl; the server is an HTTPS endpoint with Patroni's recorded answers.
 */
class PatroniTlsIT {

  @TempDir static Path dir;
  static Vertx vertx;
  static int port;

  @BeforeAll
  static void serve() throws Exception {
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
        "-keyout", "ca.key", "-out", "ca.pem");
    for (String who : List.of("server", "client")) {
      openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + (who.equals("server") ? "127.0.0.1" : "pgbeacon"),
          "-keyout", who + ".key", "-out", who + ".csr");
      Files.writeString(dir.resolve(who + ".ext"), "subjectAltName=IP:127.0.0.1\n");
      openssl("x509", "-req", "-in", who + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
          "-days", "2", "-extfile", who + ".ext", "-out", who + ".pem");
    }
    byte[] primary = PatroniTlsIT.class.getResourceAsStream("/patroni/4.1.5/primary.json").readAllBytes();
    byte[] cluster = PatroniTlsIT.class.getResourceAsStream("/patroni/4.1.5/cluster.json").readAllBytes();
    vertx = Vertx.vertx();
    HttpServer server = vertx.createHttpServer(new HttpServerOptions()
        .setSsl(true)
        .setKeyCertOptions(new PemKeyCertOptions().setCertPath(path("server.pem")).setKeyPath(path("server.key")))
        .setTrustOptions(new PemTrustOptions().addCertPath(path("ca.pem")))
        .setClientAuth(ClientAuth.REQUIRED));
    server.requestHandler(req -> req.response().putHeader("Content-Type", "application/json")
        .end(io.vertx.core.buffer.Buffer.buffer(req.path().startsWith("/cluster") ? cluster : primary)));
    port = server.listen(0, "127.0.0.1").toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS)
        .actualPort();
  }

  @AfterAll
  static void stop() throws Exception {
    vertx.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
  }

  @Test
  void readsPatroniWithItsCaAndAClientCertificate() throws Exception {
    PatroniReading r = read(Optional.of(dir.resolve("ca.pem")), true);
    PatroniReading.Observed observed = assertInstanceOf(PatroniReading.Observed.class, r);
    assertEquals(Role.PRIMARY, observed.status().role());
    assertTrue(observed.cluster().isPresent());
  }

  @Test
  void withoutAClientCertificateTheVerdictSaysWhy() throws Exception {
    PatroniReading.Unavailable u = assertInstanceOf(PatroniReading.Unavailable.class,
        read(Optional.of(dir.resolve("ca.pem")), false));
    assertTrue(u.reason().startsWith("Patroni unreachable"), u.reason());
  }

  @Test
  void anUntrustedServerIsRefused() throws Exception {
    // The JVM's default trust store does not know the test CA.
    PatroniReading.Unavailable u = assertInstanceOf(PatroniReading.Unavailable.class, read(Optional.empty(), true));
    assertTrue(u.reason().startsWith("Patroni unreachable"), u.reason());
  }

  private static PatroniReading read(Optional<Path> ca, boolean clientCert) throws Exception {
    Config.Patroni config = new Config.Patroni(URI.create("https://127.0.0.1:" + port), Duration.ofSeconds(2), ca,
        clientCert ? Optional.of(dir.resolve("client.pem")) : Optional.empty(),
        clientCert ? Optional.of(dir.resolve("client.key")) : Optional.empty(), Optional.empty(), Optional.empty(),
        Config.LeaderKey.OFF);
    PatroniClient client = new PatroniClient(vertx, config, io.pgbeacon.metrics.Metrics.none());
    try {
      return client.read().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
    } finally {
      client.close();
    }
  }

  private static String path(String name) {
    return dir.resolve(name).toString();
  }

  private static void openssl(String... args) throws Exception {
    List<String> cmd = new java.util.ArrayList<>(List.of(Components.require("openssl", "/usr/bin/openssl").toString()));
    cmd.addAll(List.of(args));
    Process p = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes());
    assertTrue(p.waitFor(30, TimeUnit.SECONDS) && p.exitValue() == 0, String.join(" ", cmd) + ": " + out);
  }
}
