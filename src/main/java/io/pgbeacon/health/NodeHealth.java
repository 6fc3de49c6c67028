package io.pgbeacon.health;

import java.util.Objects;
import java.util.Optional;
import java.util.OptionalLong;

/**
 * One node's verdict for both views plus the facts publishers advertise (Consul tags and meta).
 *
 * @param node Patroni's member name; empty until it is known
 * @param role the role as Patroni reports it ({@code master}, {@code primary}, {@code replica}, …), or
 *     {@code unknown}
 * @param host PostgreSQL's host in Patroni's DCS view: the default advertised address
 * @param lagBytes the replica's lag behind the leader, as Patroni computes it
 */
public record NodeHealth(
    Optional<String> node,
    Optional<String> scope,
    String role,
    OptionalLong timeline,
    OptionalLong lagBytes,
    boolean sync,
    Optional<String> patroniVersion,
    Optional<String> host,
    Verdict primary,
    Verdict replica) {

  public NodeHealth {
    Objects.requireNonNull(role, "role");
    Objects.requireNonNull(primary, "primary");
    Objects.requireNonNull(replica, "replica");
  }

  /** Before the first poll completes: both views critical, never silent. */
  public static NodeHealth starting(Optional<String> node) {
    Verdict v = Verdict.critical("starting: no answer from Patroni yet");
    return new NodeHealth(node, Optional.empty(), "unknown", OptionalLong.empty(), OptionalLong.empty(), false,
        Optional.empty(), Optional.empty(), v, v);
  }

  /** pgbeacon is stopping: both views critical with the given reason. */
  public NodeHealth stopping(String reason) {
    Verdict v = Verdict.critical(reason);
    return new NodeHealth(node, scope, role, timeline, lagBytes, sync, patroniVersion, host, v, v);
  }

  public Verdict view(io.pgbeacon.config.Config.View view) {
    return view == io.pgbeacon.config.Config.View.PRIMARY ? primary : replica;
  }

  /** True when either view's outcome differs from {@code other}'s: what must be pushed at once. */
  public boolean outcomeDiffers(NodeHealth other) {
    return other == null || !primary.sameOutcome(other.primary) || !replica.sameOutcome(other.replica);
  }
}
