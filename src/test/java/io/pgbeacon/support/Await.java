package io.pgbeacon.support;

import java.time.Duration;
import java.util.function.Predicate;
import java.util.function.Supplier;

/** Polls a condition until a deadline; on failure says what was last seen. No fixed sleeps in tests. */
public final class Await {

  private Await() {}

  public static <T> T until(String what, Duration deadline, Supplier<T> probe, Predicate<T> done) {
    long end = System.nanoTime() + deadline.toNanos();
    T last = null;
    Throwable lastError = null;
    while (true) {
      try {
        last = probe.get();
        lastError = null;
        if (done.test(last)) {
          return last;
        }
      } catch (RuntimeException e) {
        lastError = e;
      }
      if (System.nanoTime() > end) {
        throw new AssertionError("timed out after " + deadline.toMillis() + "ms waiting for " + what
            + "; last seen: " + (lastError != null ? lastError : last), lastError);
      }
      pause(Duration.ofMillis(50));
    }
  }

  public static void pause(Duration d) {
    try {
      Thread.sleep(d.toMillis());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }
}
