package io.pgbeacon.patroni;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Optional;
import org.junit.jupiter.api.Test;

class FailoverRequestTest {

  @Test
  void readsASwitchoverAsPatroniWritesIt() {
    assertEquals(Optional.of(new FailoverRequest(Optional.of("node1"), Optional.of("node2"), false)),
        FailoverRequest.parse(Optional.of("{\"leader\": \"node1\", \"member\": \"node2\"}")));
  }

  @Test
  void aFailoverNamesOnlyTheCandidate() {
    assertEquals(Optional.of(new FailoverRequest(Optional.empty(), Optional.of("node3"), false)),
        FailoverRequest.parse(Optional.of("{\"member\": \"node3\"}")));
  }

  @Test
  void aScheduledSwitchoverIsMarkedAsSuch() {
    assertEquals(true, FailoverRequest.parse(Optional.of(
        "{\"leader\": \"node1\", \"scheduled_at\": \"2026-11-23T03:00:00+00:00\"}")).orElseThrow().scheduled());
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
