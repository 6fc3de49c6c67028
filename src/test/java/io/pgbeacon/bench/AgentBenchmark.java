package io.pgbeacon.bench;

import io.pgbeacon.support.Healths;

import io.pgbeacon.InProcessAgent;
import io.pgbeacon.health.NodeHealth;
import io.pgbeacon.health.Status;
import io.pgbeacon.health.Verdict;
import io.pgbeacon.metrics.Metrics;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.net.ConnectException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.StandardProtocolFamily;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.OptionalLong;

/**
 * Load on an agent-check port the way HAProxy makes it: per check a new TCP connection, optionally the
 * {@code agent-send} line, read the reply to EOF, close with a reset (HAProxy closes its checks with
 * {@code SO_LINGER 0}, which also keeps TIME_WAIT sockets from piling up on either side). One blocking client
 * thread per concurrent client, each connection timed from before {@code connect} to EOF.
 *
 * <p>Without {@code --host} it starts pgbeacon's agent side in this JVM ({@link InProcessAgent}: the real
 * AgentVerticle and HealthBoard, holding a passing primary verdict) with a {@code view: primary} listener and a
 * listener without view, and measures both — the second with {@code agent-send "primary\n"}. The client runs in
 * the same JVM on the same cores: the figures are a floor for the server, not its ceiling.
 *
 * <p>Run: {@code scripts/bench-agent.sh [--seconds 3] [--warmup 3] [--clients 1,8,64] [--host H --port P [--send
 * primary]] [--fin] [--timeout-ms 1000]}. Not a test: it prints figures and whether the goal at 8 clients (20 000
 * replies/s, p99 at most 2 ms, no errors) was met; {@code --strict} exits 1 when it was not.
 *
 * <p>{@code --compare-counting [--pairs 6]} measures what the daemon's reply counter ({@code
 * pgbeacon_agent_replies_total}) costs: two in-process agents with a {@code view: primary} listener each, one whose
 * replies are not counted and one counting them in a {@link Metrics} registry as the daemon does, loaded by turns
 * (off, on, off, on, …) at 8 clients (or {@code --clients}) so that a machine whose load drifts shifts both alike.
 * It prints each pair side by side, the difference in %, the medians, and the replies the counter saw.
 */
public final class AgentBenchmark {

  static final int GOAL_CLIENTS = 8;
  static final double GOAL_RATE = 20_000;
  static final double GOAL_P99_MS = 2.0;

  public static void main(String[] args) throws Exception {
    int exit = 1;
    try {
      Options options = Options.parse(args);
      exit = options == null ? 0 : run(options);
    } catch (IllegalArgumentException e) {
      System.err.println(e.getMessage());
      exit = 2;
    } finally {
      System.exit(exit); // whatever happened, no thread of the benchmark or of Vert.x outlives it
    }
  }

  private static int run(Options options) throws Exception {
    System.out.println(machine());
    if (options.compareCounting) {
      return compareCounting(options);
    }
    List<Target> targets = new ArrayList<>();
    InProcessAgent agent = null;
    try {
      if (options.host == null) {
        agent = InProcessAgent.start("agent: {listen: [{address: 127.0.0.1, port: 0, view: primary},"
            + " {address: 127.0.0.1, port: 0}]}", primaryNode());
        System.out.println("server: pgbeacon's AgentVerticle in this JVM, Vert.x transport "
            + (agent.nativeTransport() ? "native epoll" : "JDK NIO"));
        // Every reply must be exactly the one the agent gives for this verdict, whatever the vocabulary.
        byte[] expected = once("127.0.0.1", agent.ports().get(0), null);
        if (expected.length == 0 || expected[expected.length - 1] != '\n') {
          throw new IllegalStateException("the in-process agent answered '" + new String(expected,
              StandardCharsets.US_ASCII) + "'");
        }
        System.out.println("reply: " + new String(expected, StandardCharsets.US_ASCII).strip());
        targets.add(new Target("in-process pgbeacon, view: primary listener", "127.0.0.1", agent.ports().get(0),
            null, expected));
        targets.add(new Target("in-process pgbeacon, listener without view, agent-send \"primary\\n\"", "127.0.0.1",
            agent.ports().get(1), "primary\n", expected));
      } else {
        targets.add(new Target(options.host + ":" + options.port
            + (options.send == null ? "" : ", agent-send \"" + options.send + "\\n\""),
            options.host, options.port, options.send == null ? null : options.send + "\n", null));
      }
      System.out.printf(Locale.ROOT, "client: %s, %d s per level after %d s warm-up, connect/read timeout %d ms%n",
          options.fin ? "close with FIN" : "close with RST (SO_LINGER 0, as HAProxy does)", options.seconds,
          options.warmup, options.timeoutMs);
      System.out.println("latency: connect to EOF; cpu: this JVM's CPU time per reply, of the client threads and of"
          + " the rest (in-process server, GC, JIT; ~0 against --host)");
      boolean goalMet = true;
      for (Target target : targets) {
        System.out.println();
        System.out.println("== " + target.name + " (load average before: " + load() + ")");
        run(target, options, GOAL_CLIENTS, options.warmup * 1000L); // warm-up: JIT, both sides
        System.out.println(Result.HEADER);
        for (int clients : options.clients) {
          Result result = run(target, options, clients, options.seconds * 1000L);
          System.out.println(result.row());
          if (clients == GOAL_CLIENTS) {
            boolean met = result.rate() >= GOAL_RATE && result.percentileMs(0.99) <= GOAL_P99_MS
                && result.errors() == 0;
            goalMet &= met;
            System.out.printf(Locale.ROOT, "   goal at %d clients (>= %.0f replies/s, p99 <= %.1f ms, no errors): %s%n",
                GOAL_CLIENTS, GOAL_RATE, GOAL_P99_MS, met ? "met" : "MISSED");
          }
        }
      }
      return !goalMet && options.strict ? 1 : 0;
    } finally {
      if (agent != null) {
        agent.close();
      }
    }
  }

  /** Counting off and on by turns; see the class comment. */
  private static int compareCounting(Options options) throws Exception {
    String yaml = "agent: {listen: [{address: 127.0.0.1, port: 0, view: primary}]}";
    Metrics metrics = new Metrics("bench", Optional.of("bench1"));
    try (InProcessAgent off = InProcessAgent.start(yaml, primaryNode());
        InProcessAgent on = InProcessAgent.start(yaml, primaryNode(), metrics)) {
      byte[] expected = once("127.0.0.1", off.ports().get(0), null);
      if (!Arrays.equals(expected, once("127.0.0.1", on.ports().get(0), null))) {
        throw new IllegalStateException("the two agents answer differently");
      }
      System.out.println("server: two pgbeacon AgentVerticles in this JVM, Vert.x transport "
          + (off.nativeTransport() ? "native epoll" : "JDK NIO") + "; reply: "
          + new String(expected, StandardCharsets.US_ASCII).strip());
      Target[] targets = {new Target("counting off", "127.0.0.1", off.ports().get(0), null, expected),
          new Target("counting on", "127.0.0.1", on.ports().get(0), null, expected)};
      System.out.printf(Locale.ROOT, "client: close with RST, %d s per run after %d s warm-up of each, %d pairs"
          + " (off, on), connect/read timeout %d ms%n", options.seconds, options.warmup, options.pairs,
          options.timeoutMs);
      System.out.println("srv cpu: CPU of all but the client threads per reply (server, GC, JIT); alloc: heap bytes"
          + " they allocated per reply");
      long measuredOn = 0;
      for (int clients : options.clients) {
        System.out.println();
        System.out.printf(Locale.ROOT, "== %d clients, view: primary listener (load average before: %s)%n", clients,
            load());
        for (Target t : targets) {
          run(t, options, clients, options.warmup * 1000L);
        }
        System.out.println(PAIR_HEADER);
        List<Result> offs = new ArrayList<>();
        List<Result> ons = new ArrayList<>();
        for (int pair = 1; pair <= options.pairs; pair++) {
          Result a = run(targets[0], options, clients, options.seconds * 1000L);
          Result b = run(targets[1], options, clients, options.seconds * 1000L);
          offs.add(a);
          ons.add(b);
          measuredOn += b.sorted().length;
          System.out.println(pairRow(Integer.toString(pair), a.rate(), a.percentileMs(0.5), a.percentileMs(0.99),
              a.restCpuMicros(), a.restAllocPerReply(), b.rate(), b.percentileMs(0.5), b.percentileMs(0.99),
              b.restCpuMicros(), b.restAllocPerReply()));
          for (Result r : List.of(a, b)) {
            if (r.errors() > 0) {
              System.out.println("     errors: " + r.errors() + ", first: " + r.firstProblem());
            }
          }
        }
        System.out.println(pairRow("median", median(offs, Result::rate), median(offs, r -> r.percentileMs(0.5)),
            median(offs, r -> r.percentileMs(0.99)), median(offs, Result::restCpuMicros),
            median(offs, Result::restAllocPerReply), median(ons, Result::rate), median(ons, r -> r.percentileMs(0.5)),
            median(ons, r -> r.percentileMs(0.99)), median(ons, Result::restCpuMicros),
            median(ons, Result::restAllocPerReply)));
        double[] rateDiffs = new double[offs.size()];
        for (int i = 0; i < rateDiffs.length; i++) {
          rateDiffs[i] = percent(offs.get(i).rate(), ons.get(i).rate());
        }
        Arrays.sort(rateDiffs);
        System.out.printf(Locale.ROOT, "   replies/s, on vs off, pair by pair: %+.1f%% .. %+.1f%% (median %+.1f%%):"
            + " the spread is the noise a difference must exceed%n", rateDiffs[0], rateDiffs[rateDiffs.length - 1],
            rateDiffs[rateDiffs.length / 2]);
      }
      System.out.printf(Locale.ROOT, "%ncounted by the on agent: %d replies (warm-ups included); measured in its"
          + " windows: %d%n", countedReplies(metrics), measuredOn);
      return 0;
    }
  }

  static final String PAIR_HEADER = String.format(Locale.ROOT,
      "%-6s | %-44s | %-44s | %s", "pair", "counting off: replies/s p50 p99 srv-cpu alloc",
      "counting on: replies/s p50 p99 srv-cpu alloc", "on vs off: replies/s p50 p99");

  private static String pairRow(String label, double offRate, double offP50, double offP99, double offCpu,
      double offAlloc, double onRate, double onP50, double onP99, double onCpu, double onAlloc) {
    return String.format(Locale.ROOT, "%-6s | %9.0f %6.3f %6.3f ms %5.1f us %5.0f B | %9.0f %6.3f %6.3f ms %5.1f us"
        + " %5.0f B | %+6.1f%% %+6.1f%% %+6.1f%%", label, offRate, offP50, offP99, offCpu, offAlloc, onRate, onP50,
        onP99, onCpu, onAlloc, percent(offRate, onRate), percent(offP50, onP50), percent(offP99, onP99));
  }

  private static double percent(double off, double on) {
    return (on - off) / off * 100;
  }

  private static double median(List<Result> results, java.util.function.ToDoubleFunction<Result> figure) {
    double[] v = results.stream().mapToDouble(figure).sorted().toArray();
    return v.length % 2 == 1 ? v[v.length / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
  }

  /** The sum of pgbeacon_agent_replies_total over its series, as a scrape shows it. */
  private static long countedReplies(Metrics metrics) {
    double sum = 0;
    for (String line : metrics.scrape("text/plain; version=0.0.4; charset=utf-8").split("\n")) {
      if (line.startsWith("pgbeacon_agent_replies_total{")) {
        sum += Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
      }
    }
    return (long) sum;
  }

  /** One exchange, for the reference reply. */
  static byte[] once(String host, int port, String send) throws IOException {
    try (Socket socket = new Socket()) {
      socket.connect(new InetSocketAddress(host, port), 2000);
      socket.setSoTimeout(2000);
      if (send != null) {
        socket.getOutputStream().write(send.getBytes(StandardCharsets.US_ASCII));
      }
      return socket.getInputStream().readAllBytes();
    }
  }

  /** The 1-minute load average (Linux), to tell a quiet machine's figures from a busy one's. */
  static String load() {
    try {
      return Files.readString(Path.of("/proc/loadavg")).split(" ")[0];
    } catch (IOException | RuntimeException e) {
      return "?";
    }
  }

  private static NodeHealth primaryNode() {
    return Healths.primary("bench1").scope("bench").timeline(2).host("127.0.0.1")
        .primaryView(Healths.pass("primary, timeline 2")).build();
  }

  static String machine() {
    Runtime rt = Runtime.getRuntime();
    return String.format(Locale.ROOT, "machine: %d cores, %s %s (%s), %s %s %s, heap max %d MB, GC %s",
        rt.availableProcessors(), System.getProperty("java.vm.name"), System.getProperty("java.runtime.version"),
        System.getProperty("java.vendor"), System.getProperty("os.name"), System.getProperty("os.version"),
        System.getProperty("os.arch"), rt.maxMemory() >> 20,
        String.join("+", ManagementFactory.getGarbageCollectorMXBeans().stream().map(b -> b.getName()).toList()));
  }

  /** {@code clients} threads hammer the target for {@code millis}; only exchanges ending in the window count. */
  static Result run(Target target, Options options, int clients, long millis) throws InterruptedException {
    Client[] workers = new Client[clients];
    Thread[] threads = new Thread[clients];
    for (int i = 0; i < clients; i++) {
      workers[i] = new Client(target, options);
      threads[i] = new Thread(workers[i], "bench-client-" + i);
      threads[i].setDaemon(true);
    }
    Window window = new Window();
    for (int i = 0; i < clients; i++) {
      workers[i].window = window;
      threads[i].start();
    }
    // Blocking channels have no timeouts of their own: close what hangs, so that it counts as a timeout.
    Thread watchdog = new Thread(() -> {
      while (!window.stop) {
        long now = System.nanoTime();
        for (Client c : workers) {
          c.expire(now);
        }
        try {
          Thread.sleep(20);
        } catch (InterruptedException e) {
          return;
        }
      }
    }, "bench-watchdog");
    watchdog.setDaemon(true);
    watchdog.start();
    Thread.sleep(Math.min(300, millis / 4)); // every client connected and running before the window opens
    long processCpu0 = PROCESS.getProcessCpuTime();
    long clientCpu0 = cpu(threads);
    long restAlloc0 = allocatedByOthers(threads);
    window.start = System.nanoTime();
    window.open = true;
    Thread.sleep(millis);
    window.open = false;
    window.end = System.nanoTime();
    long processCpu = PROCESS.getProcessCpuTime() - processCpu0;
    long clientCpu = cpu(threads) - clientCpu0;
    long restAlloc = allocatedByOthers(threads) - restAlloc0;
    window.stop = true;
    for (Thread t : threads) {
      t.join(options.timeoutMs * 3L);
    }
    return Result.merge(clients, (window.end - window.start) / 1e9, workers, clientCpu, processCpu - clientCpu,
        restAlloc);
  }

  private static final com.sun.management.OperatingSystemMXBean PROCESS =
      (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
  private static final ThreadMXBean THREADS = ManagementFactory.getThreadMXBean();
  private static final com.sun.management.ThreadMXBean ALLOCATION =
      (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();

  /** Heap bytes allocated so far by every live thread but {@code clients}: the in-process server's, mostly. */
  private static long allocatedByOthers(Thread[] clients) {
    long[] ids = ALLOCATION.getAllThreadIds();
    long[] bytes = ALLOCATION.getThreadAllocatedBytes(ids);
    long sum = 0;
    outer:
    for (int i = 0; i < ids.length; i++) {
      for (Thread c : clients) {
        if (c.getId() == ids[i]) {
          continue outer;
        }
      }
      sum += Math.max(0, bytes[i]);
    }
    return sum;
  }

  /** CPU time (user + system, ns) of the client threads so far. */
  private static long cpu(Thread[] threads) {
    long sum = 0;
    for (Thread t : threads) {
      sum += Math.max(0, THREADS.getThreadCpuTime(t.getId()));
    }
    return sum;
  }

  static final class Window {
    volatile boolean open;
    volatile boolean stop;
    volatile long start;
    volatile long end;
  }

  /** One client: a loop of HAProxy-style checks, recording latencies (ns) and errors while the window is open. */
  static final class Client implements Runnable {
    private final InetSocketAddress address;
    // An IPv4 target gets an IPv4 socket: the JDK's default, a dual-stack IPv6 socket, costs a setsockopt and the
    // kernel's v4-mapped path on every check. (HAProxy's checks use the address family of the server address.)
    private final StandardProtocolFamily family;
    private final ByteBuffer send;
    private final ByteBuffer expected;
    private final int timeoutMs;
    private final boolean fin;
    private final ByteBuffer buffer = ByteBuffer.allocateDirect(1024);
    private volatile SocketChannel current;
    private volatile long started;
    private volatile boolean timedOut;
    Window window;
    long[] latencies = new long[1 << 14];
    int count;
    long refused;
    long timeouts;
    long bad;
    long other;
    String firstProblem;
    private byte[] firstReply;

    Client(Target target, Options options) {
      this.address = new InetSocketAddress(target.host, target.port);
      this.family = address.getAddress() instanceof java.net.Inet6Address ? StandardProtocolFamily.INET6
          : StandardProtocolFamily.INET;
      this.send = target.send == null ? null
          : ByteBuffer.allocateDirect(target.send.length()).put(target.send.getBytes(StandardCharsets.US_ASCII));
      this.expected = target.expected == null ? null : ByteBuffer.wrap(target.expected);
      this.timeoutMs = options.timeoutMs;
      this.fin = options.fin;
    }

    @Override
    public void run() {
      while (!window.stop) {
        long t0 = System.nanoTime();
        int problem = check();
        long t1 = System.nanoTime();
        if (!window.open) {
          continue;
        }
        switch (problem) {
          case 0 -> record(t1 - t0);
          case 1 -> refused++;
          case 2 -> timeouts++;
          case 3 -> bad++;
          default -> other++;
        }
      }
    }

    /** 0 ok, 1 refused, 2 timeout, 3 bad or partial line, 4 other I/O error. */
    private int check() {
      SocketChannel channel = null;
      try {
        channel = SocketChannel.open(family);
        if (!fin) {
          channel.setOption(StandardSocketOptions.SO_LINGER, 0);
        }
        started = System.nanoTime();
        current = channel; // from here on the watchdog may close it
        channel.connect(address);
        if (send != null) {
          send.clear();
          while (send.hasRemaining()) {
            channel.write(send);
          }
        }
        buffer.clear();
        while (buffer.hasRemaining() && channel.read(buffer) >= 0) {
          // until EOF: the server closes after its line
        }
        current = null;
        return validLine() ? 0 : problem(3, "bad or partial line: '" + printable() + "'");
      } catch (ConnectException e) {
        return problem(1, e.toString());
      } catch (IOException e) {
        return timedOut ? problem(2, "no reply within " + timeoutMs + " ms") : problem(4, e.toString());
      } finally {
        current = null;
        timedOut = false;
        if (channel != null) {
          try {
            channel.close();
          } catch (IOException ignored) {
            // nothing to do: the check is over
          }
        }
      }
    }

    /** Called by the watchdog: a blocking connect or read that outlived the timeout ends with an exception. */
    void expire(long now) {
      SocketChannel channel = current;
      if (channel != null && now - started > timeoutMs * 1_000_000L) {
        timedOut = true;
        try {
          channel.close();
        } catch (IOException ignored) {
          // the client thread sees the close
        }
      }
    }

    /** Exactly one printable ASCII line ending in LF; in-process also exactly the expected bytes. */
    private boolean validLine() {
      int n = buffer.position();
      if (n == 0 || n == buffer.capacity() || buffer.get(n - 1) != '\n') {
        return false;
      }
      for (int i = 0; i < n - 1; i++) {
        if (buffer.get(i) < 0x20 || buffer.get(i) >= 0x7f) {
          return false;
        }
      }
      if (expected != null) {
        return buffer.flip().equals(expected);
      }
      if (firstReply == null) {
        firstReply = new byte[n];
        buffer.get(0, firstReply);
      }
      return true;
    }

    private int problem(int kind, String what) {
      if (firstProblem == null && window.open) {
        firstProblem = what;
      }
      return kind;
    }

    private String printable() {
      byte[] bytes = new byte[buffer.position()];
      buffer.get(0, bytes);
      return new String(bytes, StandardCharsets.US_ASCII).replace("\n", "\\n").replace("\r", "\\r");
    }

    private void record(long nanos) {
      if (count == latencies.length) {
        latencies = Arrays.copyOf(latencies, count * 2);
      }
      latencies[count++] = nanos;
    }
  }

  /**
   * One level's figures. CPU is per reply, in microseconds of this JVM's CPU time (user + system): the client
   * threads', and the rest (the in-process server's event loops, GC, JIT; ~0 against a remote target).
   */
  record Result(int clients, double seconds, long[] sorted, long refused, long timeouts, long bad, long other,
      String firstProblem, String sampleReply, long clientCpuNanos, long restCpuNanos, long restAllocBytes) {

    static final String HEADER = String.format(Locale.ROOT, "%8s %11s %8s %8s %8s %8s %7s %7s %5s %5s %11s %9s",
        "clients", "replies/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "refused", "timeout", "bad", "other",
        "client cpu", "rest cpu");

    static Result merge(int clients, double seconds, Client[] workers, long clientCpu, long restCpu,
        long restAlloc) {
      int total = 0;
      for (Client c : workers) {
        total += c.count;
      }
      long[] all = new long[total];
      int at = 0;
      long refused = 0;
      long timeouts = 0;
      long bad = 0;
      long other = 0;
      String first = null;
      String sample = null;
      for (Client c : workers) {
        System.arraycopy(c.latencies, 0, all, at, c.count);
        at += c.count;
        refused += c.refused;
        timeouts += c.timeouts;
        bad += c.bad;
        other += c.other;
        first = first != null ? first : c.firstProblem;
        sample = sample != null || c.firstReply == null ? sample
            : new String(c.firstReply, StandardCharsets.US_ASCII).strip();
      }
      Arrays.sort(all);
      return new Result(clients, seconds, all, refused, timeouts, bad, other, first, sample, clientCpu, restCpu,
          restAlloc);
    }

    double rate() {
      return sorted.length / seconds;
    }

    long errors() {
      return refused + timeouts + bad + other;
    }

    /** CPU (µs) of everything but the client threads, per reply. */
    double restCpuMicros() {
      return restCpuNanos / 1e3 / Math.max(1, sorted.length);
    }

    /** Heap bytes allocated by everything but the client threads, per reply. */
    double restAllocPerReply() {
      return (double) restAllocBytes / Math.max(1, sorted.length);
    }

    double percentileMs(double p) {
      if (sorted.length == 0) {
        return Double.NaN;
      }
      int index = (int) Math.ceil(p * sorted.length) - 1;
      return sorted[Math.max(0, Math.min(sorted.length - 1, index))] / 1e6;
    }

    String row() {
      long replies = Math.max(1, sorted.length);
      String row = String.format(Locale.ROOT, "%8d %11.0f %8.3f %8.3f %8.3f %8.3f %7d %7d %5d %5d %8.1f us %6.1f us",
          clients, rate(), percentileMs(0.50), percentileMs(0.90), percentileMs(0.99), percentileMs(1.0), refused,
          timeouts, bad, other, clientCpuNanos / 1e3 / replies, restCpuNanos / 1e3 / replies);
      if (sampleReply != null) {
        row += "   reply: " + sampleReply;
      }
      if (firstProblem != null) {
        row += "   first error: " + firstProblem;
      }
      return row;
    }
  }

  record Target(String name, String host, int port, String send, byte[] expected) {}

  static final class Options {
    static final String USAGE = "usage: bench-agent.sh [--host H [--port P] [--send primary|replica]] [--seconds N]"
        + " [--warmup N] [--clients 1,8,64] [--timeout-ms N] [--fin] [--strict]\n"
        + "       bench-agent.sh --compare-counting [--pairs N] [--seconds N] [--warmup N] [--clients 8]";
    String host;
    int port = 5480;
    String send;
    int seconds = 3;
    int warmup = 3;
    int timeoutMs = 1000;
    int[] clients = {1, 8, 64};
    boolean fin;
    boolean strict;
    boolean compareCounting;
    boolean clientsGiven;
    int pairs = 6;

    static Options parse(String[] args) {
      Options o = new Options();
      for (int i = 0; i < args.length; i++) {
        String a = args[i];
        switch (a) {
          case "--host" -> o.host = value(args, ++i, a);
          case "--port" -> o.port = Integer.parseInt(value(args, ++i, a));
          case "--send" -> o.send = value(args, ++i, a);
          case "--seconds" -> o.seconds = Integer.parseInt(value(args, ++i, a));
          case "--warmup" -> o.warmup = Integer.parseInt(value(args, ++i, a));
          case "--timeout-ms" -> o.timeoutMs = Integer.parseInt(value(args, ++i, a));
          case "--clients" -> {
            o.clients = Arrays.stream(value(args, ++i, a).split(",")).mapToInt(s -> Integer.parseInt(s.strip()))
                .toArray();
            o.clientsGiven = true;
          }
          case "--compare-counting" -> o.compareCounting = true;
          case "--pairs" -> o.pairs = Integer.parseInt(value(args, ++i, a));
          case "--fin" -> o.fin = true;
          case "--strict" -> o.strict = true;
          case "-h", "--help" -> {
            System.out.println(USAGE);
            return null;
          }
          default -> throw new IllegalArgumentException("unknown argument: " + a + "\n" + USAGE);
        }
      }
      if (o.send != null && o.host == null) {
        throw new IllegalArgumentException("--send needs --host: in-process, both listener kinds are measured");
      }
      if (o.compareCounting && o.host != null) {
        throw new IllegalArgumentException("--compare-counting runs in-process agents: no --host");
      }
      if (o.compareCounting && o.pairs < 3) {
        throw new IllegalArgumentException("--pairs must be at least 3 (got " + o.pairs + ")");
      }
      if (o.compareCounting && !o.clientsGiven) {
        o.clients = new int[] {GOAL_CLIENTS};
      }
      return o;
    }

    private static String value(String[] args, int i, String name) {
      if (i >= args.length) {
        throw new IllegalArgumentException(name + " needs a value");
      }
      return args[i];
    }
  }

  private AgentBenchmark() {}
}
