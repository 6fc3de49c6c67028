package io.pgbeacon.health;

import io.pgbeacon.config.Config;
import io.pgbeacon.patroni.ReportedRole;
import java.util.Objects;
import java.util.Optional;
import java.util.OptionalLong;

/**
 * One node's verdict for both views plus the facts publishers advertise (Consul tags and meta).
 *
 * @param node Patroni's member name; empty until it is known
 * @param role the role Patroni reports; empty while Patroni cannot be heard
 * @param host PostgreSQL's host in Patroni's DCS view: the default advertised address
 * @param lagBytes the replica's lag behind the leader, as Patroni computes it
 * @param observedAt when the observations behind this verdict were made ({@link TimeSource#nanos()} at the start
 *     of the poll): publishers refuse to pass on a verdict older than {@link Freshness#limit()}
 */
public record NodeHealth(
    Optional<String> node,
    Optional<String> scope,
    Optional<ReportedRole> role,
    OptionalLong timeline,
    OptionalLong lagBytes,
    boolean sync,
    Optional<String> patroniVersion,
    Optional<String> host,
    Verdict primary,
    Verdict replica,
    long observedAt) {

  public NodeHealth {
    Objects.requireNonNull(node, "node");
    Objects.requireNonNull(role, "role");
    Objects.requireNonNull(primary, "primary");
    Objects.requireNonNull(replica, "replica");
  }

  /** Before the first poll completes: both views critical, never silent. */
  public static NodeHealth starting(Optional<String> node, long now) {
    Verdict v = Verdict.critical("starting: no answer from Patroni yet");
    return new NodeHealth(node, Optional.empty(), Optional.empty(), OptionalLong.empty(), OptionalLong.empty(), false,
        Optional.empty(), Optional.empty(), v, v, now);
  }

  /** Both views critical with {@code reason} (pgbeacon stopping, a stale verdict, a failed tick); facts kept. */
  public NodeHealth critical(String reason) {
    Verdict v = Verdict.critical(reason);
    return new NodeHealth(node, scope, role, timeline, lagBytes, sync, patroniVersion, host, v, v, observedAt);
  }

  /** The same facts and replica view, with the primary view replaced. */
  public NodeHealth withPrimary(Verdict verdict) {
    return new NodeHealth(node, scope, role, timeline, lagBytes, sync, patroniVersion, host, verdict, replica,
        observedAt);
  }

  /** The same verdict, as observed at {@code when}. */
  public NodeHealth observedAt(long when) {
    return new NodeHealth(node, scope, role, timeline, lagBytes, sync, patroniVersion, host, primary, replica, when);
  }

  public Verdict view(Config.View view) {
    return view == Config.View.PRIMARY ? primary : replica;
  }

  /** True when either view's outcome differs from {@code other}'s: what must be pushed at once. */
  public boolean outcomeDiffers(NodeHealth other) {
    return other == null || !primary.sameOutcome(other.primary) || !replica.sameOutcome(other.replica);
  }

  /** True when this primary view is better (passing over warning over critical) than {@code other}'s. */
  public boolean raisesPrimaryOver(NodeHealth other) {
    return primary.status().betterThan(other.primary.status());
  }

  /** True when this primary view is worse than {@code other}'s, or of another kind of critical. */
  public boolean lowersPrimaryUnder(NodeHealth other) {
    return other.raisesPrimaryOver(this);
  }
}
