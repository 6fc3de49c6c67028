package io.pgbeacon.support;

import io.pgbeacon.health.NodeHealth;
import io.pgbeacon.health.Status;
import io.pgbeacon.health.Verdict;
import io.pgbeacon.patroni.ReportedRole;
import java.util.Optional;
import java.util.OptionalLong;

/**
 * Test verdicts: {@code Healths.primary("node1").build()} is a healthy leader of scope "demo" on Patroni 4.1.5;
 * each setter changes one fact. Verdicts: {@link #pass}, {@link #warn}, {@link #fail}, {@link #park} (wrong role),
 * {@link #behind} (past max-lag).
 */
public final class Healths {

  private Optional<String> node;
  private Optional<String> scope = Optional.of("demo");
  private Optional<ReportedRole> role;
  private OptionalLong timeline = OptionalLong.of(3);
  private OptionalLong lag = OptionalLong.empty();
  private boolean sync;
  private boolean quorum;
  private Optional<String> version = Optional.of("4.1.5");
  private Optional<String> host = Optional.empty();
  private Verdict primary;
  private Verdict replica;
  private long observedAt = System.nanoTime();

  private Healths(String node, String role, Verdict primary, Verdict replica) {
    this.node = Optional.of(node);
    this.role = Optional.of(ReportedRole.of(role));
    this.primary = primary;
    this.replica = replica;
  }

  /** A healthy leader: primary passing "primary, timeline 3", replica view wrong role. */
  public static Healths primary(String node) {
    return new Healths(node, "primary", pass("primary, timeline 3"), park("primary"));
  }

  /** A healthy replica with lag 0: replica passing, primary view wrong role. */
  public static Healths replica(String node) {
    return new Healths(node, "replica", park("replica"), pass("replica, lag 0B")).lag(0);
  }

  public Healths node(Optional<String> node) {
    this.node = node;
    return this;
  }

  public Healths scope(String scope) {
    this.scope = Optional.of(scope);
    return this;
  }

  /** Patroni's word for the role ({@code master}, {@code primary}, {@code replica}, …). */
  public Healths role(String role) {
    this.role = Optional.of(ReportedRole.of(role));
    return this;
  }

  public Healths timeline(long timeline) {
    this.timeline = OptionalLong.of(timeline);
    return this;
  }

  /** Lag in bytes; negative: unknown. */
  public Healths lag(long bytes) {
    this.lag = bytes < 0 ? OptionalLong.empty() : OptionalLong.of(bytes);
    return this;
  }

  public Healths sync(boolean sync) {
    this.sync = sync;
    return this;
  }

  public Healths quorum(boolean quorum) {
    this.quorum = quorum;
    return this;
  }

  public Healths version(String version) {
    this.version = Optional.of(version);
    return this;
  }

  public Healths host(String host) {
    this.host = Optional.of(host);
    return this;
  }

  public Healths primaryView(Verdict verdict) {
    this.primary = verdict;
    return this;
  }

  public Healths replicaView(Verdict verdict) {
    this.replica = verdict;
    return this;
  }

  public Healths observedAt(long nanos) {
    this.observedAt = nanos;
    return this;
  }

  public NodeHealth build() {
    return new NodeHealth(node, scope, role, timeline, lag, sync, quorum, version, host, primary, replica,
        observedAt);
  }

  public static Verdict pass(String reason) {
    return Verdict.passing(reason);
  }

  public static Verdict warn(String reason) {
    return Verdict.warning(reason);
  }

  public static Verdict fail(String reason) {
    return Verdict.critical(reason);
  }

  public static Verdict park(String reason) {
    return Verdict.wrongRole(reason);
  }

  public static Verdict behind(String reason) {
    return Verdict.pastMaxLag(reason);
  }
}
