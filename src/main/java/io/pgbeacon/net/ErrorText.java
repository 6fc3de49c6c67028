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

  /** {@code message} without a leading native-call prefix. */
  public static String withoutNativeCall(String message) {
    return NATIVE_CALL.matcher(message).replaceFirst("");
  }
}
