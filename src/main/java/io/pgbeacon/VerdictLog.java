package io.pgbeacon;

import io.pgbeacon.health.NodeHealth;
import io.pgbeacon.patroni.PatroniReading;
import java.util.Optional;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** What the log says of verdicts: each change at INFO, each poll at DEBUG, a failure run's start and end. */
final class VerdictLog {

  private static final Logger log = LoggerFactory.getLogger(MonitorVerticle.class);

  private final Object patroniUrl;
  private boolean first = true;
  private boolean warnedNameUnknown;
  private boolean failing;

  VerdictLog(Object patroniUrl) {
    this.patroniUrl = patroniUrl;
  }

  /** Logs {@code health}; true when its outcome differs from {@code before}'s. */
  boolean changed(NodeHealth before, NodeHealth health, PatroniReading reading) {
    String node = health.node().orElse("?");
    if (health.node().isEmpty() && reading instanceof PatroniReading.Observed && !warnedNameUnknown) {
      warnedNameUnknown = true;
      log.warn("this node's Patroni name is unknown (Patroni before 3.2 does not report it, and no member of its"
          + " /cluster has api_url {}): nothing is registered in Consul until it is; set `node:`", patroniUrl);
    }
    if (first || health.outcomeDiffers(before)) {
      first = false;
      log.info("[{}] verdict: primary {} ({}), replica {} ({})", node, health.primary().status().consul(),
          health.primary().reason(), health.replica().status().consul(), health.replica().reason());
      return true;
    }
    if (log.isDebugEnabled()) {
      log.debug("[{}] tick: primary {}, replica {}", node, health.primary().reason(), health.replica().reason());
    }
    return false;
  }

  void failed(Optional<String> node, RuntimeException e) {
    if (!failing) {
      failing = true;
      log.error("[{}] deciding failed unexpectedly; both views critical until it works again", node.orElse("?"), e);
    }
  }

  void working() {
    if (failing) {
      failing = false;
      log.info("deciding works again");
    }
  }
}
