package io.pgbeacon.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pgbeacon.support.TcpStub;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** What only trying tells: a port in use, certificates that do not load. */
class PreflightTest {

  @TempDir Path dir;

  @Test
  void anAgentPortInUseIsAProblemNamingTheKeyAndPort() throws Exception {
    try (ServerSocket taken = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      Config config = parse("agent: {listen: [{address: 127.0.0.1, port: 0, view: replica},"
          + " {address: 127.0.0.1, port: " + taken.getLocalPort() + ", view: primary}]}");
      List<String> problems = Preflight.problems(config, Preflight.Mode.RUN, new ArrayList<>());
      assertEquals(1, problems.size(), problems.toString());
      assertTrue(problems.get(0).startsWith("agent.listen[1]: cannot listen on 127.0.0.1:" + taken.getLocalPort()
          + " ("), problems.get(0));
    }
  }

  @Test
  void validateBesideTheRunningDaemonNotesItsPortInsteadOfFailing() throws Exception {
    try (TcpStub daemon = TcpStub.start("127.0.0.1", 0, "up ready 100% #primary, timeline 3")) {
      Config config = parse("agent: {listen: [{address: 127.0.0.1, port: " + daemon.port() + ", view: primary}]}");
      List<String> notes = new ArrayList<>();
      assertEquals(List.of(), Preflight.problems(config, Preflight.Mode.VALIDATE, notes));
      assertEquals(1, notes.size());
      assertTrue(notes.get(0).contains("held by a running pgbeacon"), notes.get(0));
      assertEquals(1, Preflight.problems(config, Preflight.Mode.RUN, new ArrayList<>()).size(),
          "run needs the port free, whoever holds it");
    }
  }

  @Test
  void aPatroniClientCertificateThatDoesNotLoadIsAProblem() throws Exception {
    Path garbage = Files.writeString(dir.resolve("garbage.pem"), "-----BEGIN PRIVATE KEY-----\nnot base64\n");
    List<String> problems = Preflight.problems(parse("patroni: {url: 'https://127.0.0.1:8008', cert-file: "
        + ConfigLoaderTest.tls("client.pem") + ", key-file: " + garbage + "}"), Preflight.Mode.VALIDATE,
        new ArrayList<>());
    assertEquals(1, problems.size(), problems.toString());
    assertTrue(problems.get(0).startsWith("patroni.cert-file, patroni.key-file: cannot be loaded"), problems.get(0));
  }

  @Test
  void aCertificateAndKeyThatLoadPass() throws Exception {
    assertEquals(List.of(), Preflight.problems(parse("patroni: {url: 'https://127.0.0.1:8008', ca-file: "
        + ConfigLoaderTest.tls("ca.pem") + ", cert-file: " + ConfigLoaderTest.tls("client.pem") + ", key-file: "
        + ConfigLoaderTest.tls("client-key.pem") + "}"), Preflight.Mode.RUN, new ArrayList<>()));
  }

  private static Config parse(String yaml) throws ConfigException {
    return ConfigLoader.parse(yaml, ConfigLoader.Overrides.none(), Map.of());
  }
}
