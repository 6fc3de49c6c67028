package io.pgbeacon.health;

import io.pgbeacon.config.Config;
import io.pgbeacon.patroni.ReportedRole;
import io.pgbeacon.patroni.Role;
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
 * @param sync Patroni's {@code sync_standby}: a synchronous standby now
 * @param quorum Patroni 4's {@code quorum_standby}: one of the standbys a quorum commit waits for some of
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
    boolean quorum,
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
        false, Optional.empty(), Optional.empty(), v, v, now);
  }

  /** Both views critical with {@code reason} (pgbeacon stopping, a stale verdict, a failed tick); facts kept. */
  public NodeHealth critical(String reason) {
    Verdict v = Verdict.critical(reason);
    return new NodeHealth(node, scope, role, timeline, lagBytes, sync, quorum, patroniVersion, host, v, v, observedAt);
  }

  /** The same facts and replica view, with the primary view replaced. */
  public NodeHealth withPrimary(Verdict verdict) {
    return new NodeHealth(node, scope, role, timeline, lagBytes, sync, quorum, patroniVersion, host, verdict, replica,
        observedAt);
  }

  /** The same verdict and facts, with the cluster's scope set to {@code known} where Patroni did not say it. */
  public NodeHealth orScope(Optional<String> known) {
    return scope.isPresent() || known.isEmpty() ? this
        : new NodeHealth(node, known, role, timeline, lagBytes, sync, quorum, patroniVersion, host, primary, replica,
            observedAt);
  }

  /** The same verdict, as observed at {@code when}. */
  public NodeHealth observedAt(long when) {
    return new NodeHealth(node, scope, role, timeline, lagBytes, sync, quorum, patroniVersion, host, primary, replica,
        when);
  }

  /**
   * The verdict for {@code view}. The primary and replica views are decided; the others follow from them and the
   * node's facts, so they can never pass where the decided views would not:
   * <ul>
   *   <li>{@code sync} / {@code async}: the replica view, where this replica is / is not a synchronous standby now
   *       (a standby leader is never one, a quorum standby neither); a healthy replica of another kind is of the
   *       wrong role;
   *   <li>{@code read-only}: the primary view on the primary, the replica view elsewhere;
   *   <li>{@code standby-leader}: the replica view of a standby cluster's leader; any other node is of the wrong
   *       role.
   * </ul>
   */
  public Verdict view(Config.View view) {
    return switch (view) {
      case PRIMARY -> primary;
      case REPLICA -> replica;
      case SYNC -> syncView(true);
      case ASYNC -> syncView(false);
      case READ_ONLY -> primary.kind() == Verdict.Kind.WRONG_ROLE ? replica : primary;
      case STANDBY_LEADER -> standbyLeader() || !servesAsReplica() ? replica
          : Verdict.wrongRole(role.map(ReportedRole::word).orElse("replica") + ", not a standby leader");
    };
  }

  /** Patroni reports this node as a standby cluster's leader. */
  public boolean standbyLeader() {
    return role.map(r -> r.role() == Role.STANDBY_LEADER).orElse(false);
  }

  /** The replica view's outcome is that of a replica that would serve (passing, warning, or only behind). */
  private boolean servesAsReplica() {
    return switch (replica.kind()) {
      case PASSING, WARNING, PAST_MAX_LAG -> true;
      case FAILING, WRONG_ROLE -> false;
    };
  }

  /**
   * As Patroni's {@code /sync} and {@code /async}: a quorum standby (Patroni 4's {@code synchronous_mode: quorum})
   * is neither — a commit waits for some of them, no one in particular.
   */
  private Verdict syncView(boolean wantSync) {
    if (!servesAsReplica()) {
      return replica;
    }
    if (wantSync ? sync : !sync && !quorum) {
      return replica;
    }
    return Verdict.wrongRole(sync ? "synchronous standby" : quorum ? "quorum standby"
        : standbyLeader() ? "standby leader, never synchronous" : "asynchronous replica");
  }

  /**
   * The lag an agent reply for {@code view} weighs by: the replica's, where the view answers with the replica view's
   * verdict; none where it answers with the primary's (a primary always weighs 100%).
   */
  public OptionalLong lagFor(Config.View view) {
    boolean fromPrimary = view == Config.View.PRIMARY
        || (view == Config.View.READ_ONLY && primary.kind() != Verdict.Kind.WRONG_ROLE);
    return fromPrimary ? OptionalLong.empty() : lagBytes;
  }

  /** True when any view's outcome differs from {@code other}'s: what must be pushed at once. */
  public boolean outcomeDiffers(NodeHealth other) {
    if (other == null) {
      return true;
    }
    for (Config.View view : Config.View.values()) {
      if (!view(view).sameOutcome(other.view(view))) {
        return true;
      }
    }
    return false;
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
