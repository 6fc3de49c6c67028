package io.pgbeacon;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pgbeacon.health.TimeSource;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** One read after another on a real event loop; a failure's next read, a stop, and a read brought forward. */
class ReadLoopTest {

  private static final Duration LONG = Duration.ofSeconds(30);
  private final Vertx vertx = Vertx.vertx();

  @AfterEach
  void close() throws Exception {
    vertx.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
  }

  @Test
  void anAnswerWhoseHandlingThrowsIsFollowedAfterTheFailuresDelayNotTheBaseInterval() throws Exception {
    // The poll's failure publishes a change, which quickens the cadence: the next read must not wait the interval.
    CountDownLatch twoReads = new CountDownLatch(2);
    List<RuntimeException> failures = new ArrayList<>();
    AtomicInteger reads = new AtomicInteger();
    ReadLoop<Integer> loop = new ReadLoop<>(vertx, TimeSource.SYSTEM, LONG, () -> {
      twoReads.countDown();
      return Future.succeededFuture(reads.incrementAndGet());
    }, (n, started) -> {
      if (n == 1) {
        throw new IllegalStateException("a bug in a decision");
      }
      return LONG;
    }, failures::add, () -> Duration.ofMillis(20));
    vertx.runOnContext(v -> loop.start());
    assertTrue(twoReads.await(5, TimeUnit.SECONDS), "the second read came " + LONG + " later, not 20 ms");
    assertEquals("a bug in a decision", failures.get(0).getMessage());
  }

  @Test
  void aReadThatCannotStartIsTriedAgainAndNoReadFollowsAStop() throws Exception {
    CountDownLatch tried = new CountDownLatch(2);
    ReadLoop<Integer> loop = new ReadLoop<>(vertx, TimeSource.SYSTEM, Duration.ofMillis(20), () -> {
      tried.countDown();
      throw new IllegalStateException("cannot start");
    }, (n, started) -> LONG, e -> { }, () -> LONG);
    vertx.runOnContext(v -> loop.start());
    assertTrue(tried.await(5, TimeUnit.SECONDS), "tried again one interval later");
    CountDownLatch stopped = new CountDownLatch(1);
    vertx.runOnContext(v -> {
      loop.stop();
      stopped.countDown();
    });
    assertTrue(stopped.await(5, TimeUnit.SECONDS));
    long after = tried.getCount();
    Thread.sleep(200); // ten intervals: none may read
    assertEquals(after, tried.getCount());
  }

  @Test
  void nowReadsAtOnceBetweenReads() throws Exception {
    AtomicInteger reads = new AtomicInteger();
    CountDownLatch first = new CountDownLatch(1);
    CountDownLatch second = new CountDownLatch(2);
    ReadLoop<Integer> loop = new ReadLoop<>(vertx, TimeSource.SYSTEM, LONG, () -> {
      first.countDown();
      second.countDown();
      return Future.succeededFuture(reads.incrementAndGet());
    }, (n, started) -> LONG, e -> { }, () -> LONG);
    vertx.runOnContext(v -> loop.start());
    assertTrue(first.await(5, TimeUnit.SECONDS));
    CountDownLatch asked = new CountDownLatch(1);
    boolean[] now = new boolean[1];
    vertx.runOnContext(v -> {
      now[0] = loop.now();
      asked.countDown();
    });
    assertTrue(asked.await(5, TimeUnit.SECONDS));
    assertTrue(now[0], "waiting for the next read: it reads at once");
    assertTrue(second.await(5, TimeUnit.SECONDS), "the second read at once, not " + LONG + " later");
  }
}
