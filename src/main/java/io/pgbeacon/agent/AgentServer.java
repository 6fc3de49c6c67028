package io.pgbeacon.agent;

import io.pgbeacon.config.Config;
import io.pgbeacon.health.NodeHealth;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.net.NetServer;
import io.vertx.core.net.NetServerOptions;
import io.vertx.core.net.NetSocket;
import io.vertx.core.parsetools.RecordParser;
import java.nio.charset.StandardCharsets;
import java.util.EnumMap;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One HAProxy agent-check listener. A connection gets its reply at once from the latest replies — prepared when
 * the verdict changed, never computed or fetched per connection — and is closed.
 *
 * <p>A listener without a fixed view waits up to {@code agent.read-timeout} for HAProxy's {@code agent-send}
 * line naming the view ({@code primary} or {@code replica}); it still answers with a full line if none comes.
 */
public final class AgentServer {

  private static final Logger log = LoggerFactory.getLogger(AgentServer.class);
  private static final Buffer NO_VIEW = ascii(AgentReply.refusal("no view: set agent-send \"primary\\n\" or \"replica\\n\""));

  private final Vertx vertx;
  private final Config.Listener listener;
  private final Config.Agent config;
  private final Supplier<Replies> replies;
  private final Config.View fixedView;
  private NetServer server;

  /** The precomputed reply of each view for one verdict; shared, read-only. */
  public static final class Replies {
    private final Map<Config.View, Buffer> byView = new EnumMap<>(Config.View.class);

    public Replies(NodeHealth health, ReplyPolicy policy) {
      for (Config.View view : Config.View.values()) {
        byView.put(view, Buffer.buffer(AgentReply.bytes(health, view, policy)));
      }
    }

    Buffer of(Config.View view) {
      return byView.get(view);
    }
  }

  public AgentServer(Vertx vertx, Config.Listener listener, Config.Agent config, Supplier<Replies> replies) {
    this.vertx = vertx;
    this.listener = listener;
    this.config = config;
    this.replies = replies;
    this.fixedView = listener.view().orElse(null);
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
    socket.end(replies.get().of(fixedView));
  }

  private void answerRequested(NetSocket socket) {
    long timer = vertx.setTimer(config.readTimeout().toMillis(), id -> socket.end(NO_VIEW));
    RecordParser parser = RecordParser.newDelimited("\n", socket).maxRecordSize(256);
    parser.exceptionHandler(e -> {
      vertx.cancelTimer(timer);
      socket.end(NO_VIEW);
    });
    parser.handler(line -> {
      vertx.cancelTimer(timer);
      parser.pause();
      Optional<Config.View> view = viewNamed(line.toString(StandardCharsets.US_ASCII));
      socket.end(view.isPresent() ? replies.get().of(view.get())
          : ascii(AgentReply.refusal("unknown view '" + line.toString(StandardCharsets.US_ASCII).strip() + "'")));
    });
    socket.exceptionHandler(e -> socket.close());
  }

  static Optional<Config.View> viewNamed(String text) {
    String name = text.strip().toLowerCase(Locale.ROOT);
    for (Config.View view : Config.View.values()) {
      if (view.key().equals(name)) {
        return Optional.of(view);
      }
    }
    return Optional.empty();
  }

  public Future<Void> stop() {
    return server == null ? Future.succeededFuture() : server.close();
  }

  private static Buffer ascii(String s) {
    return Buffer.buffer(s.getBytes(StandardCharsets.US_ASCII));
  }
}
