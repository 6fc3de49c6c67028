package io.pgbeacon.patroni;

import java.util.Objects;
import java.util.Optional;

/** The outcome of one poll of the local Patroni: what it said, or why it could not be heard. */
public sealed interface PatroniReading {

  /**
   * Patroni answered about itself; the cluster view is separate because Patroni serves it from the DCS, which
   * can be unreachable while Patroni and PostgreSQL are fine.
   *
   * @param clusterReused the cluster view (or its problem) is the previous poll's, not read in this one: Patroni
   *     reads the whole cluster from the DCS for every {@code GET /cluster}, so it is read at the base poll rate only
   */
  record Observed(PatroniStatus status, Optional<ClusterView> cluster, Optional<String> clusterProblem,
      boolean clusterReused) implements PatroniReading {
    public Observed {
      Objects.requireNonNull(status, "status");
      Objects.requireNonNull(cluster, "cluster");
      Objects.requireNonNull(clusterProblem, "clusterProblem");
    }

    /** Both read in this poll. */
    public Observed(PatroniStatus status, Optional<ClusterView> cluster, Optional<String> clusterProblem) {
      this(status, cluster, clusterProblem, false);
    }

    /** The same reading without its cluster view, as if Patroni could not serve it. */
    public Observed withoutCluster() {
      return new Observed(status, Optional.empty(), Optional.of("cluster view not used"), clusterReused);
    }
  }

  /** No usable answer: refused, timed out, TLS failure, garbage, … The reason is shown to operators. */
  record Unavailable(String reason) implements PatroniReading {
    public Unavailable {
      Objects.requireNonNull(reason, "reason");
    }
  }
}
