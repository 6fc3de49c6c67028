package io.pgbeacon.http;

import com.fasterxml.jackson.databind.JsonNode;
import io.pgbeacon.config.Units;
import java.time.Instant;
import java.time.format.DateTimeParseException;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * {@code /status} ({@link StatusServer}) as {@code pgbeacon status} prints it for a person: who the node is, one line
 * per view, the last reads, the DCS watches and the last push of each Consul check. Pure: JSON in, lines out.
 *
 * <p>A daemon of another version may leave a field out or add one: what is missing prints as {@value #MISSING},
 * what the daemon does not know yet (a JSON {@code null}) as {@value #NONE}; nothing here throws on odd JSON.
 */
public final class StatusReport {

  static final String MISSING = "?";
  static final String NONE = "none";

  private StatusReport() {}

  public static List<String> lines(JsonNode status) {
    List<String> lines = new ArrayList<>();
    lines.add("node " + known(status, "node") + ", scope " + known(status, "scope") + ", role " + known(status,
        "role") + ", Patroni " + known(status, "patroni_version") + ", pgbeacon " + known(status, "pgbeacon"));
    lines.add("views:");
    JsonNode views = status.path("views");
    int width = Math.max(7, longestKey(views));
    if (views.isObject() && !views.isEmpty()) {
      views.properties().forEach(e -> lines.add("  " + pad(e.getKey(), width) + "  " + view(e.getValue())));
    } else {
      lines.add("  " + MISSING);
    }
    JsonNode lag = status.path("lag_bytes");
    if (!lag.isMissingNode()) {
      lines.add("replication lag: " + (lag.isIntegralNumber() ? Units.formatSize(lag.asLong()) : text(lag)));
    }
    lines.add("last reads:");
    lines.add("  patroni    " + read(status.path("patroni")));
    lines.add("  pgbouncer  " + read(status.path("pgbouncer")));
    lines.add("DCS watches:");
    JsonNode watches = status.path("dcs_watches");
    if (watches.isArray() && !watches.isEmpty()) {
      watches.forEach(w -> lines.add("  " + watch(w)));
    } else {
      lines.add("  " + (watches.isArray() ? NONE : MISSING));
    }
    JsonNode consul = status.path("consul");
    lines.add("Consul checks (agent " + text(consul, "address") + "), last push:");
    JsonNode checks = consul.path("checks");
    if (checks.isObject() && !checks.isEmpty()) {
      int id = longestKey(checks);
      checks.properties().forEach(e -> lines.add("  " + pad(e.getKey(), id) + "  " + push(e.getValue())));
    } else {
      lines.add("  " + (checks.isObject() ? NONE : MISSING));
    }
    return lines;
  }

  /** {@code passing  primary, timeline 3  (since …, observed 0.2s ago)}. */
  private static String view(JsonNode v) {
    String kind = switch (v.path("kind").asText("")) {
      case "wrong_role" -> "wrong role; ";
      case "past_max_lag" -> "past max-lag; ";
      default -> "";
    };
    String since = v.path("since").isNull() ? "" : "since " + time(v, "since") + ", ";
    return pad(text(v, "status"), 8) + "  " + text(v, "reason") + "  (" + kind + since + "observed "
        + seconds(v.path("observation_age_seconds")) + " ago)";
  }

  /** {@code primary, running (took 3.1 ms, at …)}, or none before the first read (or without PgBouncer). */
  private static String read(JsonNode r) {
    if (!r.isObject()) {
      return text(r);
    }
    return text(r, "outcome") + "  (took " + millis(r.path("latency_seconds")) + ", at " + time(r, "at") + ")";
  }

  private static String watch(JsonNode w) {
    String key = text(w, "key");
    JsonNode value = w.path("value");
    String last = value.isMissingNode() ? MISSING : value.isNull() ? "no key" : value.asText();
    if (w.hasNonNull("error")) {
      return key + ": failing (" + text(w, "error") + "), last seen " + last + ", read " + time(w, "read_at");
    }
    if (w.path("reading").isBoolean() && !w.path("reading").asBoolean() && w.path("read_at").isNull()) {
      return key + ": not watching (leader-key off, or Patroni has not said its scope yet)";
    }
    String changed = w.path("changed_at").isNull() ? "" : "changed " + time(w, "changed_at") + ", ";
    return key + ": " + last + "  (" + changed + "read " + time(w, "read_at") + ")";
  }

  /** {@code passing "primary, timeline 3" at …, ok}, or the error and when the check was last pushed. */
  private static String push(JsonNode p) {
    JsonNode ok = p.path("ok");
    String lastOk = p.path("last_ok").isNull() ? "never ok" : "last ok " + time(p, "last_ok");
    String outcome = !ok.isBoolean() ? MISSING : ok.asBoolean() ? "ok"
        : "failed: " + text(p, "error") + " (" + lastOk + ")";
    JsonNode output = p.path("output");
    return pad(text(p, "status"), 8) + "  " + (output.isTextual() ? "\"" + output.asText() + "\"" : text(output))
        + "  at " + time(p, "at") + ", " + outcome;
  }

  private static String text(JsonNode parent, String field) {
    return text(parent.path(field));
  }

  private static String text(JsonNode n) {
    return n.isMissingNode() ? MISSING : n.isNull() ? NONE : n.isValueNode() ? n.asText() : n.toString();
  }

  /** Who the node is: what the daemon does not know yet is as unknown to the reader as what it did not say. */
  private static String known(JsonNode parent, String field) {
    return parent.path(field).isNull() ? MISSING : text(parent, field);
  }

  /** An instant to the millisecond: the daemon gives nanoseconds no one reads. */
  private static String time(JsonNode parent, String field) {
    String text = text(parent, field);
    try {
      return Instant.parse(text).truncatedTo(ChronoUnit.MILLIS).toString();
    } catch (DateTimeParseException e) {
      return text;
    }
  }

  private static String seconds(JsonNode n) {
    return n.isNumber() ? String.format(Locale.ROOT, "%.1fs", n.asDouble()) : MISSING;
  }

  private static String millis(JsonNode n) {
    return n.isNumber() ? String.format(Locale.ROOT, "%.1f ms", n.asDouble() * 1000) : MISSING;
  }

  private static int longestKey(JsonNode object) {
    return object.properties().stream().mapToInt(e -> e.getKey().length()).max().orElse(0);
  }

  private static String pad(String s, int width) {
    return s.length() >= width ? s : s + " ".repeat(width - s.length());
  }
}
