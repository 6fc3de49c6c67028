package io.pgbeacon.bench;

import io.pgbeacon.InProcessAgent;
import io.pgbeacon.health.NodeHealth;
import io.pgbeacon.health.Status;
import io.pgbeacon.health.Verdict;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Locale;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.concurrent.TimeUnit;

/**
 * What idle connections cost pgbeacon on a listener without view: a server JVM of its own (pgbeacon's real
 * AgentVerticle, {@link InProcessAgent}, {@code agent.read-timeout} by default long enough that none times out) gets
 * {@code --connections} connections that never send their {@code agent-send} line, then one that sends
 * {@code primary\n} — answered only after every earlier connection was accepted, as they share one event loop.
 * Prints the server's resident set size (VmRSS: before, after a full GC; held, at once and after a full GC), its live
 * heap after a full GC before and while they are held and the classes it grew by, how long the fresh connection
 * waited, how many idle connections the server answered and closed, and the server's CPU time; with a
 * {@code --read-timeout} of at most 30 s, also the CPU time until the server had closed every idle connection.
 *
 * <p>Run (after {@code mvn -B -ntp -q test-compile}): {@code mvn -B -ntp -q exec:exec -Dexec.executable=java
 * -Dexec.classpathScope=test -Dexec.args="-cp %classpath io.pgbeacon.bench.IdleAgentConnections [--connections
 * 8000] [--server-jvm '-Xmx96m -XX:+UseSerialGC'] [--top 12] [--nmt true] [--read-timeout 600]"}. The server JVM
 * gets no options by default, as a plain {@code java -jar} would run the daemon (the packaged unit runs it with the
 * launcher's options, {@code src/main/dist/bin/pgbeacon}). Not a test: it prints figures
 * and asserts nothing.
 */
public final class IdleAgentConnections {

  public static void main(String[] args) throws Exception {
    if (args.length > 0 && args[0].equals("--serve")) {
      serve(Integer.parseInt(args[1]));
      return;
    }
    int connections = 8000;
    int top = 12;
    boolean nmt = false;
    int readTimeout = 600;
    String serverJvm = "";
    for (int i = 0; i < args.length; i += 2) {
      switch (args[i]) {
        case "--connections" -> connections = Integer.parseInt(args[i + 1]);
        case "--server-jvm" -> serverJvm = args[i + 1];
        case "--top" -> top = Integer.parseInt(args[i + 1]);
        case "--nmt" -> nmt = Boolean.parseBoolean(args[i + 1]);
        case "--read-timeout" -> readTimeout = Integer.parseInt(args[i + 1]);
        default -> throw new IllegalArgumentException("unknown option " + args[i]);
      }
    }
    System.exit(measure(connections, serverJvm, top, nmt, readTimeout));
  }

  private static int measure(int connections, String serverJvm, int top, boolean nmt, int readTimeout)
      throws Exception {
    List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString()));
    if (!serverJvm.isBlank()) {
      cmd.addAll(List.of(serverJvm.trim().split("\\s+")));
    }
    if (nmt) {
      cmd.add("-XX:NativeMemoryTracking=summary");
    }
    cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), IdleAgentConnections.class.getName(), "--serve",
        Integer.toString(readTimeout)));
    Process server = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.INHERIT).start();
    List<SocketChannel> idle = new ArrayList<>(connections);
    try {
      BufferedReader out = new BufferedReader(new InputStreamReader(server.getInputStream(),
          StandardCharsets.US_ASCII));
      String first = out.readLine();
      if (first == null || !first.startsWith("port ")) {
        throw new IllegalStateException("server said " + first);
      }
      int port = Integer.parseInt(first.substring(5));
      long pid = server.pid();
      System.out.printf(Locale.ROOT, "server JVM options: '%s'; %s%n", serverJvm, out.readLine());

      // Warm the path HAProxy takes, so that what follows is the idle connections' cost, not class loading and JIT.
      for (int i = 0; i < 2000; i++) {
        ask(port, "primary\n");
      }
      Map<String, Long> histogramBefore = liveHistogram(pid);
      long heapBefore = histogramBefore.get(TOTAL) / 1024;
      long rssBefore = rssKb(pid);
      if (nmt) {
        jcmd(pid, "VM.native_memory", "baseline");
      }
      int fdsBefore = fds(pid);

      long cpuBefore = cpuMillis(pid);
      long opening = System.nanoTime();
      for (int i = 0; i < connections; i++) {
        SocketChannel ch = SocketChannel.open(StandardProtocolFamily.INET);
        ch.connect(new InetSocketAddress("127.0.0.1", port));
        ch.configureBlocking(false);
        idle.add(ch);
      }
      long asked = System.nanoTime();
      String reply = ask(port, "primary\n");
      long waitedMicros = TimeUnit.NANOSECONDS.toMicros(System.nanoTime() - asked);
      long openedMillis = TimeUnit.NANOSECONDS.toMillis(asked - opening);
      long cpu = cpuMillis(pid) - cpuBefore;
      long rssHeld = rssKb(pid);
      Map<String, Long> histogramHeld = liveHistogram(pid);
      long heapHeld = histogramHeld.get(TOTAL) / 1024;
      long rssHeldCollected = rssKb(pid);
      int fdsHeld = fds(pid);
      int answered = 0;
      ByteBuffer buf = ByteBuffer.allocate(256);
      for (SocketChannel ch : idle) {
        buf.clear();
        if (ch.read(buf) != 0) {
          answered++;
        }
      }
      System.out.printf(Locale.ROOT, "%d idle connections to the listener without view (opened in %d ms), then one"
          + " sending primary: answered '%s' after %d us; server CPU %d ms (%.1f us per connection)%n", connections,
          openedMillis, reply.strip(), waitedMicros, cpu, cpu * 1000.0 / connections);
      System.out.printf(Locale.ROOT, "  server RSS   %7.1f MB before, %7.1f MB while held (+%.1f MB, %.1f KB per"
          + " connection), %.1f MB after a full GC (+%.1f MB)%n", rssBefore / 1024.0, rssHeld / 1024.0,
          (rssHeld - rssBefore) / 1024.0, (rssHeld - rssBefore) / (double) connections, rssHeldCollected / 1024.0,
          (rssHeldCollected - rssBefore) / 1024.0);
      System.out.printf(Locale.ROOT, "  live heap    %7.1f MB before, %7.1f MB while held (+%.1f MB, %.2f KB per"
          + " connection)%n", heapBefore / 1024.0, heapHeld / 1024.0, (heapHeld - heapBefore) / 1024.0,
          (heapHeld - heapBefore) / (double) connections);
      System.out.printf(Locale.ROOT, "  server fds   %d before, %d while held; idle connections the server answered"
          + " and closed: %d%n", fdsBefore, fdsHeld, answered);
      if (nmt) {
        System.out.println("  native memory tracking, while held against before (committed KB):");
        for (String line : jcmd(pid, "VM.native_memory", "summary.diff").split("\n")) {
          if (line.startsWith("-") || line.startsWith("Total")) {
            System.out.println("    " + line.strip());
          }
        }
      }
      if (readTimeout <= 30) {
        // Every idle connection ends by the read-timeout at the latest: the whole cost of the flood, whenever paid.
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(readTimeout + 30);
        while (fds(pid) > fdsBefore + 2 && System.nanoTime() < until) {
          Thread.sleep(100); // a benchmark, not a test: polling the server's descriptors
        }
        System.out.printf(Locale.ROOT, "  until the server had closed them all (read-timeout %d s): server CPU %d ms"
            + " (%.1f us per connection), %d fds left%n", readTimeout, cpuMillis(pid) - cpuBefore,
            (cpuMillis(pid) - cpuBefore) * 1000.0 / connections, fds(pid));
      }
      System.out.println("  live heap growth by class, per idle connection:");
      histogramHeld.entrySet().stream().filter(e -> !e.getKey().equals(TOTAL))
          .map(e -> Map.entry(e.getKey(), e.getValue() - histogramBefore.getOrDefault(e.getKey(), 0L)))
          .sorted(Map.Entry.<String, Long>comparingByValue().reversed()).limit(top)
          .forEach(e -> System.out.printf(Locale.ROOT, "    %8.1f B  %s%n", e.getValue() / (double) connections,
              e.getKey()));
      return 0;
    } finally {
      for (SocketChannel ch : idle) {
        ch.close();
      }
      server.getOutputStream().close(); // the server exits at EOF on its stdin
      if (!server.waitFor(20, TimeUnit.SECONDS)) {
        server.destroyForcibly();
      }
    }
  }

  /** The server side: a listener without view, its port on stdout, until stdin closes. */
  private static void serve(int readTimeoutSeconds) throws Exception {
    NodeHealth primary = io.pgbeacon.support.Healths.primary("bench1").scope("bench").timeline(2)
        .host("127.0.0.1").primaryView(io.pgbeacon.support.Healths.pass("primary, timeline 2")).build();
    try (InProcessAgent agent = InProcessAgent.start("agent: {read-timeout: " + readTimeoutSeconds
        + "s, listen: [{address: 127.0.0.1, port: 0}]}", primary)) {
      System.out.println("port " + agent.ports().get(0));
      System.out.println(AgentBenchmark.machine() + ", Vert.x transport "
          + (agent.nativeTransport() ? "native epoll" : "JDK NIO"));
      System.out.flush();
      while (System.in.read() >= 0) {
        // until the benchmark closes our stdin
      }
    }
    System.exit(0);
  }

  private static String ask(int port, String send) throws IOException {
    try (java.net.Socket s = new java.net.Socket()) {
      s.connect(new InetSocketAddress("127.0.0.1", port), 5000);
      s.setSoTimeout(30_000);
      OutputStream o = s.getOutputStream();
      o.write(send.getBytes(StandardCharsets.US_ASCII));
      o.flush();
      return new String(s.getInputStream().readAllBytes(), StandardCharsets.US_ASCII);
    }
  }

  private static long rssKb(long pid) throws IOException {
    for (String line : Files.readAllLines(Path.of("/proc/" + pid + "/status"))) {
      if (line.startsWith("VmRSS:")) {
        return Long.parseLong(line.replaceAll("[^0-9]", ""));
      }
    }
    throw new IllegalStateException("no VmRSS for " + pid);
  }

  /** User and system CPU time of the process, from {@code /proc/<pid>/stat} (clock ticks, 100 a second). */
  private static long cpuMillis(long pid) throws IOException {
    String stat = Files.readString(Path.of("/proc/" + pid + "/stat"));
    String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
    return (Long.parseLong(f[11]) + Long.parseLong(f[12])) * 10;
  }

  private static int fds(long pid) throws IOException {
    try (var list = Files.list(Path.of("/proc/" + pid + "/fd"))) {
      return (int) list.count();
    }
  }

  private static final String TOTAL = "(total)";

  private static String jcmd(long pid, String... command) throws Exception {
    List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "jcmd").toString(),
        Long.toString(pid)));
    cmd.addAll(List.of(command));
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    String text = new String(p.getInputStream().readAllBytes(), StandardCharsets.US_ASCII);
    p.waitFor(60, TimeUnit.SECONDS);
    return text;
  }

  /** Bytes per class of the server's live heap, from {@code jcmd <pid> GC.class_histogram} (which collects first). */
  private static Map<String, Long> liveHistogram(long pid) throws Exception {
    String text = jcmd(pid, "GC.class_histogram");
    Map<String, Long> bytes = new HashMap<>();
    for (String line : text.split("\n")) {
      String[] f = line.trim().split("\\s+");
      if (f.length >= 4 && f[0].endsWith(":")) { // " num: instances bytes class"
        bytes.merge(f[3], Long.parseLong(f[2]), Long::sum);
      } else if (f.length >= 3 && f[0].equals("Total")) {
        bytes.put(TOTAL, Long.parseLong(f[2]));
      }
    }
    if (!bytes.containsKey(TOTAL)) {
      throw new IllegalStateException("no histogram total from jcmd: " + text);
    }
    return bytes;
  }
}
