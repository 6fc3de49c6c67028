package io.pgbeacon.agent;

import io.pgbeacon.config.Config;
import io.pgbeacon.health.NodeHealth;
import io.pgbeacon.health.Status;
import io.pgbeacon.health.Verdict;
import java.nio.charset.StandardCharsets;

/**
 * Turns a verdict into HAProxy's agent-check reply: one ASCII line ending in {@code \n} (HAProxy ignores a reply
 * without it). Only words HAProxy 2.6 understands: {@code up|down}, {@code ready|drain|maint}, {@code N%}, and
 * a {@code #} description, which HAProxy shows next to a health word.
 */
public final class AgentReply {

  static final int MAX_REASON = 200;

  private AgentReply() {}

  public static String line(Verdict verdict, Config.WrongRole wrongRole) {
    String reason = sanitize(verdict.reason());
    if (verdict.status() != Status.CRITICAL) {
      return verdict.status() == Status.PASSING ? "up ready 100%\n" : "up ready 100% #" + reason + "\n";
    }
    if (verdict.wrongRole()) {
      return switch (wrongRole) {
        case MAINT -> "maint #" + reason + "\n";
        case DRAIN -> "up drain #" + reason + "\n";
        case DOWN -> "down #" + reason + "\n";
      };
    }
    return "down #" + reason + "\n";
  }

  public static byte[] bytes(NodeHealth health, Config.View view, Config.WrongRole wrongRole) {
    return line(health.view(view), wrongRole).getBytes(StandardCharsets.US_ASCII);
  }

  /** A reply for a request pgbeacon cannot answer from a view (bad agent-send): still a complete line. */
  public static String refusal(String reason) {
    return "down #" + sanitize(reason) + "\n";
  }

  /** Printable ASCII only, one line, bounded: the description must not end the line or confuse the parser. */
  static String sanitize(String text) {
    StringBuilder out = new StringBuilder(Math.min(text.length(), MAX_REASON));
    for (int i = 0; i < text.length() && out.length() < MAX_REASON; i++) {
      char c = text.charAt(i);
      out.append(c >= 0x20 && c < 0x7f ? c : ' ');
    }
    return out.toString().strip();
  }
}
