package io.pgbeacon.config;

import io.vertx.core.Vertx;
import io.vertx.core.VertxOptions;
import io.vertx.core.net.PemKeyCertOptions;
import io.vertx.core.net.PemTrustOptions;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

/**
 * What a config's values can only be checked by trying, before anything starts: the Patroni client certificate and
 * CA load as Vert.x will load them, and every agent port can be bound. {@code validate} and {@code run} both run it,
 * so a config that passes {@code validate} does not fail at start (only exit 2 stops systemd's restarts).
 */
public final class Preflight {

  /** Who asks: {@code validate} beside a running daemon finds its own ports taken, and says so without failing. */
  public enum Mode {
    VALIDATE,
    RUN
  }

  private Preflight() {}

  /** One line per problem, each naming its key; empty when everything loads and binds. */
  public static List<String> problems(Config config, Mode mode, List<String> notes) {
    List<String> problems = new ArrayList<>();
    tls(config.patroni(), problems);
    List<Config.Listener> listen = config.agent().listen();
    for (int i = 0; i < listen.size(); i++) {
      bind("agent.listen[" + i + "]", listen.get(i), mode, problems, notes);
    }
    config.http().ifPresent(h -> bind("http", new Config.Listener(h.address(), h.port(), Optional.empty()), mode,
        problems, notes));
    return problems;
  }

  private static void tls(Config.Patroni patroni, List<String> problems) {
    if (patroni.caFile().isEmpty() && patroni.certFile().isEmpty()) {
      return;
    }
    Vertx vertx = Vertx.vertx(new VertxOptions().setEventLoopPoolSize(1).setWorkerPoolSize(1)
        .setInternalBlockingPoolSize(1));
    try {
      patroni.caFile().ifPresent(ca -> {
        try {
          new PemTrustOptions().addCertPath(ca.toString()).getTrustManagerFactory(vertx);
        } catch (Exception e) {
          problems.add("patroni.ca-file: cannot be loaded as a PEM CA (" + message(e) + ") (got " + ca + ")");
        }
      });
      if (patroni.certFile().isPresent() && patroni.keyFile().isPresent()) {
        try {
          new PemKeyCertOptions().setCertPath(patroni.certFile().get().toString())
              .setKeyPath(patroni.keyFile().get().toString()).getKeyManagerFactory(vertx);
        } catch (Exception e) {
          problems.add("patroni.cert-file, patroni.key-file: cannot be loaded as a PEM certificate and its private"
              + " key (" + message(e) + ") (got " + patroni.certFile().get() + ", " + patroni.keyFile().get() + ")");
        }
      }
    } finally {
      try {
        vertx.close().toCompletionStage().toCompletableFuture().get(5, TimeUnit.SECONDS);
      } catch (Exception ignored) {
        // a throwaway instance: its close does not decide anything
      }
    }
  }

  private static void bind(String key, Config.Listener listener, Mode mode, List<String> problems,
      List<String> notes) {
    if (listener.port() == 0) {
      return;
    }
    String where = listener.address() + ":" + listener.port();
    try (ServerSocket socket = new ServerSocket()) {
      socket.setReuseAddress(true); // as the agent listens: a port in TIME_WAIT is free
      socket.bind(new InetSocketAddress(InetAddress.getByName(listener.address()), listener.port()));
    } catch (IOException e) {
      if (mode == Mode.VALIDATE && answersLikePgbeacon(listener)) {
        notes.add(key + ": " + where + " is held by a running pgbeacon (it answers agent checks); `run` needs it"
            + " free");
        return;
      }
      problems.add(key + ": cannot listen on " + where + " (" + message(e) + ")");
    }
  }

  /** A pgbeacon agent port answers one line with a {@code #} description; its HTTP port, to /health. */
  private static boolean answersLikePgbeacon(Config.Listener listener) {
    String host = switch (listener.address()) {
      case "0.0.0.0", "" -> "127.0.0.1";
      case "::", "[::]" -> "::1";
      default -> listener.address();
    };
    try (Socket s = new Socket()) {
      s.connect(new InetSocketAddress(host, listener.port()), 500);
      s.setSoTimeout(1500);
      if (listener.view().isEmpty()) {
        // An agent port without a view takes this as agent-send; the HTTP port as a request.
        s.getOutputStream().write("GET /health HTTP/1.0\r\n\r\nprimary\n".getBytes(StandardCharsets.US_ASCII));
      }
      InputStream in = s.getInputStream();
      String reply = new String(in.readNBytes(512), StandardCharsets.US_ASCII);
      return (reply.contains("#") && reply.contains("\n")) || reply.contains("pgbeacon");
    } catch (IOException e) {
      return false;
    }
  }

  private static String message(Exception e) {
    Throwable t = e;
    while (t.getCause() != null && t.getCause() != t) {
      t = t.getCause();
    }
    return t.getMessage() == null ? t.getClass().getSimpleName() : t.getMessage();
  }
}
