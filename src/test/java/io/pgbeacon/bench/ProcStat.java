package io.pgbeacon.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * CPU time from Linux's {@code /proc}: a process's user + system time (all its threads) and the whole machine's
 * busy share, sampled by a daemon thread so that the CPU over any window can be read afterwards.
 */
final class ProcStat {

  /** Linux's USER_HZ: the unit of /proc's CPU times (100 on every common build; getconf says). */
  static final long CLOCK_TICKS = clockTicks();

  private ProcStat() {}

  /** utime + stime of a process in clock ticks, or -1 once it is gone. */
  static long cpuTicks(long pid) {
    try {
      String stat = Files.readString(Path.of("/proc/" + pid + "/stat"));
      // The command name (field 2) is in parentheses and may contain spaces: count fields after the last ')'.
      String[] f = stat.substring(stat.lastIndexOf(')') + 2).trim().split(" ");
      return Long.parseLong(f[11]) + Long.parseLong(f[12]); // fields 14 and 15: utime, stime
    } catch (IOException | RuntimeException e) {
      return -1;
    }
  }

  /** Resident set size in KiB, or -1. */
  static long rssKib(long pid) {
    try {
      for (String line : Files.readAllLines(Path.of("/proc/" + pid + "/status"))) {
        if (line.startsWith("VmRSS:")) {
          return Long.parseLong(line.replaceAll("[^0-9]", ""));
        }
      }
    } catch (IOException | RuntimeException e) {
      // gone
    }
    return -1;
  }

  /**
   * Fields of {@code /proc/<pid>/status} in KiB or counts ({@code VmRSS}, {@code RssAnon}, {@code RssFile},
   * {@code Threads}, …), by name; empty once the process is gone.
   */
  static Map<String, Long> status(long pid) {
    Map<String, Long> fields = new LinkedHashMap<>();
    try {
      for (String line : Files.readAllLines(Path.of("/proc/" + pid + "/status"))) {
        int colon = line.indexOf(':');
        String digits = colon < 0 ? "" : line.substring(colon + 1).replaceAll("[^0-9]", "");
        if (colon > 0 && !digits.isEmpty() && digits.length() < 19) {
          fields.put(line.substring(0, colon), Long.parseLong(digits));
        }
      }
    } catch (IOException | RuntimeException e) {
      fields.clear(); // gone, or gone while being read
    }
    return fields;
  }

  /** Open file descriptors of a process, or -1. */
  static long fds(long pid) {
    try (Stream<Path> fds = Files.list(Path.of("/proc/" + pid + "/fd"))) {
      return fds.count();
    } catch (IOException | RuntimeException e) {
      return -1;
    }
  }

  /**
   * utime + stime in clock ticks of each live thread of a process, summed by thread name with trailing digits
   * folded ({@code vert.x-eventloop-thread-#}): where its CPU goes. Threads that ended are not counted.
   */
  static Map<String, Long> threadTicks(long pid) {
    Map<String, Long> byName = new TreeMap<>();
    try (Stream<Path> tasks = Files.list(Path.of("/proc/" + pid + "/task"))) {
      for (Path task : (Iterable<Path>) tasks::iterator) {
        try {
          String stat = Files.readString(task.resolve("stat"));
          String name = stat.substring(stat.indexOf('(') + 1, stat.lastIndexOf(')')).replaceAll("\\d+", "#");
          String[] f = stat.substring(stat.lastIndexOf(')') + 2).trim().split(" ");
          byName.merge(name, Long.parseLong(f[11]) + Long.parseLong(f[12]), Long::sum);
        } catch (IOException | RuntimeException e) {
          // the thread ended meanwhile
        }
      }
    } catch (IOException | RuntimeException e) {
      byName.clear();
    }
    return byName;
  }

  /** {busy, total} ticks of all CPUs since boot (busy = total minus idle and iowait). */
  static long[] machineTicks() {
    try {
      String[] f = Files.readAllLines(Path.of("/proc/stat")).get(0).trim().split("\\s+");
      long total = 0;
      for (int i = 1; i < Math.min(f.length, 9); i++) { // user nice system idle iowait irq softirq steal
        total += Long.parseLong(f[i]);
      }
      long idle = Long.parseLong(f[4]) + Long.parseLong(f[5]);
      return new long[] {total - idle, total};
    } catch (IOException | RuntimeException e) {
      return new long[] {0, 0};
    }
  }

  static String loadAverage() {
    try {
      String[] f = Files.readString(Path.of("/proc/loadavg")).trim().split(" ");
      return f[0] + " " + f[1] + " " + f[2];
    } catch (IOException | RuntimeException e) {
      return "?";
    }
  }

  private static long clockTicks() {
    try {
      Process p = new ProcessBuilder("getconf", "CLK_TCK").redirectErrorStream(true).start();
      String out = new String(p.getInputStream().readAllBytes()).trim();
      p.waitFor(5, TimeUnit.SECONDS);
      return Long.parseLong(out);
    } catch (IOException | RuntimeException e) {
      return 100;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return 100;
    }
  }

  /** A monotone counter sampled over time; its value at any instant is interpolated between samples. */
  static final class Series {
    private final List<long[]> samples = new ArrayList<>(); // {nanoTime, value}

    synchronized void add(long at, long value) {
      if (value >= 0) {
        samples.add(new long[] {at, value});
      }
    }

    /** The counter at {@code t}: interpolated, or the nearest sample outside the sampled span; NaN if none. */
    synchronized double at(long t) {
      if (samples.isEmpty()) {
        return Double.NaN;
      }
      long[] before = null;
      for (long[] s : samples) {
        if (s[0] >= t) {
          if (before == null) {
            return s[1];
          }
          double f = (double) (t - before[0]) / (s[0] - before[0]);
          return before[1] + f * (s[1] - before[1]);
        }
        before = s;
      }
      return before[1];
    }

    /** Whether samples cover [from, until]. */
    synchronized boolean covers(long from, long until) {
      return !samples.isEmpty() && samples.get(0)[0] <= from && samples.get(samples.size() - 1)[0] >= until;
    }
  }
}
