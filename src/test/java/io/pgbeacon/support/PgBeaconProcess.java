package io.pgbeacon.support;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * {@code pgbeacon run} as a real process, from the jar under test: its own environment, its output in a log file,
 * signals by its PID, stopped by the test that started it.
 */
public final class PgBeaconProcess implements AutoCloseable {

  private final Process process;
  private final Path log;

  private PgBeaconProcess(Process process, Path log) {
    this.process = process;
    this.log = log;
  }

  /** Starts {@code pgbeacon run --config config} with {@code env} added to this JVM's environment. */
  public static PgBeaconProcess start(Path config, Map<String, String> env, Path log) {
    List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "-Xmx64m", "-XX:+UseSerialGC", "-jar", Components.jar().toString(), "run", "--config", config.toString()));
    ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true)
        .redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()));
    pb.environment().putAll(env);
    try {
      return new PgBeaconProcess(pb.start(), log);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  public long pid() {
    return process.pid();
  }

  public boolean alive() {
    return process.isAlive();
  }

  public void signal(String signal) {
    Signals.send(process.pid(), signal);
  }

  /** Everything it printed so far. */
  public String log() {
    try {
      return Files.readString(log);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  public Path logFile() {
    return log;
  }

  /** Waits until its log contains {@code text}; returns the log. */
  public String awaitLog(String text, Duration within) {
    return Await.until("'" + text + "' in " + log, within, this::log, l -> l.contains(text));
  }

  /** SIGTERM, and its exit code (143 after a clean stop). */
  public int stop() {
    if (!process.isAlive()) {
      return process.exitValue();
    }
    process.destroy();
    try {
      if (!process.waitFor(20, TimeUnit.SECONDS)) {
        process.destroyForcibly().waitFor();
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    return process.exitValue();
  }

  @Override
  public void close() {
    stop();
  }
}
