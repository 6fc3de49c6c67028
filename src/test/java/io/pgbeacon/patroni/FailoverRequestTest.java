package io.pgbeacon.patroni;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Instant;
import java.util.Optional;
import org.junit.jupiter.api.Test;

class FailoverRequestTest {

  @Test
  void readsASwitchoverAsPatroniWritesIt() {
    assertEquals(Optional.of(new FailoverRequest(Optional.of("node1"), Optional.of("node2"), Optional.empty())),
        FailoverRequest.parse(Optional.of("{\"leader\": \"node1\", \"member\": \"node2\"}")));
  }

  @Test
  void aFailoverNamesOnlyTheCandidate() {
    assertEquals(Optional.of(new FailoverRequest(Optional.empty(), Optional.of("node3"), Optional.empty())),
        FailoverRequest.parse(Optional.of("{\"member\": \"node3\"}")));
  }

  @Test
  void aScheduledSwitchoverIsDueFromItsTimeOn() {
    FailoverRequest r = FailoverRequest.parse(Optional.of(
        "{\"leader\": \"node1\", \"scheduled_at\": \"2026-11-23T03:00:00+00:00\"}")).orElseThrow();
    assertEquals(Optional.of(Instant.parse("2026-11-23T03:00:00Z")), r.scheduledAt());
    assertFalse(r.dueAt(Instant.parse("2026-11-23T02:59:59Z")));
    assertTrue(r.dueAt(Instant.parse("2026-11-23T03:00:00Z")));
    // Patroni writes microseconds and other offsets too
    assertEquals(Optional.of(Instant.parse("2026-11-23T01:00:00.123456Z")), FailoverRequest.parse(Optional.of(
        "{\"leader\": \"node1\", \"scheduled_at\": \"2026-11-23T03:00:00.123456+02:00\"}")).orElseThrow()
        .scheduledAt());
  }

  @Test
  void aScheduleThatCannotBeReadIsTakenAsDue() {
    assertTrue(FailoverRequest.parse(Optional.of("{\"leader\": \"node1\", \"scheduled_at\": \"soon\"}"))
        .orElseThrow().dueAt(Instant.parse("2026-11-23T03:00:00Z")));
  }

  @Test
  void anUnscheduledRequestIsDueAtOnce() {
    assertTrue(FailoverRequest.parse(Optional.of("{\"leader\": \"node1\"}")).orElseThrow().dueAt(Instant.EPOCH));
  }

  @Test
  void anAbsentOrUnreadableKeyIsNoRequest() {
    assertEquals(Optional.empty(), FailoverRequest.parse(Optional.empty()));
    assertEquals(Optional.empty(), FailoverRequest.parse(Optional.of("")));
    assertEquals(Optional.empty(), FailoverRequest.parse(Optional.of("not json")));
    assertEquals(Optional.empty(), FailoverRequest.parse(Optional.of("[1]")));
    assertEquals(Optional.empty(), FailoverRequest.parse(Optional.of("{}")), "what Patroni leaves when done");
  }
}
