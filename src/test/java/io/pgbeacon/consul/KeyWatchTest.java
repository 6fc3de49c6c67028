package io.pgbeacon.consul;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pgbeacon.health.Status;
import io.pgbeacon.support.Await;
import io.vertx.core.Vertx;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * KeyWatch's rules for what a real Consul does only rarely and never on cue: a failed read, an index of 0, and
 * an owner whose callback throws. Each read is scripted; the real Consul is in ConsulRegistrarIT and the e2e suite.
 */
class KeyWatchTest {

  private static final Duration SOON = Duration.ofSeconds(5);

  Vertx vertx;
  ScriptedConsul consul;
  KeyWatch watch;
  final List<String> events = new CopyOnWriteArrayList<>();
  final java.util.concurrent.atomic.AtomicInteger reads = new java.util.concurrent.atomic.AtomicInteger();

  @BeforeEach
  void setUp() {
    vertx = Vertx.vertx();
    consul = new ScriptedConsul();
  }

  @AfterEach
  void tearDown() throws Exception {
    vertx.runOnContext(v -> watch.stop());
    vertx.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
  }

  @Test
  void reportsTheValueAgainAfterAFailureEvenWhenItDidNotChange() {
    consul.answer("node1", 5);
    consul.fail("Consul unreachable");
    consul.answer("node1", 6);
    start(value -> events.add("value " + value.orElse("-")));
    Await.until("value, failure, the same value again", SOON, () -> List.copyOf(events),
        e -> e.equals(List.of("value node1", "failure Consul unreachable", "value node1")));
  }

  @Test
  void keepsWatchingWhenTheOwnerThrows() {
    consul.answer("node1", 5);
    consul.answer("node2", 6);
    start(value -> {
      events.add("value " + value.orElse("-"));
      throw new IllegalStateException("owner bug");
    });
    Await.until("both values despite the owner's exception", SOON, () -> List.copyOf(events),
        e -> e.equals(List.of("value node1", "value node2")));
  }

  @Test
  void blocksOnIndexOneWhenConsulAnswersIndexZero() {
    consul.answer("node1", 0);
    start(value -> events.add("value " + value.orElse("-")));
    Await.until("a second read", SOON, () -> consul.indexes.size(), n -> n >= 2);
    assertEquals(0L, consul.indexes.get(0), "the first read does not block");
    assertEquals(1L, consul.indexes.get(1), "an index of 0 would make every read return at once");
  }

  @Test
  void startsOverWhenTheIndexGoesBackwards() {
    consul.answer("node1", 50);
    consul.answer("node1", 7); // agent restarted, or a snapshot was restored
    start(value -> events.add("value " + value.orElse("-")));
    Await.until("a third read", SOON, () -> consul.indexes.size(), n -> n >= 3);
    assertEquals(List.of(0L, 50L, 0L), consul.indexes.subList(0, 3));
    assertEquals(List.of("value node1"), events, "an unchanged value is reported as unchanged");
    assertTrue(reads.get() >= 2, "every read is reported");
  }

  private void start(java.util.function.Consumer<Optional<String>> onValue) {
    vertx.runOnContext(v -> {
      watch = new KeyWatch(vertx, consul, "service/demo/leader", Duration.ofMillis(200), new KeyWatch.Reader() {
        @Override
        public void value(Optional<String> value, boolean changed) {
          if (changed) {
            onValue.accept(value);
          }
          reads.incrementAndGet();
        }

        @Override
        public void failed(String error) {
          events.add("failure " + error);
        }
      });
      watch.start();
    });
    Await.until("the watch started", SOON, () -> watch != null, started -> started);
  }

  /** Answers readKey from a script, then blocks as a quiet key does (until its wait). */
  static final class ScriptedConsul implements ConsulAgent {
    private final BlockingQueue<Object> script = new LinkedBlockingQueue<>();
    final List<Long> indexes = new CopyOnWriteArrayList<>();
    private volatile Optional<String> last = Optional.empty();

    void answer(String value, long index) {
      script.add(new KeyRead(Optional.of(value), index));
    }

    void fail(String message) {
      script.add(new ConsulException(message, false));
    }

    @Override
    public KeyRead readKey(String key, long index, Duration wait) throws ConsulException {
      indexes.add(index);
      Object next;
      try {
        next = script.poll(wait.toMillis(), TimeUnit.MILLISECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new ConsulException("interrupted", false);
      }
      if (next == null) {
        return new KeyRead(last, Math.max(1, index)); // the wait ran out: no change
      }
      if (next instanceof ConsulException e) {
        throw e;
      }
      KeyRead read = (KeyRead) next;
      last = read.value();
      return read;
    }

    @Override
    public void register(ServiceRegistration registration) {
      throw new UnsupportedOperationException();
    }

    @Override
    public void updateCheck(String checkId, Status status, String output) {
      throw new UnsupportedOperationException();
    }

    @Override
    public java.util.Map<String, CheckState> checks() {
      throw new UnsupportedOperationException();
    }

    @Override
    public java.util.Map<String, ServiceEntry> services() {
      throw new UnsupportedOperationException();
    }

    @Override
    public Duration giveUpAfter() {
      return Duration.ofSeconds(60);
    }

    @Override
    public void deregister(String serviceId) {
      throw new UnsupportedOperationException();
    }

    @Override
    public void close() {}
  }
}
