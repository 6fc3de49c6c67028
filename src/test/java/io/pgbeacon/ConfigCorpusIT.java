package io.pgbeacon;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pgbeacon.support.Components;
import io.pgbeacon.support.ConsulDevAgent;
import io.pgbeacon.support.ConsulHttp;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every broken config of {@code src/test/resources/config-corpus/} against {@code pgbeacon validate} and
 * {@code pgbeacon run}, the commands as the launcher runs them (in this JVM, with the environment the corpus file
 * asks for): exit 2, a line naming the key, no stack trace — and nothing registered in the real Consul agent that
 * {@code CONSUL_HTTP_ADDR} points every run at.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class ConfigCorpusIT {

  @TempDir static Path dir;
  static ConsulDevAgent consul;
  static ServerSocket taken;
  static Path helpers;

  @BeforeAll
  static void start() throws IOException {
    consul = new ConsulDevAgent(dir, null).start();
    taken = new ServerSocket(0, 1, InetAddress.getLoopbackAddress());
    helpers = Files.createDirectories(dir.resolve("helpers"));
    Files.writeString(helpers.resolve("garbage.pem"), "-----BEGIN CERTIFICATE-----\nnot base64 at all\n");
    Files.writeString(helpers.resolve("empty.txt"), "  \n");
    Files.writeString(helpers.resolve("token.txt"), "a-token\n");
    for (String file : List.of("ca.pem", "client.pem", "client-key.pem", "ec-client.pem", "ec-client-key.pem")) {
      Files.copy(Components.repoFile("src/test/resources/tls/" + file), helpers.resolve(file));
    }
    // Patroni's own files, for patroni.config-file; they name the helper files by ${DIR} too.
    Path patroniFiles = Files.createDirectories(helpers.resolve("patroni-files"));
    try (Stream<Path> listed = Files.list(Components.repoFile("src/test/resources/patroni-files"))) {
      for (Path file : listed.filter(p -> p.toString().endsWith(".yml")).toList()) {
        Files.writeString(patroniFiles.resolve(file.getFileName()),
            Files.readString(file).replace("${DIR}", helpers.toString()));
      }
    }
  }

  @AfterAll
  static void stop() throws IOException {
    if (taken != null) {
      taken.close();
    }
    if (consul != null) {
      consul.close();
    }
  }

  @TestFactory
  @Order(1)
  Stream<DynamicTest> everyBrokenConfigIsRefusedByNameAtValidateAndRun() throws IOException {
    List<Path> files;
    try (Stream<Path> listed = Files.list(Components.repoFile("src/test/resources/config-corpus"))) {
      files = listed.filter(p -> p.toString().endsWith(".yml")).sorted().toList();
    }
    assertTrue(files.size() >= 60, "the corpus has " + files.size() + " configs");
    return files.stream().map(file -> DynamicTest.dynamicTest(file.getFileName().toString(), () -> refused(file)));
  }

  @Test
  @Order(2)
  void nothingWasRegisteredInConsul() {
    assertEquals("{}", new ConsulHttp(consul.address()).get("/v1/agent/services").toString());
  }

  private static void refused(Path corpus) throws Exception {
    String text = Files.readString(corpus).replace("${DIR}", helpers.toString())
        .replace("${TAKEN_PORT}", Integer.toString(taken.getLocalPort()));
    String expected = text.lines().findFirst().orElseThrow().replaceFirst("^# expect: ", "");
    Map<String, String> env = new HashMap<>(Map.of("CONSUL_HTTP_ADDR", consul.address()));
    text.lines().filter(l -> l.startsWith("# env: ")).map(l -> l.substring("# env: ".length()))
        .forEach(l -> env.put(l.substring(0, l.indexOf('=')), l.substring(l.indexOf('=') + 1)));
    Path config = Files.writeString(dir.resolve(corpus.getFileName()), text);
    for (String command : List.of("validate", "run")) {
      StringWriter out = new StringWriter();
      StringWriter err = new StringWriter();
      // A config this suite wrongly takes for good would make `run` start for good: bounded, it fails instead.
      int exit = CompletableFuture.supplyAsync(() -> Main.execute(env, new PrintWriter(out, true),
          new PrintWriter(err, true), command, "--config", config.toString())).get(20, TimeUnit.SECONDS);
      String what = corpus.getFileName() + ", " + command + ":\n" + err;
      assertEquals(2, exit, what);
      assertTrue(err.toString().contains("  - " + expected), "expected a line starting '" + expected + "': " + what);
      assertFalse(err.toString().contains("Exception") || err.toString().contains("\tat "), "a stack trace: " + what);
    }
  }
}
