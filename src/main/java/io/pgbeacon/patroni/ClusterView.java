package io.pgbeacon.patroni;

import java.util.List;
import java.util.Optional;
import java.util.OptionalLong;

/**
 * Patroni's view of the whole cluster as stored in the DCS ({@code GET /cluster}): who holds the leader key,
 * and how far each replica lags behind the leader's last reported position.
 */
public record ClusterView(List<Member> members, boolean paused, Optional<String> scope) {

  public ClusterView {
    members = List.copyOf(members);
  }

  /** One member; {@code lag} is empty when Patroni reports it as {@code unknown} or omits it. */
  public record Member(String name, String role, String state, String host, int port, String apiUrl,
      OptionalLong lag) {

    public boolean leader() {
      return "leader".equals(role) || "standby_leader".equals(role);
    }

    public boolean sync() {
      return "sync_standby".equals(role);
    }

    /** The port of this member's REST API, from {@code api_url}; 0 if unknown. */
    public int apiPort() {
      try {
        return apiUrl == null ? 0 : java.net.URI.create(apiUrl).getPort();
      } catch (IllegalArgumentException e) {
        return 0;
      }
    }
  }

  /** The member holding the leader key, if any. */
  public Optional<Member> leader() {
    return members.stream().filter(Member::leader).findFirst();
  }

  public Optional<Member> member(String name) {
    return members.stream().filter(m -> m.name().equals(name)).findFirst();
  }

  /** The member whose REST API is at {@code host:port}: how a 3.0/3.1 Patroni, which does not say its name, is found. */
  public Optional<Member> memberAt(String host, int port) {
    return members.stream().filter(m -> m.apiPort() == port && m.apiUrl().contains("//" + host + ":")).findFirst();
  }
}
