package io.pgbeacon.health;

import java.util.Objects;

/**
 * The verdict for one view (primary or replica) of one node.
 *
 * @param kind what the verdict is; {@link Kind#status()} is what Consul's check shows
 * @param reason a short human sentence: the Consul check output and the agent's {@code #} text
 */
public record Verdict(Kind kind, String reason) {

  /** The five outcomes a view can have; two kinds of critical are of an otherwise healthy node. */
  public enum Kind {
    PASSING(Status.PASSING),
    WARNING(Status.WARNING),
    /** Something is wrong: not to be used. */
    FAILING(Status.CRITICAL),
    /** Healthy, but not of this view's role (a replica, seen from the primary view): HAProxy parks it. */
    WRONG_ROLE(Status.CRITICAL),
    /** A replica that is healthy but lags more than {@code max-lag}: HAProxy may drain it, keeping its sessions. */
    PAST_MAX_LAG(Status.CRITICAL);

    private final Status status;

    Kind(Status status) {
      this.status = status;
    }

    public Status status() {
      return status;
    }
  }

  public Verdict {
    Objects.requireNonNull(kind, "kind");
    Objects.requireNonNull(reason, "reason");
  }

  public Status status() {
    return kind.status();
  }

  public static Verdict passing(String reason) {
    return new Verdict(Kind.PASSING, reason);
  }

  public static Verdict warning(String reason) {
    return new Verdict(Kind.WARNING, reason);
  }

  public static Verdict critical(String reason) {
    return new Verdict(Kind.FAILING, reason);
  }

  public static Verdict wrongRole(String reason) {
    return new Verdict(Kind.WRONG_ROLE, reason);
  }

  public static Verdict pastMaxLag(String reason) {
    return new Verdict(Kind.PAST_MAX_LAG, reason);
  }

  /** Same kind: the reason's numbers (lag, timeline) may differ. */
  public boolean sameOutcome(Verdict other) {
    return other != null && kind == other.kind;
  }
}
