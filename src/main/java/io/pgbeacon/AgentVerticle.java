package io.pgbeacon;

import io.pgbeacon.agent.AgentServer;
import io.pgbeacon.agent.ReplyBoard;
import io.pgbeacon.config.Config;
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
    for (Config.Listener listener : config.listen()) {
      AgentServer server = new AgentServer(vertx, listener, config, board::replies);
      servers.add(server);
      started.add(server.start());
    }
    return Future.all(started).onSuccess(all -> started.forEach(f -> ports.add(f.result())));
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
