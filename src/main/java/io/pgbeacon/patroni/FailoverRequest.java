package io.pgbeacon.patroni;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.json.JsonMapper;
import java.time.Instant;
import java.time.OffsetDateTime;
import java.time.format.DateTimeParseException;
import java.util.Optional;

/**
 * Patroni's {@code /failover} key, written by a switchover or failover request and removed once Patroni acted on
 * it: {@code {"leader": "node1", "member": "node2", "scheduled_at": "…"}}, each field optional.
 *
 * @param leader the member to take leadership from (absent for a failover: whoever leads)
 * @param candidate the member to promote, if named
 * @param scheduledAt when a scheduled switchover is due; empty for one that is due now
 */
public record FailoverRequest(Optional<String> leader, Optional<String> candidate, Optional<Instant> scheduledAt) {

  private static final JsonMapper JSON = JsonMapper.builder().build();

  /** Empty for an absent or unreadable key: an unreadable request is not acted upon by Patroni either. */
  public static Optional<FailoverRequest> parse(Optional<String> value) {
    if (value.isEmpty() || value.get().isBlank()) {
      return Optional.empty();
    }
    try {
      JsonNode root = JSON.readTree(value.get());
      if (root == null || !root.isObject()) {
        return Optional.empty();
      }
      Optional<String> leader = text(root, "leader");
      Optional<String> candidate = text(root, "member");
      // Patroni leaves "{}" behind once it has acted on a request: that is no request.
      if (leader.isEmpty() && candidate.isEmpty()) {
        return Optional.empty();
      }
      return Optional.of(new FailoverRequest(leader, candidate, text(root, "scheduled_at").map(FailoverRequest::time)));
    } catch (java.io.IOException e) {
      return Optional.empty();
    }
  }

  /** True once the request is due at {@code now}: unscheduled, or its time has come. */
  public boolean dueAt(Instant now) {
    return scheduledAt.map(at -> !at.isAfter(now)).orElse(true);
  }

  /** Patroni writes ISO 8601 with an offset; a time pgbeacon cannot read is taken as due (withdraw rather than trust). */
  private static Instant time(String text) {
    try {
      return OffsetDateTime.parse(text).toInstant();
    } catch (DateTimeParseException e) {
      return Instant.MIN;
    }
  }

  private static Optional<String> text(JsonNode root, String field) {
    JsonNode v = root.path(field);
    return v.isTextual() && !v.asText().isEmpty() ? Optional.of(v.asText()) : Optional.empty();
  }
}
