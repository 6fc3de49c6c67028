package io.pgbeacon.support;

import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * One node's Patroni REST API replaying recorded real answers ({@code src/test/resources/patroni/<version>/}):
 * {@code /primary} answers the node's status JSON with 200 (it holds the leader lock) or 503, every other path the
 * recorded {@code /cluster}. It can be made to hang — accept, read, never answer — at a moment the test chooses,
 * which a real Patroni cannot be made to do on cue. The real Patroni is what the {@code e2e} tests talk to.
 */
public final class RecordedPatroni implements AutoCloseable {

  private final HttpServer server;
  private final ExecutorService threads = Executors.newCachedThreadPool(r -> {
    Thread t = new Thread(r, "recorded-patroni");
    t.setDaemon(true);
    return t;
  });
  private final String version;
  private volatile byte[] status;
  private final byte[] cluster;
  private volatile boolean leader;
  private final java.util.Map<String, java.util.concurrent.atomic.AtomicInteger> requests =
      new java.util.concurrent.ConcurrentHashMap<>();
  private final Object lock = new Object();
  private boolean hung;

  static {
    // Without it the JDK server writes headers and body in two segments and waits for the delayed ACK (40 ms).
    System.setProperty("sun.net.httpserver.nodelay", "true");
  }

  private RecordedPatroni(String version, String statusFile, boolean leader) {
    this.version = version;
    this.status = recorded(version, statusFile);
    this.cluster = recorded(version, "cluster.json");
    this.leader = leader;
    try {
      server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 50);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    server.setExecutor(threads); // a hung request must not hold up the others
    server.createContext("/", exchange -> {
      try (exchange) {
        requests.computeIfAbsent(exchange.getRequestURI().getPath(),
            k -> new java.util.concurrent.atomic.AtomicInteger()).incrementAndGet();
        awaitNotHung();
        boolean primaryPath = exchange.getRequestURI().getPath().equals("/primary");
        byte[] body = primaryPath ? status : cluster;
        exchange.getResponseHeaders().add("Content-Type", "application/json");
        exchange.sendResponseHeaders(primaryPath && !this.leader ? 503 : 200, body.length);
        try (OutputStream out = exchange.getResponseBody()) {
          out.write(body);
        }
      }
    });
    server.start();
  }

  /** Serves {@code statusFile} of {@code version} (e.g. "4.1.5", "primary.json"); {@code leader}: 200 on /primary. */
  public static RecordedPatroni start(String version, String statusFile, boolean leader) {
    return new RecordedPatroni(version, statusFile, leader);
  }

  public String url() {
    return "http://127.0.0.1:" + server.getAddress().getPort();
  }

  /** From now on /primary answers {@code statusFile} (of the same version), 200 when {@code leader}, else 503. */
  public void serve(String statusFile, boolean leader) {
    this.status = recorded(version, statusFile);
    this.leader = leader;
  }

  /** How many requests for {@code path} arrived so far. */
  public int requests(String path) {
    var n = requests.get(path);
    return n == null ? 0 : n.get();
  }

  /** True: requests from now on (and those waiting) get no answer until {@code hang(false)}. */
  public void hang(boolean hang) {
    synchronized (lock) {
      hung = hang;
      lock.notifyAll();
    }
  }

  private void awaitNotHung() {
    synchronized (lock) {
      long until = System.nanoTime() + 60_000_000_000L; // never hold a thread past a minute
      while (hung && System.nanoTime() < until) {
        try {
          lock.wait(1000);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          return;
        }
      }
    }
  }

  /** Stops listening: from now on connections are refused, as with a stopped Patroni. */
  @Override
  public void close() {
    hang(false);
    server.stop(0);
    threads.shutdownNow();
  }

  private static byte[] recorded(String version, String file) {
    String resource = "/patroni/" + version + "/" + file;
    try (InputStream in = RecordedPatroni.class.getResourceAsStream(resource)) {
      if (in == null) {
        throw new IllegalArgumentException("no recorded answer " + resource);
      }
      return in.readAllBytes();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }
}
