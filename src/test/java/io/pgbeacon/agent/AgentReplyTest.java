package io.pgbeacon.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pgbeacon.config.Config.WrongRole;
import io.pgbeacon.health.Status;
import io.pgbeacon.health.Verdict;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class AgentReplyTest {

  @ParameterizedTest(name = "{0}/{1} wrongRole={2} → {3}")
  @CsvSource(delimiter = '|', value = {
      "PASSING  | MAINT | false | up ready 100%",
      "WARNING  | MAINT | false | up ready 100% #replica, lag 13MB",
      "CRITICAL | MAINT | false | down #replica, lag 13MB",
      "CRITICAL | MAINT | true  | maint #replica, lag 13MB",
      "CRITICAL | DRAIN | true  | up drain #replica, lag 13MB",
      "CRITICAL | DOWN  | true  | down #replica, lag 13MB"})
  void speaksHaproxy26(Status status, WrongRole wrongRole, boolean wrong, String expected) {
    assertEquals(expected + "\n", AgentReply.line(new Verdict(status, wrong, "replica, lag 13MB"), wrongRole));
  }

  @Test
  void keepsTheReplyOnOneAsciiLine() {
    String line = AgentReply.line(new Verdict(Status.CRITICAL, false, "bad\nthing\r\u00e9" + "x".repeat(500)),
        WrongRole.MAINT);
    assertTrue(line.endsWith("\n"));
    assertEquals(1, line.chars().filter(c -> c == '\n').count());
    assertTrue(line.chars().allMatch(c -> c == '\n' || (c >= 0x20 && c < 0x7f)), line);
    assertTrue(line.length() <= "down #".length() + AgentReply.MAX_REASON + 1);
  }
}
