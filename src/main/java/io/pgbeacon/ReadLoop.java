package io.pgbeacon;

import io.pgbeacon.health.TimeSource;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import java.time.Duration;
import java.util.function.Consumer;
import java.util.function.Supplier;

/**
 * One remote read after another, on the event loop that starts it: the next read is scheduled when the current one
 * ends, so reads of one kind never overlap and each read's deadline bounds the loop's pace. The loop's boundary: a
 * read that cannot start goes to {@code failed} and the loop goes on one {@code interval} later; an answer whose
 * handling throws goes to {@code failed} too, and the next read comes {@code afterFailure} later (the poll's
 * cadence: {@code failed} published a change, which quickens it).
 *
 * @param <T> the answer; the read's future never fails (the clients fold every failure into an answer)
 */
final class ReadLoop<T> {

  /** What an answer leads to: the delay to the next read. */
  interface Handler<T> {
    Duration handle(T answer, long startedNanos);
  }

  private final Vertx vertx;
  private final Supplier<Future<T>> read;
  private final Handler<T> handler;
  private final Consumer<RuntimeException> failed;
  private final Duration interval;
  private final Supplier<Duration> afterFailure;
  private final TimeSource time;
  private long timer = -1;
  private boolean stopped;

  ReadLoop(Vertx vertx, TimeSource time, Duration interval, Supplier<Future<T>> read, Handler<T> handler,
      Consumer<RuntimeException> failed, Supplier<Duration> afterFailure) {
    this.vertx = vertx;
    this.time = time;
    this.interval = interval;
    this.afterFailure = afterFailure;
    this.read = read;
    this.handler = handler;
    this.failed = failed;
  }

  void start() {
    run();
  }

  /** Reads at once when waiting for the next read; false while a read is in flight (its answer comes soon). */
  boolean now() {
    if (timer >= 0 && vertx.cancelTimer(timer)) {
      run();
      return true;
    }
    return false;
  }

  /** No read after this one; an answer still in flight is dropped. */
  void stop() {
    stopped = true;
    vertx.cancelTimer(timer);
  }

  private void run() {
    timer = -1;
    long started = time.nanos();
    Future<T> answer;
    try {
      answer = read.get();
    } catch (RuntimeException e) {
      failed.accept(e);
      schedule(interval);
      return;
    }
    answer.onComplete(done -> {
      if (stopped) {
        return;
      }
      Duration next = null;
      try {
        next = handler.handle(done.result(), started);
      } catch (RuntimeException e) {
        failed.accept(e);
      } finally {
        schedule(next != null ? next : afterFailure.get());
      }
    });
  }

  private void schedule(Duration delay) {
    if (!stopped) {
      timer = vertx.setTimer(Math.max(1, delay.toMillis()), id -> run());
    }
  }
}
