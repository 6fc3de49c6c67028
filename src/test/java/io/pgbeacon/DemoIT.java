package io.pgbeacon;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pgbeacon.support.Components;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The README's first command, {@code bash scripts/demo.sh --stop}, on a lab of its own (its own directory and ports):
 * it exits 0, Consul names the switchover's candidate as the only passing primary, never two at once, and pgbeacon's
 * own account and the lab's Prometheus agree. The demo's switchover timing once counted pgbeacon's liveness checks
 * as passing primaries and waited in vain: this is what keeps the front door open.
 */
class DemoIT {

  @Test
  void theDemoRunsItsSwitchoverAndEveryConsumerFollows(@TempDir Path dir) throws Exception {
    Path out = dir.resolve("demo.log");
    ProcessBuilder demo = new ProcessBuilder("bash", Components.repoFile("scripts/demo.sh").toString(), "--stop")
        .redirectErrorStream(true).redirectOutput(out.toFile());
    // Not under the temporary directory: PostgreSQL runs as postgres and must reach its data directory.
    demo.environment().put("DEMO_LAB_DIR", System.getProperty("pgbeacon.demo.dir", "/tmp/pgbeacon-it-demo"));
    demo.environment().put("DEMO_BASE_PORT", System.getProperty("pgbeacon.demo.port", "16700"));
    Process p = demo.start();
    boolean done = p.waitFor(8, TimeUnit.MINUTES);
    if (!done) {
      p.destroy(); // the demo's trap stops its lab
      p.waitFor(60, TimeUnit.SECONDS);
    }
    String log = read(out);
    assertTrue(done, "the demo did not finish in 8 minutes:\n" + log);
    assertEquals(0, p.exitValue(), log);

    Matcher switchover = Pattern.compile("== Switchover (node\\d) -> (node\\d)").matcher(log);
    assertTrue(switchover.find(), log);
    String candidate = switchover.group(2);
    assertTrue(log.contains("Consul names " + candidate + " the only passing patroni-primary"), log);
    assertTrue(log.contains("passing patroni-primary instances at once: at most 1;"), log);
    assertTrue(log.contains("passing, as ?passing returns them: patroni-primary = [" + candidate + "]"), log);
    assertTrue(log.contains("node " + candidate + ", scope pgbeacon-lab"), "pgbeacon status of each node:\n" + log);
    assertTrue(log.contains("scope pgbeacon-lab: 1 passing primary"), log);
    assertTrue(log.contains("Prometheus names " + candidate), log);
  }

  private static String read(Path file) throws IOException {
    return Files.exists(file) ? Files.readString(file, StandardCharsets.UTF_8) : "(no output)";
  }
}
