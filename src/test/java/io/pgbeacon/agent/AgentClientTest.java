package io.pgbeacon.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.pgbeacon.config.Config;
import io.pgbeacon.config.Config.Listener;
import io.pgbeacon.config.Config.View;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;

class AgentClientTest {

  private static final Listener PRIMARY = new Listener("0.0.0.0", 5555, Optional.of(View.PRIMARY));
  private static final Listener REPLICA = new Listener("10.0.0.1", 5556, Optional.of(View.REPLICA));
  private static final Listener ANY = new Listener("::", 5557, Optional.empty());

  @Test
  void asksTheListenerOfTheViewFirstThenOneWhereAgentSendChooses() {
    assertEquals(Optional.of(REPLICA), AgentClient.listenerFor(List.of(PRIMARY, ANY, REPLICA), View.REPLICA));
    assertEquals(Optional.of(ANY), AgentClient.listenerFor(List.of(PRIMARY, ANY), View.REPLICA));
    assertEquals(Optional.empty(), AgentClient.listenerFor(List.of(PRIMARY), View.REPLICA));
    assertEquals(Optional.empty(), AgentClient.listenerFor(List.<Config.Listener>of(), View.PRIMARY));
  }

  @Test
  void reachesAWildcardListenerOnLoopback() {
    assertEquals("127.0.0.1", AgentClient.connectHost("0.0.0.0"));
    assertEquals("::1", AgentClient.connectHost("::"));
    assertEquals("10.0.0.1", AgentClient.connectHost("10.0.0.1"));
  }
}
