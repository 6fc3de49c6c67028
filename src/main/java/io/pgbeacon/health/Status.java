package io.pgbeacon.health;

import java.util.Locale;

/** A check's status, in Consul's vocabulary. */
public enum Status {
  PASSING,
  WARNING,
  CRITICAL;

  public String consul() {
    return name().toLowerCase(Locale.ROOT);
  }

  /** Exit code of {@code pgbeacon check}, as Consul script checks and keepalived expect: 0, 1, 2. */
  public int exitCode() {
    return ordinal();
  }
}
