package io.pgbeacon.agent;

import io.pgbeacon.config.Config;
import io.pgbeacon.health.NodeHealth;
import io.pgbeacon.health.Status;
import io.pgbeacon.health.Verdict;
import java.nio.charset.StandardCharsets;
import java.util.OptionalInt;
import java.util.OptionalLong;

/**
 * Turns a verdict into HAProxy's agent-check reply: one ASCII line ending in {@code \n} (HAProxy ignores a reply
 * without it). Only words HAProxy 2.6 understands: {@code up|down}, {@code ready|drain|maint}, {@code N%},
 * {@code maxconn:N}, and a {@code #} description.
 *
 * <p>Every reply carries a description, and all but one a health word (HAProxy shows the description only next to
 * a health word: {@code via agent : up (replica, lag 0B)}). The exception is the wrong-role reply in the default
 * {@code maint} mode: a bare {@code maint #replica}. Measured on the lab with HAProxy 2.6.12, a server parked
 * with {@code up maint} took about a second longer to take traffic after {@code up ready} (median 1.1 s vs
 * 0.25 s from the leader key changing hands): with {@code up} already applied, {@code ready} leaves it to the
 * next regular check, while a bare {@code maint} lets the promoting reply's {@code up} and {@code ready} act
 * together. A past-max-lag replica says {@code up drain}, so HAProxy parks it without calling it DOWN. A warning's
 * description starts with {@value #WARNING_MARK}, so the reply alone tells passing, warning and critical apart
 * ({@link #read(String)}).
 */
public final class AgentReply {

  static final int MAX_REASON = 200;
  /** Starts the description of every reply for a warning verdict. */
  public static final String WARNING_MARK = "warning: ";

  private AgentReply() {}

  public static String line(NodeHealth health, Config.View view, ReplyPolicy policy) {
    return line(health.view(view), health.lagFor(view), view, policy);
  }

  static String line(Verdict verdict, OptionalLong lag, Config.View view, ReplyPolicy policy) {
    StringBuilder out = new StringBuilder(64 + MAX_REASON);
    String description = sanitize(verdict.reason());
    switch (verdict.kind()) {
      case PASSING -> out.append("up ready ").append(policy.weight(lag)).append('%');
      case WARNING -> {
        out.append("up ready ").append(policy.weight(lag)).append('%');
        description = WARNING_MARK + description;
      }
      case WRONG_ROLE -> out.append(switch (policy.wrongRole()) {
        case MAINT -> "maint"; // no "up": see the class comment
        case DRAIN -> "up drain";
        case DOWN -> "down";
      });
      case PAST_MAX_LAG -> out.append(policy.pastMaxLag() == Config.PastMaxLag.DRAIN
          ? "up drain " + policy.weight(lag) + "%" : "down");
      case FAILING -> out.append("down");
    }
    OptionalInt maxconn = policy.maxconn(view);
    if (maxconn.isPresent()) {
      out.append(" maxconn:").append(maxconn.getAsInt());
    }
    return out.append(" #").append(description).append('\n').toString();
  }

  /**
   * True when two verdicts give the same replies: most polls change nothing the agent says, and then the prepared
   * replies are kept. (A replica's weight follows its exact lag, which the reason shows only rounded.)
   */
  public static boolean sameInputs(NodeHealth a, NodeHealth b) {
    return a.primary().equals(b.primary()) && a.replica().equals(b.replica()) && a.lagBytes().equals(b.lagBytes())
        && a.sync() == b.sync() && a.quorum() == b.quorum() && a.role().equals(b.role());
  }

  public static byte[] bytes(NodeHealth health, Config.View view, ReplyPolicy policy) {
    return line(health, view, policy).getBytes(StandardCharsets.US_ASCII);
  }

  /** A reply for a request pgbeacon cannot answer from a view (bad agent-send): still a complete line. */
  public static String refusal(String reason) {
    return "down #" + sanitize(reason) + "\n";
  }

  /**
   * A reply read back into the verdict's status, as {@code pgbeacon check} reports it.
   *
   * @param reason the description without {@value #WARNING_MARK}; the words when there is none
   */
  public record Heard(Status status, String reason) {}

  /**
   * Reads a reply the way HAProxy does (first line only, words in any order, case-insensitive, the last of a
   * kind wins) and maps it back to Consul's status: {@code up} with {@code ready} is passing, or warning when
   * the description starts with {@value #WARNING_MARK}; anything else is critical — {@code down}, {@code maint},
   * {@code drain} (both of pgbeacon's drains are critical in Consul), no health word, a line without its end.
   */
  public static Heard read(String reply) {
    int end = lineEnd(reply);
    if (end < 0) {
      return new Heard(Status.CRITICAL, reply.isEmpty() ? "no reply" : "incomplete reply: " + sanitize(reply));
    }
    String line = reply.substring(0, end);
    int hash = line.indexOf('#');
    String health = null;
    String admin = null;
    for (String word : (hash < 0 ? line : line.substring(0, hash)).split("[ \t,]+")) {
      switch (word.toLowerCase(java.util.Locale.ROOT)) {
        case "up", "down", "stopped", "fail" -> health = word.toLowerCase(java.util.Locale.ROOT);
        case "ready", "drain", "maint" -> admin = word.toLowerCase(java.util.Locale.ROOT);
        default -> {
          // a weight, maxconn or a word of a newer HAProxy: no bearing on the status
        }
      }
    }
    String description = hash < 0 ? "" : sanitize(line.substring(hash + 1));
    boolean warning = description.startsWith(WARNING_MARK);
    String reason = warning ? description.substring(WARNING_MARK.length()).strip() : description;
    if (reason.isEmpty()) {
      reason = sanitize(line);
    }
    if ("up".equals(health) && "ready".equals(admin)) {
      return new Heard(warning ? Status.WARNING : Status.PASSING, reason);
    }
    return new Heard(Status.CRITICAL, reason);
  }

  /** HAProxy's line ends at the first CR or LF; -1 when there is none. */
  private static int lineEnd(String text) {
    for (int i = 0; i < text.length(); i++) {
      if (text.charAt(i) == '\r' || text.charAt(i) == '\n') {
        return i;
      }
    }
    return -1;
  }

  /** Printable ASCII only, one line, bounded: the description must not end the line or confuse the parser. */
  public static String sanitize(String text) {
    StringBuilder out = new StringBuilder(Math.min(text.length(), MAX_REASON));
    for (int i = 0; i < text.length() && out.length() < MAX_REASON; i++) {
      char c = text.charAt(i);
      out.append(c >= 0x20 && c < 0x7f ? c : ' ');
    }
    return out.toString().strip();
  }
}
