package io.pgbeacon.agent;

import io.pgbeacon.health.Freshness;
import io.pgbeacon.health.NodeHealth;
import io.pgbeacon.health.TimeSource;

/**
 * The latest verdict and its prepared agent replies, written by the monitor and read by every agent connection on
 * any thread. Each write that changes what the agent says prepares the replies once, so a connection only copies
 * bytes that already exist. A verdict older than the freshness limit is answered with {@code down #verdict stale}:
 * an agent port never goes on vouching for a node whose poll loop stopped.
 */
public final class ReplyBoard {

  private record Entry(NodeHealth health, AgentServer.Replies replies) {}

  private final Freshness freshness;
  private final TimeSource time;
  private final NodeHealth initial;
  // Written by the monitor's loop only (set, policy); read by any connection.
  private volatile ReplyPolicy policy;
  private volatile AgentServer.Replies stale;
  private volatile Entry entry;

  public ReplyBoard(NodeHealth initial, ReplyPolicy policy, Freshness freshness, TimeSource time) {
    this.policy = policy;
    this.freshness = freshness;
    this.time = time;
    this.initial = initial;
    this.stale = new AgentServer.Replies(initial.critical(freshness.reason()), policy);
    set(initial);
  }

  /**
   * Answers from now on with {@code next}'s words (a reload): the replies are prepared again at once. Call it where
   * {@link #set} is called, on the monitor's loop.
   */
  public void policy(ReplyPolicy next) {
    policy = next;
    stale = new AgentServer.Replies(initial.critical(freshness.reason()), next);
    NodeHealth health = entry.health();
    entry = new Entry(health, new AgentServer.Replies(health, next));
  }

  public void set(NodeHealth health) {
    Entry old = entry;
    boolean same = old != null && AgentReply.sameInputs(old.health(), health);
    entry = new Entry(health, same ? old.replies() : new AgentServer.Replies(health, policy));
  }

  public NodeHealth health() {
    return entry.health();
  }

  /** What an agent connection answers now. */
  public AgentServer.Replies replies() {
    Entry e = entry;
    return freshness.stale(e.health(), time.nanos()) ? stale : e.replies();
  }
}
