package io.pgbeacon;

import io.pgbeacon.agent.AgentReply;
import io.pgbeacon.config.Config;
import io.pgbeacon.health.HealthEvaluator;
import io.pgbeacon.health.HealthPolicy;
import io.pgbeacon.health.Status;
import io.pgbeacon.health.TimeSource;
import io.pgbeacon.health.Verdict;
import io.pgbeacon.patroni.PatroniClient;
import io.pgbeacon.patroni.PatroniReading;
import io.pgbeacon.pgbouncer.PgBouncerProbe;
import io.pgbeacon.pgbouncer.PgBouncerStatus;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import io.vertx.core.VertxOptions;
import java.io.IOException;
import java.io.InputStream;
import java.net.ConnectException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * {@code pgbeacon check primary|replica}: this node's verdict for one view, once, as an exit code — 0 passing,
 * 1 warning, 2 critical, as Consul script checks and keepalived's {@code vrrp_script} read it — and one line.
 *
 * <p>By default it asks the running daemon on its agent port, so the check says what HAProxy hears, and the
 * daemon's leader-key watch counts. {@link Mode#DIRECT} polls Patroni and PgBouncer itself, with the daemon's
 * clients and deadlines and the same pure evaluator, but without Consul (so without the leader-key watch).
 * Everything happens within one overall deadline; whatever goes wrong is critical.
 */
final class OneShotCheck {

  /** Where the verdict comes from. */
  enum Mode {
    /** The running pgbeacon's agent port; no answer is critical. */
    DAEMON,
    /** Patroni and PgBouncer, polled here. */
    DIRECT,
    /** The daemon, given at most half the time; when it does not answer, a direct poll with the rest. */
    DAEMON_THEN_DIRECT
  }

  /** What the check prints and how it exits. */
  record Outcome(Status status, String line) {
    int exitCode() {
      return status.exitCode();
    }
  }

  /** The daemon gave no complete reply line. */
  private static final class NoAnswer extends Exception {
    private static final long serialVersionUID = 1L;

    NoAnswer(String message) {
      super(message);
    }
  }

  private static final int MAX_REPLY = 1024;

  private OneShotCheck() {}

  static Outcome run(Config config, Config.View view, Mode mode, Duration timeout) {
    long deadline = System.nanoTime() + timeout.toNanos();
    if (mode == Mode.DIRECT) {
      return direct(config, view, deadline, timeout);
    }
    long daemonDeadline = mode == Mode.DAEMON ? deadline : System.nanoTime() + timeout.toNanos() / 2;
    try {
      return askDaemon(config.agent().listen(), view, daemonDeadline);
    } catch (NoAnswer e) {
      if (mode == Mode.DAEMON) {
        return new Outcome(Status.CRITICAL, e.getMessage());
      }
      Outcome polled = direct(config, view, deadline, timeout);
      return new Outcome(polled.status(), polled.line() + " (polled directly: " + e.getMessage() + ")");
    }
  }

  /** The listener that answers {@code view}: one fixed to it, else one that lets agent-send choose. */
  static Optional<Config.Listener> listenerFor(List<Config.Listener> listen, Config.View view) {
    return listen.stream().filter(l -> l.view().equals(Optional.of(view))).findFirst()
        .or(() -> listen.stream().filter(l -> l.view().isEmpty()).findFirst());
  }

  /** A wildcard bind address is reached on loopback. */
  static String connectHost(String address) {
    return switch (address) {
      case "0.0.0.0", "" -> "127.0.0.1";
      case "::", "[::]", "::0" -> "::1";
      default -> address;
    };
  }

  private static Outcome askDaemon(List<Config.Listener> listen, Config.View view, long deadline)
      throws NoAnswer {
    Config.Listener listener = listenerFor(listen, view).orElseThrow(() -> new NoAnswer(
        "no agent port in the config answers the " + view.key() + " view (agent.listen); use --direct"));
    String host = connectHost(listener.address());
    String where = host + ":" + listener.port();
    try (Socket socket = new Socket()) {
      socket.connect(new InetSocketAddress(host, listener.port()), remainingMillis(deadline));
      if (listener.view().isEmpty()) {
        socket.getOutputStream().write((view.key() + "\n").getBytes(StandardCharsets.US_ASCII));
        socket.getOutputStream().flush();
      }
      String reply = readLine(socket, deadline);
      AgentReply.Heard heard = AgentReply.read(reply);
      if (reply.indexOf('\n') < 0 && reply.indexOf('\r') < 0) {
        throw new NoAnswer("pgbeacon on " + where + ": " + heard.reason());
      }
      return new Outcome(heard.status(), heard.reason());
    } catch (ConnectException e) {
      throw new NoAnswer("pgbeacon not running: nothing listens on " + where);
    } catch (SocketTimeoutException e) {
      throw new NoAnswer("pgbeacon did not answer on " + where + " in time");
    } catch (IOException e) {
      throw new NoAnswer("pgbeacon not reachable on " + where + ": " + e.getMessage());
    }
  }

  /** Reads until the line ends, the daemon closes, or the deadline passes. */
  private static String readLine(Socket socket, long deadline) throws IOException {
    InputStream in = socket.getInputStream();
    byte[] buffer = new byte[MAX_REPLY];
    int length = 0;
    while (length < buffer.length) {
      socket.setSoTimeout(remainingMillis(deadline));
      int read = in.read(buffer, length, buffer.length - length);
      if (read < 0) {
        break;
      }
      length += read;
      String sofar = new String(buffer, 0, length, StandardCharsets.US_ASCII);
      if (sofar.indexOf('\n') >= 0 || sofar.indexOf('\r') >= 0) {
        return sofar;
      }
    }
    return new String(buffer, 0, length, StandardCharsets.US_ASCII);
  }

  /** At least 1: a socket timeout of 0 would mean no timeout at all. */
  private static int remainingMillis(long deadline) throws SocketTimeoutException {
    long millis = TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
    if (millis < 1) {
      throw new SocketTimeoutException("deadline passed");
    }
    return (int) Math.min(millis, Integer.MAX_VALUE);
  }

  private static Outcome direct(Config config, Config.View view, long deadline, Duration timeout) {
    Vertx vertx = Vertx.vertx(new VertxOptions().setEventLoopPoolSize(1).setWorkerPoolSize(1)
        .setInternalBlockingPoolSize(1));
    PatroniClient patroni = new PatroniClient(vertx, config.patroni());
    try {
      Future<PatroniReading> reading = patroni.read();
      Future<PgBouncerStatus> bouncer = config.pgbouncer().map(c -> new PgBouncerProbe(vertx, c).probe())
          .orElse(Future.succeededFuture(PgBouncerStatus.NOT_CONFIGURED));
      long millis = Math.max(1, TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime()));
      Future.join(reading, bouncer).toCompletionStage().toCompletableFuture().get(millis, TimeUnit.MILLISECONDS);
      Verdict verdict = HealthEvaluator.evaluate(reading.result(), bouncer.result(), HealthPolicy.of(config),
          TimeSource.SYSTEM).view(view);
      return new Outcome(verdict.status(), AgentReply.sanitize(verdict.reason()));
    } catch (TimeoutException e) {
      return new Outcome(Status.CRITICAL, "no verdict within " + timeout.toMillis() + "ms");
    } catch (ExecutionException e) {
      // Neither probe fails its future; if one ever does, that is no verdict either.
      return new Outcome(Status.CRITICAL, "no verdict: " + e.getCause());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return new Outcome(Status.CRITICAL, "interrupted");
    } finally {
      patroni.close();
      try {
        vertx.close().toCompletionStage().toCompletableFuture().get(1, TimeUnit.SECONDS);
      } catch (Exception e) {
        // the answer is decided; a slow close must not change it
      }
    }
  }
}
