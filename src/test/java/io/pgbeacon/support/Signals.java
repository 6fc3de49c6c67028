package io.pgbeacon.support;

import java.io.IOException;
import java.util.concurrent.TimeUnit;

/** Signals to processes the tests started themselves, by PID. */
public final class Signals {

  private Signals() {}

  /** {@code kill -SIGNAL pid}; fails the test if it cannot be sent. */
  public static void send(long pid, String signal) {
    try {
      Process kill = new ProcessBuilder("kill", "-" + signal, Long.toString(pid)).redirectErrorStream(true).start();
      if (!kill.waitFor(5, TimeUnit.SECONDS) || kill.exitValue() != 0) {
        throw new AssertionError("kill -" + signal + " " + pid + " failed: "
            + new String(kill.getInputStream().readAllBytes()));
      }
    } catch (IOException e) {
      throw new AssertionError("cannot run kill: " + e, e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError(e);
    }
  }
}
