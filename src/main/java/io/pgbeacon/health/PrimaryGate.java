package io.pgbeacon.health;

import java.time.Duration;

/**
 * The grant barrier: whether a verdict that <em>raises</em> the primary view may be published. Lowering is always
 * allowed; raising is where a stale answer would advertise a node that is not the primary. Pure, with an injected
 * clock; one per daemon, used on the monitor's event loop.
 *
 * <p>The rules, each a row of {@code PrimaryGateTest}:
 * <ol>
 *   <li>a DCS watch event only withdraws: a re-decision after an event that would raise the primary view is held,
 *       and a fresh poll decides instead;
 *   <li>a poll that began before the last event that can withdraw (the leader key left this node, a switchover
 *       away from it was requested or cleared) may not raise it: Patroni's answer may predate the switchover; ask
 *       again at once;
 *   <li>after the watches start, nothing is granted until both have answered once (value or failure), or
 *       {@code grace} has passed;
 *   <li>everything else is published.
 * </ol>
 */
public final class PrimaryGate {

  /** What to do with a verdict. */
  public enum Decision {
    /** Publish it. */
    PUBLISH,
    /** Keep the published primary view and poll again at once: the answer may predate a withdrawing event. */
    HOLD_AND_POLL,
    /** Keep the published primary view; what the gate waits for will trigger a poll itself. */
    HOLD
  }

  /** Where a verdict comes from. */
  public enum Source {
    /** A poll of Patroni that began at the given time. */
    POLL,
    /** A re-decision after a DCS watch event, from the last poll's answers. */
    DCS_EVENT
  }

  private final Duration grace;
  private final TimeSource time;
  private long lastWithdrawing;
  private long watchesStartedAt;
  private boolean waitingForWatches;

  public PrimaryGate(Duration grace, TimeSource time) {
    this.grace = grace;
    this.time = time;
    this.lastWithdrawing = time.nanos();
  }

  /** The DCS watches started now: hold grants until both answered, or {@code grace}. */
  public void watchesStarted() {
    watchesStartedAt = time.nanos();
    waitingForWatches = true;
  }

  /** Both watches have answered at least once. */
  public void watchesAnswered() {
    waitingForWatches = false;
  }

  /** A DCS event that may mean this node should not lead happened now. */
  public void withdrawing() {
    lastWithdrawing = time.nanos();
  }

  /**
   * The decision for {@code candidate} against what is published.
   *
   * @param pollStartedAt for {@link Source#POLL}: when the poll began ({@link TimeSource#nanos()})
   */
  public Decision decide(NodeHealth candidate, NodeHealth published, Source source, long pollStartedAt) {
    if (!candidate.raisesPrimaryOver(published)) {
      return Decision.PUBLISH;
    }
    if (source == Source.DCS_EVENT || pollStartedAt - lastWithdrawing < 0) {
      return Decision.HOLD_AND_POLL;
    }
    if (waitingForWatches && time.nanos() - watchesStartedAt <= grace.toNanos()) {
      return Decision.HOLD;
    }
    return Decision.PUBLISH;
  }
}
