package io.pgbeacon.support;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/** Runs a command line to its end (or its deadline) and keeps what it printed, stdout and stderr together. */
public final class Commands {

  /** How a command ended: its exit code and everything it printed. */
  public record Result(List<String> command, int exit, String output) {
    public boolean ok() {
      return exit == 0;
    }

    /** This result, or an AssertionError naming the command, its exit code and its output. */
    public Result orFail() {
      if (exit != 0) {
        throw new AssertionError(String.join(" ", command) + " exited " + exit + ":\n" + output);
      }
      return this;
    }
  }

  private Commands() {}

  public static Result run(Duration deadline, String... command) {
    return run(deadline, Map.of(), List.of(), command);
  }

  /**
   * {@code command} with {@code env} added to this JVM's environment and {@code unset} taken out of it. Output goes
   * to a file, not a pipe: a command that prints much cannot block on a reader that waits for it to end.
   */
  public static Result run(Duration deadline, Map<String, String> env, List<String> unset, String... command) {
    try {
      Path out = Files.createTempFile("command", ".out");
      try {
        ProcessBuilder pb = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(out.toFile());
        pb.environment().keySet().removeAll(unset);
        pb.environment().putAll(env);
        Process p = pb.start();
        if (!p.waitFor(deadline.toMillis(), TimeUnit.MILLISECONDS)) {
          p.destroyForcibly();
          p.waitFor(10, TimeUnit.SECONDS);
          throw new AssertionError(String.join(" ", command) + " did not finish in " + deadline + ":\n"
              + Files.readString(out, StandardCharsets.UTF_8));
        }
        return new Result(List.of(command), p.exitValue(), Files.readString(out, StandardCharsets.UTF_8));
      } finally {
        Files.deleteIfExists(out);
      }
    } catch (IOException e) {
      throw new AssertionError("cannot run " + String.join(" ", command) + ": " + e, e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError(e);
    }
  }
}
