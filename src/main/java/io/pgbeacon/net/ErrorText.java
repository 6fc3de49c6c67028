package io.pgbeacon.net;

import java.util.regex.Pattern;

/**
 * Network error messages as operators read them, whichever Netty transport the daemon runs on. Netty's epoll
 * transport (preferred by {@code PgBeacon.newVertx}) names the failed system call — "finishConnect(..) failed with
 * error(-111): Connection refused: /127.0.0.1:8008" — where the JDK's says "Connection refused: /127.0.0.1:8008";
 * the reasons pgbeacon publishes keep the JDK's words.
 */
public final class ErrorText {

  private static final Pattern NATIVE_CALL = Pattern.compile("^\\w+\\(\\.\\.\\) failed(?: with error\\(-?\\d+\\))?: ");

  private ErrorText() {}

  /**
   * A failed remote call as an operator reads it in a verdict's reason: "no answer within the deadline" for our
   * deadlines, else the first line of the message (PostgreSQL's errors carry a lot of context after it) without a
   * native-call prefix, or the exception's name when it has no message.
   */
  public static String describe(Throwable t) {
    String message = t.getMessage();
    // Vert.x's request timeout is no TimeoutException: "The timeout period of 1000ms has been exceeded while …".
    if (t instanceof java.util.concurrent.TimeoutException
        || (message != null && message.startsWith("The timeout period of"))) {
      return "no answer within the deadline";
    }
    if (message == null || message.isBlank()) {
      return t.getClass().getSimpleName();
    }
    int newline = message.indexOf('\n');
    return withoutNativeCall(newline < 0 ? message : message.substring(0, newline));
  }

  /** {@code message} without a leading native-call prefix. */
  public static String withoutNativeCall(String message) {
    return NATIVE_CALL.matcher(message).replaceFirst("");
  }
}
