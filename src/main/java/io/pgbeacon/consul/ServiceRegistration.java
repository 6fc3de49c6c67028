package io.pgbeacon.consul;

import io.pgbeacon.health.Status;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * One Consul service with its single TTL check, exactly as pgbeacon registers it.
 *
 * @param id unique on the agent: {@code <name>-<node>}, so several nodes can share one agent
 * @param status the check's status at registration, so a re-registration does not flap it to critical
 */
public record ServiceRegistration(
    String id,
    String name,
    List<String> tags,
    String address,
    int port,
    Map<String, String> meta,
    Duration ttl,
    Duration deregisterCriticalAfter,
    Status status) {

  public ServiceRegistration {
    Objects.requireNonNull(id, "id");
    Objects.requireNonNull(name, "name");
    tags = List.copyOf(tags);
    meta = Map.copyOf(meta);
    Objects.requireNonNull(status, "status");
  }

  /** Consul names a service's only check {@code service:<id>}; consul-api cannot choose another. */
  public String checkId() {
    return "service:" + id;
  }

  /** Same registration apart from the check status and the given volatile meta keys. */
  boolean sameShape(ServiceRegistration other, String volatileMetaKey) {
    if (other == null) {
      return false;
    }
    Map<String, String> a = new java.util.HashMap<>(meta);
    Map<String, String> b = new java.util.HashMap<>(other.meta);
    a.remove(volatileMetaKey);
    b.remove(volatileMetaKey);
    return id.equals(other.id) && name.equals(other.name) && tags.equals(other.tags)
        && address.equals(other.address) && port == other.port && a.equals(b) && ttl.equals(other.ttl)
        && deregisterCriticalAfter.equals(other.deregisterCriticalAfter);
  }
}
