package io.pgbeacon;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class MainTest {

  @TempDir Path dir;

  @Test
  void validateExitsTwoWithOneLinePerBadAgentKey() throws Exception {
    Path file = Files.writeString(dir.resolve("bad.yml"),
        "agent: {past-max-lag: maint, weight-floor: 0%, weight-lag-start: 20MB, maxconn: {replica: -1}}\n");
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int exit = Main.execute(new PrintWriter(out, true), new PrintWriter(err, true), "validate", "--config",
        file.toString());
    assertEquals(2, exit);
    assertEquals("", out.toString());
    assertEquals(java.util.List.of(
        "pgbeacon: invalid configuration in " + file + ":",
        "  - agent.past-max-lag: must be one of drain|down (got maint)",
        "  - agent.weight-lag-start: must not exceed services.replica.max-lag (16MB) (got 20MB)",
        "  - agent.weight-floor: must be 1%..100% (got 0%)",
        "  - agent.maxconn.replica: must be 0..1000000 (got -1)"), err.toString().lines().toList());
  }

  @Test
  void validateShowsTheAgentVocabulary() throws Exception {
    Path file = Files.writeString(dir.resolve("ok.yml"),
        "agent: {past-max-lag: down, weight-floor: 25%, maxconn: {primary: 200}}\n");
    StringWriter out = new StringWriter();
    int exit = Main.execute(new PrintWriter(out, true), new PrintWriter(new StringWriter(), true), "validate",
        "--config", file.toString());
    assertEquals(0, exit);
    assertTrue(out.toString().contains("agent replies: wrong role maint, past max-lag down, replica weight 100% up to"
        + " 12MB lag, 25% at 16MB, maxconn primary 200, read-timeout 1s"), out.toString());
  }

  @Test
  void statusWithHttpOffHasNothingToAsk() throws Exception {
    Path file = Files.writeString(dir.resolve("off.yml"), "http: off\n");
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int exit = Main.execute(new PrintWriter(out, true), new PrintWriter(err, true), "status", "--config",
        file.toString());
    assertEquals(2, exit);
    assertEquals("", out.toString());
    assertEquals("pgbeacon: http is off in " + file + "; nothing to ask (or give --url)\n", err.toString());
  }

  @Test
  void statusOfABadConfigExitsTwoWithItsProblems() throws Exception {
    Path file = Files.writeString(dir.resolve("bad.yml"), "http: {port: 70000}\n");
    StringWriter err = new StringWriter();
    int exit = Main.execute(new PrintWriter(new StringWriter(), true), new PrintWriter(err, true), "status",
        "--config", file.toString());
    assertEquals(2, exit);
    assertTrue(err.toString().startsWith("pgbeacon: invalid configuration in " + file + ":\n  - http.port: "),
        err.toString());
  }

  @Test
  void statusRefusesAUrlItCannotAskAndAPortChosenAtStart() throws Exception {
    Path file = Files.writeString(dir.resolve("ok.yml"), "http: {port: 0}\n");
    StringWriter err = new StringWriter();
    assertEquals(2, Main.execute(new PrintWriter(new StringWriter(), true), new PrintWriter(err, true), "status",
        "--config", file.toString()));
    assertEquals("pgbeacon: http.port is 0 in " + file + ": the daemon listens on a free port of its choosing;"
        + " give --url\n", err.toString());

    err = new StringWriter();
    assertEquals(2, Main.execute(new PrintWriter(new StringWriter(), true), new PrintWriter(err, true), "status",
        "--config", file.toString(), "--url", "10.0.0.11:8009"));
    assertEquals("pgbeacon: --url: must be a URL like http://host:port (got 10.0.0.11:8009)\n", err.toString());
  }

  @Test
  void statusNeedsNoConfigToAskTheDefaultListener() throws Exception {
    // Without --config: the package's /etc/pgbeacon/pgbeacon.yml if it is there, else 127.0.0.1:8009.
    StringWriter err = new StringWriter();
    int exit = Main.execute(new PrintWriter(new StringWriter(), true), new PrintWriter(err, true), "status",
        "--url", "http://127.0.0.1:1");
    assertEquals(1, exit, err.toString());
    assertTrue(err.toString().startsWith("pgbeacon: ") && err.toString().contains("127.0.0.1:1"), err.toString());
    assertFalse(err.toString().contains("Missing required option"), err.toString());
  }
}
