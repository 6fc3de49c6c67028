package io.pgbeacon.support;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** Runs the real {@code psql}, as an application would connect: for assertions only. */
public final class Psql {

  /** What psql printed, and whether it succeeded. */
  public record Result(int exit, String output) {
    public boolean ok() {
      return exit == 0;
    }
  }

  private Psql() {}

  /** {@code psql -Atq -c sql} against host:port as {@code user}; a 3 s connect timeout, 10 s overall. */
  public static Result run(String host, int port, String user, String password, String sql) {
    String psql = Components.require("psql", "/usr/lib/postgresql/15/bin/psql", "/usr/bin/psql").toString();
    ProcessBuilder pb = new ProcessBuilder(List.of(psql, "-h", host, "-p", Integer.toString(port), "-U", user,
        "-d", "postgres", "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql)).redirectErrorStream(true);
    pb.environment().put("PGPASSWORD", password);
    pb.environment().put("PGCONNECT_TIMEOUT", "3");
    try {
      Process p = pb.start();
      if (!p.waitFor(10, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        return new Result(-1, "psql timed out");
      }
      return new Result(p.exitValue(), new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip());
    } catch (IOException e) {
      throw new IllegalStateException("cannot run psql: " + e, e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }
}
