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
 * @param syncStandby Patroni lists this replica as the synchronous standby (3.1+)
 * @param name Patroni's member name (3.2+); empty on older versions
 * @param version Patroni's version
 * @param receivedPosition {@code xlog.received_location} on a replica: WAL received, maybe not yet replayed
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
    OptionalLong receivedPosition) {

  public PatroniStatus {
    Objects.requireNonNull(state, "state");
    Objects.requireNonNull(role, "role");
    tags = Map.copyOf(tags);
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
