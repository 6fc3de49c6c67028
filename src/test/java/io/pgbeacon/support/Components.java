package io.pgbeacon.support;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Finds the real components the integration tests drive. A missing one fails the test with the command that
 * installs it: in CI nothing is skipped.
 */
public final class Components {

  private Components() {}

  public static Path consul() {
    return require("consul", "/usr/local/bin/consul", "/usr/bin/consul");
  }

  /** Built from source by scripts/install-consul-template.sh (needs Go), not by install-deps' apt step. */
  public static Path consulTemplate() {
    return requireInstalledBy("sudo bash scripts/install-consul-template.sh", "consul-template",
        "/usr/local/bin/consul-template");
  }

  public static Path haproxy() {
    return require("haproxy", "/usr/sbin/haproxy");
  }

  public static Path require(String name, String... candidates) {
    return requireInstalledBy("sudo bash scripts/install-deps.sh", name, candidates);
  }

  private static Path requireInstalledBy(String install, String name, String... candidates) {
    for (String c : candidates) {
      Path p = Path.of(c);
      if (Files.isExecutable(p)) {
        return p;
      }
    }
    String path = System.getenv().getOrDefault("PATH", "");
    for (String dir : path.split(":")) {
      Path p = Path.of(dir, name);
      if (!dir.isEmpty() && Files.isExecutable(p)) {
        return p;
      }
    }
    throw new AssertionError(name + " is not installed; run: " + install);
  }

  public static Path repoFile(String relative) {
    String scripts = System.getProperty("pgbeacon.scripts", "scripts");
    return Path.of(scripts).toAbsolutePath().getParent().resolve(relative);
  }

  public static Path jar() {
    Path jar = Path.of(System.getProperty("pgbeacon.jar", "target/pgbeacon.jar"));
    if (!Files.isRegularFile(jar)) {
      throw new AssertionError("pgbeacon jar missing at " + jar + ": run the tests with 'mvn verify'");
    }
    return jar;
  }
}
