package io.pgbeacon.consul;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.pgbeacon.support.Await;
import io.pgbeacon.support.Components;
import io.pgbeacon.support.ConsulTemplate;
import io.pgbeacon.support.ConsulDevAgent;
import io.pgbeacon.support.ConsulHttp;
import io.pgbeacon.support.FreePorts;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.net.ConnectException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Objects;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.io.TempDir;

/**
 * The project's consul/consul-template.hcl and consul/haproxy.cfg.ctmpl, run by the real consul-template against
 * a real Consul agent (ACLs on, default deny; a token of consul/consul-template-acl-policy.hcl in the environment),
 * driving a real HAProxy 2.6 in master-worker mode.
 *
 * <p>Three fake Patroni nodes register {@code patroni-primary} and {@code patroni-replica} with TTL checks, the
 * way pgbeacon does; their "PgBouncers" are tiny loopback servers that answer with the node's name and close, so
 * a connection through HAProxy tells where it was routed. A fourth node of another scope passes as primary too:
 * the template's scope filter keeps it out. The tests share one setup and run in order: a failover, then an
 * invalid template on top of the state it left.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class ConsulTemplateIT {

  private static final String MANAGEMENT_TOKEN = "3c2f4b1e-7a9d-4e6f-9b0a-5d8c7e6f1a2b";
  private static final String SCOPE = "ct-it";
  private static final Duration SOON = Duration.ofSeconds(10);
  private static final String WRITE = "postgres-write";
  private static final String READ = "postgres-read";

  @TempDir static Path dir;
  static ConsulDevAgent consul;
  static final ObjectMapper JSON = new ObjectMapper();
  static final Map<String, NodeStandIn> nodes = new LinkedHashMap<>();
  /** consul-template's working directory: the template, its render, the live haproxy.cfg. */
  static Path work;
  static Path statsSocket;
  static int writePort;
  static int readPort;
  static Process consulTemplate;
  static Process haproxy;

  @BeforeAll
  static void start() throws Exception {
    Components.consulTemplate(); // a missing binary fails here, before anything starts
    Path haproxyBin = Components.haproxy();

    Files.createDirectories(dir.resolve("consul"));
    consul = new ConsulDevAgent(dir.resolve("consul"), MANAGEMENT_TOKEN).start();
    for (String node : List.of("node1", "node2", "node3", "other1")) {
      nodes.put(node, new NodeStandIn(node));
    }
    for (String node : List.of("node1", "node2", "node3")) {
      register("patroni-primary", node, SCOPE);
      register("patroni-replica", node, SCOPE);
    }
    register("patroni-primary", "other1", "other-cluster");
    pass("patroni-primary", "node1");
    pass("patroni-replica", "node2");
    pass("patroni-replica", "node3");
    pass("patroni-primary", "other1");

    work = Files.createDirectories(dir.resolve("haproxy"));
    statsSocket = work.resolve("admin.sock");
    writePort = FreePorts.next();
    readPort = FreePorts.next();

    ProcessBuilder ct = ConsulTemplate.command(work, consul.address(), Optional.of(tokenOfThePolicy()), SCOPE,
        writePort, readPort, statsSocket, dir.resolve("consul-template.log"));
    consulTemplate = ct.start();

    // The first render, validated and installed by the reload script (no HAProxy to signal yet).
    Path live = work.resolve("haproxy.cfg");
    Await.until("consul-template's first haproxy.cfg (log " + dir.resolve("consul-template.log") + ")", SOON,
        () -> Files.exists(live), exists -> exists);

    haproxy = new ProcessBuilder(haproxyBin.toString(), "-W", "-f", live.toString(),
        "-p", work.resolve("haproxy.pid").toString())
        .directory(work.toFile()).redirectErrorStream(true)
        .redirectOutput(ProcessBuilder.Redirect.appendTo(dir.resolve("haproxy.log").toFile())).start();
    Await.until("a server in HAProxy's write backend (stats socket " + statsSocket + ", logs in " + dir + ")",
        SOON, () -> servers(WRITE), servers -> !servers.isEmpty());
  }

  @AfterAll
  static void stop() {
    stopProcess(consulTemplate);
    if (haproxy != null) {
      // The master stops its workers; a replaced worker still finishing sessions is stopped by its PID too.
      List<ProcessHandle> workers = haproxy.descendants().toList();
      stopProcess(haproxy);
      workers.forEach(w -> {
        w.destroy();
        w.onExit().orTimeout(5, TimeUnit.SECONDS).exceptionally(e -> null).join();
      });
    }
    nodes.values().forEach(NodeStandIn::close);
    if (consul != null) {
      consul.close();
    }
  }

  @Test
  @Order(1)
  void rendersAValidConfigWhoseWriteBackendIsExactlyThePassingPrimary() throws Exception {
    Process check = new ProcessBuilder(Components.haproxy().toString(), "-c", "-f",
        work.resolve("haproxy.cfg").toString()).redirectErrorStream(true).start();
    String output = new String(check.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertEquals(0, check.waitFor(), "haproxy -c on the rendered config: " + output);

    // other1 passes patroni-primary too, but in another scope.
    assertEquals(List.of(server("node1")), servers(WRITE));
    assertEquals(List.of(server("node2"), server("node3"), backup("node1")), readServers(),
        "the passing replicas, and the primary as backup");
    assertEquals("node1", through(writePort));
    assertTrue(List.of("node2", "node3").contains(through(readPort)), "reads go to a replica");
  }

  @Test
  @Order(2)
  void followsAFailoverAndKeepsTheWriteListenerUpThroughEveryReload() throws Exception {
    long master = haproxy.pid();
    long workerBefore = workerPid();
    ListenerProbe probe = ListenerProbe.start(writePort);
    probe.awaitMoreConnects(5); // probing before the first change

    // node1 stops being the primary: no passing primary, so no server in the write backend.
    fail("patroni-primary", "node1");
    Await.until("an empty write backend", SOON, () -> servers(WRITE), List::isEmpty);
    // With no passing primary HAProxy accepts and closes: no node answers. (Routing follows the stats socket
    // within milliseconds: the replaced worker accepts until the new one is ready.)
    Await.until("write connections closed by HAProxy", SOON, () -> through(writePort), Objects::isNull);

    // node2 is promoted, node1 comes back as a replica.
    pass("patroni-primary", "node2");
    fail("patroni-replica", "node2");
    pass("patroni-replica", "node1");
    Await.until("node2 alone in the write backend", SOON, () -> servers(WRITE), List.of(server("node2"))::equals);
    Await.until("node1 and node3 in the read backend, node2 as backup", SOON, ConsulTemplateIT::readServers,
        List.of(server("node1"), server("node3"), backup("node2"))::equals);
    Await.until("writes routed to node2", SOON, () -> through(writePort), "node2"::equals);

    probe.awaitMoreConnects(5); // and after the last reload
    probe.stop();
    assertEquals(List.of(), probe.failures, "connections to the write listener that failed during the reloads");
    assertEquals(master, Long.parseLong(Files.readString(work.resolve("haproxy.pid")).trim()),
        "the same master, reloaded (not restarted)");
    assertNotEquals(workerBefore, workerPid(), "a new worker took over");
    assertTrue(haproxy.isAlive());
  }

  @Test
  @Order(3)
  void neverInstallsAnInvalidRenderAndKeepsServingTheLastGoodConfig() throws Exception {
    Path live = work.resolve("haproxy.cfg");
    Path rejected = work.resolve("haproxy.cfg.rejected");
    Path template = work.resolve("haproxy.cfg.ctmpl");
    String good = Files.readString(template);
    String broken = good.replace("\nglobal\n", "\nglobal\n    this-is-not-an-haproxy-keyword\n");
    assertNotEquals(good, broken);
    byte[] liveBefore = Files.readAllBytes(live);
    long workerBefore = workerPid();

    // An operator installs a broken template and reloads consul-template; then a failover happens.
    Files.writeString(template, broken);
    signal(consulTemplate, "HUP");
    Await.until("the broken template's first render rejected", SOON, () -> Files.exists(rejected), e -> e);
    fail("patroni-primary", "node2");
    pass("patroni-primary", "node3");

    Await.until("the render naming node3 as primary rejected", SOON,
        () -> Files.exists(rejected) ? writeSection(read(rejected)) : "",
        section -> section.contains("server node3 "));
    assertArrayEquals(liveBefore, Files.readAllBytes(live), "the live config is untouched");
    assertEquals(workerBefore, workerPid(), "HAProxy was not reloaded");
    assertEquals(List.of(server("node2")), servers(WRITE), "HAProxy still runs the last good config");
    assertEquals("node2", through(writePort), "and still serves it");
    assertTrue(consulTemplate.isAlive(), "consul-template keeps watching");

    // The template fixed: the next render goes through.
    Files.writeString(template, good);
    signal(consulTemplate, "HUP");
    Await.until("node3 alone in the write backend", SOON, () -> servers(WRITE), List.of(server("node3"))::equals);
    Await.until("writes routed to node3", SOON, () -> through(writePort), "node3"::equals);
    assertFalse(Files.exists(rejected), "the reject marker is gone once a render is installed");
  }

  // --- Consul, as pgbeacon uses it ---

  private static void register(String service, String node, String scope) {
    put("/v1/agent/service/register", """
        {"ID": "%s/%s/%s", "Name": "%s", "Tags": ["%s"], "Address": "127.0.0.1", "Port": %d,
         "Meta": {"node": "%s", "scope": "%s"},
         "Check": {"TTL": "10m", "DeregisterCriticalServiceAfter": "10m"}}"""
        .formatted(service, scope, node, service, scope, nodes.get(node).port(), node, scope));
  }

  private static void pass(String service, String node) {
    put("/v1/agent/check/pass/service:" + service + "/" + scopeOf(node) + "/" + node, "");
  }

  private static void fail(String service, String node) {
    put("/v1/agent/check/fail/service:" + service + "/" + scopeOf(node) + "/" + node, "");
  }

  /** The service IDs carry the scope (patroni-primary/<scope>/<node>); other1 is the other cluster's. */
  private static String scopeOf(String node) {
    return node.equals("other1") ? "other-cluster" : SCOPE;
  }

  /** A token with exactly consul/consul-template-acl-policy.hcl: the template must render with no more. */
  private static String tokenOfThePolicy() throws IOException {
    String rules = Files.readString(Components.repoFile("consul/consul-template-acl-policy.hcl"));
    put("/v1/acl/policy", JSON.writeValueAsString(Map.of("Name", "pgbeacon-consul-template", "Rules", rules)));
    String token = put("/v1/acl/token", "{\"Policies\": [{\"Name\": \"pgbeacon-consul-template\"}]}");
    return JSON.readTree(token).path("SecretID").asText();
  }

  /** A write with the management token; the answer's body. */
  private static String put(String path, String body) {
    return new ConsulHttp(consul.address(), MANAGEMENT_TOKEN).put(path, body);
  }

  // --- HAProxy, as an operator sees it ---

  /** "name address:port" of each server of a backend, from {@code show servers state}. */
  private static List<String> servers(String backend) {
    String[] lines = admin("show servers state " + backend).split("\n");
    List<String> columns = List.of();
    List<String> servers = new ArrayList<>();
    for (String line : lines) {
      if (line.startsWith("# ")) {
        columns = Arrays.asList(line.substring(2).split(" "));
      } else if (!columns.isEmpty() && !line.isBlank()) {
        String[] f = line.split(" ");
        servers.add(f[columns.indexOf("srv_name")] + " " + f[columns.indexOf("srv_addr")] + ":"
            + f[columns.indexOf("srv_port")]);
      }
    }
    if (columns.isEmpty()) {
      throw new IllegalStateException("show servers state " + backend + ": " + String.join("\n", lines));
    }
    return servers;
  }

  /** The read backend's servers as {@link #servers}, backup servers marked (from {@code show stat}'s bck). */
  private static List<String> readServers() {
    String[] lines = admin("show stat " + READ + " 4 -1").split("\n");
    if (lines.length == 0 || !lines[0].startsWith("# ")) {
      throw new IllegalStateException("show stat " + READ + ": " + String.join("\n", lines));
    }
    List<String> columns = Arrays.asList(lines[0].substring(2).split(","));
    List<String> servers = new ArrayList<>();
    for (int i = 1; i < lines.length; i++) {
      if (lines[i].isBlank()) {
        continue;
      }
      String[] f = lines[i].split(",", -1);
      servers.add(f[columns.indexOf("svname")] + " " + f[columns.indexOf("addr")]
          + ("1".equals(f[columns.indexOf("bck")]) ? " backup" : ""));
    }
    return servers;
  }

  private static long workerPid() {
    for (String line : admin("show info").split("\n")) {
      if (line.startsWith("Pid: ")) {
        return Long.parseLong(line.substring(5).trim());
      }
    }
    throw new IllegalStateException("no Pid in show info");
  }

  /** One command on HAProxy's stats socket (level admin); HAProxy answers and closes. */
  private static String admin(String command) {
    try (SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX)) {
      ch.connect(UnixDomainSocketAddress.of(statsSocket));
      ch.write(ByteBuffer.wrap((command + "\n").getBytes(StandardCharsets.US_ASCII)));
      StringBuilder out = new StringBuilder();
      ByteBuffer buf = ByteBuffer.allocate(8192);
      while (ch.read(buf) >= 0) {
        out.append(new String(buf.array(), 0, buf.position(), StandardCharsets.US_ASCII));
        buf.clear();
      }
      return out.toString();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private static String server(String node) {
    return node + " 127.0.0.1:" + nodes.get(node).port();
  }

  private static String read(Path file) {
    try {
      return Files.readString(file);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private static String backup(String primary) {
    return primary + "_primary 127.0.0.1:" + nodes.get(primary).port() + " backup";
  }

  /** The write listener's part of a rendered config. */
  private static String writeSection(String config) {
    int from = config.indexOf("listen " + WRITE);
    int to = config.indexOf("listen " + READ);
    return from < 0 || to < from ? "" : config.substring(from, to);
  }

  /** Connects through an HAProxy listener: the name of the node that answered, or null when HAProxy closed. */
  private static String through(int port) {
    try (Socket s = new Socket()) {
      s.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 2000);
      s.setSoTimeout(5000);
      return new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.US_ASCII)).readLine();
    } catch (SocketException e) {
      if (String.valueOf(e.getMessage()).contains("reset")) {
        return null; // closed by HAProxy without a server, as a reset rather than a FIN
      }
      throw new UncheckedIOException(e);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private static void signal(Process process, String signal) throws Exception {
    Process kill = new ProcessBuilder("kill", "-" + signal, Long.toString(process.pid())).start();
    assertEquals(0, kill.waitFor(), "kill -" + signal + " " + process.pid());
  }

  private static void stopProcess(Process process) {
    if (process == null || !process.isAlive()) {
      return;
    }
    process.destroy();
    try {
      if (!process.waitFor(10, TimeUnit.SECONDS)) {
        process.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /** A node's PgBouncer, as far as HAProxy can tell: accepts, says the node's name, closes. */
  private static final class NodeStandIn implements AutoCloseable {
    private final ServerSocket server;

    NodeStandIn(String name) throws IOException {
      server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
      Thread t = new Thread(() -> {
        while (!server.isClosed()) {
          try (Socket s = server.accept()) {
            s.getOutputStream().write((name + "\n").getBytes(StandardCharsets.US_ASCII));
          } catch (IOException e) {
            // closed by close(), or a client that went away first: next one
          }
        }
      }, "stand-in-" + name);
      t.setDaemon(true);
      t.start();
    }

    int port() {
      return server.getLocalPort();
    }

    @Override
    public void close() {
      try {
        server.close();
      } catch (IOException e) {
        // closing anyway
      }
    }
  }

  /** Connects to a listener every ~10 ms and records every attempt that fails. */
  private static final class ListenerProbe {
    final AtomicInteger connects = new AtomicInteger();
    final List<String> failures = new CopyOnWriteArrayList<>();
    private final Thread thread;
    private volatile boolean running = true;

    private ListenerProbe(int port) {
      InetSocketAddress address = new InetSocketAddress(InetAddress.getLoopbackAddress(), port);
      thread = new Thread(() -> {
        while (running) {
          try (Socket s = new Socket()) {
            s.connect(address, 1000);
            connects.incrementAndGet();
          } catch (ConnectException e) {
            failures.add("refused after " + connects.get() + " connects: " + e.getMessage());
          } catch (IOException e) {
            failures.add("failed after " + connects.get() + " connects: " + e);
          }
          Await.pause(Duration.ofMillis(10));
        }
      }, "listener-probe-" + port);
      thread.setDaemon(true);
    }

    static ListenerProbe start(int port) {
      ListenerProbe probe = new ListenerProbe(port);
      probe.thread.start();
      return probe;
    }

    void awaitMoreConnects(int more) {
      int target = connects.get() + more;
      Await.until(more + " more connects to the listener", SOON, () -> connects.get() >= target || !failures.isEmpty(),
          done -> done);
    }

    void stop() throws InterruptedException {
      running = false;
      thread.join(5000);
    }
  }
}
