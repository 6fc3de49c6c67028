package io.pgbeacon.consul;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pgbeacon.support.Await;
import io.pgbeacon.support.Components;
import io.pgbeacon.support.ConsulDevAgent;
import io.pgbeacon.support.ConsulHttp;
import io.pgbeacon.support.RecordedPatroni;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * pgbeacon — the real process, from the jar under test — against a real Consul 1.8.7 agent that serves HTTPS only,
 * with {@code verify_incoming}, its certificates made by {@code consul tls} (EC keys in SEC1, as operators get them):
 * with a client certificate it registers and its primary passes; without one it is refused in the handshake, says so
 * in one WARN line and registers nothing, and so with one of another CA. {@code CONSUL_TLS_SERVER_NAME} is checked in place of the address, so the
 * agent is reached at an address its certificate does not name, and a wrong name is refused at one it does;
 * {@code CONSUL_HTTP_SSL_VERIFY=false} reaches it without any CA. One agent for every case; the pgbeacons start
 * together in {@link #start()}, each with services of its own names, and each test waits for its own.
 *
 * <p>Patroni's leader key is in the agent and named explicitly ({@code patroni.leader-key}), so a primary passes only
 * once pgbeacon's blocking-query client, the second of its two HTTP clients, has read it over the same TLS.
 *
 * <p>Ports: the agent's {@code pgbeacon.tls.port} (18600) to +4; pgbeacon listens on none ({@code http: off}).
 */
class ConsulTlsIT {

  private static final int BASE_PORT = Integer.getInteger("pgbeacon.tls.port", 18600);
  private static final Duration SOON = Duration.ofSeconds(40);

  @TempDir static Path dir;
  static ConsulDevAgent consul;
  static ConsulHttp http;
  static RecordedPatroni patroni;
  static final Map<String, Beacon> beacons = new LinkedHashMap<>();

  @BeforeAll
  static void start() throws IOException {
    consul = ConsulDevAgent.https(dir, BASE_PORT).start();
    http = consul.http();
    http.putKv("service/pgbeacon-lab/leader", "node1");
    patroni = RecordedPatroni.start("4.1.5", "primary.json", true);
    ConsulDevAgent.Tls tls = consul.tls();
    Path caDir = Files.createDirectories(dir.resolve("ca-path"));
    Files.copy(tls.ca(), caDir.resolve("consul-agent-ca.pem"));
    String https1 = "https://127.0.0.1:" + BASE_PORT;
    String https2 = "https://127.0.0.2:" + BASE_PORT; // not in the agent's certificate
    Map<String, String> clientCert = Map.of("CONSUL_CLIENT_CERT", tls.clientCert().toString(),
        "CONSUL_CLIENT_KEY", tls.clientKey().toString());

    launch("tls-yaml", "{address: '%s', ca-file: '%s', cert-file: '%s', key-file: '%s'}".formatted(https1, tls.ca(),
        tls.clientCert(), tls.clientKey()), Map.of());
    launch("tls-nocert", "{address: '%s', ca-file: '%s'}".formatted(https1, tls.ca()), Map.of());
    Path other = Files.createDirectories(dir.resolve("other-ca"));
    ConsulDevAgent.consulTls(other, "ca", "create", "-domain", "other");
    ConsulDevAgent.consulTls(other, "cert", "create", "-client", "-domain", "other");
    launch("tls-othercert", "{address: '%s', ca-file: '%s', cert-file: '%s', key-file: '%s'}".formatted(https1,
        tls.ca(), other.resolve("dc1-client-other-0.pem"), other.resolve("dc1-client-other-0-key.pem")), Map.of());
    launch("tls-name", "{}", with(clientCert, "CONSUL_HTTP_ADDR", https2, "CONSUL_CAPATH", caDir.toString(),
        "CONSUL_TLS_SERVER_NAME", "server.dc1.consul"));
    launch("tls-noname", "{}", with(clientCert, "CONSUL_HTTP_ADDR", https2, "CONSUL_CACERT", tls.ca().toString()));
    launch("tls-wrongname", "{}", with(clientCert, "CONSUL_HTTP_ADDR", https1, "CONSUL_CACERT", tls.ca().toString(),
        "CONSUL_TLS_SERVER_NAME", "server.dc2.consul"));
    launch("tls-noverify", "{}", with(clientCert, "CONSUL_HTTP_ADDR", https2, "CONSUL_HTTP_SSL_VERIFY", "false"));
  }

  @AfterAll
  static void stop() {
    // All at once: a refused pgbeacon waits up to 5 s for Consul to confirm its stop.
    beacons.values().forEach(b -> b.process().destroy());
    beacons.values().forEach(Beacon::close);
    if (patroni != null) {
      patroni.close();
    }
    if (consul != null) {
      consul.close();
    }
  }

  @Test
  void withAClientCertificateFromItsConfigItRegistersAndItsPrimaryPasses() {
    passes("tls-yaml");
  }

  @Test
  void withoutAClientCertificateTheAgentRefusesItAndItSaysSoInOneLine() {
    Beacon beacon = beacons.get("tls-nocert");
    // Over TLS 1.3 the agent refuses after the handshake: unexplained, it would be "Broken pipe" on the request.
    String line = beacon.awaitLine(Pattern.compile(" WARN .*TLS with Consul failed \\(SSLHandshakeException: the agent"
        + " asks for a client certificate from CN=Consul Agent CA .* \\(verify_incoming\\), and none is set:"
        + " consul.cert-file and consul.key-file, or CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY\\)"));
    assertTrue(line.contains("logged again when it recovers"), line);
    refusedAndRegisteredNothing(beacon);
  }

  @Test
  void aClientCertificateOfAnotherCaIsRefusedNamingIt() {
    Beacon beacon = beacons.get("tls-othercert");
    beacon.awaitLine(Pattern.compile(" WARN .*TLS with Consul failed \\(SSLHandshakeException: the agent asks for a"
        + " client certificate from CN=Consul Agent CA .* \\(verify_incoming\\), and the one in consul.cert-file is"
        + " not\\)"));
    refusedAndRegisteredNothing(beacon);
  }

  @Test
  void theServerNameIsCheckedInPlaceOfAnAddressTheCertificateDoesNotName() {
    passes("tls-name");
  }

  @Test
  void withoutTheServerNameAnAddressTheCertificateDoesNotNameIsRefused() {
    Beacon beacon = beacons.get("tls-noname");
    beacon.awaitLine(Pattern.compile("WARN .*TLS with Consul failed \\(SSLPeerUnverifiedException: Certificate for"
        + " <127\\.0\\.0\\.2> doesn't match any of the subject alternative names: .*server\\.dc1\\.consul.*"));
    refusedAndRegisteredNothing(beacon);
  }

  @Test
  void aServerNameTheCertificateDoesNotCarryIsRefusedEvenAtAnAddressItDoes() {
    Beacon beacon = beacons.get("tls-wrongname");
    beacon.awaitLine(Pattern.compile("WARN .*TLS with Consul failed \\(SSLPeerUnverifiedException: Certificate for"
        + " <server\\.dc2\\.consul> doesn't match .*"));
    refusedAndRegisteredNothing(beacon);
  }

  @Test
  void withVerificationOffItReachesTheAgentWithoutAnyCaAndWarnsOnce() {
    passes("tls-noverify");
    List<String> warnings = beacons.get("tls-noverify").lines().stream()
        .filter(l -> l.contains("certificate is not verified")).toList();
    assertEquals(1, warnings.size(), "once: " + String.join("\n", warnings));
    assertTrue(warnings.get(0).contains(" WARN  ConsulTls - consul: CONSUL_HTTP_SSL_VERIFY is false: the agent's"
        + " certificate is not verified"), warnings.get(0));
  }

  /** Its primary passes in Consul (read through the agent's own HTTPS API), and nothing went wrong on the way. */
  private static void passes(String name) {
    Beacon beacon = beacons.get(name);
    Await.until(name + "-primary passing (" + beacon.log + ")", SOON, () -> {
      beacon.assertAlive();
      return http.passingNodes(name + "-primary");
    }, nodes -> nodes.equals(List.of("node1")));
    assertTrue(http.service(name + "-replica/pgbeacon-lab/node1").isObject(), "the replica service is registered too");
    // (Eight JVMs starting at once on two cores may well make a first call slow: that is no TLS failure.)
    List<String> failures = beacon.lines().stream().filter(l -> l.contains(" WARN ")
        && (l.contains("TLS with Consul failed") || l.contains("Consul unreachable"))).toList();
    assertEquals(List.of(), failures, "no TLS failure on the way (" + beacon.log + ")");
  }

  private static void refusedAndRegisteredNothing(Beacon beacon) {
    beacon.assertAlive(); // it retries: a Consul that changes its mind is used at once
    String log = String.join("\n", beacon.lines());
    assertFalse(log.contains("\tat "), "no stack trace: " + log);
    List<String> ids = new ArrayList<>();
    http.get("/v1/agent/services").fieldNames().forEachRemaining(ids::add);
    assertTrue(ids.stream().noneMatch(id -> id.startsWith(beacon.name + "-")), ids.toString());
  }

  private static Map<String, String> with(Map<String, String> base, String... pairs) {
    Map<String, String> env = new LinkedHashMap<>(base);
    for (int i = 0; i < pairs.length; i += 2) {
      env.put(pairs[i], pairs[i + 1]);
    }
    return env;
  }

  private static void launch(String name, String consulYaml, Map<String, String> env) throws IOException {
    Path config = Files.writeString(dir.resolve(name + ".yml"), """
        patroni: {url: '%s', leader-key: 'service/{scope}/leader'}
        consul: %s
        services: {primary: {name: %s-primary}, replica: {name: %s-replica}}
        http: off
        """.formatted(patroni.url(), consulYaml, name, name));
    beacons.put(name, Beacon.start(name, config, env, dir.resolve(name + ".log")));
  }

  /** One pgbeacon process from the jar under test, through the launcher as the lab runs it, its log in a file; stopped by its PID. */
  private record Beacon(String name, Process process, Path log) implements AutoCloseable {

    static Beacon start(String name, Path config, Map<String, String> env, Path log) throws IOException {
      List<String> cmd = List.of(Components.repoFile("src/main/dist/bin/pgbeacon").toString(), "run", "--config",
          config.toString());
      ProcessBuilder builder = new ProcessBuilder(cmd).redirectErrorStream(true)
          .redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()));
      builder.environment().keySet().removeIf(k -> k.startsWith("CONSUL_")); // only what the case gives
      builder.environment().put("PGBEACON_JAR", Components.jar().toString());
      builder.environment().put("JAVA", Path.of(System.getProperty("java.home"), "bin", "java").toString());
      builder.environment().putAll(env);
      builder.environment().put("PGBEACON_LOG_LEVEL", "INFO");
      return new Beacon(name, builder.start(), log);
    }

    List<String> lines() {
      try {
        return Files.readAllLines(log);
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }

    String awaitLine(Pattern pattern) {
      try {
        return Await.until(name + ": a line matching " + pattern, SOON, () -> {
          assertAlive();
          return lines().stream().filter(l -> pattern.matcher(l).find()).findFirst();
        }, java.util.Optional::isPresent).orElseThrow();
      } catch (AssertionError e) {
        throw new AssertionError(e.getMessage() + "; its log:\n" + String.join("\n", lines()), e);
      }
    }

    void assertAlive() {
      if (!process.isAlive()) {
        throw new AssertionError(name + " exited with " + process.exitValue() + ":\n" + String.join("\n", lines()));
      }
    }

    @Override
    public void close() {
      process.destroy();
      try {
        if (!process.waitFor(15, TimeUnit.SECONDS)) {
          process.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }
}
