package io.pgbeacon;

import io.pgbeacon.agent.AgentServer;
import io.pgbeacon.agent.ReplyBoard;
import io.pgbeacon.config.Config;
import io.pgbeacon.config.ConfigException;
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

  AgentVerticle(Config.Agent config, ReplyBoard board) {
    this.config = config;
    this.board = board;
  }

  @Override
  public Future<?> start() {
    List<Future<Integer>> started = new ArrayList<>();
    for (int i = 0; i < config.listen().size(); i++) {
      Config.Listener listener = config.listen().get(i);
      AgentServer server = new AgentServer(vertx, listener, config, board::replies);
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
      return Future.succeededFuture();
    });
  }

  /** The bound ports, in config order (useful when a port is 0). */
  List<Integer> ports() {
    return List.copyOf(ports);
  }

  @Override
  public Future<?> stop() {
    return Future.join(servers.stream().map(AgentServer::stop).toList());
  }
}
