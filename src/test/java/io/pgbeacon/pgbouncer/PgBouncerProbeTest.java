package io.pgbeacon.pgbouncer;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.net.ConnectException;
import org.junit.jupiter.api.Test;

class PgBouncerProbeTest {

  @Test
  void wordsAFailureAsTheJdkTransportDoesAlsoOnEpoll() {
    assertEquals("Connection refused: /127.0.0.1:6432", PgBouncerProbe.describe(
        new ConnectException("finishConnect(..) failed with error(-111): Connection refused: /127.0.0.1:6432")));
    assertEquals("Connection refused: /127.0.0.1:6432",
        PgBouncerProbe.describe(new ConnectException("Connection refused: /127.0.0.1:6432")));
  }

  @Test
  void keepsTheFirstLineOfAPostgresError() {
    assertEquals("password authentication failed for user \"pgbeacon\"", PgBouncerProbe.describe(
        new IllegalStateException("password authentication failed for user \"pgbeacon\"\nDETAIL: …")));
  }
}
