package io.pgbeacon.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pgbeacon.config.Config.PastMaxLag;
import io.pgbeacon.config.Config.View;
import io.pgbeacon.config.Config.WrongRole;
import io.pgbeacon.config.Units;
import io.pgbeacon.health.Status;
import io.pgbeacon.health.Verdict;
import java.util.Map;
import java.util.OptionalLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Every reply form, as HAProxy 2.6 reads it. */
class AgentReplyTest {

  private static final long MB = 1 << 20;
  /** The defaults: weight 100% up to warn-lag 12MB, 10% at max-lag 16MB, drain past it, park the wrong role. */
  private static final ReplyPolicy DEFAULTS =
      new ReplyPolicy(WrongRole.MAINT, PastMaxLag.DRAIN, 12 * MB, 16 * MB, 10, Map.of());

  /** How a row's verdict is built: its status, or one of the two kinds of critical of a healthy node. */
  enum Kind {
    PASSING, WARNING, CRITICAL, WRONG_ROLE, PAST_MAX_LAG;

    Verdict verdict(String reason) {
      return switch (this) {
        case PASSING -> Verdict.passing(reason);
        case WARNING -> Verdict.warning(reason);
        case CRITICAL -> Verdict.critical(reason);
        case WRONG_ROLE -> Verdict.wrongRole(reason);
        case PAST_MAX_LAG -> Verdict.pastMaxLag(reason);
      };
    }
  }

  @ParameterizedTest(name = "{0} {1}, lag {2}, wrong-role {3}, past-max-lag {4}, maxconn {5} → {7}")
  @CsvSource(delimiter = '|', value = {
      // view  | verdict      | lag   | wrong | past  | maxconn | reason | reply
      "PRIMARY | PASSING      | -     | MAINT | DRAIN | -   | primary, timeline 3 | up ready 100% #primary, timeline 3",
      "PRIMARY | PASSING      | -     | MAINT | DRAIN | 200 | primary, timeline 3 | up ready 100% maxconn:200 #primary, timeline 3",
      "PRIMARY | CRITICAL     | -     | MAINT | DRAIN | -   | PgBouncer: Connection refused | down #PgBouncer: Connection refused",
      "PRIMARY | CRITICAL     | -     | MAINT | DRAIN | 200 | PgBouncer: Connection refused | down maxconn:200 #PgBouncer: Connection refused",
      "PRIMARY | WRONG_ROLE   | -     | MAINT | DRAIN | -   | replica | maint #replica",
      "PRIMARY | WRONG_ROLE   | -     | DRAIN | DRAIN | -   | replica | up drain #replica",
      "PRIMARY | WRONG_ROLE   | -     | DOWN  | DRAIN | -   | replica | down #replica",
      "PRIMARY | WRONG_ROLE   | -     | MAINT | DRAIN | 0   | replica | maint maxconn:0 #replica",
      "REPLICA | PASSING      | 0     | MAINT | DRAIN | -   | replica, lag 0B | up ready 100% #replica, lag 0B",
      "REPLICA | PASSING      | 12MB  | MAINT | DRAIN | -   | replica, lag 12MB | up ready 100% #replica, lag 12MB",
      "REPLICA | WARNING      | 14MB  | MAINT | DRAIN | -   | replica, lag 14MB, near max-lag 16MB | up ready 55% #warning: replica, lag 14MB, near max-lag 16MB",
      "REPLICA | WARNING      | 16MB  | MAINT | DRAIN | 50  | replica, lag 16MB, near max-lag 16MB | up ready 10% maxconn:50 #warning: replica, lag 16MB, near max-lag 16MB",
      "REPLICA | WARNING      | -     | MAINT | DRAIN | -   | replica, lag unknown (cluster view unavailable) | up ready 100% #warning: replica, lag unknown (cluster view unavailable)",
      "REPLICA | PAST_MAX_LAG | 17MB  | MAINT | DRAIN | -   | replica lag 17MB exceeds max-lag 16MB | up drain 10% #replica lag 17MB exceeds max-lag 16MB",
      "REPLICA | PAST_MAX_LAG | 17MB  | MAINT | DRAIN | 50  | replica lag 17MB exceeds max-lag 16MB | up drain 10% maxconn:50 #replica lag 17MB exceeds max-lag 16MB",
      "REPLICA | PAST_MAX_LAG | 17MB  | MAINT | DOWN  | -   | replica lag 17MB exceeds max-lag 16MB | down #replica lag 17MB exceeds max-lag 16MB",
      "REPLICA | CRITICAL     | 0     | MAINT | DRAIN | -   | PostgreSQL crashed (role replica) | down #PostgreSQL crashed (role replica)",
      "REPLICA | WRONG_ROLE   | -     | MAINT | DRAIN | -   | primary | maint #primary",
      "REPLICA | WRONG_ROLE   | 0     | MAINT | DRAIN | -   | noloadbalance tag set | maint #noloadbalance tag set"})
  void speaksHaproxy26(View view, Kind kind, String lag, WrongRole wrongRole, PastMaxLag pastMaxLag,
      String maxconn, String reason, String expected) {
    ReplyPolicy policy = new ReplyPolicy(wrongRole, pastMaxLag, DEFAULTS.weightLagStart(), DEFAULTS.maxLag(),
        DEFAULTS.weightFloor(), maxconn.equals("-") ? Map.of() : Map.of(view, Integer.parseInt(maxconn)));
    assertEquals(expected + "\n", AgentReply.line(kind.verdict(reason), lag(lag), view, policy));
  }

  @ParameterizedTest(name = "lag {0}, weight-lag-start {1}, floor {2}% → {3}%")
  @CsvSource(delimiter = '|', value = {
      "-         | 12MB | 10  | 100",
      "0         | 12MB | 10  | 100",
      "12MB      | 12MB | 10  | 100",
      "12582913  | 12MB | 10  | 100", // one byte past the start: the weight starts falling, rounded
      "13MB      | 12MB | 10  | 78",  // 77.5, rounded half up
      "14MB      | 12MB | 10  | 55",
      "15MB      | 12MB | 10  | 33",
      "16777215  | 12MB | 10  | 10",  // one byte short of max-lag
      "16MB      | 12MB | 10  | 10",
      "17MB      | 12MB | 10  | 10",
      "1TB       | 12MB | 10  | 10",
      "8MB       | 0    | 10  | 55",  // weight-lag-start 0: falls from the first byte
      "16MB      | 16MB | 10  | 100", // weight-lag-start = max-lag: full weight until drained
      "14MB      | 12MB | 100 | 100", // floor 100%: lag weights off
      "14MB      | 12MB | 1   | 51"})
  void weighsAReplicaByItsLag(String lag, String start, int floor, int expected) {
    ReplyPolicy policy = new ReplyPolicy(WrongRole.MAINT, PastMaxLag.DRAIN, Units.parseSize(start), 16 * MB, floor,
        Map.of());
    assertEquals(expected, policy.weight(lag(lag)));
  }

  @Test
  void aPrimaryWeighsFullWhateverTheLag() {
    var health = io.pgbeacon.support.Healths.primary("node1").lag(14 * MB).build();
    assertEquals("up ready 100% #primary, timeline 3\n", AgentReply.line(health, View.PRIMARY, DEFAULTS));
  }

  @ParameterizedTest(name = "{0} past-max-lag {1} wrong-role {2}")
  @CsvSource({
      "PASSING, DRAIN, MAINT", "WARNING, DRAIN, MAINT", "CRITICAL, DRAIN, MAINT",
      "WRONG_ROLE, DRAIN, MAINT", "WRONG_ROLE, DRAIN, DRAIN", "WRONG_ROLE, DRAIN, DOWN",
      "PAST_MAX_LAG, DRAIN, MAINT", "PAST_MAX_LAG, DOWN, MAINT"})
  void everyReplyReadsBackAsTheVerdictsStatusAndReason(Kind kind, PastMaxLag pastMaxLag, WrongRole wrongRole) {
    Verdict verdict = kind.verdict("replica, lag 14MB");
    for (Map<View, Integer> maxconn : java.util.List.of(Map.<View, Integer>of(), Map.of(View.REPLICA, 50))) {
      ReplyPolicy policy = new ReplyPolicy(wrongRole, pastMaxLag, 12 * MB, 16 * MB, 10, maxconn);
      String line = AgentReply.line(verdict, OptionalLong.of(14 * MB), View.REPLICA, policy);
      assertEquals(new AgentReply.Heard(verdict.status(), "replica, lag 14MB"), AgentReply.read(line), line);
    }
  }

  @ParameterizedTest(name = "{0} → {1}, exit {2}")
  @CsvSource(delimiter = '|', value = {
      "up ready 100% #replica, lag 0B\\n                        | PASSING  | 0 | replica, lag 0B",
      "up ready 55% maxconn:50 #warning: replica, lag 14MB\\n   | WARNING  | 1 | replica, lag 14MB",
      "READY,UP\\t100%   #  warning:   lag unknown\\r\\n         | WARNING  | 1 | lag unknown",
      "up ready 100% #replica\\ndown #ignored\\n               | PASSING  | 0 | replica",
      "up drain 10% #replica lag 17MB exceeds max-lag 16MB\\n  | CRITICAL | 2 | replica lag 17MB exceeds max-lag 16MB",
      "up drain #replica\\n                                     | CRITICAL | 2 | replica",
      "maint #replica\\n                                     | CRITICAL | 2 | replica",
      "down #PgBouncer: Connection refused\\n                   | CRITICAL | 2 | PgBouncer: Connection refused",
      "stopped\\n                                               | CRITICAL | 2 | stopped",
      "up 100% #no admin word\\n                                | CRITICAL | 2 | no admin word",
      "ready 100% #no health word\\n                            | CRITICAL | 2 | no health word",
      "up ready 100% #warning: near max-lag\\n                  | WARNING  | 1 | near max-lag",
      "up ready 100% #replica, lag 0B                          | CRITICAL | 2 | incomplete reply: up ready 100% #replica, lag 0B",
      "''                                                      | CRITICAL | 2 | no reply"})
  void readsAnyReplyTheWayHaproxyDoesIntoTheCheckExitCode(String reply, Status status, int exit, String reason) {
    String text = reply.replace("\\n", "\n").replace("\\r", "\r").replace("\\t", "\t");
    assertEquals(new AgentReply.Heard(status, reason), AgentReply.read(text));
    assertEquals(exit, AgentReply.read(text).status().exitCode(), "pgbeacon check's exit code");
  }

  @Test
  void keepsTheReplyOnOneAsciiLine() {
    String line = AgentReply.line(Verdict.critical("bad\nthing\r\u00e9" + "x".repeat(500)),
        OptionalLong.empty(), View.PRIMARY, DEFAULTS);
    assertTrue(line.endsWith("\n"));
    assertEquals(1, line.chars().filter(c -> c == '\n').count());
    assertTrue(line.chars().allMatch(c -> c == '\n' || (c >= 0x20 && c < 0x7f)), line);
    assertTrue(line.length() <= "down #".length() + AgentReply.MAX_REASON + 1);
  }

  private static OptionalLong lag(String text) {
    return text.equals("-") ? OptionalLong.empty() : OptionalLong.of(Units.parseSize(text));
  }
}
