package io.pgbeacon.support;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * A real HAProxy (2.6, {@code /usr/sbin/haproxy}) for tests: checks a configuration, runs one in the foreground
 * in master-worker mode ({@code -W -db}), reads server states through its stats socket, and stops it by PID.
 *
 * <pre>{@code
 * try (Haproxy haproxy = Haproxy.start(cfg, dir)) {   // cfg: a HaproxyConfig, dir: a temporary directory
 *   Await.until("pg1 DOWN", Duration.ofSeconds(5), () -> haproxy.server("pg_write", "pg1"), s -> !s.up());
 * }
 * }</pre>
 */
public final class Haproxy implements AutoCloseable {

  private final Process process;
  private final Path socket;
  private final Path log;

  private Haproxy(Process process, Path socket, Path log) {
    this.process = process;
    this.socket = socket;
    this.log = log;
  }

  /** The binary; a missing HAProxy fails the test with the command that installs it. */
  public static Path binary() {
    return Components.require("haproxy", "/usr/sbin/haproxy", "/usr/local/sbin/haproxy");
  }

  /** {@code haproxy -c -f file}: returns its output (warnings); fails with the output when the file is invalid. */
  public static String check(Path file) {
    try {
      Process p = new ProcessBuilder(binary().toString(), "-c", "-f", file.toString()).redirectErrorStream(true)
          .start();
      String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      if (!p.waitFor(30, TimeUnit.SECONDS) || p.exitValue() != 0) {
        throw new AssertionError("haproxy -c -f " + file + " failed:\n" + output);
      }
      return output;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  /** Writes {@code cfg} into {@code dir}, checks it ({@code -c}) and starts it. */
  public static Haproxy start(HaproxyConfig cfg, Path dir) throws IOException {
    Path file = cfg.write(dir);
    check(file);
    return start(file, cfg.statsSocket());
  }

  /**
   * Starts {@code haproxy -W -db -f file} and waits until its stats socket answers. Output goes to
   * {@code <file>.log} beside the file ({@link #output()}).
   */
  public static Haproxy start(Path file, Path statsSocket) throws IOException {
    Path log = file.resolveSibling(file.getFileName() + ".log");
    Files.deleteIfExists(statsSocket);
    Process process = new ProcessBuilder(binary().toString(), "-W", "-db", "-f", file.toString())
        .redirectErrorStream(true).redirectOutput(log.toFile()).start();
    Haproxy haproxy = new Haproxy(process, statsSocket, log);
    try {
      Await.until("HAProxy's stats socket " + statsSocket, Duration.ofSeconds(10), () -> {
        if (!process.isAlive()) {
          throw new AssertionError("haproxy exited with " + process.exitValue() + ":\n" + haproxy.output());
        }
        return haproxy.command("show info");
      }, info -> info.contains("Pid:"));
    } catch (AssertionError | RuntimeException e) {
      haproxy.close();
      throw e;
    }
    return haproxy;
  }

  /** The master's PID (the workers are its children and stop with it). */
  public long pid() {
    return process.pid();
  }

  /** One command on the stats socket (e.g. {@code show stat}, {@code set server b/s state ready}); its answer. */
  public String command(String command) {
    return command(socket, command);
  }

  /** One command on any HAProxy's stats socket, e.g. one this test did not start (the lab's). */
  public static String command(Path socket, String command) {
    try (SocketChannel channel = SocketChannel.open(StandardProtocolFamily.UNIX)) {
      channel.connect(UnixDomainSocketAddress.of(socket));
      channel.write(ByteBuffer.wrap((command + "\n").getBytes(StandardCharsets.US_ASCII)));
      ByteArrayOutputStream out = new ByteArrayOutputStream();
      ByteBuffer buffer = ByteBuffer.allocate(8192);
      while (channel.read(buffer) >= 0) { // HAProxy closes after one answer
        out.write(buffer.array(), 0, buffer.position());
        buffer.clear();
      }
      return out.toString(StandardCharsets.US_ASCII);
    } catch (IOException e) {
      throw new UncheckedIOException("stats socket " + socket + ": " + command, e);
    }
  }

  /** {@code show servers state <backend>}: one row per server, in configuration order. */
  public List<ServerState> serversState(String backend) {
    String answer = command("show servers state " + backend);
    List<ServerState> rows = new ArrayList<>();
    String[] header = null;
    for (String line : answer.split("\n")) {
      if (line.startsWith("# ")) {
        header = line.substring(2).trim().split(" ");
      } else if (header != null && !line.isBlank()) {
        rows.add(ServerState.parse(header, line.trim().split(" ")));
      }
    }
    if (header == null) {
      throw new IllegalStateException("no such backend '" + backend + "': " + answer.strip());
    }
    return rows;
  }

  /** One server of {@link #serversState}. */
  public ServerState server(String backend, String server) {
    return serversState(backend).stream().filter(s -> s.server().equals(server)).findFirst()
        .orElseThrow(() -> new IllegalStateException("no server " + backend + "/" + server));
  }

  /** {@code show stat <backend> 4 -1}: the CSV rows of the backend's servers, by column name. */
  public List<StatRow> stat(String backend) {
    return stat(socket, backend);
  }

  /** As {@link #stat(String)}, on any HAProxy's stats socket. */
  public static List<StatRow> stat(Path socket, String backend) {
    String answer = command(socket, "show stat " + backend + " 4 -1");
    List<StatRow> rows = new ArrayList<>();
    String[] header = null;
    for (String line : answer.split("\n")) {
      if (line.startsWith("# ")) {
        header = line.substring(2).split(",", -1);
      } else if (header != null && !line.isBlank()) {
        String[] values = line.split(",", -1);
        Map<String, String> fields = new HashMap<>();
        for (int i = 0; i < header.length && i < values.length; i++) {
          fields.put(header[i], values[i]);
        }
        rows.add(new StatRow(fields));
      }
    }
    return rows;
  }

  /** Server name → status ({@code UP}, {@code DOWN (agent)}, {@code MAINT}, {@code DRAIN (agent)}, …), sorted. */
  public static Map<String, String> statuses(Path socket, String backend) {
    Map<String, String> out = new java.util.TreeMap<>();
    stat(socket, backend).forEach(row -> out.put(row.server(), row.status()));
    return out;
  }

  /** The servers of {@code backend} that take new connections now (status exactly {@code UP}), sorted by name. */
  public static List<String> up(Path socket, String backend) {
    return statuses(socket, backend).entrySet().stream().filter(e -> e.getValue().equals("UP"))
        .map(Map.Entry::getKey).toList();
  }

  /** The addresses ({@code host:port}) of the UP servers of {@code backend}: DNS-discovered servers. */
  public static List<String> upAddresses(Path socket, String backend) {
    return stat(socket, backend).stream().filter(row -> row.status().equals("UP")).map(row -> row.get("addr"))
        .toList();
  }

  /** One server of {@link #stat}. */
  public StatRow stat(String backend, String server) {
    return stat(backend).stream().filter(s -> s.server().equals(server)).findFirst()
        .orElseThrow(() -> new IllegalStateException("no server " + backend + "/" + server));
  }

  /** What HAProxy has written so far (its log goes to stdout in the rewritten configurations). */
  public String output() {
    try {
      return Files.exists(log) ? Files.readString(log) : "";
    } catch (IOException e) {
      return "(cannot read " + log + ": " + e + ")";
    }
  }

  /** Stops the master by PID (SIGTERM; it stops its workers), then waits for it; SIGKILL after 10 s. */
  @Override
  public void close() {
    process.destroy();
    try {
      if (!process.waitFor(10, TimeUnit.SECONDS)) {
        process.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /**
   * A row of {@code show servers state}.
   *
   * @param opState 0 stopped (DOWN), 1 starting, 2 running (UP), 3 stopping
   * @param adminState bit mask: 0x01 forced maint (CLI or agent), 0x02 inherited maint, 0x04 maint from the
   *     configuration, 0x08 forced drain, 0x10 inherited drain, 0x20 maint because DNS resolution failed, 0x40
   *     the FQDN was set at run time (e.g. from an SRV record; not a maintenance)
   * @param weight the current (user) weight; an agent's {@code N%} changes it
   */
  public record ServerState(String backend, String server, String address, int port, int opState, int adminState,
      int weight, int initialWeight) {

    static ServerState parse(String[] header, String[] values) {
      Map<String, String> f = new HashMap<>();
      for (int i = 0; i < header.length && i < values.length; i++) {
        f.put(header[i], values[i]);
      }
      return new ServerState(f.get("be_name"), f.get("srv_name"), f.get("srv_addr"),
          Integer.parseInt(f.get("srv_port")), Integer.parseInt(f.get("srv_op_state")),
          Integer.parseInt(f.get("srv_admin_state")), Integer.parseInt(f.get("srv_uweight")),
          Integer.parseInt(f.get("srv_iweight")));
    }

    /** Running and not in maintenance (it may still be draining or weigh 0). */
    public boolean up() {
      return opState == 2 && !maint();
    }

    public boolean maint() {
      return (adminState & (0x01 | 0x02 | 0x04 | 0x20)) != 0;
    }

    public boolean drain() {
      return (adminState & (0x08 | 0x10)) != 0;
    }

    @Override
    public String toString() {
      return backend + "/" + server + " " + address + ":" + port + " op=" + opState + " admin=" + adminState
          + " weight=" + weight;
    }
  }

  /**
   * A server row of {@code show stat}, by HAProxy's column names ({@code status}, {@code weight},
   * {@code check_status}, {@code last_agt}, {@code agent_status}, …).
   */
  public record StatRow(Map<String, String> fields) {

    public String server() {
      return fields.get("svname");
    }

    /** {@code UP}, {@code DOWN}, {@code DOWN (agent)}, {@code MAINT}, {@code DRAIN (agent)}, {@code no check}, … */
    public String status() {
      return fields.get("status");
    }

    public int weight() {
      return Integer.parseInt(fields.get("weight"));
    }

    /** The regular check's last result: {@code L4OK}, {@code L7OK}, {@code L4CON} (refused), {@code L7TOUT}, … */
    public String checkStatus() {
      return fields.get("check_status").replace("* ", ""); // "* ": a check is running
    }

    /** The regular check's last message, e.g. {@code Connection refused at step 2 of tcp-check (…) comment: '…'}. */
    public String lastCheck() {
      return fields.get("last_chk");
    }

    /** The agent's last answer as HAProxy read it, e.g. {@code via agent : down (PgBouncer: …)}. */
    public String lastAgentCheck() {
      return fields.get("last_agt");
    }

    public String get(String column) {
      return fields.get(column);
    }

    @Override
    public String toString() {
      return server() + " " + status() + " weight=" + fields.get("weight") + " check=" + fields.get("check_status")
          + " '" + lastCheck() + "' agent=" + fields.get("agent_status") + " '" + lastAgentCheck() + "'";
    }
  }
}
