package io.pgbeacon.health;

import static io.pgbeacon.health.PrimaryGate.Decision.HOLD;
import static io.pgbeacon.health.PrimaryGate.Decision.HOLD_AND_POLL;
import static io.pgbeacon.health.PrimaryGate.Decision.PUBLISH;
import static io.pgbeacon.health.PrimaryGate.Source.DCS_EVENT;
import static io.pgbeacon.health.PrimaryGate.Source.POLL;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.pgbeacon.support.FakeTime;
import io.pgbeacon.support.Healths;
import java.time.Duration;
import java.util.function.Consumer;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The grant barrier's truth table: each row is a moment in a node's life (what happened, in order, on a fake clock)
 * and the verdict it must or must not publish. Times are in milliseconds after the gate was made.
 */
class PrimaryGateTest {

  private static final Duration GRACE = Duration.ofSeconds(2);
  private static final NodeHealth WITHDRAWN =
      Healths.primary("node1").primaryView(Healths.fail("switchover to node2 requested")).build();
  private static final NodeHealth GRANTED = Healths.primary("node1").build();
  private static final NodeHealth STOPPING =
      Healths.primary("node1").primaryView(Healths.fail("PostgreSQL stopping (role primary)")).build();

  /** What happens to the gate before the decision, at a time of the row's choosing. */
  record Step(long atMillis, Consumer<PrimaryGate> action, String name) {
    @Override
    public String toString() {
      return name + "@" + atMillis;
    }
  }

  static Step withdrawingEvent(long at) {
    return new Step(at, PrimaryGate::withdrawing, "withdrawing event");
  }

  static Step watchesStarted(long at) {
    return new Step(at, PrimaryGate::watchesStarted, "watches started");
  }

  static Step watchesAnswered(long at) {
    return new Step(at, PrimaryGate::watchesAnswered, "watches answered");
  }

  static Stream<Arguments> moments() {
    return Stream.of(
        row("a lowering is always published", WITHDRAWN, GRANTED, POLL, 0, 100, PUBLISH),
        row("a lowering from a DCS event is published at once", STOPPING, GRANTED, DCS_EVENT, 0, 100, PUBLISH,
            withdrawingEvent(100)),
        row("the same outcome is published (fresh facts, same view)", GRANTED, GRANTED, POLL, 0, 100, PUBLISH),
        row("a DCS event never raises the primary view: a fresh poll decides", GRANTED, WITHDRAWN, DCS_EVENT, 0,
            100, HOLD_AND_POLL),
        row("a poll begun before a withdrawing event may not raise it: ask again", GRANTED, WITHDRAWN, POLL, 50,
            100, HOLD_AND_POLL, withdrawingEvent(60)),
        row("a poll begun after the withdrawing event may raise it", GRANTED, WITHDRAWN, POLL, 70, 100, PUBLISH,
            withdrawingEvent(60)),
        row("a poll begun at the very moment of the event may raise it", GRANTED, WITHDRAWN, POLL, 60, 100,
            PUBLISH, withdrawingEvent(60)),
        row("no grant before both watches answered after their start", GRANTED, WITHDRAWN, POLL, 90, 100, HOLD,
            watchesStarted(10)),
        row("the grant follows once both watches answered", GRANTED, WITHDRAWN, POLL, 90, 100, PUBLISH,
            watchesStarted(10), watchesAnswered(80)),
        row("watches that never answer hold grants for the grace only", GRANTED, WITHDRAWN, POLL, 2100, 2100,
            PUBLISH, watchesStarted(10)),
        row("a lowering is published while the watches have not answered", WITHDRAWN, GRANTED, POLL, 90, 100,
            PUBLISH, watchesStarted(10)),
        row("an early withdrawing event and unanswered watches: the event rule first", GRANTED, WITHDRAWN, POLL, 5,
            100, HOLD_AND_POLL, withdrawingEvent(8), watchesStarted(10)));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("moments")
  void decides(String moment, NodeHealth candidate, NodeHealth published, PrimaryGate.Source source,
      long pollStartedMillis, long decidedMillis, PrimaryGate.Decision expected, Step[] steps) {
    FakeTime time = new FakeTime();
    long zero = time.nanos();
    PrimaryGate gate = new PrimaryGate(GRACE, time);
    long now = 0;
    for (Step step : steps) {
      time.advance(Duration.ofMillis(step.atMillis() - now));
      now = step.atMillis();
      step.action().accept(gate);
    }
    time.advance(Duration.ofMillis(decidedMillis - now));
    long pollStarted = zero + Duration.ofMillis(pollStartedMillis).toNanos();
    assertEquals(expected, gate.decide(candidate, published, source, pollStarted));
  }

  private static Arguments row(String name, NodeHealth candidate, NodeHealth published, PrimaryGate.Source source,
      long pollStartedMillis, long decidedMillis, PrimaryGate.Decision expected, Step... steps) {
    return Arguments.of(name, candidate, published, source, pollStartedMillis, decidedMillis, expected, steps);
  }
}
