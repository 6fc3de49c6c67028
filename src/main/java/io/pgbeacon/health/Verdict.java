package io.pgbeacon.health;

import java.util.Objects;

/**
 * The verdict for one view (primary or replica) of one node.
 *
 * @param status what Consul's check shows
 * @param wrongRole true when the node is fine but not of this view's role (a replica, seen from the primary
 *     view): HAProxy should park it, not alarm about it
 * @param reason a short human sentence: the Consul check output and the agent's {@code #} text
 */
public record Verdict(Status status, boolean wrongRole, String reason) {

  public Verdict {
    Objects.requireNonNull(status, "status");
    Objects.requireNonNull(reason, "reason");
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

  /** Same status and role fit: the reason's numbers (lag, timeline) may differ. */
  public boolean sameOutcome(Verdict other) {
    return other != null && status == other.status && wrongRole == other.wrongRole;
  }
}
