package io.pgbeacon.patroni;

import java.util.Objects;
import java.util.Optional;

/** The outcome of one poll of the local Patroni: what it said, or why it could not be heard. */
public sealed interface PatroniReading {

  /**
   * Patroni answered about itself; the cluster view is separate because Patroni serves it from the DCS, which
   * can be unreachable while Patroni and PostgreSQL are fine.
   */
  record Observed(PatroniStatus status, Optional<ClusterView> cluster, Optional<String> clusterProblem)
      implements PatroniReading {
    public Observed {
      Objects.requireNonNull(status, "status");
    }
  }

  /** No usable answer: refused, timed out, TLS failure, garbage, … The reason is shown to operators. */
  record Unavailable(String reason) implements PatroniReading {
    public Unavailable {
      Objects.requireNonNull(reason, "reason");
    }
  }
}
