package io.pgbeacon.health;

import io.pgbeacon.patroni.FailoverRequest;
import java.time.Duration;
import java.time.Instant;
import java.util.Objects;
import java.util.Optional;
import java.util.OptionalLong;

/**
 * What pgbeacon's own watch of Patroni's DCS keys last saw: who holds the leader key, when that was last read, and
 * whether a switchover or failover has been requested (Patroni's failover key).
 *
 * @param watched false when there is nothing to go by (watch off, not started, or the key was never seen): the
 *     verdict then rests on Patroni's answers alone
 * @param holder the member named by the leader key; empty when the key is absent (no leader)
 * @param readAt when the leader key was last read successfully ({@link TimeSource#nanos()}); empty if never
 * @param request the pending request, if any (a scheduled one counts from its time on)
 */
public record DcsLeader(boolean watched, Optional<String> holder, OptionalLong readAt,
    Optional<FailoverRequest> request) {

  public static final DcsLeader UNWATCHED =
      new DcsLeader(false, Optional.empty(), OptionalLong.empty(), Optional.empty());

  public DcsLeader {
    Objects.requireNonNull(holder, "holder");
    Objects.requireNonNull(readAt, "readAt");
    Objects.requireNonNull(request, "request");
  }

  /** The leader key read at {@code at}, naming {@code holder} (empty: absent); a pending request stays pending. */
  public DcsLeader heldBy(Optional<String> holder, long at) {
    return new DcsLeader(true, holder, OptionalLong.of(at), request);
  }

  /** Nothing to go by for the leader key (never seen in this Consul); a pending request stays pending. */
  public DcsLeader unwatched() {
    return new DcsLeader(false, Optional.empty(), OptionalLong.empty(), request);
  }

  /** The same leader key, with {@code request} pending (empty: none). */
  public DcsLeader withRequest(Optional<FailoverRequest> request) {
    return new DcsLeader(watched, holder, readAt, request);
  }

  /** True when the watch positively says someone else, or no one, holds the key. */
  boolean deniesLeadershipOf(Optional<String> node) {
    return watched && (holder.isEmpty() || node.isEmpty() || !holder.equals(node));
  }

  /** True when the leader key, read no longer than {@code window} before {@code now}, named {@code node}. */
  boolean confirms(Optional<String> node, long now, Duration window) {
    return watched && node.isPresent() && holder.equals(node) && readAt.isPresent()
        && now - readAt.getAsLong() <= window.toNanos();
  }

  /**
   * True when a request due at {@code now} takes the leadership away from {@code node}: it names {@code node} as the
   * leader to leave, or names no leader (a failover, from whoever leads), and {@code node} is not its candidate.
   */
  public boolean switchingAwayFrom(Optional<String> node, Instant now) {
    return node.isPresent() && request.isPresent() && request.get().dueAt(now)
        && request.get().leader().map(node.get()::equals).orElse(true)
        && !request.get().candidate().equals(node);
  }

  /** How the verdict names the pending request: "switchover to node2", "failover to node2", … */
  String requestText() {
    FailoverRequest r = request.orElseThrow();
    return (r.leader().isPresent() ? "switchover" : "failover") + " to " + r.candidate().orElse("another member");
  }
}
