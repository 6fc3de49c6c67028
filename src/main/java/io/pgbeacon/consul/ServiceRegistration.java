package io.pgbeacon.consul;

import io.pgbeacon.health.Status;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * One Consul service exactly as pgbeacon registers it, with two TTL checks:
 * <ul>
 *   <li>the verdict ({@link #checkId()}): this view's status and reason. On a healthy node of the other role it is
 *       critical by design, so it carries no deregister delay — Consul would otherwise remove and pgbeacon
 *       re-register every healthy node's wrong-role service once a minute;
 *   <li>pgbeacon's liveness ({@link #aliveCheckId()}): passing while pgbeacon runs. It carries
 *       {@code deregisterCriticalAfter}, so only a service whose pgbeacon has been gone that long is removed.
 * </ul>
 *
 * @param id unique on the agent: {@code <name>/<scope>/<node>} ({@link #idOf}), so several nodes — of one cluster or
 *     of several, even with the same member names — can share one agent
 * @param aliveTtl the liveness check's TTL ({@link io.pgbeacon.config.Config.Consul#aliveTtl()})
 * @param status the verdict check's status at registration, so a re-registration does not flap it to critical
 */
public record ServiceRegistration(
    String id,
    String name,
    List<String> tags,
    String address,
    int port,
    Map<String, String> meta,
    Duration ttl,
    Duration aliveTtl,
    Duration deregisterCriticalAfter,
    Status status) {

  public ServiceRegistration {
    Objects.requireNonNull(id, "id");
    Objects.requireNonNull(name, "name");
    tags = List.copyOf(tags);
    meta = Map.copyOf(meta);
    Objects.requireNonNull(status, "status");
  }

  /**
   * The service ID of {@code name} for member {@code node} of cluster {@code scope}. Patroni's own register_service
   * uses {@code <scope>/<name>}; with the service name in front, ours never meets Patroni's nor another cluster's.
   */
  public static String idOf(String name, String scope, String node) {
    return name + "/" + scope + "/" + node;
  }

  /**
   * The ID pgbeacon 0.x gave the same service, {@code <name>-<node>}: without the scope, two clusters' nodes of one
   * name collided on a shared agent. Retired at start ({@link ConsulRegistrar}).
   */
  static String legacyIdOf(String name, String node) {
    return name + "-" + node;
  }

  /** The verdict check. */
  public String checkId() {
    return "service:" + id;
  }

  /** pgbeacon's liveness check. */
  public String aliveCheckId() {
    return "service:" + id + ":pgbeacon";
  }

  /** Same registration apart from the verdict check's status. */
  boolean sameShape(ServiceRegistration other) {
    return other != null && id.equals(other.id) && name.equals(other.name) && tags.equals(other.tags)
        && address.equals(other.address) && port == other.port && meta.equals(other.meta) && ttl.equals(other.ttl)
        && aliveTtl.equals(other.aliveTtl) && deregisterCriticalAfter.equals(other.deregisterCriticalAfter);
  }
}
