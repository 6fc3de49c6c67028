package io.pgbeacon.agent;

import io.pgbeacon.support.Healths;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pgbeacon.config.Config;
import io.pgbeacon.health.NodeHealth;
import io.pgbeacon.health.Status;
import io.pgbeacon.health.Verdict;
import io.vertx.core.Vertx;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The agent port over real TCP, the way HAProxy uses it: connect, (optionally send), read one line, close. */
class AgentServerIT {

  private static final Config.Agent AGENT = new Config.Agent(List.of(), Config.WrongRole.MAINT,
      Config.PastMaxLag.DRAIN, 12 << 20, 10, java.util.Map.of(), Duration.ofMillis(500));
  private static final ReplyPolicy POLICY = new ReplyPolicy(AGENT.wrongRole(), AGENT.pastMaxLag(),
      AGENT.weightLagStart(), 16 << 20, AGENT.weightFloor(), AGENT.maxconn());

  /** For connections that must still be waiting when the test looks: a read-timeout no test run reaches. */
  private static final Config.Agent PATIENT = new Config.Agent(List.of(), AGENT.wrongRole(), AGENT.pastMaxLag(),
      AGENT.weightLagStart(), AGENT.weightFloor(), AGENT.maxconn(), Duration.ofMinutes(5));

  Vertx vertx;
  final AtomicReference<AgentServer.Replies> replies = new AtomicReference<>();

  @BeforeEach
  void setUp() {
    vertx = Vertx.vertx();
    show(NodeHealth.starting(Optional.of("node1"), System.nanoTime()));
  }

  @AfterEach
  void tearDown() throws Exception {
    vertx.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
  }

  @Test
  void answersDownBeforeTheFirstVerdictNeverSilence() throws Exception {
    int port = start(Optional.of(Config.View.PRIMARY));
    assertEquals("down #starting: no answer from Patroni yet\n", ask(port, null));
  }

  @Test
  void answersFromTheLatestVerdictForItsView() throws Exception {
    int primary = start(Optional.of(Config.View.PRIMARY));
    int replica = start(Optional.of(Config.View.REPLICA));
    show(health(Verdict.passing("primary, timeline 2"), Verdict.wrongRole("primary")));
    assertEquals("up ready 100% #primary, timeline 2\n", ask(primary, null));
    assertEquals("maint #primary\n", ask(replica, null));

    show(health(Verdict.critical("PgBouncer: Connection refused"),
        Verdict.wrongRole("primary")));
    assertEquals("down #PgBouncer: Connection refused\n", ask(primary, null));
  }

  @Test
  void letsAgentSendChooseTheView() throws Exception {
    int port = start(Optional.empty());
    show(health(Verdict.wrongRole("replica"), Verdict.passing("replica, lag 0B")));
    assertEquals("maint #replica\n", ask(port, "primary\n"));
    assertEquals("up ready 100% #replica, lag 0B\n", ask(port, "REPLICA\r\n"));
    assertTrue(ask(port, "writer\n").startsWith("down #unknown view 'writer'"));
    assertTrue(ask(port, null).startsWith("down #no view"), "silence from HAProxy still gets a full line");
  }

  @Test
  void answersEveryViewByItsName() throws Exception {
    int port = start(Optional.empty());
    int sync = start(Optional.of(Config.View.SYNC));
    show(Healths.replica("node2").sync(true).lag(13L << 20)
        .replicaView(Healths.warn("replica, lag 13MB, near max-lag 16MB")).build());
    assertEquals("up ready 78% #warning: replica, lag 13MB, near max-lag 16MB\n", ask(port, "sync\n"));
    assertEquals("up ready 78% #warning: replica, lag 13MB, near max-lag 16MB\n", ask(sync, null));
    assertEquals("maint #synchronous standby\n", ask(port, "async\n"));
    assertEquals("up ready 78% #warning: replica, lag 13MB, near max-lag 16MB\n", ask(port, "read-only\n"));
    assertEquals("maint #replica, not a standby leader\n", ask(port, "standby-leader\n"));
    assertTrue(ask(port, "read_only\n").startsWith("down #unknown view 'read_only'"), "the config's spelling only");
  }

  @Test
  void servesManyConcurrentHaproxyStyleClients() throws Exception {
    int port = start(Optional.of(Config.View.REPLICA));
    show(health(Verdict.wrongRole("replica"), Verdict.passing("replica, lag 0B")));
    ExecutorService pool = Executors.newFixedThreadPool(16);
    try {
      List<Future<String>> answers = new java.util.ArrayList<>();
      for (int i = 0; i < 2000; i++) {
        answers.add(pool.submit(() -> ask(port, null)));
      }
      for (Future<String> answer : answers) {
        assertEquals("up ready 100% #replica, lag 0B\n", answer.get(30, TimeUnit.SECONDS));
      }
    } finally {
      pool.shutdownNow();
    }
  }

  @Test
  void aFloodOfIdleConnectionsRefusesTheOldestAndStillAnswersAFreshCheckAtOnce() throws Exception {
    int port = start(Optional.empty(), PATIENT);
    show(health(Verdict.passing("primary, timeline 2"),
        Verdict.wrongRole("primary")));
    int idle = AgentServer.MAX_WAITING + 50;
    List<Socket> sockets = new ArrayList<>();
    try {
      for (int i = 0; i < idle; i++) {
        Socket socket = new Socket();
        sockets.add(socket);
        socket.connect(new InetSocketAddress("127.0.0.1", port), 2000);
      }
      // HAProxy's check: connect and send the line at once. Its answer cannot wait for the idle ones' read-timeout.
      assertEquals("up ready 100% #primary, timeline 2\n", ask(port, "primary\n"));
      // While it waited it took a place too, so one more idle connection had to go.
      int refused = idle + 1 - AgentServer.MAX_WAITING;
      for (int i = 0; i < refused; i++) {
        assertEquals("down #no agent-send line before " + AgentServer.MAX_WAITING + " newer connections\n",
            rest(sockets.get(i)), "idle connection #" + i + " of " + idle + ", oldest first");
      }
      // Replies leave one event loop in order: a refusal to any of the newer ones would be here by now.
      for (int i = refused; i < idle; i++) {
        assertEquals(0, sockets.get(i).getInputStream().available(), "idle connection #" + i + " still waits");
      }
    } finally {
      for (Socket socket : sockets) {
        socket.close();
      }
    }
  }

  @Test
  void refusesALineLongerThanAnyView() throws Exception {
    int port = start(Optional.empty(), PATIENT);
    assertTrue(ask(port, "p".repeat(300)).startsWith("down #no view"));
  }

  @Test
  void readsALineThatArrivesInPieces() throws Exception {
    int port = start(Optional.empty(), PATIENT);
    show(health(Verdict.passing("primary, timeline 2"),
        Verdict.wrongRole("primary")));
    try (Socket socket = new Socket()) {
      socket.setTcpNoDelay(true);
      socket.connect(new InetSocketAddress("127.0.0.1", port), 2000);
      for (String piece : List.of("pri", "ma", "ry\n")) {
        socket.getOutputStream().write(piece.getBytes(StandardCharsets.US_ASCII));
        socket.getOutputStream().flush();
      }
      assertEquals("up ready 100% #primary, timeline 2\n", rest(socket));
    }
  }

  private int start(Optional<Config.View> view) throws Exception {
    return start(view, AGENT);
  }

  private int start(Optional<Config.View> view, Config.Agent agent) throws Exception {
    AgentServer server = new AgentServer(vertx, new Config.Listener("127.0.0.1", 0, view), agent, replies::get);
    return server.start().toCompletionStage().toCompletableFuture().get(5, TimeUnit.SECONDS);
  }

  /** What a connection reads until the server closes it, or what it had after 3 s without that. */
  private static String rest(Socket socket) throws IOException {
    socket.setSoTimeout(3000);
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    try {
      socket.getInputStream().transferTo(out);
    } catch (SocketTimeoutException e) {
      return out.toString(StandardCharsets.US_ASCII) + "(no end within 3 s)";
    }
    return out.toString(StandardCharsets.US_ASCII);
  }

  private void show(NodeHealth health) {
    replies.set(new AgentServer.Replies(health, POLICY));
  }

  private static NodeHealth health(Verdict primary, Verdict replica) {
    return Healths.primary("node1").timeline(2).primaryView(primary).replicaView(replica).build();
  }

  /** One HAProxy-style exchange; the server must close after its line. */
  static String ask(int port, String send) throws IOException {
    try (Socket socket = new Socket()) {
      socket.connect(new InetSocketAddress("127.0.0.1", port), 2000);
      socket.setSoTimeout(3000);
      if (send != null) {
        socket.getOutputStream().write(send.getBytes(StandardCharsets.US_ASCII));
        socket.getOutputStream().flush();
      }
      InputStream in = socket.getInputStream();
      ByteArrayOutputStream out = new ByteArrayOutputStream();
      in.transferTo(out); // until the server closes
      return out.toString(StandardCharsets.US_ASCII);
    }
  }
}
