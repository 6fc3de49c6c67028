package io.pgbeacon.consul;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import io.pgbeacon.consul.ConsulAgent.ServiceEntry;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The service IDs pgbeacon registers, and which services of the old ID form a start retires. */
class ConsulRegistrarTest {

  private static final List<String> NAMES = List.of("patroni-primary", "patroni-replica");

  @Test
  void anIdNamesTheServiceTheScopeAndTheNode() {
    assertEquals("patroni-primary/alpha/node1", ServiceRegistration.idOf("patroni-primary", "alpha", "node1"));
    assertEquals("service:patroni-replica/alpha/node1",
        registration(ServiceRegistration.idOf("patroni-replica", "alpha", "node1")).checkId());
    assertEquals("service:patroni-replica/alpha/node1:pgbeacon",
        registration(ServiceRegistration.idOf("patroni-replica", "alpha", "node1")).aliveCheckId());
  }

  @Test
  void twoClustersNodesOfOneNameGetDifferentIds() {
    assertNotEquals(ServiceRegistration.idOf("patroni-primary", "alpha", "node1"),
        ServiceRegistration.idOf("patroni-primary", "beta", "node1"));
  }

  @Test
  void anIdNeverMeetsPatronisOwnRegistration() {
    // Patroni's register_service: ID <scope>/<name>; a scope named like our service cannot make them meet either.
    assertNotEquals("patroni-primary/node1", ServiceRegistration.idOf("patroni-primary", "patroni-primary", "node1"));
  }

  @Test
  void retiresThisNodesServicesOfTheOldForm() {
    Map<String, ServiceEntry> agent = Map.of(
        "patroni-primary-node1", old("patroni-primary", "node1", "alpha"),
        "patroni-replica-node1", old("patroni-replica", "node1", "alpha"),
        "patroni-primary/alpha/node1", old("patroni-primary", "node1", "alpha"));
    assertEquals(List.of("patroni-primary-node1", "patroni-replica-node1"),
        ConsulRegistrar.legacyIds(agent, NAMES, "node1", "alpha"));
  }

  @Test
  void leavesAnotherClustersNodeOfTheSameNameAlone() {
    Map<String, ServiceEntry> agent = Map.of(
        "patroni-primary-node1", old("patroni-primary", "node1", "beta"),
        "patroni-replica-node1", old("patroni-replica", "node1", "alpha"));
    assertEquals(List.of("patroni-replica-node1"), ConsulRegistrar.legacyIds(agent, NAMES, "node1", "alpha"));
  }

  @Test
  void retiresAnOldServiceWithoutScopeMetaButNotAnotherNodesOrAnotherServices() {
    Map<String, ServiceEntry> agent = Map.of(
        "patroni-primary-node1", new ServiceEntry("patroni-primary", Map.of()),
        "patroni-replica-node1", new ServiceEntry("billing", Map.of("node", "node1", "scope", "alpha")),
        "patroni-primary-node10", old("patroni-primary", "node10", "alpha"),
        "alpha/node1", new ServiceEntry("alpha", Map.of()));
    assertEquals(List.of("patroni-primary-node1"), ConsulRegistrar.legacyIds(agent, NAMES, "node1", "alpha"));
    assertEquals(List.of(), ConsulRegistrar.legacyIds(Map.of(), NAMES, "node1", "alpha"));
  }

  private static ServiceEntry old(String name, String node, String scope) {
    return new ServiceEntry(name, Map.of("node", node, "scope", scope));
  }

  private static ServiceRegistration registration(String id) {
    return new ServiceRegistration(id, "patroni-replica", List.of(), "", 6432, Map.of(), java.time.Duration.ofSeconds(10),
        java.time.Duration.ofSeconds(30), java.time.Duration.ofMinutes(1), io.pgbeacon.health.Status.CRITICAL);
  }
}
