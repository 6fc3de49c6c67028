package io.pgbeacon.bench;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;

/**
 * Counts TCP connection attempts (SYNs) to some ports of one loopback address with {@code tcpdump} — a passive
 * capture on {@code lo}, filtered in the kernel. It counts attempts nothing answers: connections to a closed port,
 * refused at once, which a proxy cannot see because it would have to listen, and then they would not be refused.
 */
final class SynCounter implements AutoCloseable {

  private static final Pattern DESTINATION = Pattern.compile("> (\\d+\\.\\d+\\.\\d+\\.\\d+)\\.(\\d+):");

  private final Process process;
  private final List<long[]> syns = new ArrayList<>(); // {nanoTime, port}

  private SynCounter(Process process) {
    this.process = process;
  }

  /** Starts a capture, or empty (with the reason printed) when tcpdump is missing or cannot capture. */
  static Optional<SynCounter> start(String address, List<Integer> ports) {
    Optional<Path> tcpdump = find("tcpdump");
    if (tcpdump.isEmpty()) {
      System.out.println("  (tcpdump not installed: Consul connection attempts during the outage are not counted;"
          + " apt-get install tcpdump)");
      return Optional.empty();
    }
    String filter = "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn and dst host " + address + " and ("
        + ports.stream().map(p -> "dst port " + p).collect(Collectors.joining(" or ")) + ")";
    try {
      Process p = new ProcessBuilder(tcpdump.get().toString(), "-i", "lo", "-nn", "-l", "-q", "-p", filter).start();
      SynCounter counter = new SynCounter(p);
      CountDownLatch listening = new CountDownLatch(1);
      StringBuilder errors = new StringBuilder();
      daemon("tcpdump stderr", () -> {
        try (BufferedReader r = reader(p.getErrorStream())) {
          for (String line; (line = r.readLine()) != null; ) {
            if (line.contains("listening on")) {
              listening.countDown();
            } else {
              synchronized (errors) {
                errors.append(line).append('\n');
              }
            }
          }
        } catch (IOException e) {
          // ended
        }
      });
      daemon("tcpdump", () -> {
        try (BufferedReader r = reader(p.getInputStream())) {
          for (String line; (line = r.readLine()) != null; ) {
            Matcher m = DESTINATION.matcher(line);
            if (m.find()) {
              synchronized (counter.syns) {
                counter.syns.add(new long[] {System.nanoTime(), Long.parseLong(m.group(2))});
              }
            }
          }
        } catch (IOException e) {
          // ended
        }
      });
      if (!listening.await(10, TimeUnit.SECONDS)) {
        p.destroy();
        synchronized (errors) {
          System.out.println("  (tcpdump did not start capturing: " + errors.toString().trim() + ")");
        }
        return Optional.empty();
      }
      return Optional.of(counter);
    } catch (IOException e) {
      System.out.println("  (cannot run tcpdump: " + e.getMessage() + ")");
      return Optional.empty();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return Optional.empty();
    }
  }

  /** SYNs to {@code port} seen in [from, until). */
  long count(int port, long from, long until) {
    synchronized (syns) {
      return syns.stream().filter(s -> s[1] == port && s[0] >= from && s[0] < until).count();
    }
  }

  @Override
  public void close() {
    process.destroy();
    try {
      if (!process.waitFor(5, TimeUnit.SECONDS)) {
        process.destroyForcibly();
      }
    } catch (InterruptedException e) {
      process.destroyForcibly();
      Thread.currentThread().interrupt();
    }
  }

  private static BufferedReader reader(java.io.InputStream in) {
    return new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8));
  }

  private static void daemon(String name, Runnable body) {
    Thread t = new Thread(body, name);
    t.setDaemon(true);
    t.start();
  }

  private static Optional<Path> find(String name) {
    for (String dir : (System.getenv().getOrDefault("PATH", "") + ":/usr/sbin:/usr/bin").split(":")) {
      Path p = Path.of(dir, name);
      if (!dir.isEmpty() && Files.isExecutable(p)) {
        return Optional.of(p);
      }
    }
    return Optional.empty();
  }
}
