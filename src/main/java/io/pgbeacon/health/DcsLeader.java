package io.pgbeacon.health;

import java.util.Objects;
import java.util.Optional;

/**
 * What pgbeacon's own watch of Patroni's DCS keys last saw: who holds the leader key, and whether a switchover
 * away from a node has been requested (Patroni's failover key).
 *
 * @param watched false when there is nothing to go by (watch off, not started, failing, or the key was never
 *     seen): the verdict then rests on Patroni's answers alone
 * @param holder the member named by the leader key; empty when the key is absent (no leader)
 * @param switchoverFrom the member a requested switchover or failover takes the leadership away from; empty
 *     when none is pending (or it is scheduled for later)
 * @param switchoverTo the requested candidate, if named
 */
public record DcsLeader(boolean watched, Optional<String> holder, Optional<String> switchoverFrom,
    Optional<String> switchoverTo) {

  public static final DcsLeader UNWATCHED =
      new DcsLeader(false, Optional.empty(), Optional.empty(), Optional.empty());

  public DcsLeader {
    Objects.requireNonNull(holder, "holder");
    Objects.requireNonNull(switchoverFrom, "switchoverFrom");
    Objects.requireNonNull(switchoverTo, "switchoverTo");
  }

  public static DcsLeader held(Optional<String> holder) {
    return new DcsLeader(true, holder, Optional.empty(), Optional.empty());
  }

  /** The same leader, with a switchover from {@code from} to {@code to} pending (both empty: none). */
  public DcsLeader withSwitchover(Optional<String> from, Optional<String> to) {
    return new DcsLeader(watched, holder, from, to);
  }

  /** True when the watch positively says someone else, or no one, holds the key. */
  boolean deniesLeadershipOf(Optional<String> node) {
    return watched && (holder.isEmpty() || node.isEmpty() || !holder.equals(node));
  }

  /** True when a switchover away from {@code node} has been asked for: the primary is about to stop. */
  public boolean switchingAwayFrom(Optional<String> node) {
    return node.isPresent() && switchoverFrom.equals(node) && !switchoverTo.equals(node);
  }
}
