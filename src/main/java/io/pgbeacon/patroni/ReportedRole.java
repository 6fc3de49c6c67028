package io.pgbeacon.patroni;

import java.util.Objects;

/**
 * A role as Patroni reported it: the folded {@link Role} the verdict decides on, and Patroni's own word for it
 * ({@code master} on 3.x, {@code primary} on 4.x, {@code replica}, {@code standby_leader}, …), which Consul tags
 * and meta carry so that they read as Patroni's do.
 */
public record ReportedRole(Role role, String word) {

  public ReportedRole {
    Objects.requireNonNull(role, "role");
    Objects.requireNonNull(word, "word");
  }

  public static ReportedRole of(String word) {
    return new ReportedRole(Role.parse(word), word);
  }
}
