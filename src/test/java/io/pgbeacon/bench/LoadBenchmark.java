package io.pgbeacon.bench;

import static io.pgbeacon.bench.BenchRuns.cmdline;
import static io.pgbeacon.bench.BenchRuns.duration;
import static io.pgbeacon.bench.BenchRuns.human;
import static io.pgbeacon.bench.BenchRuns.sleepQuietly;
import static io.pgbeacon.bench.BenchRuns.tail;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.pgbeacon.support.Components;
import io.pgbeacon.support.Lab;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.io.RandomAccessFile;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import java.util.function.Predicate;
import java.util.jar.JarFile;
import java.util.stream.Collectors;

/**
 * What one pgbeacon costs the node it runs on, for two jars side by side in one run (a baseline and the jar under
 * test): Patroni REST requests per second by path, Consul calls, CPU (percent of one core, from
 * {@code /proc/<pid>/stat} utime + stime) and WARN lines — at steady state on a replica and on the primary,
 * during a promotion and a demotion of that node, during an outage of the node's Consul agent and after it.
 *
 * <p>It starts its own lab ({@code scripts/lab.sh}, {@value #LAB_DIR}, ports from {@value #LAB_PORT}, or
 * {@code --lab-dir} and {@code --port}) without the
 * lab's pgbeacons, picks a replica as the measured node and runs both jars there at the same time, each as the lab
 * would ({@link Lab#pgbeaconCommand}: through the launcher) with a config in lab.sh's format: the same node name and the node's own Consul
 * agent (so the leader-key watch is real), its own service names ({@code bench-base-*}, {@code bench-new-*}) and
 * agent ports. Each reaches Patroni and its Consul agent through counting TCP proxies of its own in this JVM
 * ({@link CountingProxy}), which forward bytes unchanged. During the outage the Consul proxies stop listening, so
 * both pgbeacons see their agent's port refuse, as it does when the agent is down; the refused connection
 * attempts are counted with tcpdump ({@link SynCounter}) when it is installed.
 *
 * <p>Phases: steady state on the replica; a switchover to it (requests/s from the request — Patroni writing the
 * failover key — until the jar's primary check passes on the agent); steady state as the primary; a switchover
 * back (demotion); the Consul agent of the node (a replica again: Patroni keeps it running without its DCS)
 * stopped for {@code --outage}, then started again; steady state after it. Both jars run through every phase
 * together, so whatever else the machine does disturbs both alike.
 *
 * <p>Run with {@code scripts/bench-load.sh} (Maven profile {@code bench-load}, tests skipped). Not a test: it
 * prints figures and asserts nothing. Everything it started is stopped at the end, on failure and on Ctrl-C: the
 * pgbeacons by PID, the lab with {@code lab.sh stop}.
 */
public final class LoadBenchmark {

  static final String LAB_DIR = "/tmp/pgbeacon-bench-load";
  static final int LAB_PORT = 17400;
  /**
   * Added to the lab's first port: the first of five ports per jar (+0 Patroni proxy, +1 Consul proxy, +2/+3 agent
   * ports, +4 HTTP endpoints: both jars' default 127.0.0.1:8009 would collide) on the node's address, above the lab's
   * own (B+0..B+57 for up to five nodes).
   */
  private static final int[] JAR_PORTS = {70, 80};
  /** After a change pgbeacon polls faster for a while (3 s in 1e7f149): measure steady state only after this. */
  private static final Duration SETTLE = Duration.ofSeconds(10);
  /** The tail after a promotion, while pgbeacon still polls fast. */
  private static final Duration TAIL = Duration.ofSeconds(5);
  private static final Duration CONVERGE = Duration.ofSeconds(90);
  private static final ObjectMapper JSON = new ObjectMapper();

  record Options(Path baseline, Path jar, Duration steady, Duration outage, Duration warmup, String patroni,
      String labDir, int port) {

    static Options parse(String[] args) {
      Map<String, String> o = new LinkedHashMap<>(Map.of("--baseline", "/work/baseline/pgbeacon-1e7f149.jar",
          "--jar", "target/pgbeacon.jar", "--steady", "60s", "--outage", "10m", "--warmup", "60s", "--patroni", "3"));
      o.put("--lab-dir", LAB_DIR);
      o.put("--port", Integer.toString(LAB_PORT));
      for (int i = 0; i < args.length; i++) {
        if (!o.containsKey(args[i]) || i + 1 >= args.length) {
          throw new IllegalArgumentException("usage: LoadBenchmark [--baseline JAR] [--jar JAR] [--steady 60s]"
              + " [--outage 10m] [--warmup 60s] [--patroni 3|4] [--lab-dir DIR] [--port N]; bad argument '" + args[i]
              + "'");
        }
        o.put(args[i], args[++i]);
      }
      if (!o.get("--patroni").matches("[34]")) {
        throw new IllegalArgumentException("--patroni must be 3 or 4, not " + o.get("--patroni"));
      }
      Options options = new Options(jar(o.get("--baseline")), jar(o.get("--jar")), duration(o.get("--steady")),
          duration(o.get("--outage")), duration(o.get("--warmup")), o.get("--patroni"),
          Path.of(o.get("--lab-dir")).toAbsolutePath().normalize().toString(), Integer.parseInt(o.get("--port")));
      if (options.steady.compareTo(Duration.ofSeconds(5)) < 0 || options.outage.compareTo(Duration.ofSeconds(5)) < 0) {
        throw new IllegalArgumentException("--steady and --outage must be at least 5s");
      }
      return options;
    }

    private static Path jar(String path) {
      Path p = Path.of(path).toAbsolutePath().normalize();
      if (!Files.isRegularFile(p)) {
        throw new IllegalArgumentException("no jar at " + p);
      }
      return p;
    }
  }

  /** What the node's Consul agent says of one jar's two services. */
  record Checks(boolean primaryPassing, boolean replicaPassing) {}

  /** A value over time, as observed (System.nanoTime()). */
  static final class Timeline<T> {
    private record Entry<T>(long at, T value) {}

    private final List<Entry<T>> entries = new ArrayList<>();

    synchronized void observe(T value) {
      if (entries.isEmpty() || !entries.get(entries.size() - 1).value().equals(value)) {
        entries.add(new Entry<>(System.nanoTime(), value));
      }
    }

    synchronized Optional<T> current() {
      return entries.isEmpty() ? Optional.empty() : Optional.of(entries.get(entries.size() - 1).value());
    }

    /** When, at or after {@code from}, the value first satisfied {@code p} (a value in force at {@code from} counts). */
    synchronized OptionalLong firstAt(long from, Predicate<T> p) {
      Entry<T> inForce = null;
      for (Entry<T> e : entries) {
        if (e.at() <= from) {
          inForce = e;
        } else if (inForce != null && p.test(inForce.value())) {
          return OptionalLong.of(from);
        } else if (p.test(e.value())) {
          return OptionalLong.of(e.at());
        } else {
          inForce = null; // from here on only later entries count
        }
      }
      return inForce != null && p.test(inForce.value()) ? OptionalLong.of(from) : OptionalLong.empty();
    }
  }

  /** One pgbeacon under measurement. */
  private final class Beacon {
    final String label;
    final String key;
    final Path jar;
    final CountingProxy patroni;
    final CountingProxy consul;
    final int agentPort;
    final Path config;
    final Path log;
    final Path pidFile;
    final ProcStat.Series cpu = new ProcStat.Series();
    final Timeline<Checks> checks = new Timeline<>();
    volatile Process process;

    Beacon(String label, String key, Path jar, int firstPort) {
      this.label = label;
      this.key = key;
      this.jar = jar;
      String address = lab.address(node);
      this.patroni = new CountingProxy(vertx, key + " patroni", address, firstPort, address,
          lab.port(node, "REST"));
      String[] agent = lab.consulAgent(node).split(":");
      this.consul = new CountingProxy(vertx, key + " consul", address, firstPort + 1, agent[0],
          Integer.parseInt(agent[1]));
      this.agentPort = firstPort + 2;
      this.config = benchDir.resolve(key + ".yml");
      this.log = benchDir.resolve(key + ".log");
      this.pidFile = benchDir.resolve(key + ".pid");
    }

    String service(String view) {
      return "bench-" + key + "-" + view;
    }

    /** The config in lab.sh's format (write_pgbeacon_config), through this jar's proxies. */
    void writeConfig() throws IOException {
      String address = lab.address(node);
      int bouncer = lab.port(node, "PGBOUNCER");
      Files.writeString(config, String.join("\n",
          "# Generated by LoadBenchmark: " + label + " on " + node + ", through counting proxies.",
          "node: " + node,
          "patroni: {url: http://" + patroni.address() + ", timeout: 1s}",
          "pgbouncer: {host: " + address + ", port: " + bouncer + ", database: postgres, user: pgbeacon,"
              + " password-file: " + lab.env("LAB_PGBEACON_PASSWORD_FILE") + ", required: true, timeout: 1s}",
          "consul: {address: http://" + consul.address() + ", ttl: 10s, deregister-critical-after: 1m,"
              + " on-stop: critical}",
          "services:",
          "  address: " + address,
          "  primary: {name: " + service("primary") + ", port: " + bouncer + "}",
          "  replica: {name: " + service("replica") + ", port: " + bouncer + ", max-lag: 16MB}",
          "poll: {interval: 500ms}",
          "agent: {listen: [{address: " + address + ", port: " + agentPort + ", view: primary}, {address: "
              + address + ", port: " + (agentPort + 1) + ", view: replica}]}",
          "http: {address: " + address + ", port: " + (agentPort + 2) + "}",
          ""));
    }

    void start() throws IOException {
      List<String> cmd = new ArrayList<>(List.of(Lab.pgbeaconCommand(jar).split(" ")));
      cmd.addAll(List.of("run", "--config", config.toString()));
      ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true)
          .redirectOutput(log.toFile()); // a fresh log per run
      // Only the config speaks: no CONSUL_HTTP_TOKEN or PGBEACON_LOG_LEVEL from the caller's environment.
      pb.environment().keySet().removeIf(k -> k.startsWith("CONSUL_") || k.startsWith("PGBEACON_"));
      process = pb.start();
      Files.writeString(pidFile, process.pid() + "\n");
      say("%s: pid %d, %s (log %s)", label, process.pid(), String.join(" ", cmd), log);
    }

    long pid() {
      return process.pid();
    }

    void stop() {
      if (process != null && process.isAlive()) {
        process.destroy();
        try {
          if (!process.waitFor(20, TimeUnit.SECONDS)) {
            process.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
          }
        } catch (InterruptedException e) {
          process.destroyForcibly();
          Thread.currentThread().interrupt();
        }
      }
      try {
        Files.deleteIfExists(pidFile);
      } catch (IOException e) {
        // harmless
      }
    }

    long logSize() {
      try {
        return Files.size(log);
      } catch (IOException e) {
        return 0;
      }
    }
  }

  private record Row(String label, List<String> values) {}

  private static final class Table {
    final String title;
    final List<String> notes = new ArrayList<>();
    final List<Row> rows = new ArrayList<>();

    Table(String title) {
      this.title = title;
    }

    void print(PrintStream out, List<String> headers) {
      out.println();
      out.println("== " + title);
      for (String note : notes) {
        out.println("   " + note);
      }
      StringBuilder head = new StringBuilder(String.format("  %-50s", ""));
      headers.forEach(h -> head.append(String.format(" %14s", h)));
      out.println(head);
      for (Row r : rows) {
        StringBuilder line = new StringBuilder(String.format("  %-50s", r.label()));
        r.values().forEach(v -> line.append(String.format(" %14s", v)));
        out.println(line);
      }
    }
  }

  /** Thrown out of any wait once a stop was asked for (Ctrl-C, SIGTERM). */
  private static final class Stopped extends RuntimeException {
    Stopped() {
      super("stopped");
    }
  }

  private final Options options;
  private final Path benchDir;
  private final Object labLock = new Object();
  private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
  private final Timeline<String> leaderKey = new Timeline<>();
  private final Timeline<String> failoverKey = new Timeline<>();
  private final ProcStat.Series machineBusy = new ProcStat.Series();
  private final ProcStat.Series machineTotal = new ProcStat.Series();
  private final List<Table> tables = new ArrayList<>();
  private final List<Beacon> beacons = new ArrayList<>();
  private final long t0 = System.nanoTime();
  private volatile boolean stopping;
  private volatile boolean fastChecks;
  private volatile long lastSample;
  private boolean cleanedUp;
  private Vertx vertx;
  private Lab lab;
  private String node;
  private String otherNode;
  private Optional<SynCounter> syns = Optional.empty();

  private LoadBenchmark(Options options) {
    this.options = options;
    this.benchDir = Path.of(options.labDir(), "bench");
  }

  public static void main(String[] args) {
    Options options;
    try {
      options = Options.parse(args);
    } catch (IllegalArgumentException e) {
      System.err.println(e.getMessage());
      System.exit(2);
      return;
    }
    LoadBenchmark bench = new LoadBenchmark(options);
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      bench.stopping = true;
      bench.cleanUp();
    }, "load-benchmark-stop"));
    int code = 0;
    try {
      bench.run();
    } catch (Stopped e) {
      code = 130;
    } catch (Throwable e) {
      System.out.println();
      System.out.println("load benchmark FAILED: " + e.getMessage());
      System.out.println("  (" + e.getClass().getName() + ")");
      for (StackTraceElement frame : e.getStackTrace()) {
        System.out.println("    at " + frame);
      }
      code = 1;
    } finally {
      bench.cleanUp();
    }
    System.exit(code);
  }

  // ---- the run ------------------------------------------------------------------------------------------------

  private void run() throws Exception {
    Files.createDirectories(benchDir);
    stopLeftovers();
    say("load benchmark: starting the lab in %s (ports from %d, Patroni %s, no lab pgbeacons)", options.labDir(), options.port(),
        options.patroni());
    synchronized (labLock) {
      checkStopping();
      lab = Lab.startWithoutPgbeacon(options.labDir(), options.port(), options.patroni());
    }
    vertx = Vertx.vertx();
    String leader = lab.leader();
    otherNode = leader;
    node = lab.nodeNames().stream().filter(n -> !n.equals(leader)).sorted().findFirst()
        .orElseThrow(() -> new IllegalStateException("no replica in the lab (leader " + leader + ")"));
    beacons.add(new Beacon("baseline", "base", options.baseline(), options.port() + JAR_PORTS[0]));
    beacons.add(new Beacon("under test", "new", options.jar(), options.port() + JAR_PORTS[1]));
    printParameters(System.out);

    String scope = lab.scope();
    daemon("watch leader key", () -> watchKey("service/" + scope + "/leader", leaderKey));
    daemon("watch failover key", () -> watchKey("service/" + scope + "/failover", failoverKey));
    daemon("cpu sampler", this::sampleCpu);
    daemon("checks poller", this::pollChecks);

    for (Beacon b : beacons) {
      await(Future.join(b.patroni.open(), b.consul.open()));
      b.writeConfig();
    }
    for (Beacon b : beacons) {
      b.start();
    }
    say("waiting for both to register on %s's agent (replica passing)", node);
    awaitChecks(new Checks(false, true));
    say("warm-up %s", human(options.warmup()));
    hold(options.warmup());

    table(steady("1. steady state, " + node + " a replica", options.steady()));
    table(switchover("2. promotion: switchover " + otherNode + " -> " + node, node, true));
    settle(new Checks(true, false));
    table(steady("3. steady state, " + node + " the primary", options.steady()));
    table(switchover("4. demotion: switchover " + node + " -> " + otherNode, otherNode, false));
    settle(new Checks(false, true));
    table(outage());
    settle(new Checks(false, true));
    table(steady("6. steady state after the outage, " + node + " a replica", options.steady()));

    ByteArrayOutputStream text = new ByteArrayOutputStream();
    PrintStream summary = new PrintStream(text, true, StandardCharsets.UTF_8);
    printParameters(summary);
    for (Table t : tables) {
      t.print(summary, headers());
    }
    System.out.println();
    System.out.println("==================================== summary ====================================");
    System.out.print(text.toString(StandardCharsets.UTF_8));
    Files.write(benchDir.resolve("summary.txt"), text.toByteArray());
    say("summary also in %s", benchDir.resolve("summary.txt"));
  }

  private void printParameters(PrintStream out) {
    out.println();
    out.printf("pgbeacon load benchmark, %s%n", Instant.now().truncatedTo(ChronoUnit.SECONDS));
    out.printf("  machine: %d cores, %s %s, Java %s, load average now %s; other work on this"
            + " machine is included in every figure%n", Runtime.getRuntime().availableProcessors(),
        System.getProperty("os.name"), System.getProperty("os.version"), System.getProperty("java.version"),
        ProcStat.loadAverage());
    out.printf("  lab: %s, ports from %d, %d nodes, Patroni %s (LAB_PATRONI=%s); measured node %s (%s),"
            + " switchover partner %s%n", options.labDir(), options.port(), lab.nodes(), patroniVersion(), options.patroni(), node,
        lab.address(node), otherNode);
    for (Beacon b : beacons) {
      out.printf("  %-10s %s (%s)%n", b.label + ":", b.jar, describeJar(b.jar));
    }
    out.printf("  each: %s run --config %s/{base,new}.yml (poll.interval 500ms, consul.ttl 10s),"
        + " Patroni and Consul through counting TCP proxies in the benchmark JVM%n",
        Lab.pgbeaconCommand(Path.of("JAR")).replace(Path.of("JAR").toAbsolutePath().toString(), "JAR"), benchDir);
    out.printf("  durations: warm-up %s, steady phases %s each, settle %s before each, outage %s%n",
        human(options.warmup()), human(options.steady()), human(SETTLE), human(options.outage()));
  }

  private List<String> headers() {
    return beacons.stream().map(b -> b.label).toList();
  }

  private void table(Table t) {
    tables.add(t);
    t.print(System.out, headers());
    System.out.println();
  }

  // ---- phases -------------------------------------------------------------------------------------------------

  private Table steady(String title, Duration length) {
    say("%s: measuring for %s", title, human(length));
    long[] logFrom = logSizes();
    long from = System.nanoTime();
    hold(length);
    long until = System.nanoTime();
    long[] logTo = logSizes();
    awaitSampleAfter(until);
    Table t = new Table(title + ": " + human(length));
    t.notes.add(machine(from, until));
    patroniRows(t, "Patroni REST requests/s", from, until);
    consulRows(t, from, until);
    row(t, "CPU, % of one core", b -> cpu(b, from, until));
    logRows(t, logFrom, logTo, "");
    row(t, "RSS at the end, MB", b -> String.format("%.0f", ProcStat.rssKib(b.pid()) / 1024.0));
    return t;
  }

  /**
   * A switchover to {@code to}, made with {@code lab.sh switchover}. Promotion: the measured node becomes the
   * primary, the window ends when the jar's primary check passes. Demotion: it leaves, the window ends when the
   * jar's replica check passes (and its primary check does not).
   */
  private Table switchover(String title, String to, boolean promotion) {
    say("%s", title);
    Predicate<Checks> done = promotion ? Checks::primaryPassing : c -> c.replicaPassing() && !c.primaryPassing();
    String doneText = promotion ? "primary passing" : "replica passing";
    fastChecks = true;
    long invoked = System.nanoTime();
    labCommand(Duration.ofSeconds(150), "switchover", to);
    long request = failoverKey.firstAt(invoked, v -> !v.isEmpty()).orElse(invoked);
    Predicate<String> keyMoved = promotion ? node::equals : v -> !v.isEmpty() && !v.equals(node);
    OptionalLong keyAt = leaderKey.firstAt(request, keyMoved);
    Map<Beacon, OptionalLong> ends = new LinkedHashMap<>();
    for (Beacon b : beacons) {
      ends.put(b, awaitFirst(b, request, done));
    }
    long lastEnd = ends.values().stream().mapToLong(e -> e.orElse(request)).max().orElse(request);
    hold(Duration.ofNanos(Math.max(0, lastEnd + TAIL.toNanos() - System.nanoTime())));
    fastChecks = false;

    Table t = new Table(title);
    t.notes.add(String.format("the request (Patroni's failover key written) %s after lab.sh switchover started;"
        + " the leader key %s %s after the request", seconds(request - invoked),
        promotion ? "named " + node : "left " + node, keyAt.isPresent() ? seconds(keyAt.getAsLong() - request)
            : "(not seen)"));
    t.notes.add(machine(request, lastEnd));
    row(t, "request -> " + doneText + ", s", b -> ends.get(b).isPresent()
        ? String.format("%.2f", (ends.get(b).getAsLong() - request) / 1e9) : "never");
    windowRows(t, "  Patroni REST requests/s in it", ends, b -> request);
    row(t, "  Patroni REST requests in it (/primary+/cluster+other)", b -> ends.get(b).isEmpty() ? "-"
        : countsText(b.patroni.requests(request, ends.get(b).getAsLong())));
    row(t, "  CPU in it, % of one core", b -> ends.get(b).isEmpty() ? "-"
        : cpu(b, request, ends.get(b).getAsLong()));
    row(t, "  Consul calls in it", b -> ends.get(b).isEmpty() ? "-"
        : Integer.toString(b.consul.requests(request, ends.get(b).getAsLong()).size()));
    if (keyAt.isPresent()) {
      long k = keyAt.getAsLong();
      row(t, "leader key -> " + doneText + ", s", b -> ends.get(b).isPresent()
          ? String.format("%.2f", (ends.get(b).getAsLong() - k) / 1e9) : "never");
      windowRows(t, "  Patroni REST requests/s in it", ends, b -> k);
    }
    row(t, "after it: Patroni REST requests/s in the next " + human(TAIL), b -> ends.get(b).isEmpty() ? "-"
        : rate(b.patroni.requests(ends.get(b).getAsLong(), ends.get(b).getAsLong() + TAIL.toNanos()).size(),
            TAIL.toNanos()));
    return t;
  }

  private Table outage() {
    int index = lab.index(node);
    say("5. Consul outage: %s's agent stopped for %s", node, human(options.outage()));
    syns = SynCounter.start(lab.address(node), beacons.stream().map(b -> b.consul.port()).toList());
    long[] logFrom = logSizes();
    await(Future.join(beacons.stream().map(b -> b.consul.close()).toList()));
    labCommand(Duration.ofSeconds(60), "consul-stop", Integer.toString(index));
    long from = System.nanoTime();
    hold(options.outage());
    long until = System.nanoTime();
    labCommand(Duration.ofSeconds(90), "consul-start", Integer.toString(index));
    long back = System.nanoTime();
    long[] logTo = logSizes();
    await(Future.join(beacons.stream().map(b -> b.consul.open()).toList()));
    say("agent back; waiting for both to reach it again");
    Map<Beacon, OptionalLong> firstCall = new LinkedHashMap<>();
    Map<Beacon, OptionalLong> restored = new LinkedHashMap<>();
    for (Beacon b : beacons) {
      firstCall.put(b, awaitFirstCall(b, back));
      restored.put(b, awaitFirst(b, back, c -> c.replicaPassing() && !c.primaryPassing()));
    }
    syns.ifPresent(SynCounter::close);

    Table t = new Table("5. Consul outage: " + node + "'s agent stopped (" + node + " a replica): "
        + human(Duration.ofSeconds(Math.round((until - from) / 1e9))));
    t.notes.add(machine(from, until));
    // A cost that grows while the outage lasts (retries piling up) shows as a last slice above the first.
    long slice = Math.min(Duration.ofMinutes(1).toNanos(), (until - from) / 3);
    String sliceText = human(Duration.ofSeconds(Math.round(slice / 1e9)));
    row(t, "CPU, % of one core", b -> cpu(b, from, until));
    row(t, "  in the first " + sliceText, b -> cpu(b, from, from + slice));
    row(t, "  in the last " + sliceText, b -> cpu(b, until - slice, until));
    row(t, "Consul connection attempts/s (refused)", b -> attempts(b, from, until));
    row(t, "  in the first " + sliceText, b -> attempts(b, from, from + slice));
    row(t, "  in the last " + sliceText, b -> attempts(b, until - slice, until));
    row(t, "  attempts in all", b -> syns.map(s -> Long.toString(s.count(b.consul.port(), from, until)))
        .orElse("n/a"));
    timeline(t, from, until);
    logRows(t, logFrom, logTo, " (stop to start of the agent)");
    patroniRows(t, "Patroni REST requests/s", from, until);
    row(t, "agent back -> first Consul call, s", b -> seconds(firstCall.get(b), back));
    row(t, "agent back -> checks as before (replica passing), s", b -> seconds(restored.get(b), back));
    printWarnings(logFrom, logTo);
    return t;
  }

  /** The outage minute by minute (10 s steps below 3 minutes), as notes: how a cost develops while it lasts. */
  private void timeline(Table t, long from, long until) {
    long step = until - from >= Duration.ofMinutes(3).toNanos() ? Duration.ofMinutes(1).toNanos()
        : Duration.ofSeconds(10).toNanos();
    String unit = step == Duration.ofMinutes(1).toNanos() ? "minute" : "10 s";
    for (Beacon b : beacons) {
      List<String> cpu = new ArrayList<>();
      List<String> attempts = new ArrayList<>();
      for (long start = from; until - start >= step / 2; start += step) {
        long end = Math.min(until, start + step);
        cpu.add(cpu(b, start, end));
        attempts.add(attempts(b, start, end));
      }
      t.notes.add(String.format("%s by %s: CPU %% %s", b.label, unit, String.join(" ", cpu)));
      if (syns.isPresent()) {
        t.notes.add(String.format("%s by %s: Consul attempts/s %s", b.label, unit, String.join(" ", attempts)));
      }
    }
  }

  private String attempts(Beacon b, long from, long until) {
    return syns.map(s -> rate(s.count(b.consul.port(), from, until), until - from)).orElse("n/a");
  }

  /** Waits for the checks to be {@code expected} (or reports that they are not), then lets fast polling end. */
  private void settle(Checks expected) {
    awaitChecks(expected);
    say("settling %s", human(SETTLE));
    hold(SETTLE);
  }

  // ---- table rows ---------------------------------------------------------------------------------------------

  private void row(Table t, String label, Function<Beacon, String> value) {
    t.rows.add(new Row(label, beacons.stream().map(value).toList()));
  }

  private void patroniRows(Table t, String label, long from, long until) {
    long span = until - from;
    row(t, label, b -> rate(b.patroni.requests(from, until).size(), span));
    row(t, "  /primary", b -> rate(count(b.patroni.requests(from, until), "/primary"), span));
    row(t, "  /cluster", b -> rate(count(b.patroni.requests(from, until), "/cluster"), span));
    row(t, "  other paths", b -> rate(count(b.patroni.requests(from, until), null), span));
    row(t, "  new TCP connections/s", b -> rate(b.patroni.connections(from, until), span));
    otherPaths(t, from, until);
  }

  private void consulRows(Table t, long from, long until) {
    long span = until - from;
    row(t, "Consul calls/s", b -> rate(b.consul.requests(from, until).size(), span));
    row(t, "  TTL check updates", b -> rate(consulKind(b, from, until, "/v1/agent/check/"), span));
    row(t, "  service (de)registrations", b -> rate(consulKind(b, from, until, "/v1/agent/service/"), span));
    row(t, "  KV reads (leader/failover watches)", b -> rate(consulKind(b, from, until, "/v1/kv/"), span));
    row(t, "  other", b -> rate(b.consul.requests(from, until).stream().filter(r -> !r.path().startsWith(
        "/v1/agent/check/") && !r.path().startsWith("/v1/agent/service/") && !r.path().startsWith("/v1/kv/"))
        .count(), span));
    row(t, "  new TCP connections/s", b -> rate(b.consul.connections(from, until), span));
  }

  private void windowRows(Table t, String label, Map<Beacon, OptionalLong> ends, Function<Beacon, Long> start) {
    row(t, label, b -> window(b, start.apply(b), ends.get(b), null, true));
    row(t, "    /primary", b -> window(b, start.apply(b), ends.get(b), "/primary", false));
    row(t, "    /cluster", b -> window(b, start.apply(b), ends.get(b), "/cluster", false));
    row(t, "    other paths", b -> window(b, start.apply(b), ends.get(b), null, false));
  }

  private String window(Beacon b, long from, OptionalLong end, String path, boolean all) {
    if (end.isEmpty() || end.getAsLong() <= from) {
      return "-";
    }
    List<CountingProxy.Request> rs = b.patroni.requests(from, end.getAsLong());
    return rate(all ? rs.size() : count(rs, path), end.getAsLong() - from);
  }

  private void logRows(Table t, long[] from, long[] to, String suffix) {
    row(t, "WARN lines" + suffix, b -> Long.toString(logLines(b, from, to, " WARN ")));
    row(t, "ERROR lines" + suffix, b -> Long.toString(logLines(b, from, to, " ERROR ")));
  }

  /** Paths other than /primary and /cluster, as a note (a jar that reads other endpoints shows here). */
  private void otherPaths(Table t, long from, long until) {
    for (Beacon b : beacons) {
      Map<String, Long> other = b.patroni.requests(from, until).stream()
          .filter(r -> !r.path().equals("/primary") && !r.path().equals("/cluster"))
          .collect(Collectors.groupingBy(r -> r.method() + " " + r.path(), TreeMap::new, Collectors.counting()));
      if (!other.isEmpty()) {
        t.notes.add(b.label + ", other Patroni paths: " + other);
      }
    }
  }

  private static long count(List<CountingProxy.Request> requests, String path) {
    return requests.stream().filter(r -> path == null
        ? !r.path().equals("/primary") && !r.path().equals("/cluster") : r.path().equals(path)).count();
  }

  private static String countsText(List<CountingProxy.Request> rs) {
    return rs.size() + " (" + count(rs, "/primary") + "+" + count(rs, "/cluster") + "+" + count(rs, null) + ")";
  }

  private static long consulKind(Beacon b, long from, long until, String prefix) {
    return b.consul.requests(from, until).stream().filter(r -> r.path().startsWith(prefix)).count();
  }

  private static String rate(long count, long nanos) {
    return String.format("%.2f", count / (nanos / 1e9));
  }

  private static String cpu(Beacon b, long from, long until) {
    double ticks = b.cpu.at(until) - b.cpu.at(from);
    if (Double.isNaN(ticks) || !b.cpu.covers(from, until)) {
      return "n/a";
    }
    return String.format("%.2f", 100.0 * ticks / ProcStat.CLOCK_TICKS / ((until - from) / 1e9));
  }

  private String machine(long from, long until) {
    double busy = machineBusy.at(until) - machineBusy.at(from);
    double total = machineTotal.at(until) - machineTotal.at(from);
    return String.format("machine: %.0f%% of %d cores busy (everything on it: Patroni, PostgreSQL, Consul, both"
        + " pgbeacons, this JVM, other work), load average now %s", total > 0 ? 100 * busy / total : Double.NaN,
        Runtime.getRuntime().availableProcessors(), ProcStat.loadAverage());
  }

  private static String seconds(long nanos) {
    return String.format("%.2f s", nanos / 1e9);
  }

  private static String seconds(OptionalLong at, long from) {
    return at.isPresent() ? String.format("%.2f", (at.getAsLong() - from) / 1e9) : "never";
  }

  // ---- logs ---------------------------------------------------------------------------------------------------

  private long[] logSizes() {
    return beacons.stream().mapToLong(Beacon::logSize).toArray();
  }

  private List<String> logText(Beacon b, long[] from, long[] to) {
    int i = beacons.indexOf(b);
    try (RandomAccessFile f = new RandomAccessFile(b.log.toFile(), "r")) {
      byte[] bytes = new byte[(int) Math.max(0, to[i] - from[i])];
      f.seek(from[i]);
      f.readFully(bytes);
      return new String(bytes, StandardCharsets.UTF_8).lines().toList();
    } catch (IOException e) {
      return List.of();
    }
  }

  private long logLines(Beacon b, long[] from, long[] to, String level) {
    return logText(b, from, to).stream().filter(l -> l.contains(level)).count();
  }

  private void printWarnings(long[] from, long[] to) {
    for (Beacon b : beacons) {
      List<String> warnings = logText(b, from, to).stream().filter(l -> l.contains(" WARN ")
          || l.contains(" ERROR ")).toList();
      System.out.printf("  %s logged %d WARN/ERROR lines during the outage%s%n", b.label, warnings.size(),
          warnings.isEmpty() ? "" : ", the first ones:");
      warnings.stream().limit(6).forEach(l -> System.out.println("    " + (l.length() > 200
          ? l.substring(0, 200) + "..." : l)));
    }
  }

  // ---- observers ----------------------------------------------------------------------------------------------

  private void daemon(String name, Runnable body) {
    Thread t = new Thread(body, name);
    t.setDaemon(true);
    t.start();
  }

  /** A blocking query on one key of the Consul server: the moment Patroni writes it, within milliseconds. */
  private void watchKey(String key, Timeline<String> timeline) {
    String index = "0";
    while (!stopping) {
      try {
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create("http://" + lab.consulAddress()
            + "/v1/kv/" + key + "?index=" + index + "&wait=5s")).timeout(Duration.ofSeconds(10)).build(),
            HttpResponse.BodyHandlers.ofString());
        String next = r.headers().firstValue("X-Consul-Index").orElse("0");
        index = Long.parseLong(next) < Long.parseLong(index) ? "0" : next;
        String value = "";
        if (r.statusCode() == 200) {
          String encoded = JSON.readTree(r.body()).path(0).path("Value").asText("");
          value = new String(Base64.getDecoder().decode(encoded), StandardCharsets.UTF_8);
        }
        timeline.observe(value);
      } catch (IOException | RuntimeException e) {
        sleepQuietly(100);
      } catch (InterruptedException e) {
        return;
      }
    }
  }

  /** The node's agent's view of both jars' checks: every 10 ms around a switchover, every 250 ms otherwise. */
  private void pollChecks() {
    URI uri = URI.create("http://" + lab.consulAgent(node) + "/v1/agent/checks");
    while (!stopping) {
      try {
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(uri).timeout(Duration.ofSeconds(1)).build(),
            HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() == 200) {
          JsonNode checks = JSON.readTree(r.body());
          for (Beacon b : beacons) {
            b.checks.observe(new Checks(passing(checks, b.service("primary")),
                passing(checks, b.service("replica"))));
          }
        }
      } catch (IOException | RuntimeException e) {
        // the agent is down (the outage) or busy: no observation
      } catch (InterruptedException e) {
        return;
      }
      sleepQuietly(fastChecks ? 10 : 250);
    }
  }

  /** A service passes when it has checks and all pass. */
  private static boolean passing(JsonNode checks, String service) {
    int n = 0;
    for (JsonNode c : checks) {
      if (service.equals(c.path("ServiceName").asText())) {
        n++;
        if (!"passing".equals(c.path("Status").asText())) {
          return false;
        }
      }
    }
    return n > 0;
  }

  private void sampleCpu() {
    while (!stopping) {
      long now = System.nanoTime();
      for (Beacon b : beacons) {
        if (b.process != null) {
          b.cpu.add(now, ProcStat.cpuTicks(b.pid()));
        }
      }
      long[] m = ProcStat.machineTicks();
      machineBusy.add(now, m[0]);
      machineTotal.add(now, m[1]);
      lastSample = now;
      sleepQuietly(100);
    }
  }

  // ---- waiting ------------------------------------------------------------------------------------------------

  /** Sleeps, but ends at once on a stop request and fails when a pgbeacon has exited. */
  private void hold(Duration d) {
    long end = System.nanoTime() + d.toNanos();
    while (System.nanoTime() < end) {
      checkStopping();
      for (Beacon b : beacons) {
        if (b.process != null && !b.process.isAlive()) {
          sleepQuietly(500);
          checkStopping(); // a Ctrl-C reaches the pgbeacons too
          throw new IllegalStateException(b.label + " pgbeacon exited with " + b.process.exitValue()
              + "; the end of " + b.log + ":\n" + tail(b.log));
        }
      }
      sleepQuietly(Math.max(1, Math.min(100, (end - System.nanoTime()) / 1_000_000)));
    }
  }

  private void awaitSampleAfter(long t) {
    while (lastSample - t <= 0) {
      hold(Duration.ofMillis(20));
    }
  }

  private void checkStopping() {
    if (stopping) {
      throw new Stopped();
    }
  }

  private OptionalLong awaitFirst(Beacon b, long from, Predicate<Checks> p) {
    long deadline = System.nanoTime() + CONVERGE.toNanos();
    while (System.nanoTime() < deadline) {
      OptionalLong at = b.checks.firstAt(from, p);
      if (at.isPresent()) {
        return at;
      }
      hold(Duration.ofMillis(20));
    }
    say("%s: not there after %s; its checks: %s", b.label, human(CONVERGE), b.checks.current());
    return OptionalLong.empty();
  }

  private OptionalLong awaitFirstCall(Beacon b, long from) {
    long deadline = System.nanoTime() + CONVERGE.toNanos();
    while (System.nanoTime() < deadline) {
      Optional<CountingProxy.Request> r = b.consul.firstRequestAfter(from);
      if (r.isPresent()) {
        return OptionalLong.of(r.get().at());
      }
      hold(Duration.ofMillis(20));
    }
    return OptionalLong.empty();
  }

  private void awaitChecks(Checks expected) {
    for (Beacon b : beacons) {
      awaitFirst(b, System.nanoTime(), expected::equals);
    }
  }

  private void await(Future<?> f) {
    try {
      f.toCompletionStage().toCompletableFuture().get(30, TimeUnit.SECONDS);
    } catch (Exception e) {
      throw new IllegalStateException("proxy: " + e.getMessage(), e);
    }
  }

  // ---- the lab and cleaning up --------------------------------------------------------------------------------

  private void labCommand(Duration deadline, String... args) {
    synchronized (labLock) {
      checkStopping();
      lab.run(deadline, args);
    }
  }

  /** Stops pgbeacons a killed run left behind, by the PID it recorded, if that PID still runs our config. */
  private void stopLeftovers() throws IOException {
    for (String key : List.of("base", "new")) {
      Path pidFile = benchDir.resolve(key + ".pid");
      if (!Files.isRegularFile(pidFile)) {
        continue;
      }
      long pid = Long.parseLong(Files.readString(pidFile).trim());
      String config = benchDir.resolve(key + ".yml").toString();
      Optional<ProcessHandle> handle = ProcessHandle.of(pid).filter(h -> cmdline(pid).contains(config));
      if (handle.isPresent()) {
        say("stopping a leftover pgbeacon, pid %d", pid);
        handle.get().destroy();
        try {
          handle.get().onExit().get(20, TimeUnit.SECONDS);
        } catch (Exception e) {
          handle.get().destroyForcibly();
        }
      }
      Files.deleteIfExists(pidFile);
    }
  }

  /** Idempotent: pgbeacons (by PID), tcpdump, proxies, then the lab. */
  private void cleanUp() {
    synchronized (labLock) {
      if (cleanedUp) {
        return;
      }
      cleanedUp = true;
      stopping = true;
      for (Beacon b : beacons) {
        b.stop();
      }
      syns.ifPresent(SynCounter::close);
      if (vertx != null) {
        try {
          vertx.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
        } catch (Exception e) {
          // exiting anyway
        }
      }
      System.out.println("stopping the lab (" + options.labDir() + ")");
      try {
        if (lab != null) {
          lab.stop();
        } else {
          stopLabByScript();
        }
      } catch (AssertionError | RuntimeException e) {
        System.out.println("lab.sh stop failed: " + e.getMessage());
      }
    }
  }

  /** lab.sh stop without a {@link Lab} (a stop requested while it was starting). */
  private void stopLabByScript() {
    try {
      ProcessBuilder pb = new ProcessBuilder("bash", Components.repoFile("scripts/lab.sh").toString(), "stop")
          .redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.DISCARD);
      pb.environment().put("LAB_DIR", options.labDir());
      pb.start().waitFor(2, TimeUnit.MINUTES);
    } catch (IOException e) {
      System.out.println("cannot run lab.sh stop: " + e.getMessage());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  // ---- small things -------------------------------------------------------------------------------------------

  private String patroniVersion() {
    try {
      HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(lab.rest(node) + "/patroni"))
          .timeout(Duration.ofSeconds(2)).build(), HttpResponse.BodyHandlers.ofString());
      return JSON.readTree(r.body()).path("patroni").path("version").asText("?");
    } catch (IOException e) {
      return "?";
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return "?";
    }
  }

  private static String describeJar(Path jar) {
    String version = "?";
    try (JarFile f = new JarFile(jar.toFile())) {
      if (f.getManifest() != null) {
        version = Objects.requireNonNullElse(f.getManifest().getMainAttributes().getValue("Implementation-Version"),
            "?");
      }
    } catch (IOException e) {
      // reported as ?
    }
    try (InputStream in = Files.newInputStream(jar)) {
      MessageDigest sha = MessageDigest.getInstance("SHA-256");
      byte[] buf = new byte[1 << 16];
      for (int n; (n = in.read(buf)) > 0; ) {
        sha.update(buf, 0, n);
      }
      return String.format(Locale.ROOT, "version %s, %.1f MB, modified %s, sha256 %s", version,
          Files.size(jar) / 1e6, Files.getLastModifiedTime(jar).toInstant().truncatedTo(ChronoUnit.SECONDS),
          HexFormat.of().formatHex(sha.digest()).substring(0, 12));
    } catch (IOException | NoSuchAlgorithmException e) {
      return "version " + version;
    }
  }

  private void say(String format, Object... args) {
    System.out.printf("[bench %4ds] %s%n", (System.nanoTime() - t0) / 1_000_000_000L, String.format(format, args));
  }
}
