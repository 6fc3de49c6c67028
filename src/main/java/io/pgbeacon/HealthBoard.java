package io.pgbeacon;

import io.pgbeacon.agent.AgentServer;
import io.pgbeacon.agent.ReplyPolicy;
import io.pgbeacon.health.NodeHealth;

/**
 * The latest verdict, written by the monitor and read by every publisher on any thread. Each write prepares the
 * agent replies once, so an agent connection only copies bytes that already exist.
 */
final class HealthBoard {

  private record Entry(NodeHealth health, AgentServer.Replies replies) {}

  private final ReplyPolicy policy;
  private volatile Entry entry;

  HealthBoard(NodeHealth initial, ReplyPolicy policy) {
    this.policy = policy;
    set(initial);
  }

  void set(NodeHealth health) {
    Entry old = entry;
    // Most polls change nothing the agent says: keep the prepared replies then. (The replica's weight follows
    // the exact lag, which the reason shows only rounded.)
    boolean sameReplies = old != null && old.health().primary().equals(health.primary())
        && old.health().replica().equals(health.replica()) && old.health().lagBytes().equals(health.lagBytes());
    entry = new Entry(health, sameReplies ? old.replies() : new AgentServer.Replies(health, policy));
  }

  NodeHealth health() {
    return entry.health();
  }

  AgentServer.Replies replies() {
    return entry.replies();
  }
}
