package io.pgbeacon.pgbouncer;

import java.util.Objects;

/**
 * What the PgBouncer probe found.
 *
 * @param state whether PgBouncer passed a query through to PostgreSQL
 * @param detail a short human reason, e.g. "connection refused" or "database postgres is paused"
 */
public record PgBouncerStatus(State state, String detail) {

  public enum State {
    /** A fresh connection through PgBouncer ran a query on PostgreSQL. */
    HEALTHY,
    /** PgBouncer refused, failed, timed out, or reports the database paused or disabled. */
    FAILED,
    /** No {@code pgbouncer} block in the config: nothing to check. */
    NOT_CONFIGURED
  }

  public PgBouncerStatus {
    Objects.requireNonNull(state, "state");
    Objects.requireNonNull(detail, "detail");
  }

  public static final PgBouncerStatus NOT_CONFIGURED = new PgBouncerStatus(State.NOT_CONFIGURED, "not configured");

  public static PgBouncerStatus ok() {
    return new PgBouncerStatus(State.HEALTHY, "ok");
  }

  public static PgBouncerStatus failed(String detail) {
    return new PgBouncerStatus(State.FAILED, detail);
  }

  /** True unless the probe failed: a node without PgBouncer is not held back by it. */
  public boolean passes() {
    return state != State.FAILED;
  }
}
