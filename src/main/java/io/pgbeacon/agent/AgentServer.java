package io.pgbeacon.agent;

import io.pgbeacon.config.Config;
import io.pgbeacon.health.NodeHealth;
import io.pgbeacon.metrics.Metrics;
import io.vertx.core.Future;
import io.vertx.core.Handler;
import io.vertx.core.Vertx;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.net.NetServer;
import io.vertx.core.net.NetServerOptions;
import io.vertx.core.net.NetSocket;
import java.nio.charset.StandardCharsets;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One HAProxy agent-check listener. A connection gets its reply at once from the latest replies — prepared when
 * the verdict changed, never computed or fetched per connection — and is closed.
 *
 * <p>A listener without a fixed view waits up to {@code agent.read-timeout} for HAProxy's {@code agent-send}
 * line naming the view ({@code primary} or {@code replica}); it still answers with a full line if none comes. At
 * most {@value #MAX_WAITING} connections wait at a time: a newer one refuses the oldest, so that a flood of idle
 * connections costs bounded memory and cannot crowd out HAProxy's own check, which sends its line at once and so
 * is always among the newest. All of a listener's connections and its one read-timeout timer run on the event loop
 * it was started on (Vert.x gives a server's connections its listen context), so the waiting list needs no lock.
 */
public final class AgentServer {

  private static final Logger log = LoggerFactory.getLogger(AgentServer.class);
  private static final Buffer NO_VIEW = ascii(AgentReply.refusal("no view: set agent-send \"primary\\n\" or \"replica\\n\""));

  /**
   * Connections a listener without view lets wait for their line. HAProxy writes its agent-send string as soon as
   * the connection is up, so a legitimate connection waits for microseconds on a LAN: even at 20 000 checks a second
   * with a millisecond's wait, some 20 wait at once. 256 is ten times that, and bounds what idle connections can
   * hold to 256 sockets (about 7 KB of heap each, most of it Vert.x's own per-connection write queue).
   */
  static final int MAX_WAITING = 256;
  /** HAProxy's agent-send line is a word; a longer "line" is not one (RecordParser's former limit). */
  private static final int MAX_LINE = 256;
  private static final Buffer CROWDED_OUT = ascii(AgentReply.refusal("no agent-send line before " + MAX_WAITING
      + " newer connections"));

  private final Vertx vertx;
  private final Config.Listener listener;
  private final Config.Agent config;
  private final Supplier<Replies> replies;
  private final Config.View fixedView;
  private final long readTimeoutNanos;
  private NetServer server;
  // The connections waiting for their line, oldest first, and the timer set for the oldest one's deadline (-1: none).
  private Waiting oldest;
  private Waiting newest;
  private int waiting;
  private long timer = -1;

  /** The words a reply begins with, as the metrics count them: the index of {@link #WORDS}. */
  public static final List<String> WORDS = List.of("up", "drain", "maint", "down", "refused");
  private static final int REFUSED = 4;

  /** The precomputed reply of each view for one verdict, and its first word; shared, read-only. */
  public static final class Replies {
    private final Map<Config.View, Buffer> byView = new EnumMap<>(Config.View.class);
    private final int[] words = new int[Config.View.values().length];

    public Replies(NodeHealth health, ReplyPolicy policy) {
      for (Config.View view : Config.View.values()) {
        String line = AgentReply.line(health, view, policy);
        byView.put(view, ascii(line));
        words[view.ordinal()] = line.startsWith("up ready") ? 0 : line.startsWith("up drain") ? 1
            : line.startsWith("maint") ? 2 : 3;
      }
    }

    Buffer of(Config.View view) {
      return byView.get(view);
    }

    int word(Config.View view) {
      return words[view.ordinal()];
    }
  }

  private final Metrics.CounterSet counted;

  /** A listener whose replies are not counted: for tools and tests. */
  public AgentServer(Vertx vertx, Config.Listener listener, Config.Agent config, Supplier<Replies> replies) {
    this(vertx, listener, config, replies, null);
  }

  /** @param counted the replies counter of this listener, by {@link #WORDS}; null: not counted */
  public AgentServer(Vertx vertx, Config.Listener listener, Config.Agent config, Supplier<Replies> replies,
      Metrics.CounterSet counted) {
    this.counted = counted;
    this.vertx = vertx;
    this.listener = listener;
    this.config = config;
    this.replies = replies;
    this.fixedView = listener.view().orElse(null);
    this.readTimeoutNanos = config.readTimeout().toNanos();
  }

  public Future<Integer> start() {
    // No idle timeout: every connection ends at once (fixed view) or by agent.read-timeout's timer at the latest.
    server = vertx.createNetServer(new NetServerOptions()
        .setHost(listener.address())
        .setPort(listener.port())
        .setReuseAddress(true)
        // The reply leaves with the FIN in one segment (epoll transport; ignored by the JDK's): HAProxy's check
        // wakes once and reads line and EOF together, and each check costs one packet less on both sides.
        .setTcpCork(true));
    server.connectHandler(fixedView != null ? this::answerFixed : this::answerRequested);
    return server.listen().map(s -> {
      log.info("agent-check on {}:{} ({})", listener.address(), s.actualPort(),
          listener.view().map(v -> v.key() + " view").orElse("view chosen by agent-send"));
      return s.actualPort();
    });
  }

  private void answerFixed(NetSocket socket) {
    socket.exceptionHandler(e -> socket.close());
    Replies r = replies.get();
    socket.end(r.of(fixedView));
    if (counted != null) {
      counted.increment(r.word(fixedView));
    }
  }

  private void answerRequested(NetSocket socket) {
    Waiting connection = new Waiting(socket, System.nanoTime() + readTimeoutNanos);
    socket.handler(connection);
    socket.closeHandler(closed -> leave(connection));
    socket.exceptionHandler(e -> socket.close());
    connection.previous = newest;
    if (newest == null) {
      oldest = connection;
    } else {
      newest.next = connection;
    }
    newest = connection;
    if (++waiting > MAX_WAITING) {
      refuse(oldest, CROWDED_OUT);
    }
    if (timer == -1) {
      armTimer();
    }
  }

  private void answer(NetSocket socket, String line) {
    Optional<Config.View> view = viewNamed(line);
    Replies r = replies.get();
    socket.end(view.isPresent() ? r.of(view.get()) : ascii(AgentReply.refusal("unknown view '" + line.strip() + "'")));
    if (counted != null) {
      counted.increment(view.isPresent() ? r.word(view.get()) : REFUSED);
    }
  }

  private void refuse(Waiting connection, Buffer reply) {
    leave(connection);
    connection.socket.end(reply);
    if (counted != null) {
      counted.increment(REFUSED);
    }
  }

  /** Takes a connection off the waiting list; idempotent. */
  private void leave(Waiting connection) {
    if (connection.left) {
      return;
    }
    connection.left = true;
    waiting--;
    if (connection.previous == null) {
      oldest = connection.next;
    } else {
      connection.previous.next = connection.next;
    }
    if (connection.next == null) {
      newest = connection.previous;
    } else {
      connection.next.previous = connection.previous;
    }
    connection.previous = null;
    connection.next = null;
  }

  // One timer per listener, not one per connection: the connections wait in arrival order, which is also the order
  // of their deadlines, so only the oldest one's deadline needs a timer.
  private void armTimer() {
    long millis = Math.max(1, TimeUnit.NANOSECONDS.toMillis(oldest.deadline - System.nanoTime() + 999_999));
    timer = vertx.setTimer(millis, id -> {
      timer = -1;
      long now = System.nanoTime();
      while (oldest != null && oldest.deadline - now <= 0) {
        refuse(oldest, NO_VIEW);
      }
      if (oldest != null) {
        armTimer();
      }
    });
  }

  /** A connection waiting for its agent-send line: its node in the waiting list and the reader of its bytes. */
  private final class Waiting implements Handler<Buffer> {
    final NetSocket socket;
    final long deadline;
    Waiting previous;
    Waiting next;
    boolean left;
    // Only a line split across reads is kept; HAProxy writes it in one segment.
    private Buffer partial;

    Waiting(NetSocket socket, long deadline) {
      this.socket = socket;
      this.deadline = deadline;
    }

    @Override
    public void handle(Buffer data) {
      if (left) {
        return; // answered or refused already; the rest of what it sends does not matter
      }
      Buffer bytes = partial == null ? data : partial.appendBuffer(data);
      for (int i = 0; i < bytes.length(); i++) {
        if (bytes.getByte(i) == '\n') {
          leave(this);
          answer(socket, bytes.getString(0, i, "US-ASCII"));
          return;
        }
      }
      if (bytes.length() > MAX_LINE) {
        refuse(this, NO_VIEW);
      } else if (partial == null) {
        partial = Buffer.buffer(MAX_LINE).appendBuffer(data);
      }
    }
  }

  static Optional<Config.View> viewNamed(String text) {
    return Config.View.named(text);
  }

  public Future<Void> stop() {
    return server == null ? Future.succeededFuture() : server.close();
  }

  private static Buffer ascii(String s) {
    return Buffer.buffer(s.getBytes(StandardCharsets.US_ASCII));
  }
}
