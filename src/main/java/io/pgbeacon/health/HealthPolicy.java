package io.pgbeacon.health;

import io.pgbeacon.config.Config;
import java.time.Duration;
import java.util.Objects;
import java.util.Optional;

/**
 * The part of the config the verdict depends on.
 *
 * @param node the configured member name; empty means "as Patroni names it"
 * @param patroniHost Patroni's REST host, to find this node in {@code /cluster} when Patroni (≤ 3.1) does not
 *     say its own name
 * @param requireStreaming {@code services.replica.require-streaming}: a replica passes only while it streams
 * @param streamingGrace {@code services.replica.streaming-grace}: how long one that streamed may not, and still pass
 */
public record HealthPolicy(Optional<String> node, String patroniHost, int patroniPort, long maxLag, long warnLag,
    boolean pgbouncerRequired, boolean requireStreaming, Duration streamingGrace) {

  public HealthPolicy {
    Objects.requireNonNull(node, "node");
    Objects.requireNonNull(patroniHost, "patroniHost");
    Objects.requireNonNull(streamingGrace, "streamingGrace");
  }

  /** The same policy for a node whose name is now known (learned from Patroni) unless one is configured. */
  public HealthPolicy orNode(Optional<String> known) {
    return node.isPresent() || known.isEmpty() ? this
        : new HealthPolicy(known, patroniHost, patroniPort, maxLag, warnLag, pgbouncerRequired, requireStreaming,
            streamingGrace);
  }

  public static HealthPolicy of(Config config) {
    var url = config.patroni().url();
    int port = url.getPort() > 0 ? url.getPort() : ("https".equals(url.getScheme()) ? 443 : 80);
    Config.Replica replica = config.services().replica();
    return new HealthPolicy(config.node(), url.getHost(), port, replica.maxLag(), replica.warnLag(),
        config.pgbouncer().map(Config.PgBouncer::required).orElse(false), replica.requireStreaming(),
        replica.streamingGrace());
  }
}
