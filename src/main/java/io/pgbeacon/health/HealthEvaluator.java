package io.pgbeacon.health;

import io.pgbeacon.config.Units;
import io.pgbeacon.patroni.ClusterView;
import io.pgbeacon.patroni.PatroniReading;
import io.pgbeacon.patroni.PatroniStatus;
import io.pgbeacon.patroni.ReportedRole;
import io.pgbeacon.patroni.Role;
import io.pgbeacon.pgbouncer.PgBouncerStatus;
import java.time.Duration;
import java.util.Optional;
import java.util.OptionalLong;

/**
 * The pure decision: (Patroni's reading, PgBouncer's status, policy) → {@link NodeHealth}. No I/O, no clock.
 *
 * <p>The primary view is deliberately the strictest: a node passes only while Patroni reports PostgreSQL
 * running as primary <em>and</em> answers 200 on {@code /primary} (it holds the leader lock) <em>and</em> the
 * DCS view, when readable, names this node as leader. During a switchover the old primary fails the first of
 * these as soon as Patroni starts stopping PostgreSQL, and the new one passes only once promotion completed —
 * so there is never a moment with two passing primaries.
 */
public final class HealthEvaluator {

  /**
   * How recently pgbeacon's own read of the leader key must have named this node for a paused Patroni without a DCS
   * view to pass as primary: Patroni's smallest allowed {@code ttl}, so never longer than the lock can outlive its
   * last renewal.
   */
  static final Duration PAUSED_CONFIRMATION = Duration.ofSeconds(20);

  private HealthEvaluator() {}

  /** Without pgbeacon's own DCS watch, observed now: for {@code pgbeacon check --direct}. */
  public static NodeHealth evaluate(PatroniReading reading, PgBouncerStatus pgbouncer, HealthPolicy policy,
      TimeSource time) {
    return evaluate(reading, pgbouncer, DcsLeader.UNWATCHED, policy, time.nanos(), time);
  }

  /**
   * The verdict, with pgbeacon's own view of the DCS keys: it can only withdraw the primary (the key left this
   * node before the next poll saw it, a switchover is due), never grant it.
   *
   * @param observedAt when the reading's poll began: the verdict's age counts from here
   * @param time the clocks for the rules that compare times (a paused node's last confirmation, a scheduled
   *     switchover); nothing else is read from them
   */
  public static NodeHealth evaluate(PatroniReading reading, PgBouncerStatus pgbouncer, DcsLeader dcsLeader,
      HealthPolicy policy, long observedAt, TimeSource time) {
    return evaluate(reading, pgbouncer, dcsLeader, StreamHistory.NONE.after(reading, observedAt), policy, observedAt,
        time);
  }

  /**
   * The verdict, with what earlier readings showed of this node's streaming ({@code streams}, this reading folded in).
   */
  public static NodeHealth evaluate(PatroniReading reading, PgBouncerStatus pgbouncer, DcsLeader dcsLeader,
      StreamHistory streams, HealthPolicy policy, long observedAt, TimeSource time) {
    if (reading instanceof PatroniReading.Unavailable unavailable) {
      Verdict v = Verdict.critical(unavailable.reason());
      return new NodeHealth(policy.node(), Optional.empty(), Optional.empty(), OptionalLong.empty(), OptionalLong.empty(),
          false, false, Optional.empty(), Optional.empty(), v, v, observedAt);
    }
    PatroniReading.Observed observed = (PatroniReading.Observed) reading;
    PatroniStatus status = observed.status();
    Optional<ClusterView> cluster = observed.cluster();
    Optional<String> node = policy.node().or(status::name)
        .or(() -> cluster.flatMap(c -> c.memberAt(policy.patroniHost(), policy.patroniPort()))
            .map(ClusterView.Member::name));
    Optional<ClusterView.Member> self = node.flatMap(n -> cluster.flatMap(c -> c.member(n)));
    // Lag as a reader sees it: behind the leader (Patroni's view) plus WAL received but not yet replayed.
    OptionalLong lag = self.map(ClusterView.Member::lag).orElse(OptionalLong.empty());
    if (lag.isPresent()) {
      lag = OptionalLong.of(lag.getAsLong() + status.replayBacklog());
    }
    // From /patroni, read every poll (3.0.2 reports it too), not from a cluster view that may be reused.
    boolean sync = status.syncStandby();

    Verdict primary = primaryVerdict(status, cluster, node, dcsLeader, pgbouncer, policy, time);
    Verdict replica = replicaVerdict(status, observed, self, lag, pgbouncer, policy,
        streams.notStreamingFor(observedAt));
    return new NodeHealth(node, status.scope().or(() -> cluster.flatMap(ClusterView::scope)),
        Optional.of(new ReportedRole(status.role(), status.roleName())),
        status.timeline(), status.role() == Role.REPLICA ? lag : OptionalLong.empty(), sync, status.quorumStandby(), status.version(),
        self.map(ClusterView.Member::host).filter(h -> !h.isEmpty()), primary, replica, observedAt);
  }

  private static Verdict primaryVerdict(PatroniStatus status, Optional<ClusterView> cluster, Optional<String> node,
      DcsLeader dcsLeader, PgBouncerStatus pgbouncer, HealthPolicy policy, TimeSource time) {
    if (!status.running()) {
      return Verdict.critical("PostgreSQL " + status.state() + " (role " + status.roleName() + ")");
    }
    switch (status.role()) {
      case REPLICA -> {
        return status.holdsLeaderLock()
            ? Verdict.critical("promoting: holds the leader lock, still in recovery")
            : Verdict.wrongRole("replica");
      }
      case STANDBY_LEADER -> {
        return Verdict.wrongRole("standby_leader");
      }
      case OTHER -> {
        return Verdict.critical("role " + status.roleName());
      }
      case PRIMARY -> {
        // fall through to the checks below
      }
    }
    if (!status.holdsLeaderLock()) {
      return Verdict.critical("primary without the leader lock (demoting or isolated)");
    }
    if (dcsLeader.switchingAwayFrom(node, time.wall())) {
      // Withdrawn before Patroni starts demoting: no moment with a stopping primary still advertised.
      return Verdict.critical(dcsLeader.requestText() + " requested");
    }
    if (dcsLeader.deniesLeadershipOf(node)) {
      return Verdict.critical("leader key names " + dcsLeader.holder().orElse("no one") + ", not "
          + node.orElse("this node"));
    }
    Optional<String> viewLeader = cluster.flatMap(ClusterView::leader).map(ClusterView.Member::name);
    if (cluster.isPresent() && (viewLeader.isEmpty() || node.isEmpty() || !viewLeader.equals(node))) {
      return Verdict.critical("DCS names " + viewLeader.orElse("no one") + " as leader, not "
          + node.orElse("this node"));
    }
    if (status.paused() && cluster.isEmpty() && !dcsLeader.confirms(node, time.nanos(), PAUSED_CONFIRMATION)) {
      // Paused, a Patroni without a DCS view answers 200 on /primary for any running primary, lock or not, and
      // never demotes: only a recent read of the leader key naming this node still vouches for it.
      return Verdict.critical("Patroni paused and no DCS view: nothing has confirmed this node holds the leader"
          + " lock in the last " + PAUSED_CONFIRMATION.toSeconds() + "s");
    }
    Optional<Verdict> bouncer = pgbouncerVerdict(pgbouncer, policy);
    if (bouncer.isPresent()) {
      return bouncer.get();
    }
    StringBuilder reason = new StringBuilder("primary");
    status.timeline().ifPresent(t -> reason.append(", timeline ").append(t));
    if (status.paused()) {
      reason.append(", Patroni paused");
    }
    appendPgBouncerNote(reason, pgbouncer);
    return Verdict.passing(reason.toString());
  }

  /**
   * The replica view: a healthy replica, or a standby cluster's leader (a replica of another cluster: it serves
   * reads, and Patroni reports no lag for a leader).
   *
   * @param sinceStreaming how long ago this PostgreSQL was last seen streaming; empty if not since it started
   */
  private static Verdict replicaVerdict(PatroniStatus status, PatroniReading.Observed observed,
      Optional<ClusterView.Member> self, OptionalLong lag, PgBouncerStatus pgbouncer, HealthPolicy policy,
      OptionalLong sinceStreaming) {
    if (!status.running()) {
      return Verdict.critical("PostgreSQL " + status.state() + " (role " + status.roleName() + ")");
    }
    switch (status.role()) {
      case PRIMARY -> {
        return Verdict.wrongRole(status.roleName());
      }
      case OTHER -> {
        return Verdict.critical("role " + status.roleName());
      }
      case REPLICA, STANDBY_LEADER -> {
        // fall through to the checks below
      }
    }
    if (status.role() == Role.REPLICA && status.holdsLeaderLock()) {
      return Verdict.critical("promoting: holds the leader lock");
    }
    if (status.tag("noloadbalance")) {
      return Verdict.wrongRole("noloadbalance tag set");
    }
    Optional<Verdict> bouncer = pgbouncerVerdict(pgbouncer, policy);
    if (bouncer.isPresent()) {
      return bouncer.get();
    }
    boolean standbyLeader = status.role() == Role.STANDBY_LEADER;
    if (standbyLeader) {
      Optional<String> viewLeader = observed.cluster().flatMap(ClusterView::leader).map(ClusterView.Member::name);
      Optional<String> node = self.map(ClusterView.Member::name).or(status::name);
      if (observed.cluster().isPresent() && (viewLeader.isEmpty() || !viewLeader.equals(node))) {
        return Verdict.critical("standby leader, but DCS names " + viewLeader.orElse("no one") + " as leader");
      }
    }
    Optional<String> notStreaming = policy.requireStreaming() && status.reportsStreaming() && !status.replicating()
        ? Optional.of(status.replicationState().map(s -> "replication_state " + s).orElse("no replication_state"))
        : Optional.empty();
    if (notStreaming.isPresent() && (sinceStreaming.isEmpty()
        || sinceStreaming.getAsLong() > policy.streamingGrace().toNanos())) {
      return Verdict.critical("not streaming (" + notStreaming.get() + ")" + (sinceStreaming.isEmpty()
          ? ", not seen streaming since this PostgreSQL or pgbeacon started"
          : " for " + Units.formatDuration(Duration.ofNanos(sinceStreaming.getAsLong())) + ", past streaming-grace "
              + Units.formatDuration(policy.streamingGrace())));
    }
    Verdict verdict = standbyLeader ? standbyLeaderVerdict(status, pgbouncer)
        : lagVerdict(status, observed, self, lag, pgbouncer, policy);
    if (notStreaming.isEmpty() || verdict.kind() == Verdict.Kind.PAST_MAX_LAG) {
      return verdict;
    }
    return Verdict.warning(verdict.reason() + ", not streaming (" + notStreaming.get() + ") for "
        + Units.formatDuration(Duration.ofNanos(sinceStreaming.getAsLong())) + ", within streaming-grace "
        + Units.formatDuration(policy.streamingGrace()));
  }

  private static Verdict standbyLeaderVerdict(PatroniStatus status, PgBouncerStatus pgbouncer) {
    StringBuilder reason = new StringBuilder("standby leader");
    if (status.paused()) {
      reason.append(", Patroni paused");
    }
    appendPgBouncerNote(reason, pgbouncer);
    return Verdict.passing(reason.toString());
  }

  private static Verdict lagVerdict(PatroniStatus status, PatroniReading.Observed observed,
      Optional<ClusterView.Member> self, OptionalLong lag, PgBouncerStatus pgbouncer, HealthPolicy policy) {
    String paused = status.replayPaused() ? ", replay paused" : "";
    if (lag.isEmpty()) {
      String why = observed.clusterProblem().orElse(self.isEmpty() ? "not in the cluster view" : "not reported");
      return Verdict.warning("replica, lag unknown (" + why + ")" + paused);
    }
    long bytes = lag.getAsLong();
    if (bytes > policy.maxLag()) {
      return Verdict.pastMaxLag("replica lag " + Units.formatSize(bytes) + " exceeds max-lag "
          + Units.formatSize(policy.maxLag()) + paused);
    }
    StringBuilder reason = new StringBuilder("replica, lag ").append(Units.formatSize(bytes)).append(paused);
    if (status.paused()) {
      reason.append(", Patroni paused");
    }
    appendPgBouncerNote(reason, pgbouncer);
    if (bytes > policy.warnLag()) {
      return Verdict.warning(reason.append(", near max-lag ").append(Units.formatSize(policy.maxLag())).toString());
    }
    return Verdict.passing(reason.toString());
  }

  private static Optional<Verdict> pgbouncerVerdict(PgBouncerStatus pgbouncer, HealthPolicy policy) {
    if (!pgbouncer.passes() && policy.pgbouncerRequired()) {
      return Optional.of(Verdict.critical("PgBouncer: " + pgbouncer.detail()));
    }
    return Optional.empty();
  }

  private static void appendPgBouncerNote(StringBuilder reason, PgBouncerStatus pgbouncer) {
    if (!pgbouncer.passes()) {
      reason.append(", PgBouncer failing (not required): ").append(pgbouncer.detail());
    }
  }
}
