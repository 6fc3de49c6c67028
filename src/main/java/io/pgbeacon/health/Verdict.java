package io.pgbeacon.health;

import java.util.Objects;

/**
 * The verdict for one view (primary or replica) of one node.
 *
 * @param status what Consul's check shows
 * @param wrongRole true when the node is fine but not of this view's role (a replica, seen from the primary
 *     view): HAProxy should park it, not alarm about it
 * @param pastMaxLag true when a replica is critical only because it lags more than {@code max-lag}: it is
 *     otherwise healthy, so HAProxy may drain it (keep its sessions) rather than take it down
 * @param reason a short human sentence: the Consul check output and the agent's {@code #} text
 */
public record Verdict(Status status, boolean wrongRole, boolean pastMaxLag, String reason) {

  public Verdict {
    Objects.requireNonNull(status, "status");
    Objects.requireNonNull(reason, "reason");
    if ((wrongRole || pastMaxLag) && status != Status.CRITICAL) {
      throw new IllegalArgumentException("wrong role and past max-lag are kinds of critical, not " + status);
    }
    if (wrongRole && pastMaxLag) {
      throw new IllegalArgumentException("a verdict is either wrong role or past max-lag, not both");
    }
  }

  /** A verdict that is neither past max-lag nor, unless {@code wrongRole}, of the wrong role. */
  public Verdict(Status status, boolean wrongRole, String reason) {
    this(status, wrongRole, false, reason);
  }

  static Verdict passing(String reason) {
    return new Verdict(Status.PASSING, false, reason);
  }

  static Verdict warning(String reason) {
    return new Verdict(Status.WARNING, false, reason);
  }

  static Verdict critical(String reason) {
    return new Verdict(Status.CRITICAL, false, reason);
  }

  static Verdict wrongRole(String reason) {
    return new Verdict(Status.CRITICAL, true, reason);
  }

  static Verdict pastMaxLag(String reason) {
    return new Verdict(Status.CRITICAL, false, true, reason);
  }

  /** Same status and kind: the reason's numbers (lag, timeline) may differ. */
  public boolean sameOutcome(Verdict other) {
    return other != null && status == other.status && wrongRole == other.wrongRole
        && pastMaxLag == other.pastMaxLag;
  }
}
