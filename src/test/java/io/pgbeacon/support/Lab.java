package io.pgbeacon.support;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * The real-cluster lab ({@code scripts/lab.sh}): a Consul server and three nodes, each on its own loopback address
 * with a Consul client agent, Patroni with PostgreSQL, PgBouncer and one pgbeacon (the jar under test); HAProxy
 * in front, driven by pgbeacon's agent ports. Started once for the whole integration run and stopped
 * (by PID, by the script) when the run ends. Use with {@code @ExtendWith(Lab.class)} and {@link #get()}.
 */
public final class Lab implements BeforeAllCallback {

  /**
   * How the lab runs pgbeacon: through the launcher a user installs ({@code src/main/dist/bin/pgbeacon}, with its JVM
   * options), on the jar under test, as {@code scripts/demo.sh} does. So the end-to-end suite runs the daemon with
   * the heap and thread limits users get, and would show an option that starves it.
   */
  public static String pgbeaconCommand(Path jar) {
    return "env PGBEACON_JAR=" + jar.toAbsolutePath() + " " + Components.repoFile("src/main/dist/bin/pgbeacon");
  }

  private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
  private static final ObjectMapper JSON = new ObjectMapper();
  private static Lab instance;
  /** A start that failed, rethrown to every later test class instead of trying again for minutes. */
  private static AssertionError failedStart;

  private final Path script = Components.repoFile("scripts/lab.sh");
  private final Map<String, String> settings = new LinkedHashMap<>();
  private Map<String, String> env;

  /** For JUnit, which instantiates the extension; the lab itself is made in {@link #beforeAll}. */
  private Lab() {
    this("", "0", "");
  }

  private Lab(String dir, String basePort, String patroni) {
    this(dir, basePort, patroni, pgbeaconCommand(Components.jar()));
  }

  private Lab(String dir, String basePort, String patroni, String pgbeacon) {
    settings.put("LAB_DIR", dir);
    settings.put("LAB_BASE_PORT", basePort);
    settings.put("LAB_PATRONI", patroni);
    settings.put("LAB_PGBEACON", pgbeacon);
  }

  /**
   * A lab outside JUnit (benchmarks): started (after stopping leftovers) now, stopped by {@link #stop()}. A start
   * that fails stops whatever it had started before the error propagates.
   */
  public static Lab start(String dir, int basePort, String patroni) {
    return start(new Lab(dir, Integer.toString(basePort), patroni));
  }

  /** As {@link #start(String, int, String)}, but no node runs a pgbeacon: for benchmarks that run their own. */
  public static Lab startWithoutPgbeacon(String dir, int basePort, String patroni) {
    return start(new Lab(dir, Integer.toString(basePort), patroni, ""));
  }

  /**
   * As {@link #start(String, int, String)}, each node's pgbeacon run by {@code pgbeacon} (lab.sh's LAB_PGBEACON: a
   * command, or {@code package} for the installed Debian package's {@code /usr/bin/pgbeacon}).
   */
  public static Lab startWithPgbeacon(String dir, int basePort, String patroni, String pgbeacon) {
    return start(new Lab(dir, Integer.toString(basePort), patroni, pgbeacon));
  }

  /**
   * As {@link #start(String, int, String)}, with more of lab.sh's settings: e.g. {@code LAB_CONSUL_OF} (a second
   * cluster on this lab's Consul agents), {@code LAB_STANDBY_OF} (a standby cluster of this lab's), {@code LAB_SCOPE},
   * {@code LAB_NODES}, {@code LAB_ADDR_BASE}.
   */
  public static Lab startWith(String dir, int basePort, String patroni, Map<String, String> more) {
    Lab lab = new Lab(dir, Integer.toString(basePort), patroni);
    lab.settings.putAll(more);
    return start(lab);
  }

  private static Lab start(Lab lab) {
    lab.run(Duration.ofMinutes(4), "stop");
    try {
      lab.run(Duration.ofMinutes(4), "start");
      lab.env = lab.parseEnv(lab.run(Duration.ofSeconds(30), "env"));
    } catch (AssertionError | RuntimeException e) {
      try {
        lab.stop();
      } catch (AssertionError | RuntimeException stopFailed) {
        e.addSuppressed(stopFailed);
      }
      throw e;
    }
    return lab;
  }

  public void stop() {
    run(Duration.ofMinutes(2), "stop");
  }

  public static synchronized Lab get() {
    if (instance == null) {
      throw new IllegalStateException("use @ExtendWith(Lab.class)");
    }
    return instance;
  }

  @Override
  public void beforeAll(ExtensionContext context) throws Exception {
    synchronized (Lab.class) {
      if (failedStart != null) {
        throw failedStart;
      }
      if (instance == null) {
        // stops leftovers of an interrupted run first
        try {
          Lab lab = new Lab(System.getProperty("pgbeacon.lab.dir", "/tmp/pgbeacon-it-lab"),
              Integer.getInteger("pgbeacon.lab.port", 16400).toString(),
              System.getProperty("pgbeacon.lab.patroni", "3"));
          // The Patroni-4 execution runs the suite in Debian's namespace, each pgbeacon told only Patroni's file.
          lab.settings.put("LAB_NAMESPACE", System.getProperty("pgbeacon.lab.namespace", "/service/"));
          lab.settings.put("LAB_PGBEACON_CONFIG", System.getProperty("pgbeacon.lab.pgbeacon-config", "explicit"));
          instance = start(lab);
        } catch (AssertionError e) {
          failedStart = e;
          throw e;
        }
      }
    }
    // Stopped once, when the whole run ends.
    context.getRoot().getStore(ExtensionContext.Namespace.GLOBAL)
        .getOrComputeIfAbsent("pgbeacon-lab", k -> (ExtensionContext.Store.CloseableResource) () -> {
          instance.stop();
        });
  }

  public String env(String key) {
    String value = env.get(key);
    if (value == null) {
      throw new IllegalArgumentException("lab.sh env has no " + key);
    }
    return value;
  }

  /** The member Patroni's leader key names, read from the Consul server; "(none)" while there is no key. */
  public String leaderKeyHolder(ConsulHttp consul) {
    try {
      JsonNode entries = consul.get("/v1/kv/" + leaderKey());
      return new String(java.util.Base64.getDecoder().decode(entries.path(0).path("Value").asText()),
          StandardCharsets.UTF_8);
    } catch (IllegalStateException e) {
      return "(none)"; // 404
    }
  }

  /** The PID of node {@code i}'s pgbeacon, from its PID file under LAB_DIR. */
  public long pgbeaconPid(int i) {
    try {
      return Long.parseLong(Files.readString(Path.of(env("LAB_DIR"), "node" + i, "pgbeacon.pid")).strip());
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  }

  /** The Consul server's HTTP address (host:port): the catalog as every consumer sees it. */
  public String consulAddress() {
    return env("LAB_CONSUL_HTTP");
  }

  /** The Consul client agent of one node (host:port): where that node's Patroni and pgbeacon register. */
  public String consulAgent(String node) {
    return env("LAB_NODE" + index(node) + "_CONSUL_HTTP");
  }

  public String consulDnsAddress() {
    return env("LAB_CONSUL_ADDR");
  }

  public int consulDnsPort() {
    return Integer.parseInt(env("LAB_CONSUL_DNS_PORT"));
  }

  /** The node's own loopback address (127.0.0.11, …). */
  public String address(String node) {
    return env("LAB_NODE" + index(node) + "_ADDR");
  }

  public String haproxyAddress() {
    return env("LAB_HAPROXY_ADDR");
  }

  public int haproxyPort(String listener) {
    return Integer.parseInt(env("LAB_HAPROXY_" + listener.toUpperCase(java.util.Locale.ROOT) + "_PORT"));
  }

  public Path haproxySocket() {
    return Path.of(env("LAB_HAPROXY_SOCKET"));
  }

  public String scope() {
    return env("LAB_SCOPE");
  }

  /** Patroni's leader key in Consul, in the lab's namespace: {@code service/<scope>/leader} by default. */
  public String leaderKey() {
    return env("LAB_LEADER_KEY");
  }

  /** How each pgbeacon is configured: {@code explicit} or {@code patroni-file} (lab.sh's LAB_PGBEACON_CONFIG). */
  public String pgbeaconConfig() {
    return env("LAB_PGBEACON_CONFIG");
  }

  public int nodes() {
    return Integer.parseInt(env("LAB_NODES"));
  }

  public List<String> nodeNames() {
    List<String> names = new ArrayList<>();
    for (int i = 1; i <= nodes(); i++) {
      names.add(env("LAB_NODE" + i + "_NAME"));
    }
    return names;
  }

  public int index(String node) {
    return nodeNames().indexOf(node) + 1;
  }

  public int port(String node, String what) {
    return Integer.parseInt(env("LAB_NODE" + index(node) + "_" + what + "_PORT"));
  }

  public String rest(String node) {
    return env("LAB_NODE" + index(node) + "_REST");
  }

  public Path log(String node, String what) {
    return Path.of(env("LAB_DIR"), "node" + index(node), what + ".log");
  }

  /**
   * Patroni's leader (a standby cluster's: its standby leader) as its REST API ({@code GET /cluster} of the first node
   * that answers) names it, or "(none)".
   */
  public String leader() {
    for (String node : nodeNames()) {
      try {
        HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create(rest(node) + "/cluster"))
            .timeout(Duration.ofSeconds(2)).build(), HttpResponse.BodyHandlers.ofString());
        for (JsonNode m : JSON.readTree(r.body()).path("members")) {
          // a standby cluster's leader: standby_leader
          if ("leader".equals(m.path("role").asText()) || "standby_leader".equals(m.path("role").asText())) {
            return m.path("name").asText();
          }
        }
      } catch (IOException e) {
        // try the next node
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException(e);
      }
    }
    return "(none)";
  }
  /** {@code PATCH /config} on the leader's Patroni (the cluster's dynamic configuration); must answer 200. */
  public void patchPatroniConfig(String json) {
    try {
      HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create(rest(leader()) + "/config"))
          .method("PATCH", HttpRequest.BodyPublishers.ofString(json)).header("Content-Type", "application/json")
          .timeout(Duration.ofSeconds(5)).build(), HttpResponse.BodyHandlers.ofString());
      if (r.statusCode() != 200) {
        throw new AssertionError("PATCH /config " + json + ": HTTP " + r.statusCode() + " " + r.body());
      }
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }


  /**
   * Waits until Consul (as {@code consul} reads it) lists exactly Patroni's leader as passing
   * {@code patroni-primary} and every other node as passing {@code patroni-replica}; returns the leader.
   */
  public String converged(ConsulHttp consul, Duration deadline) {
    return Await.until("exactly Patroni's leader passing as patroni-primary, the rest as replicas", deadline, () -> {
      String leader = leader();
      List<String> primaries = consul.passingNodes("patroni-primary");
      List<String> replicas = consul.passingNodes("patroni-replica").stream().sorted().toList();
      boolean ok = primaries.equals(List.of(leader))
          && replicas.equals(nodeNames().stream().filter(n -> !n.equals(leader)).sorted().toList());
      return ok ? leader : "(leader " + leader + ", primary " + primaries + ", replica " + replicas + ")";
    }, s -> !s.startsWith("("));
  }

  /** Runs one lab.sh command and returns its output; fails with that output (and the lab's logs' place). */
  public String run(Duration deadline, String... args) {
    List<String> cmd = new ArrayList<>(List.of("bash", script.toString()));
    cmd.addAll(List.of(args));
    try {
      Path out = Files.createTempFile("lab", ".out");
      ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(out.toFile());
      pb.environment().putAll(settings);
      Process p = pb.start();
      if (!p.waitFor(deadline.toMillis(), TimeUnit.MILLISECONDS)) {
        p.destroyForcibly();
        throw new AssertionError("lab.sh " + String.join(" ", args) + " did not finish in " + deadline + ":\n"
            + Files.readString(out));
      }
      String output = Files.readString(out, StandardCharsets.UTF_8);
      Files.deleteIfExists(out);
      if (p.exitValue() != 0) {
        throw new AssertionError("lab.sh " + String.join(" ", args) + " failed (exit " + p.exitValue()
            + "); logs in " + settings.get("LAB_DIR") + ":\n" + output);
      }
      return output;
    } catch (IOException e) {
      throw new AssertionError("cannot run " + cmd + ": " + e, e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError(e);
    }
  }

  private Map<String, String> parseEnv(String output) {
    Map<String, String> map = new LinkedHashMap<>();
    for (String line : output.split("\n")) {
      int eq = line.indexOf('=');
      if (eq > 0 && line.matches("[A-Z0-9_]+=.*")) {
        String value = line.substring(eq + 1);
        if (value.length() >= 2 && value.startsWith("'") && value.endsWith("'")) {
          value = value.substring(1, value.length() - 1);
        }
        map.put(line.substring(0, eq), value);
      }
    }
    return map;
  }
}
