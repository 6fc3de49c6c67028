package io.pgbeacon.support;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * A real {@code consul agent -dev} on free loopback ports, started and stopped (by its own PID) by the test.
 * With a master token, ACLs are on with default policy deny.
 */
public final class ConsulDevAgent implements AutoCloseable {

  private final Path dir;
  private final String masterToken;
  private final String extraConfig;
  private final int httpPort = FreePorts.next();
  private final int dnsPort = FreePorts.next();
  private final int serverPort = FreePorts.next();
  private final int lanPort = FreePorts.next();
  private final int wanPort = FreePorts.next();
  private Process process;

  public ConsulDevAgent(Path dir, String masterToken) {
    this(dir, masterToken, "");
  }

  /** @param extraConfig more agent configuration (HCL), e.g. {@code check_reap_interval = "1s"} */
  public ConsulDevAgent(Path dir, String masterToken, String extraConfig) {
    this.dir = dir;
    this.masterToken = masterToken;
    this.extraConfig = extraConfig;
  }

  public ConsulDevAgent start() throws IOException {
    List<String> cmd = new ArrayList<>(List.of(Components.consul().toString(), "agent", "-dev",
        "-bind", "127.0.0.1", "-client", "127.0.0.1", "-log-level", "debug",
        "-http-port", Integer.toString(httpPort), "-dns-port", Integer.toString(dnsPort),
        "-server-port", Integer.toString(serverPort), "-serf-lan-port", Integer.toString(lanPort),
        "-serf-wan-port", Integer.toString(wanPort), "-grpc-port", "-1"));
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
    ConsulHttp http = new ConsulHttp(address(), masterToken);
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

  public String address() {
    return "127.0.0.1:" + httpPort;
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
