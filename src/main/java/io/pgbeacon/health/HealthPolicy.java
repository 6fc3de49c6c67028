package io.pgbeacon.health;

import io.pgbeacon.config.Config;
import java.util.Objects;
import java.util.Optional;

/**
 * The part of the config the verdict depends on.
 *
 * @param node the configured member name; empty means "as Patroni names it"
 * @param patroniHost Patroni's REST host, to find this node in {@code /cluster} when Patroni (≤ 3.1) does not
 *     say its own name
 */
public record HealthPolicy(Optional<String> node, String patroniHost, int patroniPort, long maxLag, long warnLag,
    boolean pgbouncerRequired) {

  public HealthPolicy {
    Objects.requireNonNull(node, "node");
    Objects.requireNonNull(patroniHost, "patroniHost");
  }

  /** The same policy for a node whose name is now known (learned from Patroni) unless one is configured. */
  public HealthPolicy orNode(Optional<String> known) {
    return node.isPresent() || known.isEmpty() ? this
        : new HealthPolicy(known, patroniHost, patroniPort, maxLag, warnLag, pgbouncerRequired);
  }

  public static HealthPolicy of(Config config) {
    var url = config.patroni().url();
    int port = url.getPort() > 0 ? url.getPort() : ("https".equals(url.getScheme()) ? 443 : 80);
    return new HealthPolicy(config.node(), url.getHost(), port, config.services().replica().maxLag(),
        config.services().replica().warnLag(), config.pgbouncer().map(Config.PgBouncer::required).orElse(false));
  }
}
