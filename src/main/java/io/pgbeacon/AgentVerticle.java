package io.pgbeacon;

import io.pgbeacon.agent.AgentServer;
import io.pgbeacon.agent.ReplyBoard;
import io.pgbeacon.config.Config;
import io.pgbeacon.config.ConfigException;
import io.pgbeacon.metrics.Metrics;
import io.micrometer.core.instrument.Tags;
import io.vertx.core.Future;
import io.vertx.core.VerticleBase;
import java.util.ArrayList;
import java.util.List;

/** Serves every configured HAProxy agent-check port from the board; never waits on Patroni. */
final class AgentVerticle extends VerticleBase {

  private final Config.Agent config;
  private final ReplyBoard board;
  private final List<AgentServer> servers = new ArrayList<>();
  private final List<Integer> ports = new ArrayList<>();

  private final Metrics metrics;
  private volatile boolean listening;
  private volatile String loop;

  /** Replies not counted: for tests and tools. */
  AgentVerticle(Config.Agent config, ReplyBoard board) {
    this(config, board, null);
  }

  AgentVerticle(Config.Agent config, ReplyBoard board, Metrics metrics) {
    this.config = config;
    this.board = board;
    this.metrics = metrics;
  }

  /** True once every listener is bound, until they close. */
  boolean listening() {
    return listening;
  }

  /** The event-loop thread the listeners run on, once started. */
  String loop() {
    return loop;
  }

  @Override
  public Future<?> start() {
    loop = Thread.currentThread().getName();
    List<Future<Integer>> started = new ArrayList<>();
    for (int i = 0; i < config.listen().size(); i++) {
      Config.Listener listener = config.listen().get(i);
      Metrics.CounterSet counted = metrics == null ? null : metrics.counters("pgbeacon.agent.replies",
          "agent checks answered, by listener and by the reply's first word",
          Tags.of("listener", listener.address() + ":" + listener.port()), "reply", AgentServer.WORDS);
      AgentServer server = new AgentServer(vertx, listener, config, board::replies, counted);
      servers.add(server);
      String key = "agent.listen[" + i + "]";
      // A port taken (since the preflight tried it) is a config problem: exit 2, naming the key, not 1.
      started.add(server.start().recover(e -> Future.failedFuture(new ConfigException(List.of(key
          + ": cannot listen on " + listener.address() + ":" + listener.port() + " (" + e.getMessage() + ")")))));
    }
    return Future.join(started).transform(all -> {
      List<String> problems = new ArrayList<>();
      for (Future<Integer> f : started) {
        if (f.failed()) {
          problems.addAll(((ConfigException) f.cause()).problems());
        }
      }
      if (!problems.isEmpty()) {
        return Future.failedFuture(new ConfigException(problems));
      }
      started.forEach(f -> ports.add(f.result()));
      listening = true;
      return Future.succeededFuture();
    });
  }

  /** The bound ports, in config order (useful when a port is 0). */
  List<Integer> ports() {
    return List.copyOf(ports);
  }

  @Override
  public Future<?> stop() {
    listening = false;
    return Future.join(servers.stream().map(AgentServer::stop).toList());
  }
}
