package io.pgbeacon.support;

import io.pgbeacon.config.Config;
import io.pgbeacon.consul.ConsulRegistrar;
import io.pgbeacon.consul.DcsWatch;
import io.pgbeacon.health.NodeHealth;
import io.pgbeacon.health.Observations;
import io.pgbeacon.http.StatusSource;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;

/** A daemon's status that knows only its verdict and whether its agent ports are bound: nothing read, watched or pushed. */
public final class VerdictOnly implements StatusSource {

  private final Supplier<NodeHealth> health;
  private final BooleanSupplier listening;

  public VerdictOnly(Supplier<NodeHealth> health, BooleanSupplier listening) {
    this.health = health;
    this.listening = listening;
  }

  @Override
  public NodeHealth health() {
    return health.get();
  }

  @Override
  public Map<Config.View, Instant> since() {
    return Map.of();
  }

  @Override
  public Observations.Latest reads() {
    return new Observations.Latest(Optional.empty(), Optional.empty());
  }

  @Override
  public List<DcsWatch.WatchState> watches() {
    return List.of();
  }

  @Override
  public Map<String, ConsulRegistrar.Push> pushes() {
    return Map.of();
  }

  @Override
  public Map<String, Instant> registered() {
    return Map.of();
  }

  @Override
  public boolean listening() {
    return listening.getAsBoolean();
  }
}
