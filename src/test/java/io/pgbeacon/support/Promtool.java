package io.pgbeacon.support;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** Prometheus's own checker (Debian's {@code prometheus} package): what Prometheus itself would accept. */
public final class Promtool {

  private Promtool() {}

  public static Path binary() {
    return Components.require("promtool", "/usr/bin/promtool");
  }

  /** {@code promtool check metrics} on {@code exposition}; fails the test with promtool's words on a problem. */
  public static void checkMetrics(String exposition) {
    run(exposition, "check", "metrics");
  }

  /** {@code promtool ARGS...}; fails the test unless it exits 0. Returns what it printed. */
  public static String run(String stdin, String... args) {
    List<String> cmd = new ArrayList<>(List.of(binary().toString()));
    cmd.addAll(List.of(args));
    try {
      Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
      p.getOutputStream().write(stdin.getBytes(StandardCharsets.UTF_8));
      p.getOutputStream().close();
      String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      if (!p.waitFor(60, TimeUnit.SECONDS) || p.exitValue() != 0) {
        throw new AssertionError(String.join(" ", cmd) + " failed:\n" + out);
      }
      return out;
    } catch (IOException e) {
      throw new AssertionError("cannot run promtool: " + e, e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError(e);
    }
  }
}
