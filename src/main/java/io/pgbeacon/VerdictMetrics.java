package io.pgbeacon;

import io.micrometer.core.instrument.Tags;
import io.pgbeacon.config.Config;
import io.pgbeacon.health.Freshness;
import io.pgbeacon.health.NodeHealth;
import io.pgbeacon.health.Status;
import io.pgbeacon.health.TimeSource;
import io.pgbeacon.metrics.Metrics;
import java.util.function.LongSupplier;
import java.util.function.Supplier;

/** The verdict's gauges, read at every scrape from the latest verdict (a stale one counts as critical). */
final class VerdictMetrics {

  private VerdictMetrics() {}

  static void register(Metrics metrics, Supplier<NodeHealth> latest, Freshness freshness, TimeSource time,
      LongSupplier maxLag) {
    Supplier<NodeHealth> published = () -> freshness.apply(latest.get(), time.nanos());
    for (Config.View view : Config.View.values()) {
      for (Status status : Status.values()) {
        metrics.gauge("pgbeacon.view.status", "1 for the status the view has now, 0 for the others", null,
            Tags.of("view", view.key(), "status", status.consul()),
            () -> published.get().view(view).status() == status ? 1 : 0);
      }
      metrics.gauge("pgbeacon.view.observation.age", "how old the observations behind the view's verdict are",
          "seconds", Tags.of("view", view.key()), () -> (time.nanos() - latest.get().observedAt()) / 1e9);
    }
    metrics.gauge("pgbeacon.replica.lag", "this replica's lag behind the leader, as the verdict counts it; NaN when"
        + " not a replica or unknown", "bytes", Tags.empty(),
        () -> latest.get().lagBytes().isPresent() ? latest.get().lagBytes().getAsLong() : Double.NaN);
    metrics.gauge("pgbeacon.replica.max.lag", "services.replica.max-lag: more lag, and the replica view is critical",
        "bytes", Tags.empty(), maxLag::getAsLong);
  }
}
