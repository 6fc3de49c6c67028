package io.pgbeacon.health;

import java.util.Locale;

/** A check's status, in Consul's vocabulary. */
public enum Status {
  PASSING(0),
  WARNING(1),
  CRITICAL(2);

  private final int exitCode;

  Status(int exitCode) {
    this.exitCode = exitCode;
  }

  public String consul() {
    return name().toLowerCase(Locale.ROOT);
  }

  /** Passing is better than warning, which is better than critical. */
  public boolean betterThan(Status other) {
    return exitCode < other.exitCode;
  }

  /** The status Consul names {@code text} ("passing", "warning", "critical"), if it is one of these. */
  public static java.util.Optional<Status> fromConsul(String text) {
    for (Status s : values()) {
      if (s.consul().equals(text)) {
        return java.util.Optional.of(s);
      }
    }
    return java.util.Optional.empty();
  }

  /** Exit code of {@code pgbeacon check}, as Consul script checks and keepalived expect: 0, 1, 2. */
  public int exitCode() {
    return exitCode;
  }
}
