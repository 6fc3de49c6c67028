package io.pgbeacon;

import io.micrometer.core.instrument.Tags;
import io.pgbeacon.config.Config;
import io.pgbeacon.health.NodeHealth;
import io.pgbeacon.health.TimeSource;
import io.pgbeacon.metrics.Metrics;
import io.pgbeacon.patroni.PatroniReading;
import java.time.Instant;
import java.util.Arrays;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What the log and the metrics say of verdicts: each change at INFO (and counted per view, with when it happened),
 * each poll at DEBUG, a failure run's start and end.
 */
final class VerdictLog {

  private static final Logger log = LoggerFactory.getLogger(MonitorVerticle.class);

  private final Object patroniUrl;
  private boolean first = true;
  private boolean warnedNameUnknown;
  private boolean failing;

  private final Metrics.CounterSet transitions;
  private final TimeSource time;
  /** When each view's outcome last changed: written on the monitor's loop, read by /status. */
  private final Map<Config.View, Instant> since = new ConcurrentHashMap<>();

  VerdictLog(Object patroniUrl, Metrics metrics, TimeSource time) {
    this.patroniUrl = patroniUrl;
    this.transitions = metrics.counters("pgbeacon.view.transitions", "changes of the view's outcome (passing,"
        + " warning, failing, wrong role, past max-lag)", Tags.empty(), "view",
        Arrays.stream(Config.View.values()).map(Config.View::key).toList());
    this.time = time;
  }

  Map<Config.View, Instant> since() {
    return Map.copyOf(since);
  }

  /** Logs {@code health}; true when its outcome differs from {@code before}'s. */
  boolean changed(NodeHealth before, NodeHealth health, PatroniReading reading) {
    String node = health.node().orElse("?");
    if (health.node().isEmpty() && reading instanceof PatroniReading.Observed && !warnedNameUnknown) {
      warnedNameUnknown = true;
      log.warn("this node's Patroni name is unknown (Patroni before 3.2 does not report it, and no member of its"
          + " /cluster has api_url {}): nothing is registered in Consul until it is; set `node:`", patroniUrl);
    }
    for (Config.View view : Config.View.values()) {
      if (first || !health.view(view).sameOutcome(before.view(view))) {
        since.put(view, time.wall());
        transitions.increment(view.ordinal());
      }
    }
    if (first || health.outcomeDiffers(before)) {
      first = false;
      // The derived views follow from these two and the standby kind, which a change of sync_standby alone changes.
      log.info("[{}] verdict: primary {} ({}), replica {} ({}){}", node, health.primary().status().consul(),
          health.primary().reason(), health.replica().status().consul(), health.replica().reason(),
          health.sync() ? "; synchronous standby" : health.quorum() ? "; quorum standby" : "");
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
