package io.pgbeacon.support;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Supplier;

/**
 * The first duty, watched from outside while a scenario runs: every ~20 ms it reads Patroni's leader key, then what
 * each consumer advertises as the primary (Consul's passing {@code patroni-primary}, the UP servers of each HAProxy
 * write backend), then the leader key again. A consumer may advertise at most one node, and only one the key named
 * in one of the two reads around it — or, for a consumer that polls Consul (DNS), in a read no older than its
 * polling {@code lag}: it cannot show Consul's change before its next poll. Per consumer it keeps the worst it saw
 * and the longest window with no primary.
 */
public final class SafetySampler {

  /**
   * One consumer: its name, the nodes it advertises as primary right now, and how far behind Consul it may be by
   * design (zero for Consul itself and for what pgbeacon's agents drive; a DNS poller's resolution interval).
   */
  public record Source(String name, Supplier<List<String>> primaries, java.time.Duration lag) {
    public Source(String name, Supplier<List<String>> primaries) {
      this(name, primaries, java.time.Duration.ZERO);
    }
  }

  /** What one consumer showed. */
  public record Result(String source, int samples, int maxPrimaries, int notLeader, long longestNoneMillis,
      List<String> violations) {
    @Override
    public String toString() {
      return String.format("%-42s samples %4d, primaries at once ≤ %d, not the leader %d, longest with none %5d ms%s",
          source, samples, maxPrimaries, notLeader, longestNoneMillis,
          violations.isEmpty() ? "" : ", first: " + violations);
    }
  }

  private static final class Tally {
    int samples;
    int maxPrimaries;
    int notLeader;
    long noneSince = -1;
    long longestNone;
    final List<String> violations = new ArrayList<>();
  }

  private final Supplier<String> leaderKey;
  /** Recent reads of the leader key: (System.nanoTime(), holder), oldest first; a few seconds' worth. */
  private final java.util.ArrayDeque<Map.Entry<Long, String>> keyReads = new java.util.ArrayDeque<>();
  private final List<Source> sources;
  private final Map<String, Tally> tallies = new LinkedHashMap<>();
  private final AtomicBoolean running = new AtomicBoolean(true);
  private final Thread thread;
  private final long started = System.nanoTime();

  private SafetySampler(Supplier<String> leaderKey, List<Source> sources) {
    this.leaderKey = leaderKey;
    this.sources = List.copyOf(sources);
    sources.forEach(s -> tallies.put(s.name(), new Tally()));
    this.thread = new Thread(this::loop, "safety-sampler");
    this.thread.setDaemon(true);
  }

  /** @param leaderKey the member Patroni's leader key names now ("(none)" when absent) */
  public static SafetySampler start(Supplier<String> leaderKey, List<Source> sources) {
    SafetySampler s = new SafetySampler(leaderKey, sources);
    s.thread.start();
    return s;
  }

  private void loop() {
    while (running.get()) {
      for (Source source : sources) {
        try {
          long from = System.nanoTime() - source.lag().toNanos();
          String before = readKey();
          List<String> primaries = source.primaries().get();
          String after = readKey();
          record(source.name(), primaries, namedSince(from, before, after));
        } catch (RuntimeException e) {
          // a failed read is not an observation
        }
      }
      Await.pause(java.time.Duration.ofMillis(20));
    }
  }

  private String readKey() {
    String holder = leaderKey.get();
    long now = System.nanoTime();
    synchronized (keyReads) {
      keyReads.addLast(Map.entry(now, holder));
      while (!keyReads.isEmpty() && now - keyReads.peekFirst().getKey() > 10_000_000_000L) {
        keyReads.removeFirst();
      }
    }
    return holder;
  }

  /** Every holder the key named in a read since {@code from}, and in the two reads around the sample. */
  private Set<String> namedSince(long from, String before, String after) {
    Set<String> named = new java.util.HashSet<>(List.of(before, after));
    synchronized (keyReads) {
      keyReads.stream().filter(r -> r.getKey() - from >= 0).forEach(r -> named.add(r.getValue()));
    }
    return named;
  }

  private synchronized void record(String source, List<String> primaries, Set<String> leaders) {
    Tally t = tallies.get(source);
    long now = System.nanoTime();
    t.samples++;
    t.maxPrimaries = Math.max(t.maxPrimaries, primaries.size());
    boolean wrong = primaries.size() > 1 || primaries.stream().anyMatch(p -> !leaders.contains(p));
    if (wrong) {
      if (primaries.stream().anyMatch(p -> !leaders.contains(p))) {
        t.notLeader++;
      }
      if (t.violations.size() < 3) {
        t.violations.add(String.format("+%.2fs %s while the key named %s", (now - started) / 1e9, primaries,
            leaders));
      }
    }
    if (primaries.isEmpty() && t.noneSince < 0) {
      t.noneSince = now;
    } else if (!primaries.isEmpty() && t.noneSince >= 0) {
      t.longestNone = Math.max(t.longestNone, now - t.noneSince);
      t.noneSince = -1;
    }
  }

  /** Stops sampling; one result per consumer, in the order given. */
  public List<Result> stop() {
    running.set(false);
    try {
      thread.join();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    synchronized (this) {
      long now = System.nanoTime();
      List<Result> results = new ArrayList<>();
      tallies.forEach((name, t) -> results.add(new Result(name, t.samples, t.maxPrimaries, t.notLeader,
          Math.max(t.longestNone, t.noneSince >= 0 ? now - t.noneSince : 0) / 1_000_000,
          List.copyOf(t.violations))));
      return results;
    }
  }
}
