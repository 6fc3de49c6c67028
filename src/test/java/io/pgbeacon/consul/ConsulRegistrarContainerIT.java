package io.pgbeacon.consul;

import io.pgbeacon.health.Freshness;
import io.pgbeacon.health.TimeSource;
import io.pgbeacon.support.Healths;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.pgbeacon.config.Config;
import io.pgbeacon.config.ConfigLoader;
import io.pgbeacon.health.NodeHealth;
import io.pgbeacon.health.Status;
import io.pgbeacon.health.Verdict;
import io.pgbeacon.support.Await;
import io.pgbeacon.support.ConsulHttp;
import io.vertx.core.Vertx;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.testcontainers.consul.ConsulContainer;
import org.testcontainers.junit.jupiter.Container;
import org.testcontainers.junit.jupiter.Testcontainers;

/**
 * The registrar against Consul in a container, for machines with Docker (a current Consul release rather than
 * Debian's 1.8.7). Without a Docker engine — as on the project's own machines — this class is skipped; the same
 * behaviour is covered against a real local agent by {@link ConsulRegistrarIT}.
 */
@Testcontainers(disabledWithoutDocker = true)
class ConsulRegistrarContainerIT {

  @Container
  static final ConsulContainer CONSUL = new ConsulContainer("hashicorp/consul:1.20");

  @Test
  void registersAndFollowsTheVerdictOnACurrentConsul() throws Exception {
    String address = CONSUL.getHost() + ":" + CONSUL.getMappedPort(8500);
    Config config = ConfigLoader.parse("node: tc1\npatroni: {timeout: 500ms}\nconsul: {address: http://" + address
        + ", ttl: 3s, timeout: 500ms}\n",
        ConfigLoader.Overrides.none(), Map.of());
    Vertx vertx = Vertx.vertx();
    try {
      CompletableFuture<ConsulRegistrar> started = new CompletableFuture<>();
      vertx.runOnContext(v -> {
        ConsulRegistrar r = new ConsulRegistrar(vertx, new EcwidConsulAgent(config.consul()), config, "test",
            Freshness.of(config), TimeSource.SYSTEM, io.pgbeacon.metrics.Metrics.none());
        r.start();
        r.publish(Healths.primary("tc1").timeline(1).host("127.0.0.1").primaryView(Healths.pass("primary")).build());
        started.complete(r);
      });
      started.get(10, TimeUnit.SECONDS);
      ConsulHttp http = new ConsulHttp(address);
      Await.until("primary passing", Duration.ofSeconds(20), () -> http.passingNodes("patroni-primary"),
          List.of("tc1")::equals);
      assertEquals("critical", http.checkStatus("service:patroni-replica/demo/tc1"));
    } finally {
      vertx.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
    }
  }
}
