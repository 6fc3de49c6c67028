package io.pgbeacon.http;

import io.pgbeacon.config.Config;
import io.pgbeacon.consul.ConsulRegistrar;
import io.pgbeacon.consul.DcsWatch;
import io.pgbeacon.health.NodeHealth;
import io.pgbeacon.health.Observations;
import java.time.Instant;
import java.util.List;
import java.util.Map;

/** What the HTTP endpoints show of the running daemon; every method may be called from any thread. */
public interface StatusSource {

  /** The latest verdict as published (before the freshness limit is applied). */
  NodeHealth health();

  /** When each view's outcome last changed. */
  Map<Config.View, Instant> since();

  /** The last read of Patroni and of PgBouncer. */
  Observations.Latest reads();

  /** The leader-key and failover-key watches. */
  List<DcsWatch.WatchState> watches();

  /** The last push of each Consul check. */
  Map<String, ConsulRegistrar.Push> pushes();

  /** When each Consul service was last registered. */
  Map<String, Instant> registered();

  /** Whether every agent port is bound. */
  boolean listening();
}
