package io.pgbeacon.bench;

import static io.pgbeacon.bench.BenchRuns.cmdline;
import static io.pgbeacon.bench.BenchRuns.duration;
import static io.pgbeacon.bench.BenchRuns.human;
import static io.pgbeacon.bench.BenchRuns.sleepQuietly;
import static io.pgbeacon.bench.BenchRuns.tail;

import io.pgbeacon.support.Components;
import io.pgbeacon.support.Lab;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;

/**
 * What one pgbeacon costs in memory and CPU over a long steady run, for several ways of running it side by side:
 * the jar and launcher of a baseline commit (its {@code scripts/pgbeacon} line, and plain {@code java -jar}) and
 * the jar and launcher under test — each on a replica and on the primary of a lab of its own.
 *
 * <p>For each pgbeacon it samples {@code /proc/<pid>} every {@value #SAMPLE_SECONDS} s: RSS (and its anonymous and
 * file-backed parts), CPU (utime + stime), threads and open file descriptors, and prints them at the start (
 * {@value #START_SECONDS} s after the process started), at the end and as a slope per hour over the run after the
 * warm-up (least squares), with CPU over the warm-up and over the rest. It times the start: from the process's
 * start to its replica-view agent port answering something other than {@code starting}, and to the log's first
 * {@code verdict:} line. It reports CPU by thread (summed by name) over the measured window, so that where the CPU
 * goes is visible, not guessed.
 *
 * <p>Native Memory Tracking costs memory of its own (about 2–3 MB here, its own tables and stack traces), so the
 * RSS figures come from pgbeacons without it, and the breakdown from a twin of each way of running on the replica,
 * started the same way plus {@code -XX:NativeMemoryTracking=summary} and {@code -Xlog:class+load} (through
 * {@code JDK_JAVA_OPTIONS}, which the java launcher reads whatever the script passes): at the end
 * {@code jcmd <pid> VM.native_memory summary} (committed by category) and the classes loaded by library, from the
 * class-load log (which also says which came from the JDK's CDS archive).
 *
 * <p>Each pgbeacon has the lab's pgbeacon config (lab.sh's write_pgbeacon_config: poll 500 ms, Consul TTL 10 s,
 * PgBouncer probed, the HTTP endpoints on) with services and ports of its own, and its {@code /metrics} is scraped
 * every {@code --scrape} (15 s by default, Prometheus's default interval) as production would. They are started
 * one after another, each once the previous one gave its first verdict, so that start times are not a race for
 * the 2 cores.
 *
 * <p>Ports: the lab takes B..B+60 (three nodes use B+0..B+38, B+50, B+60); the pgbeacons take B+40..B+48 and
 * B+51..B+59 on their node's own address, three each (agent primary, agent replica, HTTP).
 *
 * <p>Run with {@code scripts/bench-footprint.sh} (Maven profile {@code bench-footprint}, tests skipped). Not a
 * test: it prints figures and asserts nothing. Everything it started is stopped at the end, on failure and on
 * Ctrl-C: the pgbeacons by PID, the lab with {@code lab.sh stop}.
 */
public final class FootprintBenchmark {

  static final String LAB_DIR = "/tmp/pgbeacon-bench-foot";
  static final int SAMPLE_SECONDS = 5;
  static final int START_SECONDS = 10;
  private static final Duration FIRST_VERDICT_LIMIT = Duration.ofSeconds(60);
  /** Port offsets (from the lab's base) free on every node's address in a three-node lab: see the class comment. */
  private static final int[] PORT_BLOCKS = {40, 43, 46, 51, 54, 57};
  private static final Pattern NMT_LINE = Pattern.compile(
      "^-\\s+(.+?) \\(reserved=(\\d+)KB, committed=(\\d+)KB\\)");
  private static final Pattern NMT_TOTAL = Pattern.compile("^Total: reserved=(\\d+)KB, committed=(\\d+)KB");
  private static final Pattern NMT_CLASSES = Pattern.compile("^\\s+\\(classes #(\\d+)\\)");
  private static final Pattern CLASS_LOAD = Pattern.compile("\\[class,load\\s*\\] (\\S+) source: (.*)$");

  /** A way of running pgbeacon: a command before {@code run --config FILE}, and environment for it. */
  record Setup(String key, String label, Path jar, List<String> command, Map<String, String> env) {}

  record Options(Path before, Path beforeLauncher, String beforeRev, Path jar, Path launcher, Duration length,
      Duration warmup, Duration scrape, int port, String patroni, boolean nmt, List<String> also) {

    static Options parse(String[] args) {
      Map<String, String> o = new LinkedHashMap<>(Map.of("--before", "", "--before-launcher", "",
          "--before-rev", "1a6e706", "--jar", "target/pgbeacon.jar", "--launcher", "src/main/dist/bin/pgbeacon",
          "--length", "10m", "--warmup", "60s", "--scrape", "15s", "--port", "18700", "--patroni", "3"));
      o.put("--nmt", "on");
      List<String> also = new ArrayList<>();
      for (int i = 0; i < args.length; i++) {
        if ((!o.containsKey(args[i]) && !args[i].equals("--also")) || i + 1 >= args.length) {
          throw new IllegalArgumentException("usage: FootprintBenchmark --before JAR --before-launcher FILE"
              + " [--before-rev REV] [--jar JAR] [--launcher FILE] [--length 10m] [--warmup 60s] [--scrape 15s|off]"
              + " [--port 18700] [--patroni 3|4] [--nmt on|off] [--also 'LABEL=JVM OPTIONS']...; bad argument '"
              + args[i] + "'");
        }
        if (args[i].equals("--also")) {
          also.add(args[++i]);
        } else {
          o.put(args[i], args[++i]);
        }
      }
      if (!o.get("--patroni").matches("[34]")) {
        throw new IllegalArgumentException("--patroni must be 3 or 4, not " + o.get("--patroni"));
      }
      if (!o.get("--nmt").matches("on|off")) {
        throw new IllegalArgumentException("--nmt must be on or off, not " + o.get("--nmt"));
      }
      for (String a : also) {
        if (!a.matches("[A-Za-z0-9_.-]+=.*")) {
          throw new IllegalArgumentException("--also takes LABEL=JVM OPTIONS (label of letters, digits, . _ -),"
              + " not '" + a + "'");
        }
      }
      int port = Integer.parseInt(o.get("--port"));
      if (port < 1024 || port > 65535 - 60) {
        throw new IllegalArgumentException("--port must be in 1024.." + (65535 - 60) + ", not " + port);
      }
      Duration scrape = o.get("--scrape").equals("off") ? Duration.ZERO : duration(o.get("--scrape"));
      Options options = new Options(file(o.get("--before")), file(o.get("--before-launcher")), o.get("--before-rev"),
          file(o.get("--jar")), file(o.get("--launcher")), duration(o.get("--length")), duration(o.get("--warmup")),
          scrape, port, o.get("--patroni"), o.get("--nmt").equals("on"), List.copyOf(also));
      if (options.length.compareTo(options.warmup.plusSeconds(30)) < 0) {
        throw new IllegalArgumentException("--length must be at least --warmup + 30s");
      }
      // Each way of running takes a port block (on both nodes' addresses), its NMT twin another.
      if ((3 + options.also.size()) * (options.nmt ? 2 : 1) > PORT_BLOCKS.length) {
        throw new IllegalArgumentException("too many --also sets for the free ports: none with --nmt on, three"
            + " with --nmt off");
      }
      return options;
    }

    private static Path file(String path) {
      Path p = Path.of(path).toAbsolutePath().normalize();
      if (!Files.isRegularFile(p)) {
        throw new IllegalArgumentException("no file at " + p);
      }
      return p;
    }
  }

  /** One sample of a process: when (nanoTime) and what /proc said. */
  record Sample(long at, long cpuTicks, long rssKib, long anonKib, long fileKib, long threads, long fds) {}

  /** One pgbeacon under measurement. */
  private final class Beacon {
    final Setup setup;
    final String node;
    final String role;
    final boolean nmt;
    final String key;
    final int firstPort;
    final Path config;
    final Path log;
    final Path pidFile;
    final Path classLog;
    final List<Sample> samples = new ArrayList<>();
    volatile Process process;
    long startedAt;
    OptionalLong agentAnswered = OptionalLong.empty();
    OptionalLong logVerdict = OptionalLong.empty();
    Map<String, Long> threadsAtWarm = Map.of();
    Map<String, Long> threadsAtEnd = Map.of();
    long warmAt;
    long endAt;
    String nmtText = "";

    Beacon(Setup setup, String node, String role, boolean nmt, int firstPort) {
      this.setup = setup;
      this.node = node;
      this.role = role;
      this.nmt = nmt;
      this.key = setup.key() + "-" + role + (nmt ? "-nmt" : "");
      this.firstPort = firstPort;
      this.config = benchDir.resolve(key + ".yml");
      this.log = benchDir.resolve(key + ".log");
      this.pidFile = benchDir.resolve(key + ".pid");
      this.classLog = benchDir.resolve(key + ".classes.log");
    }

    String label() {
      return setup.label() + " on the " + role + (nmt ? " (NMT)" : "");
    }

    String address() {
      return lab.address(node);
    }

    /** The lab's pgbeacon config (lab.sh write_pgbeacon_config) with services and ports of this pgbeacon's own. */
    void writeConfig() throws IOException {
      String address = address();
      int bouncer = lab.port(node, "PGBOUNCER");
      Files.writeString(config, String.join("\n",
          "# Generated by FootprintBenchmark: " + label() + " on " + node + ".",
          "node: " + node,
          "patroni: {url: " + lab.rest(node) + ", timeout: 1s}",
          "pgbouncer: {host: " + address + ", port: " + bouncer + ", database: postgres, user: pgbeacon,"
              + " password-file: " + lab.env("LAB_PGBEACON_PASSWORD_FILE") + ", required: true, timeout: 1s}",
          "consul: {address: http://" + lab.consulAgent(node) + ", ttl: 10s, deregister-critical-after: 1m,"
              + " on-stop: critical}",
          "services:",
          "  address: " + address,
          "  primary: {name: bench-" + key + "-primary, port: " + bouncer + "}",
          "  replica: {name: bench-" + key + "-replica, port: " + bouncer + ", max-lag: 16MB}",
          "poll: {interval: 500ms}",
          "agent: {listen: [{address: " + address + ", port: " + firstPort + ", view: primary}, {address: "
              + address + ", port: " + (firstPort + 1) + ", view: replica}]}",
          "http: {address: " + address + ", port: " + (firstPort + 2) + "}",
          ""));
    }

    void start() throws IOException {
      List<String> cmd = new ArrayList<>(setup.command());
      cmd.addAll(List.of("run", "--config", config.toString()));
      ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile());
      // Only the config and the setup speak: nothing from the caller's environment that pgbeacon, the launcher,
      // the JVM or glibc's malloc reads.
      pb.environment().keySet().removeIf(k -> k.startsWith("CONSUL_") || k.startsWith("PGBEACON_")
          || k.startsWith("MALLOC_") || k.equals("JAVA_TOOL_OPTIONS") || k.equals("JDK_JAVA_OPTIONS")
          || k.equals("_JAVA_OPTIONS") || k.equals("JAVA"));
      pb.environment().putAll(setup.env());
      if (nmt) {
        pb.environment().put("JDK_JAVA_OPTIONS", "-XX:NativeMemoryTracking=summary -Xlog:class+load=info:file="
            + classLog);
      }
      startedAt = System.nanoTime();
      process = pb.start();
      Files.writeString(pidFile, process.pid() + "\n");
      say("%s: pid %d, %s%s", label(), process.pid(), envText(pb.environment(), setup.env(), nmt),
          String.join(" ", cmd));
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

    synchronized void sample(long now) {
      long pid = pid();
      Map<String, Long> status = ProcStat.status(pid);
      long cpu = ProcStat.cpuTicks(pid);
      if (status.isEmpty() || cpu < 0) {
        return;
      }
      samples.add(new Sample(now, cpu, status.getOrDefault("VmRSS", -1L), status.getOrDefault("RssAnon", -1L),
          status.getOrDefault("RssFile", -1L) + status.getOrDefault("RssShmem", 0L),
          status.getOrDefault("Threads", -1L), ProcStat.fds(pid)));
    }

    synchronized List<Sample> samples() {
      return List.copyOf(samples);
    }
  }

  /** Thrown out of any wait once a stop was asked for (Ctrl-C, SIGTERM). */
  private static final class Stopped extends RuntimeException {
    Stopped() {
      super("stopped");
    }
  }

  private final Options options;
  private final Path benchDir = Path.of(LAB_DIR, "bench");
  private final Object labLock = new Object();
  private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
  private final List<Beacon> beacons = new ArrayList<>();
  private final List<Setup> setups = new ArrayList<>();
  private final long t0 = System.nanoTime();
  private final ProcStat.Series machineBusy = new ProcStat.Series();
  private final ProcStat.Series machineTotal = new ProcStat.Series();
  private volatile boolean stopping;
  private boolean cleanedUp;
  private Lab lab;
  private String primary;
  private String replica;
  private String loadAtStart = "?";

  private FootprintBenchmark(Options options) {
    this.options = options;
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
    FootprintBenchmark bench = new FootprintBenchmark(options);
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      bench.stopping = true;
      bench.cleanUp();
    }, "footprint-benchmark-stop"));
    int code = 0;
    try {
      bench.run();
    } catch (Stopped e) {
      code = 130;
    } catch (Throwable e) {
      System.out.println();
      System.out.println("footprint benchmark FAILED: " + e.getMessage());
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
    setups.add(new Setup("before-jar", "before, java -jar", options.before(),
        List.of("java", "-jar", options.before().toString()), Map.of()));
    setups.add(new Setup("before-launcher", "before, launcher", options.before(),
        List.of("sh", options.beforeLauncher().toString()), Map.of("PGBEACON_JAR", options.before().toString())));
    setups.add(new Setup("after", "after, launcher", options.jar(), List.of("sh", options.launcher().toString()),
        Map.of("PGBEACON_JAR", options.jar().toString())));
    for (String also : options.also()) {
      String label = also.substring(0, also.indexOf('='));
      List<String> cmd = new ArrayList<>(List.of("java"));
      for (String opt : also.substring(also.indexOf('=') + 1).trim().split("\\s+")) {
        if (!opt.isEmpty()) {
          cmd.add(opt);
        }
      }
      cmd.addAll(List.of("-jar", options.jar().toString()));
      setups.add(new Setup(label, label, options.jar(), List.copyOf(cmd), Map.of()));
    }

    say("footprint benchmark: starting the lab in %s (ports from %d, Patroni %s, no lab pgbeacons)", LAB_DIR,
        options.port(), options.patroni());
    synchronized (labLock) {
      checkStopping();
      lab = Lab.startWithoutPgbeacon(LAB_DIR, options.port(), options.patroni());
    }
    primary = lab.leader();
    replica = lab.nodeNames().stream().filter(n -> !n.equals(primary)).sorted().findFirst()
        .orElseThrow(() -> new IllegalStateException("no replica in the lab (leader " + primary + ")"));
    int block = 0;
    // Per node the port blocks in order; the NMT twins (replica only) take the blocks after the plain ones.
    for (Setup s : setups) {
      beacons.add(new Beacon(s, replica, "replica", false, options.port() + PORT_BLOCKS[block]));
      beacons.add(new Beacon(s, primary, "primary", false, options.port() + PORT_BLOCKS[block]));
      block++;
    }
    if (options.nmt()) {
      for (Setup s : setups) {
        beacons.add(new Beacon(s, replica, "replica", true, options.port() + PORT_BLOCKS[block++]));
      }
    }
    loadAtStart = ProcStat.loadAverage();
    printParameters(System.out);
    daemon("proc sampler", this::sampleLoop);
    if (!options.scrape().isZero()) {
      daemon("metrics scraper", this::scrapeLoop);
    }

    for (Beacon b : beacons) {
      b.writeConfig();
    }
    for (Beacon b : beacons) {
      b.start();
      awaitFirstVerdict(b);
    }
    long allStarted = System.nanoTime();
    long warm = allStarted + options.warmup().toNanos();
    long end = allStarted + options.length().toNanos();
    say("all %d started; warm-up %s, then measuring until %s after the last start", beacons.size(),
        human(options.warmup()), human(options.length()));
    hold(warm - System.nanoTime());
    for (Beacon b : beacons) {
      b.warmAt = System.nanoTime();
      b.threadsAtWarm = ProcStat.threadTicks(b.pid());
    }
    long lastReport = System.nanoTime();
    while (System.nanoTime() < end) {
      hold(Math.min(end - System.nanoTime(), Duration.ofSeconds(1).toNanos()));
      if (System.nanoTime() - lastReport >= Duration.ofMinutes(1).toNanos()) {
        lastReport = System.nanoTime();
        say("%s: %s", human(Duration.ofSeconds((lastReport - allStarted) / 1_000_000_000L)), beacons.stream()
            .map(b -> b.key + " " + mb(b.samples().isEmpty() ? -1 : last(b).rssKib()) + " MB").collect(
                Collectors.joining(", ")));
      }
    }
    for (Beacon b : beacons) {
      b.endAt = System.nanoTime();
      b.threadsAtEnd = ProcStat.threadTicks(b.pid());
      b.sample(b.endAt);
      if (b.nmt) {
        b.nmtText = jcmd(b.pid(), "VM.native_memory", "summary");
      }
    }

    ByteArrayOutputStream text = new ByteArrayOutputStream();
    PrintStream summary = new PrintStream(text, true, StandardCharsets.UTF_8);
    printParameters(summary);
    summary.printf("  load average at the end %s; machine busy over the measured window %s%n",
        ProcStat.loadAverage(), machine(warm, end));
    for (String role : List.of("replica", "primary")) {
      printTable(summary, role);
    }
    if (options.nmt()) {
      printNmt(summary);
      printClasses(summary);
    }
    printThreads(summary);
    System.out.println();
    System.out.println("=================================== summary ===================================");
    System.out.print(text.toString(StandardCharsets.UTF_8));
    Files.write(benchDir.resolve("summary.txt"), text.toByteArray());
    say("summary also in %s", benchDir.resolve("summary.txt"));
  }

  private void printParameters(PrintStream out) {
    out.println();
    out.printf("pgbeacon footprint benchmark, %s%n", Instant.now().truncatedTo(ChronoUnit.SECONDS));
    out.printf("  machine: %d cores, %s %s, Java %s (%s), load average at the start %s; figures are per-process"
            + " (/proc), other work on the machine shows only through contention%n",
        Runtime.getRuntime().availableProcessors(), System.getProperty("os.name"), System.getProperty("os.version"),
        System.getProperty("java.version"), System.getProperty("java.home"), loadAtStart);
    out.printf("  lab: %s, ports from %d, Patroni %s; replica %s (%s), primary %s (%s)%n", LAB_DIR, options.port(),
        options.patroni(), replica, lab.address(replica), primary, lab.address(primary));
    for (Setup s : setups) {
      out.printf("  %-18s %s%s%n", s.label() + ":", s.env().isEmpty() ? "" : s.env().entrySet().stream()
          .map(e -> e.getKey() + "=" + e.getValue()).collect(Collectors.joining(" ", "", " ")),
          String.join(" ", s.command()));
      if (s.command().get(0).equals("sh")) {
        out.printf("  %-18s %s%n", "", launcherLine(Path.of(s.command().get(1))));
      }
    }
    out.printf("  before = %s; each: the lab's pgbeacon config (poll 500ms, Consul TTL 10s, PgBouncer, HTTP on),"
        + " /metrics scraped every %s%n", options.beforeRev(), options.scrape().isZero() ? "(never)"
        : human(options.scrape()));
    out.printf("  run: %s after the last start, warm-up %s (not in the slopes and the steady CPU), samples every"
        + " %d s; start = %d s after the process started%n", human(options.length()), human(options.warmup()),
        SAMPLE_SECONDS, START_SECONDS);
  }

  /** What a launcher script runs: its lines that set or pass JVM options, for the record. */
  private static String launcherLine(Path launcher) {
    try {
      return "runs: " + Files.readAllLines(launcher).stream().map(String::strip)
          .filter(l -> !l.startsWith("#") && (l.contains("-X") || l.startsWith("exec ")))
          .collect(Collectors.joining(" | "));
    } catch (IOException e) {
      return "(unreadable)";
    }
  }

  // ---- the tables ---------------------------------------------------------------------------------------------

  private void printTable(PrintStream out, String role) {
    List<Beacon> cols = beacons.stream().filter(b -> b.role.equals(role) && !b.nmt).toList();
    out.println();
    out.printf("== on the %s (%s)%n", role, role.equals("replica") ? replica : primary);
    StringBuilder head = new StringBuilder(String.format("  %-44s", ""));
    cols.forEach(b -> head.append(String.format(" %18s", b.setup.label())));
    out.println(head);
    row(out, cols, "start to agent answering a verdict, s", b -> secs(b.agentAnswered, b.startedAt));
    row(out, cols, "start to the log's first verdict line, s", b -> secs(b.logVerdict, b.startedAt));
    row(out, cols, "RSS, MB: at start", b -> mb(at(b, b.startedAt + START_SECONDS * 1_000_000_000L).rssKib()));
    row(out, cols, "         after the warm-up", b -> mb(at(b, b.warmAt).rssKib()));
    row(out, cols, "         at the end", b -> mb(last(b).rssKib()));
    row(out, cols, "         peak", b -> mb(b.samples().stream().mapToLong(Sample::rssKib).max().orElse(-1)));
    row(out, cols, "         slope after the warm-up, MB/h", b -> slope(b, s -> s.rssKib() / 1024.0, "%.1f"));
    row(out, cols, "  anonymous at the end, MB", b -> mb(last(b).anonKib()));
    row(out, cols, "  file-backed at the end, MB", b -> mb(last(b).fileKib()));
    row(out, cols, "CPU, % of one core: start to end of warm-up", b -> cpuSinceStart(b, b.warmAt));
    row(out, cols, "  after the warm-up", b -> cpu(b, b.warmAt, b.endAt));
    row(out, cols, "  last third", b -> cpu(b, b.endAt - (b.endAt - b.warmAt) / 3, b.endAt));
    row(out, cols, "threads: at start", b -> Long.toString(at(b, b.startedAt + START_SECONDS * 1_000_000_000L)
        .threads()));
    row(out, cols, "  at the end", b -> Long.toString(last(b).threads()));
    row(out, cols, "  slope, per hour", b -> slope(b, s -> (double) s.threads(), "%.1f"));
    row(out, cols, "FDs: at start", b -> Long.toString(at(b, b.startedAt + START_SECONDS * 1_000_000_000L).fds()));
    row(out, cols, "  at the end", b -> Long.toString(last(b).fds()));
    row(out, cols, "  slope, per hour", b -> slope(b, s -> (double) s.fds(), "%.1f"));
    row(out, cols, "WARN/ERROR lines in the log", b -> Long.toString(logLines(b, " WARN ") + logLines(b, " ERROR ")));
  }

  private void row(PrintStream out, List<Beacon> cols, String label, Function<Beacon, String> value) {
    StringBuilder line = new StringBuilder(String.format("  %-44s", label));
    cols.forEach(b -> line.append(String.format(" %18s", b.samples().isEmpty() ? "-" : value.apply(b))));
    out.println(line);
  }

  /** NMT's committed memory by category, one column per way of running (its twin on the replica). */
  private void printNmt(PrintStream out) {
    List<Beacon> cols = beacons.stream().filter(b -> b.nmt).toList();
    Map<Beacon, Map<String, Long>> committed = new LinkedHashMap<>();
    List<String> categories = new ArrayList<>();
    for (Beacon b : cols) {
      Map<String, Long> c = new LinkedHashMap<>();
      for (String line : b.nmtText.split("\n")) {
        Matcher total = NMT_TOTAL.matcher(line.strip());
        Matcher m = NMT_LINE.matcher(line.strip());
        Matcher classes = NMT_CLASSES.matcher(line);
        if (total.find()) {
          c.put("Total", Long.parseLong(total.group(2)));
        } else if (m.find()) {
          c.put(m.group(1).strip(), Long.parseLong(m.group(3)));
          if (!categories.contains(m.group(1).strip())) {
            categories.add(m.group(1).strip());
          }
        } else if (classes.find() && !c.containsKey("classes")) {
          c.put("classes", Long.parseLong(classes.group(1)));
        }
      }
      committed.put(b, c);
    }
    out.println();
    out.println("== Native Memory Tracking, committed MB (the NMT twins on the replica, at the end; NMT's own"
        + " tables are the \"Native Memory Tracking\" row)");
    StringBuilder head = new StringBuilder(String.format("  %-44s", ""));
    cols.forEach(b -> head.append(String.format(" %18s", b.setup.label())));
    out.println(head);
    row(out, cols, "RSS of the twin (with NMT), MB", b -> mb(last(b).rssKib()));
    row(out, cols, "NMT total committed", b -> mbOf(committed.get(b).get("Total")));
    for (String cat : categories) {
      row(out, cols, "  " + cat, b -> mbOf(committed.get(b).get(cat)));
    }
    row(out, cols, "classes loaded (NMT)", b -> String.valueOf(committed.get(b).getOrDefault("classes", -1L)));
  }

  /** Classes by library from each NMT twin's class-load log: where metaspace goes. */
  private void printClasses(PrintStream out) {
    List<Beacon> cols = beacons.stream().filter(b -> b.nmt).toList();
    Map<Beacon, Map<String, long[]>> byLib = new LinkedHashMap<>(); // {loaded, from the CDS archive}
    List<String> libs = new ArrayList<>();
    for (Beacon b : cols) {
      Map<String, long[]> counts = new TreeMap<>();
      try {
        for (String line : Files.readAllLines(b.classLog)) {
          Matcher m = CLASS_LOAD.matcher(line);
          if (m.find()) {
            long[] n = counts.computeIfAbsent(library(m.group(1)), k -> new long[2]);
            n[0]++;
            if (m.group(2).startsWith("shared")) {
              n[1]++;
            }
          }
        }
      } catch (IOException e) {
        // shown as missing
      }
      counts.keySet().stream().filter(l -> !libs.contains(l)).forEach(libs::add);
      byLib.put(b, counts);
    }
    libs.sort((a, b) -> Long.compare(cols.stream().mapToLong(c -> byLib.get(c).getOrDefault(b, new long[2])[0])
        .sum(), cols.stream().mapToLong(c -> byLib.get(c).getOrDefault(a, new long[2])[0]).sum()));
    out.println();
    out.println("== classes loaded by library (-Xlog:class+load of the NMT twins): loaded / of them from the JDK's"
        + " CDS archive (not in metaspace)");
    StringBuilder head = new StringBuilder(String.format("  %-44s", ""));
    cols.forEach(b -> head.append(String.format(" %18s", b.setup.label())));
    out.println(head);
    for (String lib : libs) {
      row(out, cols, lib, b -> {
        long[] n = byLib.get(b).getOrDefault(lib, new long[2]);
        return n[0] + " / " + n[1];
      });
    }
    row(out, cols, "all", b -> byLib.get(b).values().stream().mapToLong(n -> n[0]).sum() + " / "
        + byLib.get(b).values().stream().mapToLong(n -> n[1]).sum());
  }

  /** The library a class belongs to, by package prefix. */
  static String library(String className) {
    String[][] prefixes = {
        {"io.pgbeacon.", "pgbeacon"}, {"io.netty.resolver.dns.", "Netty DNS resolver"},
        {"io.netty.handler.codec.dns.", "Netty DNS resolver"}, {"io.netty.", "Netty"}, {"io.vertx.sqlclient.", "Vert.x SQL/pg client"},
        {"io.vertx.pgclient.", "Vert.x SQL/pg client"}, {"io.vertx.ext.web.", "Vert.x web client"},
        {"io.vertx.", "Vert.x core"}, {"com.fasterxml.jackson.dataformat.yaml.", "Jackson YAML + SnakeYAML"},
        {"org.yaml.snakeyaml.", "Jackson YAML + SnakeYAML"}, {"com.fasterxml.jackson.", "Jackson"},
        {"io.micrometer.", "Micrometer + Prometheus client"}, {"io.prometheus.", "Micrometer + Prometheus client"},
        {"org.HdrHistogram.", "Micrometer + Prometheus client"}, {"org.LatencyUtils.", "Micrometer + Prometheus client"},
        {"com.ecwid.consul.", "consul-api + HttpClient + Gson"}, {"org.apache.http.", "consul-api + HttpClient + Gson"},
        {"com.google.gson.", "consul-api + HttpClient + Gson"}, {"org.apache.commons.logging.", "SLF4J + Logback"},
        {"ch.qos.logback.", "SLF4J + Logback"}, {"org.slf4j.", "SLF4J + Logback"}, {"picocli.", "picocli"},
        {"com.sun.org.apache.xerces.", "JDK XML (logback.xml)"}, {"javax.xml.", "JDK XML (logback.xml)"},
        {"jdk.xml.", "JDK XML (logback.xml)"}, {"com.sun.org.apache.xml.", "JDK XML (logback.xml)"},
        {"javax.management.", "JDK management (JMX)"}, {"sun.management.", "JDK management (JMX)"},
        {"com.sun.management.", "JDK management (JMX)"}, {"java.lang.management.", "JDK management (JMX)"},
        {"jdk.internal.reflect.Generated", "JDK reflection stubs"}, {"java.lang.invoke.", "JDK lambdas, invoke"},
        {"java.", "JDK"}, {"javax.", "JDK"}, {"jdk.", "JDK"}, {"sun.", "JDK"}, {"com.sun.", "JDK"}};
    for (String[] p : prefixes) {
      if (className.startsWith(p[0])) {
        return p[1];
      }
    }
    return "other";
  }

  /** CPU by thread over the measured window, the top threads of each pgbeacon without NMT. */
  private void printThreads(PrintStream out) {
    out.println();
    out.println("== CPU by thread after the warm-up, % of one core (threads summed by name, digits as #; top 8)");
    for (Beacon b : beacons) {
      if (b.nmt) {
        continue;
      }
      double seconds = (b.endAt - b.warmAt) / 1e9;
      Map<String, Long> diff = new TreeMap<>();
      b.threadsAtEnd.forEach((name, ticks) -> diff.put(name, ticks - b.threadsAtWarm.getOrDefault(name, 0L)));
      String top = diff.entrySet().stream().sorted(Map.Entry.<String, Long>comparingByValue().reversed()).limit(8)
          .map(e -> String.format(Locale.ROOT, "%s %.3f", e.getKey(), 100.0 * e.getValue() / ProcStat.CLOCK_TICKS
              / seconds)).collect(Collectors.joining(", "));
      out.printf("  %-34s %s%n", b.label() + ":", top);
    }
  }

  // ---- figures ------------------------------------------------------------------------------------------------

  private static Sample last(Beacon b) {
    List<Sample> s = b.samples();
    return s.isEmpty() ? new Sample(0, -1, -1, -1, -1, -1, -1) : s.get(s.size() - 1);
  }

  /** The first sample at or after {@code t} (the last one if none). */
  private static Sample at(Beacon b, long t) {
    for (Sample s : b.samples()) {
      if (s.at() - t >= 0) {
        return s;
      }
    }
    return last(b);
  }

  /** Least-squares slope per hour of a value over the samples after the warm-up. */
  private static String slope(Beacon b, Function<Sample, Double> value, String format) {
    List<Sample> s = b.samples().stream().filter(x -> x.at() - b.warmAt >= 0).toList();
    if (s.size() < 3) {
      return "-";
    }
    double n = s.size();
    double mx = s.stream().mapToDouble(x -> (x.at() - b.warmAt) / 3.6e12).sum() / n;
    double my = s.stream().mapToDouble(value::apply).sum() / n;
    double sxy = 0;
    double sxx = 0;
    for (Sample x : s) {
      double dx = (x.at() - b.warmAt) / 3.6e12 - mx;
      sxy += dx * (value.apply(x) - my);
      sxx += dx * dx;
    }
    return sxx == 0 ? "-" : String.format(Locale.ROOT, format, sxy / sxx);
  }

  /** CPU between two instants, from the samples around them, in % of one core. */
  private static String cpu(Beacon b, long from, long until) {
    Sample a = at(b, from);
    Sample z = at(b, until);
    if (z.at() - a.at() <= 0) {
      return "-";
    }
    return String.format(Locale.ROOT, "%.2f", 100.0 * (z.cpuTicks() - a.cpuTicks()) / ProcStat.CLOCK_TICKS
        / ((z.at() - a.at()) / 1e9));
  }

  /** CPU from the process's start (0 ticks) to the sample at {@code until}, in % of one core. */
  private static String cpuSinceStart(Beacon b, long until) {
    Sample z = at(b, until);
    if (z.at() - b.startedAt <= 0) {
      return "-";
    }
    return String.format(Locale.ROOT, "%.2f", 100.0 * z.cpuTicks() / ProcStat.CLOCK_TICKS
        / ((z.at() - b.startedAt) / 1e9));
  }

  private String machine(long from, long until) {
    double busy = machineBusy.at(until) - machineBusy.at(from);
    double total = machineTotal.at(until) - machineTotal.at(from);
    return String.format(Locale.ROOT, "%.0f%% of %d cores", total > 0 ? 100 * busy / total : Double.NaN,
        Runtime.getRuntime().availableProcessors());
  }

  private static String mb(long kib) {
    return kib < 0 ? "-" : String.format(Locale.ROOT, "%.1f", kib / 1024.0);
  }

  private static String mbOf(Long kib) {
    return kib == null ? "-" : mb(kib);
  }

  private static String secs(OptionalLong at, long from) {
    return at.isPresent() ? String.format(Locale.ROOT, "%.2f", (at.getAsLong() - from) / 1e9) : "never";
  }

  private static long logLines(Beacon b, String level) {
    try {
      return Files.readAllLines(b.log).stream().filter(l -> l.contains(level)).count();
    } catch (IOException e) {
      return -1;
    }
  }

  // ---- observing ----------------------------------------------------------------------------------------------

  /**
   * Waits for a pgbeacon's first verdict: its replica-view agent port answering something other than
   * {@code starting} (asked every 10 ms), and its log's first {@code verdict:} line.
   */
  private void awaitFirstVerdict(Beacon b) {
    long deadline = b.startedAt + FIRST_VERDICT_LIMIT.toNanos();
    while (System.nanoTime() < deadline && (b.agentAnswered.isEmpty() || b.logVerdict.isEmpty())) {
      checkAlive(b);
      if (b.agentAnswered.isEmpty()) {
        Optional<String> reply = agentReply(b.address(), b.firstPort + 1);
        if (reply.isPresent() && !reply.get().contains("starting")) {
          b.agentAnswered = OptionalLong.of(System.nanoTime());
        }
      }
      if (b.logVerdict.isEmpty() && logHas(b.log, " verdict: ")) {
        b.logVerdict = OptionalLong.of(System.nanoTime());
      }
      sleepQuietly(10);
    }
    say("%s: agent answered a verdict after %s s, the log's first verdict after %s s", b.label(),
        secs(b.agentAnswered, b.startedAt), secs(b.logVerdict, b.startedAt));
  }

  private static Optional<String> agentReply(String host, int port) {
    try (Socket s = new Socket()) {
      s.connect(new InetSocketAddress(host, port), 200);
      s.setSoTimeout(500);
      InputStream in = s.getInputStream(); // the view is fixed by the port: nothing to send
      return Optional.of(new String(in.readAllBytes(), StandardCharsets.US_ASCII).strip());
    } catch (IOException e) {
      return Optional.empty();
    }
  }

  private static boolean logHas(Path log, String text) {
    try {
      return Files.readString(log, StandardCharsets.UTF_8).contains(text);
    } catch (IOException | RuntimeException e) {
      return false;
    }
  }

  private void sampleLoop() {
    while (!stopping) {
      long now = System.nanoTime();
      for (Beacon b : beacons) {
        if (b.process != null && b.process.isAlive()) {
          b.sample(now);
        }
      }
      long[] m = ProcStat.machineTicks();
      machineBusy.add(now, m[0]);
      machineTotal.add(now, m[1]);
      sleepQuietly(SAMPLE_SECONDS * 1000L);
    }
  }

  /** Every pgbeacon's /metrics, one after another, every --scrape: as Prometheus would. */
  private void scrapeLoop() {
    while (!stopping) {
      sleepQuietly(options.scrape().toMillis());
      for (Beacon b : beacons) {
        if (b.process == null || !b.process.isAlive() || b.agentAnswered.isEmpty()) {
          continue;
        }
        try {
          http.send(HttpRequest.newBuilder(URI.create("http://" + b.address() + ":" + (b.firstPort + 2)
              + "/metrics")).timeout(Duration.ofSeconds(5)).build(), HttpResponse.BodyHandlers.discarding());
        } catch (IOException e) {
          // counted nowhere: a pgbeacon that stops answering shows in its log and its exit
        } catch (InterruptedException e) {
          return;
        }
      }
    }
  }

  private String jcmd(long pid, String... command) {
    List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "jcmd").toString(),
        Long.toString(pid)));
    cmd.addAll(List.of(command));
    try {
      Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
      String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      p.waitFor(30, TimeUnit.SECONDS);
      return out;
    } catch (IOException e) {
      return "jcmd failed: " + e.getMessage();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return "";
    }
  }

  // ---- waiting ------------------------------------------------------------------------------------------------

  /** Sleeps, but ends at once on a stop request and fails when a pgbeacon has exited. */
  private void hold(long nanos) {
    long end = System.nanoTime() + nanos;
    while (System.nanoTime() - end < 0) {
      beacons.forEach(this::checkAlive);
      sleepQuietly(Math.max(1, Math.min(100, (end - System.nanoTime()) / 1_000_000)));
    }
  }

  private void checkAlive(Beacon b) {
    checkStopping();
    if (b.process != null && !b.process.isAlive()) {
      sleepQuietly(500);
      checkStopping(); // a Ctrl-C reaches the pgbeacons too
      throw new IllegalStateException(b.label() + " pgbeacon exited with " + b.process.exitValue()
          + "; the end of " + b.log + ":\n" + tail(b.log));
    }
  }

  private void checkStopping() {
    if (stopping) {
      throw new Stopped();
    }
  }

  // ---- cleaning up --------------------------------------------------------------------------------------------

  /** Stops pgbeacons a killed run left behind, by the PID it recorded, if that PID still runs our config. */
  private void stopLeftovers() throws IOException {
    try (var files = Files.list(benchDir)) {
      for (Path pidFile : files.filter(f -> f.toString().endsWith(".pid")).toList()) {
        long pid = Long.parseLong(Files.readString(pidFile).trim());
        String config = pidFile.toString().replaceAll("\\.pid$", ".yml");
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
  }

  /** Idempotent: pgbeacons (by PID), then the lab. */
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
      System.out.println("stopping the lab (" + LAB_DIR + ")");
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
      pb.environment().put("LAB_DIR", LAB_DIR);
      pb.start().waitFor(2, TimeUnit.MINUTES);
    } catch (IOException e) {
      System.out.println("cannot run lab.sh stop: " + e.getMessage());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  // ---- small things -------------------------------------------------------------------------------------------

  private static String envText(Map<String, String> all, Map<String, String> set, boolean nmt) {
    StringBuilder s = new StringBuilder();
    set.forEach((k, v) -> s.append(k).append('=').append(v).append(' '));
    if (nmt) {
      s.append("JDK_JAVA_OPTIONS='").append(all.get("JDK_JAVA_OPTIONS")).append("' ");
    }
    return s.toString();
  }

  private void daemon(String name, Runnable body) {
    Thread t = new Thread(body, name);
    t.setDaemon(true);
    t.start();
  }

  private void say(String format, Object... args) {
    System.out.printf("[bench %4ds] %s%n", (System.nanoTime() - t0) / 1_000_000_000L, String.format(format, args));
  }
}
