package io.pgbeacon.patroni;

import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.OptionalLong;

/**
 * What one node's Patroni said about itself ({@code GET /patroni} or a health endpoint's body), plus whether
 * it holds the leader lock (the health endpoint's status code, which the JSON {@code role} can contradict).
 *
 * @param state PostgreSQL's state as Patroni names it: running, starting, stopping, stopped, crashed, …
 * @param roleName the role exactly as reported, e.g. {@code master} (3.x) or {@code primary} (4.x)
 * @param holdsLeaderLock true when Patroni answered 200 on {@code /primary}: it holds the DCS leader key
 * @param timeline PostgreSQL's timeline, when PostgreSQL answered
 * @param walPosition {@code xlog.location} on a primary, {@code xlog.replayed_location} on a replica
 * @param replayPaused {@code xlog.paused}: replay paused with {@code pg_wal_replay_pause()}
 * @param syncStandby {@code sync_standby}: Patroni lists this replica as a synchronous standby now
 * @param name Patroni's member name (3.2+); empty on older versions
 * @param version Patroni's version
 * @param receivedPosition {@code xlog.received_location} on a replica: WAL received, maybe not yet replayed
 * @param replicationState {@code replication_state} (Patroni 3.0.4+, on a node in recovery): {@code streaming}, or
 *     {@code in archive recovery}; absent when PostgreSQL has no WAL receiver streaming and no restore_command
 * @param postmasterStart {@code postmaster_start_time}: changes when PostgreSQL restarts
 * @param quorumStandby Patroni 4's {@code quorum_standby}: one of the standbys a quorum commit may wait for
 * @param serverVersion {@code server_version}, e.g. 150018
 */
public record PatroniStatus(
    String state,
    Role role,
    String roleName,
    boolean holdsLeaderLock,
    OptionalLong timeline,
    OptionalLong walPosition,
    boolean replayPaused,
    boolean paused,
    boolean clusterUnlocked,
    boolean syncStandby,
    Map<String, String> tags,
    Optional<String> scope,
    Optional<String> name,
    Optional<String> version,
    OptionalLong receivedPosition,
    Optional<String> replicationState,
    Optional<String> postmasterStart,
    boolean quorumStandby,
    OptionalLong serverVersion) {

  /** The first Patroni that reports {@code replication_state} (patroni#2733). */
  static final int[] REPORTS_REPLICATION_STATE = {3, 0, 4};

  public PatroniStatus {
    Objects.requireNonNull(state, "state");
    Objects.requireNonNull(role, "role");
    Objects.requireNonNull(replicationState, "replicationState");
    Objects.requireNonNull(postmasterStart, "postmasterStart");
    tags = Map.copyOf(tags);
  }

  /** The fields of Patroni before 3.0.4, which says nothing about streaming. */
  public PatroniStatus(String state, Role role, String roleName, boolean holdsLeaderLock, OptionalLong timeline,
      OptionalLong walPosition, boolean replayPaused, boolean paused, boolean clusterUnlocked, boolean syncStandby,
      Map<String, String> tags, Optional<String> scope, Optional<String> name, Optional<String> version,
      OptionalLong receivedPosition) {
    this(state, role, roleName, holdsLeaderLock, timeline, walPosition, replayPaused, paused, clusterUnlocked,
        syncStandby, tags, scope, name, version, receivedPosition, Optional.empty(), Optional.empty(), false,
        OptionalLong.empty());
  }

  /** True when {@code replication_state} says PostgreSQL streams WAL from its upstream now. */
  public boolean streaming() {
    return replicationState.filter("streaming"::equals).isPresent();
  }

  /**
   * True when this Patroni reports {@code replication_state} where it has one, so that its absence means "not
   * streaming": 3.0.4 and later, on PostgreSQL 9.6 and later (older ones have no {@code pg_stat_wal_receiver}).
   * Before, the field never appears and says nothing.
   */
  public boolean reportsStreaming() {
    if (replicationState.isPresent()) {
      return true;
    }
    boolean walReceiverView = serverVersion.isEmpty() || serverVersion.getAsLong() >= 90600;
    return walReceiverView && version.map(PatroniStatus::atLeast304).orElse(false);
  }

  /**
   * True when PostgreSQL receives WAL from upstream now: it streams, or — a standby cluster's leader only — it
   * restores from the archive, which is how a standby cluster without {@code host} replicates (for a replica of
   * the cluster, archive recovery means its stream broke and it falls behind).
   */
  public boolean replicating() {
    return streaming() || (role == Role.STANDBY_LEADER
        && replicationState.filter("in archive recovery"::equals).isPresent());
  }

  private static boolean atLeast304(String version) {
    String[] parts = version.strip().split("[.]");
    for (int i = 0; i < REPORTS_REPLICATION_STATE.length; i++) {
      int n;
      try {
        n = i < parts.length ? Integer.parseInt(parts[i].replaceAll("[^0-9].*$", "")) : 0;
      } catch (NumberFormatException e) {
        return false;
      }
      if (n != REPORTS_REPLICATION_STATE[i]) {
        return n > REPORTS_REPLICATION_STATE[i];
      }
    }
    return true;
  }

  /**
   * WAL this replica has received but not replayed, in bytes. Patroni's {@code /cluster} lag counts from the
   * furthest of the two positions, so a replica with replay stalled looks current there although its reads are
   * stale; this is the part Patroni leaves out.
   */
  public long replayBacklog() {
    if (receivedPosition.isEmpty() || walPosition.isEmpty() || role != Role.REPLICA) {
      return 0;
    }
    return Math.max(0, receivedPosition.getAsLong() - walPosition.getAsLong());
  }

  public boolean running() {
    return "running".equals(state);
  }

  /** Patroni's own convention: a tag counts when set to {@code true} (YAML) or {@code "true"}. */
  public boolean tag(String name) {
    return "true".equalsIgnoreCase(tags.getOrDefault(name, "false"));
  }
}
