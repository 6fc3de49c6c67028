package io.pgbeacon.net;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.net.ConnectException;
import org.junit.jupiter.api.Test;

class ErrorTextTest {

  @Test
  void wordsAFailureAsTheJdkTransportDoesAlsoOnEpoll() {
    assertEquals("Connection refused: /127.0.0.1:6432", ErrorText.describe(
        new ConnectException("finishConnect(..) failed with error(-111): Connection refused: /127.0.0.1:6432")));
    assertEquals("Connection refused: /127.0.0.1:6432",
        ErrorText.describe(new ConnectException("Connection refused: /127.0.0.1:6432")));
  }

  @Test
  void keepsTheFirstLineOfAPostgresError() {
    assertEquals("password authentication failed for user \"pgbeacon\"", ErrorText.describe(
        new IllegalStateException("password authentication failed for user \"pgbeacon\"\nDETAIL: …")));
  }
}
