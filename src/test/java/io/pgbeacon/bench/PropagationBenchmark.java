package io.pgbeacon.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.pgbeacon.support.Haproxy;
import io.pgbeacon.support.Lab;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.SocketTimeoutException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ThreadLocalRandom;
import java.util.function.Supplier;

/**
 * How fast the infrastructure follows a switchover: N switchovers on the real-cluster lab, and for each, the time
 * from Patroni naming the new primary (its leader key changing hands in Consul) until each consumer names only
 * the new primary, plus how long each consumer showed two primaries or none. pgbeacon's services are measured
 * side by side with Patroni's own {@code consul.register_service} (and with HAProxy on Patroni's {@code /primary}
 * HTTP check), in the same run, on the same switchovers.
 *
 * <p>Run with {@code scripts/bench-propagation.sh} (or {@code mvn -Pbench-propagation verify}). Not a test: it
 * prints figures and asserts nothing.
 */
public final class PropagationBenchmark {

  private static final ObjectMapper JSON = new ObjectMapper();
  private static final Duration CONVERGE = Duration.ofSeconds(45);
  /** How long every consumer must stay unchanged before a switchover counts as settled. */
  private static final Duration QUIET = Duration.ofSeconds(1);

  /** One consumer's view over time: every change of the set of nodes it names as primary. */
  static final class Series {
    record Change(long at, Set<String> nodes) {}

    final String name;
    final List<Change> changes = new CopyOnWriteArrayList<>();

    Series(String name) {
      this.name = name;
    }

    void observe(Set<String> nodes) {
      Set<String> now = Set.copyOf(nodes);
      if (changes.isEmpty() || !changes.get(changes.size() - 1).nodes().equals(now)) {
        changes.add(new Change(System.nanoTime(), now));
      }
    }

    /** When the view last changed (System.nanoTime()), or 0 if never observed. */
    long lastChange() {
      return changes.isEmpty() ? 0 : changes.get(changes.size() - 1).at();
    }

    Set<String> current() {
      return changes.isEmpty() ? Set.of() : changes.get(changes.size() - 1).nodes();
    }

    /** When the view became exactly {@code {node}} for good (through {@code until}), or -1. */
    long settledOn(String node, long from, long until) {
      Set<String> target = Set.of(node);
      long at = stateAt(from).equals(target) ? from : -1;
      for (Change c : changes) {
        if (c.at() > from && c.at() <= until) {
          at = c.nodes().equals(target) ? (at < 0 ? c.at() : at) : -1;
        }
      }
      return at;
    }

    /** Nanoseconds within [from, until] during which the view named {@code count} nodes (count ≥ 2: "2+"). */
    long time(int count, long from, long until) {
      long total = 0;
      Set<String> state = stateAt(from);
      long since = from;
      for (Change c : changes) {
        if (c.at() <= from) {
          continue;
        }
        if (c.at() > until) {
          break;
        }
        total += matches(state, count) ? c.at() - since : 0;
        state = c.nodes();
        since = c.at();
      }
      return total + (matches(state, count) ? until - since : 0);
    }

    private static boolean matches(Set<String> state, int count) {
      return count >= 2 ? state.size() >= 2 : state.size() == count;
    }

    private Set<String> stateAt(long t) {
      Set<String> state = Set.of();
      for (Change c : changes) {
        if (c.at() > t) {
          break;
        }
        state = c.nodes();
      }
      return state;
    }
  }

  record Row(int switchover, String from, String to, String source, double namedAfter, double twoPrimary,
      double zeroPrimary) {}

  private final Lab lab;
  private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
  private final Map<String, String> nodeByAddress = new HashMap<>();
  private final Series leaderKey = new Series("Patroni leader key");
  private final Map<String, Series> sources = new LinkedHashMap<>();
  private volatile boolean running = true;
  private final List<Thread> threads = new ArrayList<>();

  private PropagationBenchmark(Lab lab) {
    this.lab = lab;
    for (String node : lab.nodeNames()) {
      nodeByAddress.put(lab.address(node), node);
    }
  }

  public static void main(String[] args) throws Exception {
    int switchovers = Integer.getInteger("switchovers", 6);
    String patroni = System.getProperty("pgbeacon.lab.patroni", "3");
    int port = Integer.getInteger("pgbeacon.lab.port", 15600);
    String dir = System.getProperty("pgbeacon.lab.dir", "/tmp/pgbeacon-bench-lab");
    System.out.printf("propagation benchmark: %d switchovers, Patroni %s, lab %s (ports from %d), %d cores%n",
        switchovers, patroni, dir, port, Runtime.getRuntime().availableProcessors());
    Lab lab = Lab.start(dir, port, patroni);
    try {
      new PropagationBenchmark(lab).run(switchovers);
    } finally {
      lab.stop();
    }
  }

  private void run(int switchovers) throws Exception {
    String scope = lab.scope();
    String tag = lab.env("LAB_PATRONI_PRIMARY_TAG");
    watchKey("/v1/kv/service/" + scope + "/leader", leaderKey);
    watchHealth("pgbeacon · Consul HTTP", "/v1/health/service/patroni-primary?passing");
    poll("pgbeacon · Consul DNS", () -> dnsNodes("patroni-primary.service.consul"));
    poll("pgbeacon · HAProxy agent-check", () -> haproxy("write", true));
    poll("pgbeacon · HAProxy Consul-DNS SRV", () -> haproxy("write_dns", false));
    watchHealth("Patroni register_service · Consul HTTP", "/v1/health/service/" + scope + "?passing&tag=" + tag);
    poll("Patroni register_service · Consul DNS", () -> dnsNodes(tag + "." + scope + ".service.consul"));
    poll("Patroni register_service · HAProxy DNS SRV", () -> haproxy("write_patroni_dns", false));
    poll("Patroni /primary · HAProxy httpchk", () -> haproxy("write_httpchk", true));

    List<Row> rows = new ArrayList<>();
    try {
      awaitCondition(() -> !leaderKey.current().isEmpty());
      awaitAll(currentLeader(), System.nanoTime());
      for (int n = 1; n <= switchovers; n++) {
        String from = currentLeader();
        List<String> replicas = lab.nodeNames().stream().filter(x -> !x.equals(from)).toList();
        String to = replicas.get(n % replicas.size());
        long requested = System.nanoTime();
        lab.run(Duration.ofSeconds(120), "switchover", to);
        awaitAll(to, requested);
        long end = System.nanoTime();
        long named = leaderKey.settledOn(to, requested, end);
        for (Series s : sources.values()) {
          long at = s.settledOn(to, requested, end);
          rows.add(new Row(n, from, to, s.name, at < 0 ? Double.NaN : (at - named) / 1e9,
              s.time(2, requested, end) / 1e9, s.time(0, requested, end) / 1e9));
        }
        print(rows.subList(rows.size() - sources.size(), rows.size()), n, from, to,
            (named - requested) / 1e9);
      }
    } finally {
      running = false;
      for (Thread t : threads) {
        t.join(25_000);
      }
    }
    summary(rows, switchovers);
  }

  /**
   * Waits until every source names only {@code node} and none has changed for {@link #QUIET}, so that late flaps
   * are counted and the next switchover starts from a settled state.
   */
  private void awaitAll(String node, long since) throws InterruptedException {
    awaitCondition(() -> {
      long now = System.nanoTime();
      return leaderKey.current().equals(Set.of(node)) && now - leaderKey.lastChange() >= QUIET.toNanos()
          && sources.values().stream()
              .allMatch(s -> s.current().equals(Set.of(node)) && now - s.lastChange() >= QUIET.toNanos());
    });
    for (Series s : sources.values()) {
      if (!s.current().equals(Set.of(node))) {
        System.out.printf("  (%s still names %s %.0fs after the request)%n", s.name, s.current(),
            (System.nanoTime() - since) / 1e9);
      }
    }
  }

  /** Polls {@code done} every 20 ms until it holds or {@link #CONVERGE} has passed. */
  private static void awaitCondition(java.util.function.BooleanSupplier done) throws InterruptedException {
    long deadline = System.nanoTime() + CONVERGE.toNanos();
    while (!done.getAsBoolean() && System.nanoTime() < deadline) {
      Thread.sleep(20);
    }
  }

  private void print(List<Row> rows, int n, String from, String to, double keySeconds) {
    System.out.printf("%nswitchover %d: %s -> %s; Patroni's leader key named %s %.2fs after the request%n", n, from,
        to, to, keySeconds);
    System.out.printf("  %-44s %12s %12s %12s%n", "consumer", "named after", "2 primaries", "0 primaries");
    for (Row r : rows) {
      System.out.printf("  %-44s %11s %11.2fs %11.2fs%n", r.source(), seconds(r.namedAfter()), r.twoPrimary(),
          r.zeroPrimary());
    }
  }

  private void summary(List<Row> rows, int n) {
    System.out.printf("%nsummary over %d switchovers (seconds; \"named after\" counts from Patroni's leader key"
        + " changing hands):%n", n);
    System.out.printf("  %-44s %8s %8s %10s %10s %10s%n", "consumer", "median", "p95", "2P max", "2P total",
        "0P median");
    for (Series s : sources.values()) {
      List<Row> mine = rows.stream().filter(r -> r.source().equals(s.name)).toList();
      List<Double> named = mine.stream().map(Row::namedAfter).filter(d -> !d.isNaN()).sorted().toList();
      List<Double> zero = mine.stream().map(Row::zeroPrimary).sorted().toList();
      double twoMax = mine.stream().mapToDouble(Row::twoPrimary).max().orElse(0);
      double twoTotal = mine.stream().mapToDouble(Row::twoPrimary).sum();
      String missing = named.size() < mine.size() ? " (" + (mine.size() - named.size()) + " never converged)" : "";
      System.out.printf("  %-44s %8s %8s %9.2fs %9.2fs %9.2fs%s%n", s.name, seconds(percentile(named, 50)),
          seconds(percentile(named, 95)), twoMax, twoTotal, percentile(zero, 50), missing);
    }
  }

  private static double percentile(List<Double> sorted, int p) {
    if (sorted.isEmpty()) {
      return Double.NaN;
    }
    int index = (int) Math.ceil(p / 100.0 * sorted.size()) - 1;
    return sorted.get(Math.max(0, Math.min(sorted.size() - 1, index)));
  }

  private static String seconds(double s) {
    return Double.isNaN(s) ? "n/a" : String.format("%.2fs", s);
  }

  // ---- observers --------------------------------------------------------------------------------------------

  private void thread(String name, Runnable body) {
    Thread t = new Thread(body, name);
    t.setDaemon(true);
    threads.add(t);
    t.start();
  }

  /** A Consul blocking query on the leader key: the moment it changes hands, as precisely as Consul tells. */
  private void watchKey(String path, Series series) {
    thread("watch " + path, () -> blocking(path, body -> {
      JsonNode entries = JSON.readTree(body);
      String value = entries.path(0).path("Value").asText("");
      return value.isEmpty() ? Set.of() : Set.of(new String(Base64.getDecoder().decode(value), StandardCharsets.UTF_8));
    }, series));
  }

  /** A Consul blocking query on a service's passing instances, as consul-template and other watchers do. */
  private void watchHealth(String name, String path) {
    Series series = new Series(name);
    sources.put(name, series);
    thread("watch " + name, () -> blocking(path, body -> {
      Set<String> nodes = new TreeSet<>();
      for (JsonNode entry : JSON.readTree(body)) {
        nodes.add(entry.path("Node").path("Node").asText());
      }
      return nodes;
    }, series));
  }

  interface Parser {
    Set<String> parse(String body) throws IOException;
  }

  private void blocking(String path, Parser parser, Series series) {
    String index = "0";
    String sep = path.contains("?") ? "&" : "?";
    while (running) {
      try {
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create("http://" + lab.consulAddress() + path
            + sep + "index=" + index + "&wait=5s")).timeout(Duration.ofSeconds(10)).build(),
            HttpResponse.BodyHandlers.ofString());
        index = r.headers().firstValue("X-Consul-Index").orElse("0");
        series.observe(r.statusCode() == 200 ? parser.parse(r.body()) : Set.of());
      } catch (IOException e) {
        sleep(50);
      } catch (InterruptedException e) {
        return;
      }
    }
  }

  /** Polls a consumer every ~10 ms (DNS and HAProxy have no change notification). */
  private void poll(String name, Supplier<Set<String>> probe) {
    Series series = new Series(name);
    sources.put(name, series);
    thread("poll " + name, () -> {
      while (running) {
        try {
          series.observe(probe.get());
        } catch (RuntimeException e) {
          // a failed read is not an observation
        }
        sleep(10);
      }
    });
  }

  private Set<String> haproxy(String backend, boolean byName) {
    Set<String> nodes = new TreeSet<>();
    if (byName) {
      nodes.addAll(Haproxy.up(lab.haproxySocket(), backend));
    } else {
      for (String address : Haproxy.upAddresses(lab.haproxySocket(), backend)) {
        nodes.add(nodeByAddress.getOrDefault(address.substring(0, address.lastIndexOf(':')), address));
      }
    }
    return nodes;
  }

  private Set<String> dnsNodes(String name) {
    Set<String> nodes = new TreeSet<>();
    for (String address : dnsA(name)) {
      nodes.add(nodeByAddress.getOrDefault(address, address));
    }
    return nodes;
  }

  private String currentLeader() {
    return leaderKey.current().stream().findFirst().orElseThrow(() -> new IllegalStateException("no leader"));
  }

  /** A minimal DNS A query over UDP against Consul's DNS interface (no process per query: we ask every 10 ms). */
  private List<String> dnsA(String name) {
    try (DatagramSocket socket = new DatagramSocket()) {
      socket.setSoTimeout(500);
      ByteArrayOutputStream q = new ByteArrayOutputStream();
      int id = ThreadLocalRandom.current().nextInt(1 << 16);
      q.write(new byte[] {(byte) (id >> 8), (byte) id, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0});
      for (String label : name.split("\\.")) {
        q.write(label.length());
        q.write(label.getBytes(StandardCharsets.US_ASCII));
      }
      q.write(new byte[] {0, 0, 1, 0, 1});
      byte[] query = q.toByteArray();
      InetAddress server = InetAddress.getByName(lab.consulDnsAddress());
      socket.send(new DatagramPacket(query, query.length, server, lab.consulDnsPort()));
      byte[] buf = new byte[4096];
      DatagramPacket answer = new DatagramPacket(buf, buf.length);
      socket.receive(answer);
      return parseA(ByteBuffer.wrap(buf, 0, answer.getLength()), id);
    } catch (SocketTimeoutException e) {
      throw new IllegalStateException("DNS timeout");
    } catch (IOException e) {
      throw new IllegalStateException(e);
    }
  }

  static List<String> parseA(ByteBuffer b, int id) {
    if ((b.getShort(0) & 0xffff) != id) {
      throw new IllegalStateException("DNS answer for another query");
    }
    int questions = b.getShort(4) & 0xffff;
    int answers = b.getShort(6) & 0xffff;
    b.position(12);
    for (int i = 0; i < questions; i++) {
      skipName(b);
      b.position(b.position() + 4);
    }
    List<String> out = new ArrayList<>();
    for (int i = 0; i < answers; i++) {
      skipName(b);
      int type = b.getShort() & 0xffff;
      b.position(b.position() + 6); // class, TTL
      int length = b.getShort() & 0xffff;
      if (type == 1 && length == 4) {
        out.add((b.get() & 0xff) + "." + (b.get() & 0xff) + "." + (b.get() & 0xff) + "." + (b.get() & 0xff));
      } else {
        b.position(b.position() + length);
      }
    }
    return out;
  }

  private static void skipName(ByteBuffer b) {
    while (true) {
      int len = b.get() & 0xff;
      if (len == 0) {
        return;
      }
      if ((len & 0xc0) == 0xc0) {
        b.get();
        return;
      }
      b.position(b.position() + len);
    }
  }

  private static void sleep(long millis) {
    try {
      Thread.sleep(millis);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
