package io.pgbeacon.consul;

import io.vertx.core.Vertx;
import io.vertx.core.WorkerExecutor;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Watches one Consul key (Patroni's leader or failover key) with blocking queries and reports every read: its value,
 * and whether it changed since the last report (the first read, and the first after a failure, count as changed).
 *
 * <p>Threading: created, started and stopped on the owning verticle's event loop, where the callbacks also run.
 * The blocking reads run one at a time on a worker thread of their own; the next read is issued when the previous
 * one completes (after a pause when it failed), as Consul's blocking-query guidance asks.
 */
public final class KeyWatch {

  private static final Logger log = LoggerFactory.getLogger(KeyWatch.class);
  private static final Duration RETRY = Duration.ofSeconds(1);

  private final Vertx vertx;
  private final ConsulAgent agent;
  private final String key;
  private final Duration wait;
  private final Reader reader;
  private final WorkerExecutor worker;
  private long index;
  private boolean first = true;
  private Optional<String> last = Optional.empty();
  private boolean stopped;
  private long retryTimer = -1;

  /** What a watch reports, on the owner's event loop. */
  public interface Reader {
    /** A successful read; every read is reported, so that the owner knows how recent its knowledge is. */
    void value(Optional<String> value, boolean changed);

    /** A failed read; the next read follows after a pause. */
    void failed(String error);
  }

  public KeyWatch(Vertx vertx, ConsulAgent agent, String key, Duration wait, Reader reader) {
    this.vertx = vertx;
    this.agent = agent;
    this.key = key;
    this.wait = wait;
    this.reader = reader;
    this.worker = vertx.createSharedWorkerExecutor("pgbeacon-watch-" + key, 1,
        wait.toMillis() * 2 + 10_000, TimeUnit.MILLISECONDS);
  }

  public void start() {
    log.info("watching {}", key);
    read();
  }

  private void read() {
    if (stopped) {
      return;
    }
    long from = index;
    // Unordered: an ordered task would hold up every other ordered task of this context for up to `wait`.
    worker.executeBlocking(() -> agent.readKey(key, from, wait), false).onComplete(ar -> {
      if (stopped) {
        return;
      }
      if (ar.failed()) {
        index = 0;
        first = true; // the next value is news again, changed or not
        retryTimer = vertx.setTimer(RETRY.toMillis(), id -> read());
        reader.failed(ar.cause().getMessage());
        return;
      }
      ConsulAgent.KeyRead read = ar.result();
      // Consul's blocking-query rules: an index that goes backwards (agent restart, snapshot restore) means start
      // over; an index below 1 would make every following read return at once, so wait on 1 instead.
      index = read.index() < from ? 0 : Math.max(1, read.index());
      try {
        boolean changed = first || !read.value().equals(last);
        first = false;
        last = read.value();
        reader.value(read.value(), changed);
      } finally {
        read(); // an owner's exception must not end the watch
      }
    });
  }

  public void stop() {
    stopped = true;
    vertx.cancelTimer(retryTimer);
    worker.close();
  }
}
