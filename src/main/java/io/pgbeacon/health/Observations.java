package io.pgbeacon.health;

import io.pgbeacon.patroni.PatroniReading;
import io.pgbeacon.pgbouncer.PgBouncerStatus;
import java.util.Optional;

/**
 * The latest of each observation — Patroni's reading, PgBouncer's status, each with the time its read began — and
 * the verdict they give with what the DCS watch knows. Pure (no I/O; the clock is injected), used on the monitor's
 * event loop.
 *
 * <p>A verdict is as old as the older of the two observations it rests on. The node's name, once Patroni gave it,
 * is kept for the readings that name no one (Patroni unreachable), so Consul is still told; a renamed member or a
 * lookup that now finds another name wins. The cluster's scope is kept the same way: the Consul service IDs and the
 * metrics' labels carry it.
 */
public final class Observations {

  private HealthPolicy policy;
  private final TimeSource time;
  private PatroniReading reading;
  private long readingAt;
  private PgBouncerStatus bouncer;
  private long bouncerAt;
  private final boolean probesPgBouncer;
  private boolean bouncerProbed;
  private Optional<String> learnedNode = Optional.empty();
  private Optional<String> learnedScope = Optional.empty();
  private StreamHistory streams = StreamHistory.NONE;
  private volatile Latest latest = new Latest(Optional.empty(), Optional.empty());

  /**
   * What the last read of each said, how long it took and when it ended: for {@code /status}. Immutable; read from
   * any thread.
   */
  public record Latest(Optional<Read> patroni, Optional<Read> pgbouncer) {}

  /** One read: its outcome in words, its duration, when it ended (wall clock). */
  public record Read(String outcome, java.time.Duration took, java.time.Instant at) {}

  /** @param probesPgBouncer false when no PgBouncer is configured: its status is then not-configured, for good */
  public Observations(HealthPolicy policy, boolean probesPgBouncer, TimeSource time) {
    this.policy = policy;
    this.time = time;
    this.probesPgBouncer = probesPgBouncer;
    this.bouncer = probesPgBouncer ? PgBouncerStatus.failed("not probed yet") : PgBouncerStatus.NOT_CONFIGURED;
    this.bouncerAt = time.nanos();
  }

  /** Decides with {@code next} from the next verdict on (a reload: new lag thresholds). */
  public void policy(HealthPolicy next) {
    this.policy = next;
  }

  public void patroni(PatroniReading reading, long startedAt) {
    this.reading = reading;
    this.readingAt = startedAt;
    this.streams = streams.after(reading, startedAt);
    String outcome = reading instanceof PatroniReading.Observed o
        ? o.status().roleName() + ", " + o.status().state()
            + (o.status().holdsLeaderLock() ? ", holds the leader lock" : "")
            + o.clusterProblem().map(p -> "; " + p).orElse("")
        : ((PatroniReading.Unavailable) reading).reason();
    latest = new Latest(Optional.of(read(outcome, startedAt)), latest.pgbouncer());
  }

  public void pgbouncer(PgBouncerStatus status, long startedAt) {
    this.bouncer = status;
    this.bouncerAt = startedAt;
    this.bouncerProbed = true;
    latest = new Latest(latest.patroni(), Optional.of(read(status.detail(), startedAt)));
  }

  private Read read(String outcome, long startedAt) {
    return new Read(outcome, java.time.Duration.ofNanos(time.nanos() - startedAt), time.wall());
  }

  /** The last reads, for {@code /status}; any thread. */
  public Latest latest() {
    return latest;
  }

  /** Whether Patroni has been read yet: nothing is decided before. */
  public boolean any() {
    return reading != null;
  }

  public PatroniReading reading() {
    return reading;
  }

  /** When the latest Patroni poll began: the grant barrier compares it with the DCS events. */
  public long readingAt() {
    return readingAt;
  }

  /** This node's name: configured, else the last name Patroni gave. */
  public Optional<String> self() {
    return policy.node().or(() -> learnedNode);
  }

  /** The verdict of the latest observations and {@code dcs}; remembers the node's name it finds. */
  public NodeHealth verdict(DcsLeader dcs) {
    NodeHealth health = evaluate(reading, dcs).orScope(learnedScope);
    learnedNode = health.node().or(() -> learnedNode);
    learnedScope = health.scope();
    return health;
  }

  /**
   * True when only a cluster view reused from an earlier poll keeps the primary view down (a promotion: the view
   * read before it names the old leader): it is worth reading {@code /cluster} again at once.
   */
  public boolean waitsOnReusedClusterView(NodeHealth verdict, DcsLeader dcs) {
    return reading instanceof PatroniReading.Observed o && o.clusterReused() && o.cluster().isPresent()
        && verdict.primary().status() == Status.CRITICAL
        && evaluate(o.withoutCluster(), dcs).primary().status() != Status.CRITICAL;
  }

  private NodeHealth evaluate(PatroniReading r, DcsLeader dcs) {
    long observedAt = probesPgBouncer && bouncerProbed && bouncerAt - readingAt < 0 ? bouncerAt : readingAt;
    NodeHealth health = HealthEvaluator.evaluate(r, bouncer, dcs, streams, policy, observedAt, time);
    return health.node().isPresent() || learnedNode.isEmpty() ? health
        : HealthEvaluator.evaluate(r, bouncer, dcs, streams, policy.orNode(learnedNode), observedAt, time);
  }
}
