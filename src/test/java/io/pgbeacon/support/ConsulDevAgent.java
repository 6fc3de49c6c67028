package io.pgbeacon.support;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * A real {@code consul agent -dev} on free loopback ports, started and stopped (by its own PID) by the test.
 * With a master token, ACLs are on with default policy deny. {@link #https} makes one that serves HTTPS only and
 * asks every client for a certificate.
 */
public final class ConsulDevAgent implements AutoCloseable {

  /**
   * The agent's certificates, made by {@code consul tls} as an operator makes them: a CA, a server certificate for
   * {@code server.dc1.consul} (and, as {@code consul tls} always adds them, localhost and 127.0.0.1) and a client
   * certificate, each key EC in SEC1 ({@code BEGIN EC PRIVATE KEY}).
   */
  public record Tls(Path ca, Path serverCert, Path serverKey, Path clientCert, Path clientKey) {}

  private final Path dir;
  private final String masterToken;
  private final String extraConfig;
  private final int httpPort;
  private final int dnsPort;
  private final int serverPort;
  private final int lanPort;
  private final int wanPort;
  private final Tls tls;
  private Process process;

  public ConsulDevAgent(Path dir, String masterToken) {
    this(dir, masterToken, "");
  }

  /** @param extraConfig more agent configuration (HCL), e.g. {@code check_reap_interval = "1s"} */
  public ConsulDevAgent(Path dir, String masterToken, String extraConfig) {
    this(dir, masterToken, extraConfig, new int[] {FreePorts.next(), FreePorts.next(), FreePorts.next(),
        FreePorts.next(), FreePorts.next()}, null);
  }

  private ConsulDevAgent(Path dir, String masterToken, String extraConfig, int[] ports, Tls tls) {
    this.dir = dir;
    this.masterToken = masterToken;
    this.extraConfig = extraConfig;
    this.httpPort = ports[0];
    this.dnsPort = ports[1];
    this.serverPort = ports[2];
    this.lanPort = ports[3];
    this.wanPort = ports[4];
    this.tls = tls;
  }

  /**
   * An agent with HTTPS on {@code basePort} and no plain HTTP, with {@code verify_incoming}: a client without a
   * certificate from the agent's CA is refused in the handshake. Its certificates are made now, in {@code dir/tls}.
   * It listens on 127.0.0.1 and on 127.0.0.2, an address its certificate does not name. Ports {@code basePort} to
   * {@code basePort + 4}.
   */
  public static ConsulDevAgent https(Path dir, int basePort) throws IOException {
    Path certs = Files.createDirectories(dir.resolve("tls"));
    consulTls(certs, "ca", "create");
    consulTls(certs, "cert", "create", "-server");
    consulTls(certs, "cert", "create", "-client");
    Tls tls = new Tls(certs.resolve("consul-agent-ca.pem"), certs.resolve("dc1-server-consul-0.pem"),
        certs.resolve("dc1-server-consul-0-key.pem"), certs.resolve("dc1-client-consul-0.pem"),
        certs.resolve("dc1-client-consul-0-key.pem"));
    // verify_outgoing: the dev server's own RPC to itself (autopilot's health checks) goes over TLS too.
    String hcl = """
        ports { http = -1, https = %d }
        ca_file = "%s"
        cert_file = "%s"
        key_file = "%s"
        verify_incoming = true
        verify_outgoing = true
        """.formatted(basePort, tls.ca(), tls.serverCert(), tls.serverKey());
    return new ConsulDevAgent(dir, null, hcl, new int[] {basePort, basePort + 1, basePort + 2, basePort + 3,
        basePort + 4}, tls);
  }

  /** {@code consul tls ARGS} in {@code dir}, where it writes what it makes. */
  public static void consulTls(Path dir, String... args) throws IOException {
    List<String> cmd = new ArrayList<>(List.of(Components.consul().toString(), "tls"));
    cmd.addAll(List.of(args));
    Process p = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true).start();
    try {
      String out = new String(p.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
      if (!p.waitFor(30, java.util.concurrent.TimeUnit.SECONDS) || p.exitValue() != 0) {
        throw new IllegalStateException(String.join(" ", cmd) + " failed: " + out);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      p.destroyForcibly();
      throw new IllegalStateException(e);
    }
  }

  public ConsulDevAgent start() throws IOException {
    List<String> cmd = new ArrayList<>(List.of(Components.consul().toString(), "agent", "-dev",
        "-bind", "127.0.0.1", "-client", tls == null ? "127.0.0.1" : "127.0.0.1 127.0.0.2", "-log-level", "debug",
        "-dns-port", Integer.toString(dnsPort),
        "-server-port", Integer.toString(serverPort), "-serf-lan-port", Integer.toString(lanPort),
        "-serf-wan-port", Integer.toString(wanPort), "-grpc-port", "-1"));
    if (tls == null) {
      // The flag would win over the config file's ports { http = -1 }.
      cmd.addAll(List.of("-http-port", Integer.toString(httpPort)));
    }
    if (masterToken != null) {
      Path hcl = dir.resolve("acl.hcl");
      Files.writeString(hcl, "acl { enabled = true\n default_policy = \"deny\"\n enable_token_persistence = false\n"
          + " tokens { master = \"" + masterToken + "\"\n agent = \"" + masterToken + "\" } }\n");
      cmd.add("-config-file");
      cmd.add(hcl.toString());
    }
    if (!extraConfig.isEmpty()) {
      Path hcl = dir.resolve("extra.hcl");
      Files.writeString(hcl, extraConfig);
      cmd.add("-config-file");
      cmd.add(hcl.toString());
    }
    process = new ProcessBuilder(cmd).redirectErrorStream(true)
        .redirectOutput(ProcessBuilder.Redirect.appendTo(log().toFile())).start();
    ConsulHttp http = tls == null ? new ConsulHttp(address(), masterToken) : ConsulHttp.overTls(address(), tls);
    Await.until("consul agent on " + address() + " (log " + log() + ")", Duration.ofSeconds(30),
        () -> http.get("/v1/status/leader").asText(), leader -> !leader.isEmpty());
    return this;
  }

  /** Like a real agent restart in -dev mode: it forgets every service. */
  public void restart() throws IOException {
    stop();
    start();
  }

  /** Sends {@code signal} (e.g. STOP, CONT) to the agent process: a stalled agent, as in a long GC or I/O pause. */
  public void signal(String signal) {
    Signals.send(process.pid(), signal);
  }

  /**
   * SIGKILL, as a crash or the OOM killer: no shutdown, and its port refuses connections from the moment this returns.
   * {@link #start} brings it back on the same ports, empty (-dev).
   */
  public void kill() throws InterruptedException {
    signal("KILL");
    if (!process.waitFor(10, java.util.concurrent.TimeUnit.SECONDS)) {
      throw new AssertionError("consul agent " + process.pid() + " still running 10 s after SIGKILL");
    }
  }

  /** host:port of the HTTP API; of the HTTPS API for an agent made by {@link #https}. */
  public String address() {
    return "127.0.0.1:" + httpPort;
  }

  /** The certificates of an agent made by {@link #https}. */
  public Tls tls() {
    if (tls == null) {
      throw new IllegalStateException("a plain HTTP agent");
    }
    return tls;
  }

  /** What a consumer sees through the agent's API, with the client certificate for an HTTPS agent. */
  public ConsulHttp http() {
    return tls == null ? new ConsulHttp(address(), masterToken) : ConsulHttp.overTls(address(), tls);
  }

  public int dnsPort() {
    return dnsPort;
  }

  public Path log() {
    return dir.resolve("consul.log");
  }

  public void stop() {
    if (process != null && process.isAlive()) {
      process.destroy();
      try {
        if (!process.waitFor(10, java.util.concurrent.TimeUnit.SECONDS)) {
          process.destroyForcibly().waitFor();
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }

  @Override
  public void close() {
    stop();
  }
}
