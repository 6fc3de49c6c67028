package io.pgbeacon.health;

import io.pgbeacon.patroni.PatroniReading;
import io.pgbeacon.patroni.PatroniStatus;
import java.util.Optional;
import java.util.OptionalLong;

/**
 * When this node was last seen replicating ({@link PatroniStatus#replicating()}), since its PostgreSQL started: what
 * the streaming
 * gate's grace counts from. Immutable; {@link Observations} keeps the latest and folds every reading into it.
 *
 * <p>A PostgreSQL that restarted (another {@code postmaster_start_time}) starts with no history: it has not streamed
 * since, so it stays out of the replica view until it does. The grace is for a replica that was streaming and lost
 * its connection — every replica reconnecting to a new leader after a switchover — not for one that never showed it
 * can stream.
 *
 * @param postmasterStart the PostgreSQL start the history belongs to
 * @param lastStreaming when (the start of the poll that saw it, {@link TimeSource#nanos()}) it was last streaming
 */
public record StreamHistory(Optional<String> postmasterStart, OptionalLong lastStreaming) {

  public static final StreamHistory NONE = new StreamHistory(Optional.empty(), OptionalLong.empty());

  /** The history after {@code reading}, observed at {@code at}. */
  public StreamHistory after(PatroniReading reading, long at) {
    if (!(reading instanceof PatroniReading.Observed observed)) {
      return this;
    }
    PatroniStatus status = observed.status();
    // Only another start time is a restart: a Patroni that could not query PostgreSQL this once says none.
    boolean restarted = status.postmasterStart().isPresent() && !status.postmasterStart().equals(postmasterStart);
    StreamHistory same = restarted ? new StreamHistory(status.postmasterStart(), OptionalLong.empty()) : this;
    return status.running() && status.replicating() ? new StreamHistory(same.postmasterStart, OptionalLong.of(at))
        : same;
  }

  /** Nanoseconds since it last streamed, at {@code now}; empty when it has not since PostgreSQL started. */
  OptionalLong notStreamingFor(long now) {
    return lastStreaming.isPresent() ? OptionalLong.of(Math.max(0, now - lastStreaming.getAsLong()))
        : OptionalLong.empty();
  }
}
