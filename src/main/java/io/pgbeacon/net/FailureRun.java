package io.pgbeacon.net;

import io.pgbeacon.config.Units;
import io.pgbeacon.health.TimeSource;
import java.time.Duration;
import org.slf4j.Logger;

/**
 * What the log says of a run of failures: one WARN when it starts, one INFO when it ends, DEBUG in between — an
 * outage of ten minutes is two lines, not six hundred. Not thread-safe: used on one event loop.
 */
public final class FailureRun {

  private final Logger log;
  private final String subject;
  private final TimeSource time;
  private long since = -1;
  private int failures;

  public FailureRun(Logger log, String subject, TimeSource time) {
    this.log = log;
    this.subject = subject;
    this.time = time;
  }

  public void failed(String error, String retrying) {
    failures++;
    if (since < 0) {
      since = time.nanos();
      log.warn("{}: {} ({}; logged again when it recovers)", subject, error, retrying);
    } else if (log.isDebugEnabled()) {
      log.debug("{}: still failing: {}", subject, error);
    }
  }

  public void succeeded() {
    if (since >= 0) {
      log.info("{}: answering again after {} ({} failed attempt{})", subject,
          Units.formatDuration(Duration.ofNanos(time.nanos() - since)), failures, failures == 1 ? "" : "s");
      since = -1;
      failures = 0;
    }
  }

  public boolean failing() {
    return since >= 0;
  }
}
