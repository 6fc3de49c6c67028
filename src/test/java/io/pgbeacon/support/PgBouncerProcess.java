package io.pgbeacon.support;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.List;

/**
 * A real PgBouncer (Debian's 1.18) on a free loopback port, started and stopped by its own PID, in front of a
 * database whose server does not listen: enough for a probe to connect, and for {@link #signal} to make it hang
 * (SIGSTOP: the kernel still accepts connections, nothing answers). The user {@code pgbeacon} needs no password.
 * PgBouncer refuses to run as root, so as root it is started with {@code -u postgres}.
 */
public final class PgBouncerProcess implements AutoCloseable {

  private final Path dir;
  private final int port = FreePorts.next();
  private Process process;

  private PgBouncerProcess(Path dir) {
    this.dir = dir;
  }

  public static PgBouncerProcess start(Path parent) throws IOException {
    Path dir = Files.createDirectories(parent.resolve("pgbouncer"));
    PgBouncerProcess p = new PgBouncerProcess(dir);
    p.launch();
    return p;
  }

  private void launch() throws IOException {
    Path bin = Components.require("pgbouncer", "/usr/sbin/pgbouncer");
    Files.writeString(dir.resolve("users.txt"), "\"pgbeacon\" \"\"\n");
    Files.writeString(dir.resolve("pgbouncer.ini"), """
        [databases]
        postgres = host=127.0.0.1 port=%d dbname=postgres
        [pgbouncer]
        listen_addr = 127.0.0.1
        listen_port = %d
        unix_socket_dir =
        auth_type = trust
        auth_file = %s
        logfile = %s
        server_login_retry = 1
        """.formatted(FreePorts.next(), port, dir.resolve("users.txt"), dir.resolve("pgbouncer.log")));
    boolean root = "root".equals(System.getProperty("user.name"));
    for (Path p : List.of(parent(dir), dir, dir.resolve("users.txt"), dir.resolve("pgbouncer.ini"))) {
      Files.setPosixFilePermissions(p, PosixFilePermissions.fromString(Files.isDirectory(p) ? "rwxrwxrwx"
          : "rw-r--r--"));
    }
    List<String> cmd = root ? List.of(bin.toString(), "-u", "postgres", dir.resolve("pgbouncer.ini").toString())
        : List.of(bin.toString(), dir.resolve("pgbouncer.ini").toString());
    process = new ProcessBuilder(cmd).redirectErrorStream(true)
        .redirectOutput(ProcessBuilder.Redirect.appendTo(dir.resolve("stdout.log").toFile())).start();
    Await.until("PgBouncer listening on 127.0.0.1:" + port + " (" + dir + ")", Duration.ofSeconds(10), () -> {
      if (!process.isAlive()) {
        throw new AssertionError("PgBouncer exited: " + read(dir.resolve("stdout.log")) + read(
            dir.resolve("pgbouncer.log")));
      }
      try (java.net.Socket s = new java.net.Socket("127.0.0.1", port)) {
        return true;
      } catch (IOException e) {
        return false;
      }
    }, up -> up);
  }

  private static Path parent(Path dir) {
    return dir.getParent();
  }

  private static String read(Path file) {
    try {
      return Files.exists(file) ? Files.readString(file) : "";
    } catch (IOException e) {
      return "";
    }
  }

  public int port() {
    return port;
  }

  /** Sends {@code signal} (STOP, CONT) to this PgBouncer. */
  public void signal(String signal) {
    Signals.send(process.pid(), signal);
  }

  @Override
  public void close() {
    if (process != null && process.isAlive()) {
      signal("CONT");
      process.destroy();
      try {
        if (!process.waitFor(10, java.util.concurrent.TimeUnit.SECONDS)) {
          process.destroyForcibly().waitFor();
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }
}
