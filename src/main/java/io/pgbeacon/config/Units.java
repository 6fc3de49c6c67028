package io.pgbeacon.config;

import java.time.Duration;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** Parses the human units used in the config file: durations ({@code 500ms}, {@code 10s}, {@code 1m}) and sizes. */
public final class Units {

  private static final Pattern DURATION = Pattern.compile("(\\d+)\\s*(ms|s|m|h)");
  // Patroni's units (case-sensitive, 1024-based), so that max-lag means what Patroni's ?lag= means.
  private static final Pattern SIZE = Pattern.compile("(\\d+)\\s*(B|kB|MB|GB|TB)?");

  /** The longest duration accepted anywhere: {@code Integer.MAX_VALUE} milliseconds, about 24.8 days. */
  static final Duration MAX_DURATION = Duration.ofMillis(Integer.MAX_VALUE);

  private Units() {}

  /** {@code "500ms"}, {@code "10s"}, {@code "1m"}, {@code "2h"}; throws with a readable message otherwise. */
  public static Duration parseDuration(String text) {
    Matcher m = DURATION.matcher(text.trim());
    if (!m.matches()) {
      throw new IllegalArgumentException("not a duration (use e.g. 500ms, 10s, 1m)");
    }
    Duration d;
    try {
      long n = Long.parseLong(m.group(1));
      d = switch (m.group(2)) {
        case "ms" -> Duration.ofMillis(n);
        case "s" -> Duration.ofSeconds(n);
        case "m" -> Duration.ofMinutes(n);
        default -> Duration.ofHours(n);
      };
    } catch (ArithmeticException e) { // (NumberFormatException, too many digits, is an IllegalArgumentException)
      throw tooLong();
    }
    if (d.compareTo(MAX_DURATION) > 0) {
      throw tooLong();
    }
    return d;
  }

  // Timeouts reach HTTP and socket APIs as int milliseconds: anything longer would wrap around to "no timeout".
  private static IllegalArgumentException tooLong() {
    return new IllegalArgumentException("too long (at most 24 days)");
  }

  /** Bytes from {@code "16MB"}, {@code "1024kB"}, {@code "1048576"}; units as Patroni's ({@code kB MB GB TB}, ×1024). */
  public static long parseSize(String text) {
    Matcher m = SIZE.matcher(text.trim());
    if (!m.matches()) {
      throw new IllegalArgumentException("not a size (use e.g. 16MB, 512kB or a number of bytes)");
    }
    long n = Long.parseLong(m.group(1));
    String unit = m.group(2) == null ? "B" : m.group(2);
    int shift = switch (unit) {
      case "B" -> 0;
      case "kB" -> 10;
      case "MB" -> 20;
      case "GB" -> 30;
      default -> 40;
    };
    if (Long.numberOfLeadingZeros(n) <= shift) {
      throw new IllegalArgumentException("size too large");
    }
    return n << shift;
  }

  /** Consul's duration syntax: whole seconds when exact ({@code "10s"}), else milliseconds. */
  public static String consulDuration(Duration d) {
    return d.toMillis() % 1000 == 0 ? d.toSeconds() + "s" : d.toMillis() + "ms";
  }

  /** A short human rendering of a duration: {@code 500ms}, {@code 3.5s}, {@code 10s}. */
  public static String formatDuration(Duration d) {
    long millis = d.toMillis();
    if (millis < 1000) {
      return millis + "ms";
    }
    return millis % 1000 == 0 ? millis / 1000 + "s" : String.format(Locale.ROOT, "%.1fs", millis / 1000.0);
  }

  /** A short human rendering of a byte count, e.g. {@code 16MB}, {@code 3kB}, {@code 12B}. */
  public static String formatSize(long bytes) {
    String[] units = {"B", "kB", "MB", "GB", "TB"};
    int i = 0;
    double v = bytes;
    while (Math.abs(v) >= 1024 && i < units.length - 1) {
      v /= 1024;
      i++;
    }
    return (v == Math.rint(v) ? String.valueOf((long) v) : String.format(Locale.ROOT, "%.1f", v)) + units[i];
  }
}
