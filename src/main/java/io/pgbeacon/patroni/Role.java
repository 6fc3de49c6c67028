package io.pgbeacon.patroni;

import java.util.Locale;

/** Patroni's {@code role}, with 3.x's {@code master} and 4.x's {@code primary} as one value. */
public enum Role {
  PRIMARY,
  REPLICA,
  STANDBY_LEADER,
  /** Anything else Patroni reports while PostgreSQL cannot be queried: demoted, promoted, uninitialized, … */
  OTHER;

  static Role parse(String text) {
    return switch (text.toLowerCase(Locale.ROOT)) {
      case "primary", "master" -> PRIMARY;
      case "replica" -> REPLICA;
      case "standby_leader" -> STANDBY_LEADER;
      default -> OTHER;
    };
  }
}
