package io.pgbeacon.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;

import io.pgbeacon.config.Config;
import io.pgbeacon.health.Freshness;
import io.pgbeacon.support.FakeTime;
import io.pgbeacon.support.Healths;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;

class ReplyBoardTest {

  private static final ReplyPolicy POLICY = new ReplyPolicy(Config.WrongRole.MAINT, Config.PastMaxLag.DRAIN, 0,
      16 << 20, 10, Map.of());

  final FakeTime time = new FakeTime();
  final ReplyBoard board = new ReplyBoard(Healths.primary("node1").observedAt(time.nanos()).build(), POLICY,
      new Freshness(Duration.ofMillis(3500)), time);

  @Test
  void answersTheLatestVerdict() {
    assertEquals("up ready 100% #primary, timeline 3\n", reply(Config.View.PRIMARY));
    assertEquals("maint #primary\n", reply(Config.View.REPLICA));
  }

  @Test
  void answersDownOnceTheVerdictOutlivesTheFreshnessLimit() {
    time.advance(Duration.ofMillis(3501));
    assertEquals("down #verdict stale: no observation in the last 3.5s\n", reply(Config.View.PRIMARY));
    assertEquals("down #verdict stale: no observation in the last 3.5s\n", reply(Config.View.REPLICA));
    board.set(Healths.primary("node1").observedAt(time.nanos()).build());
    assertEquals("up ready 100% #primary, timeline 3\n", reply(Config.View.PRIMARY), "a fresh verdict again");
  }

  @Test
  void keepsThePreparedRepliesWhenNothingTheAgentSaysChanged() {
    AgentServer.Replies before = board.replies();
    time.advance(Duration.ofMillis(500));
    board.set(Healths.primary("node1").observedAt(time.nanos()).build());
    assertSame(before, board.replies());
    board.set(Healths.primary("node1").primaryView(Healths.fail("PgBouncer: refused")).build());
    assertNotSame(before, board.replies());
  }

  @Test
  void aNewPolicyChangesTheRepliesAtOnceForTheVerdictItHolds() {
    board.policy(new ReplyPolicy(Config.WrongRole.DOWN, Config.PastMaxLag.DRAIN, 0, 16 << 20, 10,
        Map.of(Config.View.PRIMARY, 50)));
    assertEquals("down #primary\n", reply(Config.View.REPLICA), "a reload's agent.wrong-role, before any new verdict");
    assertEquals("up ready 100% maxconn:50 #primary, timeline 3\n", reply(Config.View.PRIMARY));
    time.advance(Duration.ofMillis(3501));
    assertEquals("down #verdict stale: no observation in the last 3.5s\n", reply(Config.View.REPLICA));
  }

  private String reply(Config.View view) {
    return board.replies().of(view).toString(StandardCharsets.US_ASCII);
  }
}
