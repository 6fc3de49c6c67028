package io.pgbeacon.support;

import static org.junit.jupiter.api.Assertions.assertFalse;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Every shipped {@code haproxy/*.cfg}, each in its own real HAProxy in front of the lab, rewritten only from the
 * documented example addresses and ports to the lab's (timings as shipped). Closed by the caller.
 */
public final class LabHaproxies implements AutoCloseable {

  private final Map<String, Haproxy> haproxies = new LinkedHashMap<>();
  private final Map<String, HaproxyConfig> configs = new LinkedHashMap<>();

  private LabHaproxies() {}

  public static LabHaproxies start(Lab lab, Path dir) throws IOException {
    return start(lab, dir, HaproxyConfig.shipped().stream().map(p -> p.getFileName().toString()).toList());
  }

  /** As {@link #start(Lab, Path)}, only the shipped files named (e.g. {@code sync-reads.cfg}). */
  public static LabHaproxies start(Lab lab, Path dir, List<String> names) throws IOException {
    LabHaproxies all = new LabHaproxies();
    try {
      for (String name : names) {
        Path file = Components.repoFile("haproxy/" + name);
        HaproxyConfig config = HaproxyConfig.of(file)
            .nameserver("consul", lab.consulDnsAddress() + ":" + lab.consulDnsPort());
        for (String node : lab.nodeNames()) {
          config.node(lab.index(node), lab.address(node), Map.of(6432, lab.port(node, "PGBOUNCER"), 5432,
              lab.port(node, "PG"), 8008, lab.port(node, "REST"), 5480, lab.port(node, "AGENT_PRIMARY"), 5481,
              lab.port(node, "AGENT_REPLICA"), 5482, lab.port(node, "AGENT_ANY"), 8009,
              lab.port(node, "PGBEACON_HTTP")));
        }
        Path sub = Files.createDirectories(dir.resolve(name.replace(".cfg", "")));
        Path written = config.write(sub);
        String check = Haproxy.check(written); // fails the test if haproxy -c rejects it
        assertFalse(check.contains("[WARNING]"), name + " rewritten for the lab: haproxy -c warns:\n" + check);
        all.configs.put(name, config);
        all.haproxies.put(name, Haproxy.start(written, config.statsSocket()));
      }
    } catch (IOException | RuntimeException | AssertionError e) {
      all.close();
      throw e;
    }
    return all;
  }

  public Haproxy haproxy(String config) {
    return haproxies.get(config);
  }

  public HaproxyConfig config(String config) {
    return configs.get(config);
  }

  /** The port a config's {@code bind *:original} was moved to. */
  public int port(String config, int original) {
    return configs.get(config).port(original);
  }

  public List<String> names() {
    return List.copyOf(haproxies.keySet());
  }

  @Override
  public void close() {
    haproxies.values().forEach(Haproxy::close);
  }
}
