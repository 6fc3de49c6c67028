package io.pgbeacon.bench;

import io.pgbeacon.PgBeacon;
import io.pgbeacon.config.ConfigLoader;
import io.pgbeacon.support.ConsulDevAgent;
import io.pgbeacon.support.RecordedPatroni;
import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.management.ManagementFactory;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * What a Prometheus scrape of {@code /metrics} costs the daemon. Starts pgbeacon in this JVM as {@code
 * HttpEndpointsIT} does — the real {@link PgBeacon} against a real Consul agent ({@code consul agent -dev}) and node1
 * of the recorded Patroni 4.1.5 lab, a healthy leader, with a {@code view: primary} agent port — waits until its
 * Consul checks are pushed (so every series is there), and scrapes {@code /metrics} back to back over one keep-alive
 * connection, as Prometheus does: after a warm-up, N timed scrapes.
 *
 * <p>Prints the body's size and series, latency (request written to body read) mean, p50, p99, max, and CPU per
 * scrape: of the whole JVM (process CPU time), of the client thread, of the thread that served them (the HTTP event
 * loop, where Micrometer renders the text) with the heap it allocated, and of the rest less what the daemon spends
 * idle (measured over an idle interval first, and subtracted pro rata: polls, pushes, GC). Then, unless {@code
 * --agent-seconds 0}, the agent port's replies/s at 8 clients with and without a scrape every second, by turns.
 *
 * <p>Run: {@code scripts/bench-scrape.sh [--scrapes 2000] [--warmup 500] [--openmetrics] [--idle-seconds 10]
 * [--agent-seconds 5] [--agent-pairs 3] [--agent-warmup 5]}. Not a test: it prints figures.
 */
public final class ScrapeBenchmark {

  public static void main(String[] args) throws Exception {
    int exit = 1;
    try {
      Options options = Options.parse(args);
      exit = options == null ? 0 : run(options);
    } catch (IllegalArgumentException e) {
      System.err.println(e.getMessage());
      exit = 2;
    } finally {
      System.exit(exit); // no thread of Vert.x, of the recorded Patroni or of the benchmark outlives it
    }
  }

  private static final com.sun.management.OperatingSystemMXBean PROCESS =
      (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
  private static final com.sun.management.ThreadMXBean THREADS =
      (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();

  private static int run(Options options) throws Exception {
    System.out.println(AgentBenchmark.machine());
    Path dir = Files.createTempDirectory("pgbeacon-bench-scrape");
    ConsulDevAgent consul = new ConsulDevAgent(dir, null);
    RecordedPatroni patroni = null;
    PgBeacon beacon = null;
    try {
      consul.start();
      patroni = RecordedPatroni.start("4.1.5", "primary.json", true);
      beacon = new PgBeacon(ConfigLoader.parse("""
          patroni: {url: '%s', leader-key: 'off'}
          consul: {address: 'http://%s'}
          agent: {listen: [{address: 127.0.0.1, port: 0, view: primary}]}
          http: {address: 127.0.0.1, port: 0}
          """.formatted(patroni.url(), consul.address()), ConfigLoader.Overrides.none(), Map.of()), "bench");
      beacon.start().toCompletionStage().toCompletableFuture().get(30, TimeUnit.SECONDS);
      System.out.println("daemon: pgbeacon in this JVM, Consul " + consul.address() + " (log " + consul.log()
          + "), recorded Patroni 4.1.5 node1 (leader), http 127.0.0.1:" + beacon.httpPort() + ", agent 127.0.0.1:"
          + beacon.agentPorts().get(0));
      try (Scraper scraper = new Scraper(beacon.httpPort(), options.openMetrics)) {
        awaitPushes(scraper);
        scrapes(scraper, options);
      }
      if (options.agentSeconds > 0) {
        agentUnderScrapes(beacon, options);
      }
      return 0;
    } finally {
      if (beacon != null) {
        beacon.stop().get(20, TimeUnit.SECONDS);
      }
      if (patroni != null) {
        patroni.close();
      }
      consul.close();
    }
  }

  /** Until the Consul pushes (and so their series) are in the metrics: a scrape of a settled daemon. */
  private static void awaitPushes(Scraper scraper) throws IOException, InterruptedException {
    long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
    while (!scraper.get().contains("pgbeacon_consul_push_age_seconds")) {
      if (System.nanoTime() > end) {
        throw new IllegalStateException("no Consul pushes in /metrics after 30 s");
      }
      Thread.sleep(100);
    }
  }

  private static void scrapes(Scraper scraper, Options options) throws IOException, InterruptedException {
    for (int i = 0; i < options.warmup; i++) {
      scraper.get();
    }
    // What the daemon spends idle (polls every 500 ms, Consul pushes, timers), to take off the scrapes' share.
    long idleWall0 = System.nanoTime();
    long idleCpu0 = PROCESS.getProcessCpuTime();
    Thread.sleep(options.idleSeconds * 1000L);
    double idleCpuPerSecond = (PROCESS.getProcessCpuTime() - idleCpu0) / ((System.nanoTime() - idleWall0) / 1e9);

    String body = scraper.get();
    Map<Long, Long> threadCpu0 = threadCpu();
    long[] ids = THREADS.getAllThreadIds();
    long[] alloc0 = THREADS.getThreadAllocatedBytes(ids);
    long clientCpu0 = THREADS.getCurrentThreadCpuTime();
    long processCpu0 = PROCESS.getProcessCpuTime();
    long wall0 = System.nanoTime();
    long[] latencies = new long[options.scrapes];
    long bytes = 0;
    for (int i = 0; i < options.scrapes; i++) {
      long t0 = System.nanoTime();
      bytes += scraper.get().length();
      latencies[i] = System.nanoTime() - t0;
    }
    double wall = (System.nanoTime() - wall0) / 1e9;
    long processCpu = PROCESS.getProcessCpuTime() - processCpu0;
    long clientCpu = THREADS.getCurrentThreadCpuTime() - clientCpu0;
    Map<Long, Long> threadCpu = threadCpu();
    long[] alloc = THREADS.getThreadAllocatedBytes(ids);

    // The server: the thread, other than this one, that spent the most CPU meanwhile (the HTTP event loop).
    long serverId = -1;
    long serverCpu = 0;
    for (Map.Entry<Long, Long> e : threadCpu.entrySet()) {
      long delta = e.getValue() - threadCpu0.getOrDefault(e.getKey(), 0L);
      if (e.getKey() != Thread.currentThread().getId() && delta > serverCpu) {
        serverId = e.getKey();
        serverCpu = delta;
      }
    }
    long serverAlloc = 0;
    for (int i = 0; i < ids.length; i++) {
      if (ids[i] == serverId) {
        serverAlloc = alloc[i] - alloc0[i];
      }
    }
    String serverName = serverId < 0 ? "?" : THREADS.getThreadInfo(serverId).getThreadName();
    long[] sorted = latencies.clone();
    Arrays.sort(sorted);
    int n = options.scrapes;
    double rest = (processCpu - clientCpu - serverCpu - idleCpuPerSecond * wall) / n;

    System.out.println();
    System.out.printf(Locale.ROOT, "== /metrics, %s, %d scrapes back to back after %d of warm-up (load average"
        + " before: %s)%n", options.openMetrics ? "OpenMetrics" : "Prometheus text 0.0.4", n, options.warmup,
        AgentBenchmark.load());
    System.out.printf(Locale.ROOT, "body: %d bytes (mean %.0f over the run), %d series (%d pgbeacon_*), %d metric"
        + " families%n", body.getBytes(StandardCharsets.UTF_8).length, (double) bytes / n, series(body, ""),
        series(body, "pgbeacon_"), families(body));
    System.out.printf(Locale.ROOT, "latency: mean %.3f ms, p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, max %.3f ms"
        + " (%.0f scrapes/s back to back)%n", Arrays.stream(latencies).average().orElse(0) / 1e6,
        percentile(sorted, 0.50), percentile(sorted, 0.90), percentile(sorted, 0.99), percentile(sorted, 1.0),
        n / wall);
    System.out.printf(Locale.ROOT, "cpu per scrape: JVM %.0f us = client %.0f us + server %.0f us (thread %s)"
        + " + rest %.0f us (GC, JIT, the recorded Patroni; the daemon's idle %.1f ms/s taken off)%n",
        processCpu / 1e3 / n, clientCpu / 1e3 / n, serverCpu / 1e3 / n, serverName, rest / 1e3,
        idleCpuPerSecond / 1e6);
    System.out.printf(Locale.ROOT, "server heap allocated per scrape: %.0f kB; at one scrape every 15 s the"
        + " server's %.0f us is %.4f%% of one core%n", serverAlloc / 1024.0 / n, serverCpu / 1e3 / n,
        serverCpu / 1e9 / n / 15 * 100);
    System.out.println("busiest Java threads meanwhile, CPU per scrape (GC threads are not Java threads: in rest): "
        + busiest(threadCpu0, threadCpu, n));
  }

  /** Agent replies/s at 8 clients with a scrape every second and without, by turns. */
  private static void agentUnderScrapes(PgBeacon beacon, Options options) throws Exception {
    int port = beacon.agentPorts().get(0);
    byte[] expected = AgentBenchmark.once("127.0.0.1", port, null);
    AgentBenchmark.Target target = new AgentBenchmark.Target("agent", "127.0.0.1", port, null, expected);
    AgentBenchmark.Options agent = AgentBenchmark.Options.parse(new String[] {"--warmup",
        Integer.toString(options.agentWarmup)});
    int clients = AgentBenchmark.GOAL_CLIENTS;
    System.out.println();
    System.out.printf(Locale.ROOT, "== agent port at %d clients, without scrapes and with one a second, by turns:"
        + " %d pairs of %d s after %d s warm-up (load average before: %s); reply: %s%n", clients, options.agentPairs,
        options.agentSeconds, agent.warmup, AgentBenchmark.load(), new String(expected, StandardCharsets.US_ASCII)
        .strip());
    AgentBenchmark.run(target, agent, clients, agent.warmup * 1000L);
    System.out.printf(Locale.ROOT, "%-5s | %-34s | %-34s | %s%n", "pair", "no scrape: replies/s p50 p99",
        "1 scrape/s: replies/s p50 p99", "with vs without: replies/s p99");
    List<Double> diffs = new ArrayList<>();
    for (int pair = 1; pair <= options.agentPairs; pair++) {
      AgentBenchmark.Result quiet = AgentBenchmark.run(target, agent, clients, options.agentSeconds * 1000L);
      AgentBenchmark.Result scraped;
      try (Scraper scraper = new Scraper(beacon.httpPort(), options.openMetrics);
          Ticker ticker = new Ticker(scraper)) {
        scraped = AgentBenchmark.run(target, agent, clients, options.agentSeconds * 1000L);
      }
      diffs.add((scraped.rate() - quiet.rate()) / quiet.rate() * 100);
      System.out.printf(Locale.ROOT, "%-5d | %9.0f %7.3f %7.3f ms %s | %9.0f %7.3f %7.3f ms %s | %+6.1f%% %+6.1f%%%n",
          pair, quiet.rate(), quiet.percentileMs(0.5), quiet.percentileMs(0.99), errors(quiet), scraped.rate(),
          scraped.percentileMs(0.5), scraped.percentileMs(0.99), errors(scraped),
          diffs.get(diffs.size() - 1), (scraped.percentileMs(0.99) - quiet.percentileMs(0.99))
              / quiet.percentileMs(0.99) * 100);
    }
    double[] sorted = diffs.stream().mapToDouble(Double::doubleValue).sorted().toArray();
    System.out.printf(Locale.ROOT, "   replies/s with vs without, pair by pair: %+.1f%% .. %+.1f%% (median %+.1f%%):"
        + " the spread is the noise a difference must exceed%n", sorted[0], sorted[sorted.length - 1],
        sorted[sorted.length / 2]);
  }

  private static String errors(AgentBenchmark.Result r) {
    return r.errors() == 0 ? "ok " : r.errors() + " errors (" + r.firstProblem() + ")";
  }

  /** A scrape every second on a thread of its own, until closed (or the first failed scrape). */
  private static final class Ticker implements AutoCloseable {
    private final ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(r -> {
      Thread t = new Thread(r, "bench-scraper");
      t.setDaemon(true);
      return t;
    });

    Ticker(Scraper scraper) {
      timer.scheduleWithFixedDelay(() -> {
        try {
          scraper.get();
        } catch (IOException e) {
          System.out.println("     scrape failed: " + e);
          timer.shutdown();
        }
      }, 0, 1, TimeUnit.SECONDS);
    }

    @Override
    public void close() throws InterruptedException {
      timer.shutdownNow();
      timer.awaitTermination(5, TimeUnit.SECONDS);
    }
  }

  /**
   * {@code GET /metrics} over one keep-alive HTTP/1.1 connection, blocking, on the calling thread — so that the
   * client's CPU is that thread's. Reads the body by its Content-Length (Vert.x sends one for a body given whole).
   */
  static final class Scraper implements AutoCloseable {
    private final Socket socket;
    private final OutputStream out;
    private final InputStream in;
    private final byte[] request;

    Scraper(int port, boolean openMetrics) throws IOException {
      socket = new Socket();
      socket.setTcpNoDelay(true);
      socket.connect(new InetSocketAddress("127.0.0.1", port), 2000);
      socket.setSoTimeout(5000);
      out = socket.getOutputStream();
      in = new BufferedInputStream(socket.getInputStream(), 1 << 16);
      request = ("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:" + port + "\r\n"
          + (openMetrics ? "Accept: application/openmetrics-text; version=1.0.0\r\n" : "") + "\r\n")
          .getBytes(StandardCharsets.US_ASCII);
    }

    String get() throws IOException {
      out.write(request);
      out.flush();
      String status = line();
      if (!status.startsWith("HTTP/1.1 200")) {
        throw new IOException("/metrics answered " + status);
      }
      int length = -1;
      for (String header = line(); !header.isEmpty(); header = line()) {
        if (header.regionMatches(true, 0, "content-length:", 0, 15)) {
          length = Integer.parseInt(header.substring(15).strip());
        }
      }
      if (length < 0) {
        throw new IOException("/metrics answered without Content-Length");
      }
      return new String(in.readNBytes(length), StandardCharsets.UTF_8);
    }

    private String line() throws IOException {
      ByteArrayOutputStream line = new ByteArrayOutputStream(64);
      for (int b = in.read(); b != '\n'; b = in.read()) {
        if (b < 0) {
          throw new IOException("connection closed");
        }
        if (b != '\r') {
          line.write(b);
        }
      }
      return line.toString(StandardCharsets.US_ASCII);
    }

    @Override
    public void close() throws IOException {
      socket.close();
    }
  }

  private static String busiest(Map<Long, Long> before, Map<Long, Long> after, int n) {
    return after.entrySet().stream()
        .map(e -> Map.entry(e.getKey(), e.getValue() - before.getOrDefault(e.getKey(), 0L)))
        .sorted(Map.Entry.<Long, Long>comparingByValue().reversed()).limit(5)
        .map(e -> {
          var info = THREADS.getThreadInfo(e.getKey());
          return String.format(Locale.ROOT, "%s %.0f us", info == null ? "#" + e.getKey() : info.getThreadName(),
              e.getValue() / 1e3 / n);
        })
        .collect(java.util.stream.Collectors.joining(", "));
  }

  /** CPU time so far of every live thread, by id. */
  private static Map<Long, Long> threadCpu() {
    Map<Long, Long> cpu = new HashMap<>();
    for (long id : THREADS.getAllThreadIds()) {
      long t = THREADS.getThreadCpuTime(id);
      if (t >= 0) {
        cpu.put(id, t);
      }
    }
    return cpu;
  }

  /** Sample lines (not comments, not blank) whose name starts with {@code prefix}. */
  static long series(String body, String prefix) {
    return body.lines().filter(l -> !l.isEmpty() && !l.startsWith("#") && l.startsWith(prefix)).count();
  }

  static long families(String body) {
    return body.lines().filter(l -> l.startsWith("# TYPE ")).count();
  }

  private static double percentile(long[] sorted, double p) {
    int index = (int) Math.ceil(p * sorted.length) - 1;
    return sorted[Math.max(0, Math.min(sorted.length - 1, index))] / 1e6;
  }

  static final class Options {
    static final String USAGE = "usage: bench-scrape.sh [--scrapes N] [--warmup N] [--openmetrics] [--idle-seconds N]"
        + " [--agent-seconds N (0: skip)] [--agent-pairs N] [--agent-warmup N]";
    int scrapes = 2000;
    int warmup = 500;
    boolean openMetrics;
    int idleSeconds = 10;
    int agentSeconds = 5;
    int agentPairs = 3;
    int agentWarmup = 5;

    static Options parse(String[] args) {
      Options o = new Options();
      for (int i = 0; i < args.length; i++) {
        String a = args[i];
        switch (a) {
          case "--scrapes" -> o.scrapes = positive(args, ++i, a);
          case "--warmup" -> o.warmup = Integer.parseInt(value(args, ++i, a));
          case "--openmetrics" -> o.openMetrics = true;
          case "--idle-seconds" -> o.idleSeconds = positive(args, ++i, a);
          case "--agent-seconds" -> o.agentSeconds = Integer.parseInt(value(args, ++i, a));
          case "--agent-pairs" -> o.agentPairs = positive(args, ++i, a);
          case "--agent-warmup" -> o.agentWarmup = Integer.parseInt(value(args, ++i, a));
          case "-h", "--help" -> {
            System.out.println(USAGE);
            return null;
          }
          default -> throw new IllegalArgumentException("unknown argument: " + a + "\n" + USAGE);
        }
      }
      return o;
    }

    private static int positive(String[] args, int i, String name) {
      int v = Integer.parseInt(value(args, i, name));
      if (v < 1) {
        throw new IllegalArgumentException(name + " must be at least 1");
      }
      return v;
    }

    private static String value(String[] args, int i, String name) {
      if (i >= args.length) {
        throw new IllegalArgumentException(name + " needs a value");
      }
      return args[i];
    }
  }

  private ScrapeBenchmark() {}
}
