package io.pgbeacon.health;

import static io.pgbeacon.health.Status.CRITICAL;
import static io.pgbeacon.health.Status.PASSING;
import static io.pgbeacon.health.Status.WARNING;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pgbeacon.config.Config;
import io.pgbeacon.patroni.ClusterView;
import io.pgbeacon.patroni.FailoverRequest;
import io.pgbeacon.patroni.PatroniParser;
import io.pgbeacon.patroni.ClusterView.Member;
import io.pgbeacon.patroni.PatroniReading;
import io.pgbeacon.patroni.PatroniStatus;
import io.pgbeacon.patroni.Role;
import io.pgbeacon.pgbouncer.PgBouncerStatus;
import io.pgbeacon.support.FakeTime;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** The verdict's truth table: each row is a situation an operator would recognise. */
class HealthEvaluatorTest {

  private static final long MB = 1 << 20;
  private static final Duration GRACE = Duration.ofSeconds(10);
  private static final HealthPolicy POLICY =
      new HealthPolicy(Optional.of("node1"), "127.0.0.1", 8008, 16 * MB, 12 * MB, true, true, GRACE);
  private static final PgBouncerStatus BOUNCER_OK = PgBouncerStatus.ok();
  private static final PgBouncerStatus BOUNCER_DOWN = PgBouncerStatus.failed("Connection refused");

  /**
   * Expected outcome of one view: passing, warning, failing, or one of the two kinds of critical of an otherwise
   * healthy node: the wrong role (parked), or a replica past max-lag (drained).
   */
  record Expect(Verdict.Kind kind) {
    static final Expect PASS = new Expect(Verdict.Kind.PASSING);
    static final Expect WARN = new Expect(Verdict.Kind.WARNING);
    static final Expect FAIL = new Expect(Verdict.Kind.FAILING);
    static final Expect PARK = new Expect(Verdict.Kind.WRONG_ROLE);
    static final Expect BEHIND = new Expect(Verdict.Kind.PAST_MAX_LAG);

    static Expect of(Verdict v) {
      return new Expect(v.kind());
    }
  }

  static Stream<Arguments> situations() {
    return Stream.of(
        row("healthy leader", leader(), BOUNCER_OK, POLICY, Expect.PASS, Expect.PARK),
        row("healthy streaming replica", replica(0), BOUNCER_OK, POLICY, Expect.PARK, Expect.PASS),
        row("Patroni unreachable", new PatroniReading.Unavailable("Patroni unreachable: Connection refused"),
            BOUNCER_OK, POLICY, Expect.FAIL, Expect.FAIL),
        row("primary that lost the leader lock (demoting)",
            observed(status("running", "primary", false), cluster("node2", 0)), BOUNCER_OK, POLICY,
            Expect.FAIL, Expect.PARK),
        row("primary while the DCS names another leader",
            observed(status("running", "primary", true), cluster("node2", 0)), BOUNCER_OK, POLICY,
            Expect.FAIL, Expect.PARK),
        row("leader with PgBouncer down (required)", leader(), BOUNCER_DOWN, POLICY, Expect.FAIL, Expect.PARK),
        row("leader with PgBouncer down (not required)", leader(), BOUNCER_DOWN, notRequired(), Expect.PASS,
            Expect.PARK),
        row("leader without PgBouncer configured", leader(), PgBouncerStatus.NOT_CONFIGURED, notRequired(),
            Expect.PASS, Expect.PARK),
        row("replica that took the lock, still promoting",
            observed(status("running", "replica", true), cluster("node1", 0)), BOUNCER_OK, POLICY,
            Expect.FAIL, Expect.FAIL),
        row("replica lagging past max-lag", replica(17 * MB), BOUNCER_OK, POLICY, Expect.PARK, Expect.BEHIND),
        row("replica lagging past max-lag with PgBouncer down", replica(17 * MB), BOUNCER_DOWN, POLICY,
            Expect.PARK, Expect.FAIL),
        row("replica lagging near max-lag", replica(13 * MB), BOUNCER_OK, POLICY, Expect.PARK, Expect.WARN),
        row("replica at exactly max-lag", replica(16 * MB), BOUNCER_OK, POLICY, Expect.PARK, Expect.WARN),
        row("replica whose lag is unknown (DCS view unavailable)",
            new PatroniReading.Observed(status("running", "replica", false), Optional.empty(),
                Optional.of("cluster view unavailable: HTTP 503")), BOUNCER_OK, POLICY, Expect.PARK, Expect.WARN),
        row("replica tagged noloadbalance",
            observed(status("running", "replica", false, Map.of("noloadbalance", "true")), cluster("node2", 0)),
            BOUNCER_OK, POLICY, Expect.PARK, Expect.PARK),
        row("replica with PgBouncer down", replica(0), BOUNCER_DOWN, POLICY, Expect.PARK, Expect.FAIL),
        row("old primary stopping PostgreSQL during a switchover",
            observed(status("stopping", "master", true), cluster("node1", 0)), BOUNCER_OK, POLICY,
            Expect.FAIL, Expect.FAIL),
        row("replica whose PostgreSQL crashed",
            observed(status("crashed", "replica", false), cluster("node2", 0)), BOUNCER_OK, POLICY,
            Expect.FAIL, Expect.FAIL),
        row("standby leader of a standby cluster, streaming from its source",
            observed(status("running", "standby_leader", false), standbyCluster()), BOUNCER_OK, POLICY,
            Expect.PARK, Expect.PASS),
        row("standby leader not streaming from its source",
            observed(status("running", "standby_leader", false, Map.of(), "4.1.5", Optional.empty()),
                standbyCluster()), BOUNCER_OK, POLICY, Expect.PARK, Expect.FAIL),
        row("standby leader with PgBouncer down", observed(status("running", "standby_leader", false),
            standbyCluster()), BOUNCER_DOWN, POLICY, Expect.PARK, Expect.FAIL),
        row("replica with no WAL receiver, not seen streaming since PostgreSQL started",
            notStreaming(Optional.empty()), BOUNCER_OK, POLICY, Expect.PARK, Expect.FAIL),
        row("replica in archive recovery (restore_command, no streaming)",
            notStreaming(Optional.of("in archive recovery")), BOUNCER_OK, POLICY, Expect.PARK, Expect.FAIL),
        row("replica not streaming, require-streaming off", notStreaming(Optional.empty()), BOUNCER_OK,
            streamingNotRequired(), Expect.PARK, Expect.PASS),
        row("Patroni 3.0.2 replica: streaming not reported before 3.0.4, lag rules only",
            observed(status("running", "replica", false, Map.of(), "3.0.2", Optional.empty()), cluster("node2", 0)),
            BOUNCER_OK, POLICY, Expect.PARK, Expect.PASS),
        row("replica on PostgreSQL 9.5 (no pg_stat_wal_receiver): streaming not reported, lag rules only",
            observed(new PatroniStatus("running", Role.REPLICA, "replica", false, OptionalLong.of(3),
                OptionalLong.of(1000), false, false, false, false, Map.of(), Optional.of("demo"), Optional.of("node1"),
                Optional.of("4.1.5"), OptionalLong.of(1000), Optional.empty(), STARTED, false,
                OptionalLong.of(90524)), cluster("node2", 0)), BOUNCER_OK, POLICY, Expect.PARK, Expect.PASS),
        row("replica not streaming and past max-lag", observed(status("running", "replica", false, Map.of(),
            "4.1.5", Optional.empty()), cluster("node2", 17 * MB)), BOUNCER_OK, POLICY, Expect.PARK, Expect.FAIL),
        row("uninitialized node", observed(status("stopped", "uninitialized", false), cluster("node2", 0)),
            BOUNCER_OK, POLICY, Expect.FAIL, Expect.FAIL),
        row("demoted node whose PostgreSQL is running", observed(status("running", "demoted", false),
            cluster("node2", 0)), BOUNCER_OK, POLICY, Expect.FAIL, Expect.FAIL),
        row("leader whose DCS view is unavailable (lock still held)",
            new PatroniReading.Observed(status("running", "master", true), Optional.empty(),
                Optional.of("cluster view unavailable: HTTP 503")), BOUNCER_OK, POLICY, Expect.PASS, Expect.PARK),
        row("paused leader without a DCS view, its leader key not read recently",
            new PatroniReading.Observed(pausedLeader(), Optional.empty(),
                Optional.of("cluster view unavailable: HTTP 503")), BOUNCER_OK, POLICY, Expect.FAIL, Expect.PARK),
        row("paused leader with its DCS view", observed(pausedLeader(), cluster("node1", 0)), BOUNCER_OK, POLICY,
            Expect.PASS, Expect.PARK),
        row("leader of a cluster with no leader key",
            observed(status("running", "primary", true), new ClusterView(List.of(member("node1", "replica", 0)),
                false, Optional.empty())), BOUNCER_OK, POLICY, Expect.FAIL, Expect.PARK));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("situations")
  void decides(String situation, PatroniReading reading, PgBouncerStatus bouncer, HealthPolicy policy,
      Expect primary, Expect replica) {
    NodeHealth health = eval(reading, bouncer, policy);
    assertEquals(primary, Expect.of(health.primary()), "primary view: " + health.primary().reason());
    assertEquals(replica, Expect.of(health.replica()), "replica view: " + health.replica().reason());
    assertTrue(!health.primary().reason().isBlank() && !health.replica().reason().isBlank(), "reasons given");
  }

  /** The views read from the decided two: {@code sync}, {@code async}, {@code read-only}, {@code standby-leader}. */
  static Stream<Arguments> derivedViews() {
    PatroniStatus syncStandby = new PatroniStatus("running", Role.REPLICA, "replica", false, OptionalLong.of(3),
        OptionalLong.of(1000), false, false, false, true, Map.of(), Optional.of("demo"), Optional.of("node1"),
        Optional.of("4.1.5"), OptionalLong.of(1000), Optional.of("streaming"), STARTED, false, PG15);
    PatroniStatus quorumStandby = new PatroniStatus("running", Role.REPLICA, "replica", false, OptionalLong.of(3),
        OptionalLong.of(1000), false, false, false, false, Map.of(), Optional.of("demo"), Optional.of("node1"),
        Optional.of("4.1.5"), OptionalLong.of(1000), Optional.of("streaming"), STARTED, true, PG15);
    return Stream.of(
        Arguments.of("healthy leader", leader(), BOUNCER_OK,
            List.of(Expect.PARK, Expect.PARK, Expect.PASS, Expect.PARK)),
        Arguments.of("synchronous standby", observed(syncStandby, cluster("node2", 0)), BOUNCER_OK,
            List.of(Expect.PASS, Expect.PARK, Expect.PASS, Expect.PARK)),
        Arguments.of("synchronous standby in a cluster view read earlier, no longer in /patroni: async now",
            observed(status("running", "replica", false), new ClusterView(List.of(member("node1", "sync_standby", 0),
                member("node2", "leader", 0)), false, Optional.of("demo"))), BOUNCER_OK,
            List.of(Expect.PARK, Expect.PASS, Expect.PASS, Expect.PARK)),
        Arguments.of("quorum standby (synchronous_mode: quorum): neither sync nor async, as Patroni's endpoints",
            observed(quorumStandby, cluster("node2", 0)), BOUNCER_OK,
            List.of(Expect.PARK, Expect.PARK, Expect.PASS, Expect.PARK)),
        Arguments.of("standby leader replicating from the source's archive (restore_command, no host)",
            observed(status("running", "standby_leader", false, Map.of(), "4.1.5",
                Optional.of("in archive recovery")), standbyCluster()), BOUNCER_OK,
            List.of(Expect.PARK, Expect.PASS, Expect.PASS, Expect.PASS)),
        Arguments.of("standby leader the DCS does not name as leader", observed(status("running", "standby_leader",
            false), cluster("node2", 0)), BOUNCER_OK, List.of(Expect.FAIL, Expect.FAIL, Expect.FAIL, Expect.FAIL)),
        Arguments.of("asynchronous replica", replica(0), BOUNCER_OK,
            List.of(Expect.PARK, Expect.PASS, Expect.PASS, Expect.PARK)),
        Arguments.of("asynchronous replica near max-lag", replica(13 * MB), BOUNCER_OK,
            List.of(Expect.PARK, Expect.WARN, Expect.WARN, Expect.PARK)),
        Arguments.of("asynchronous replica past max-lag", replica(17 * MB), BOUNCER_OK,
            List.of(Expect.PARK, Expect.BEHIND, Expect.BEHIND, Expect.PARK)),
        Arguments.of("replica with PgBouncer down", replica(0), BOUNCER_DOWN,
            List.of(Expect.FAIL, Expect.FAIL, Expect.FAIL, Expect.FAIL)),
        Arguments.of("replica not streaming", notStreaming(Optional.empty()), BOUNCER_OK,
            List.of(Expect.FAIL, Expect.FAIL, Expect.FAIL, Expect.FAIL)),
        Arguments.of("standby leader", observed(status("running", "standby_leader", false), standbyCluster()),
            BOUNCER_OK, List.of(Expect.PARK, Expect.PASS, Expect.PASS, Expect.PASS)),
        Arguments.of("primary that lost the leader lock (demoting)",
            observed(status("running", "primary", false), cluster("node2", 0)), BOUNCER_OK,
            List.of(Expect.PARK, Expect.PARK, Expect.FAIL, Expect.PARK)),
        Arguments.of("Patroni unreachable", new PatroniReading.Unavailable("Patroni unreachable: timeout"),
            BOUNCER_OK, List.of(Expect.FAIL, Expect.FAIL, Expect.FAIL, Expect.FAIL)));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("derivedViews")
  void derivesTheOtherViewsFromTheDecidedTwo(String situation, PatroniReading reading, PgBouncerStatus bouncer,
      List<Expect> syncAsyncReadOnlyStandbyLeader) {
    NodeHealth health = eval(reading, bouncer, POLICY);
    List<Config.View> views = List.of(Config.View.SYNC, Config.View.ASYNC, Config.View.READ_ONLY,
        Config.View.STANDBY_LEADER);
    List<Expect> got = views.stream().map(v -> Expect.of(health.view(v))).toList();
    assertEquals(syncAsyncReadOnlyStandbyLeader, got, views.stream().map(v -> v.key() + ": "
        + health.view(v).reason()).toList().toString());
    assertFirstDuty(health);
  }

  /** Over every row of both tables: what no view may ever say, whatever the situation. */
  @ParameterizedTest(name = "{0}")
  @MethodSource("situations")
  void noViewButPrimaryAndReadOnlyPassesAPrimaryAndNoneButPrimaryPassesAnythingElse(String situation,
      PatroniReading reading, PgBouncerStatus bouncer, HealthPolicy policy, Expect primary, Expect replica) {
    assertFirstDuty(eval(reading, bouncer, policy));
  }

  private static void assertFirstDuty(NodeHealth health) {
    Role role = health.role().map(r -> r.role()).orElse(Role.OTHER);
    boolean leaderRole = role == Role.PRIMARY;
    if (health.primary().status() != CRITICAL) {
      assertEquals(Role.PRIMARY, role, "only a primary passes the primary view: " + health.primary().reason());
    }
    for (Config.View view : Config.View.values()) {
      Verdict v = health.view(view);
      if (leaderRole && view != Config.View.PRIMARY && view != Config.View.READ_ONLY) {
        assertEquals(CRITICAL, v.status(), view.key() + " on a primary: " + v.reason());
      }
      if (!leaderRole && view != Config.View.REPLICA) {
        // Read from the replica view: never better than it.
        assertTrue(!v.status().betterThan(health.replica().status()), view.key() + " better than replica: "
            + v.reason() + " / " + health.replica().reason());
      }
    }
    if (role == Role.STANDBY_LEADER) {
      assertEquals(CRITICAL, health.primary().status(), "a standby leader is never primary");
      assertEquals(CRITICAL, health.view(Config.View.SYNC).status(), "nor synchronous");
    }
  }

  @Test
  void aReplicaThatStopsStreamingStaysWithinTheGraceThenLeaves() {
    PatroniReading streaming = replica(0);
    PatroniReading broken = notStreaming(Optional.empty());
    StreamHistory history = StreamHistory.NONE.after(streaming, TIME.nanos());
    assertEquals(PASSING, evalStreams(streaming, history).replica().status());

    TIME.advance(Duration.ofSeconds(4));
    history = history.after(broken, TIME.nanos());
    NodeHealth inGrace = evalStreams(broken, history);
    assertEquals(WARNING, inGrace.replica().status());
    assertEquals("replica, lag 0B, not streaming (no replication_state) for 4s, within streaming-grace 10s",
        inGrace.replica().reason());

    assertEquals(WARNING, inGrace.view(Config.View.ASYNC).status(), "the derived views follow");

    // One answer without postmaster_start_time (Patroni could not query PostgreSQL) is not a restart.
    PatroniReading unqueried = observed(new PatroniStatus("running", Role.REPLICA, "replica", false,
        OptionalLong.empty(), OptionalLong.empty(), false, false, false, false, Map.of(), Optional.of("demo"),
        Optional.of("node1"), Optional.of("4.1.5"), OptionalLong.empty(), Optional.empty(), Optional.empty(), false,
        OptionalLong.empty()), cluster("node2", 0));
    history = history.after(unqueried, TIME.nanos());
    TIME.advance(Duration.ofSeconds(6)); // exactly the grace: still in
    history = history.after(broken, TIME.nanos());
    assertEquals(WARNING, evalStreams(broken, history).replica().status(), "10 s: within the grace");

    TIME.advance(Duration.ofSeconds(1));
    history = history.after(broken, TIME.nanos());
    NodeHealth out = evalStreams(broken, history);
    assertEquals(Verdict.Kind.FAILING, out.replica().kind());
    assertEquals("not streaming (no replication_state) for 11s, past streaming-grace 10s", out.replica().reason());
    assertTrue(AgentReplyLine.of(out).startsWith("down #not streaming"), AgentReplyLine.of(out));

    history = history.after(streaming, TIME.nanos());
    assertEquals(PASSING, evalStreams(streaming, history).replica().status(), "back once it streams");

    // PostgreSQL restarted: a replica that has not streamed since gets no grace.
    PatroniReading restarted = observed(new PatroniStatus("running", Role.REPLICA, "replica", false,
        OptionalLong.of(3), OptionalLong.of(1000), false, false, false, false, Map.of(), Optional.of("demo"),
        Optional.of("node1"), Optional.of("4.1.5"), OptionalLong.of(1000), Optional.empty(),
        Optional.of("2026-12-02 07:05:00.000000+00:00"), false, PG15), cluster("node2", 0));
    TIME.advance(Duration.ofSeconds(1));
    history = history.after(restarted, TIME.nanos());
    NodeHealth fresh = evalStreams(restarted, history);
    assertEquals(Verdict.Kind.FAILING, fresh.replica().kind());
    assertEquals("not streaming (no replication_state), not seen streaming since this PostgreSQL or pgbeacon started",
        fresh.replica().reason());
  }

  /**
   * Recorded Patroni 4.1.5 answers of one lab replica (node2, one PostgreSQL start): the synchronous standby with
   * synchronous_mode on, then with its replication connection broken (its role NOLOGIN, its walsender terminated).
   */
  @Test
  void recordedSynchronousStandbyPassesSyncThenLeavesEveryReplicaViewOnceItStopsStreaming() throws Exception {
    HealthPolicy node2 = new HealthPolicy(Optional.of("node2"), "127.0.0.12", 19421, 16 * MB, 12 * MB, true, true,
        GRACE);
    PatroniReading sync = recorded("replica-sync-standby.json", "cluster-synchronous-mode.json");
    PatroniReading broken = recorded("replica-not-streaming.json", "cluster-replica-not-streaming.json");
    StreamHistory history = StreamHistory.NONE.after(sync, TIME.nanos());
    NodeHealth before = HealthEvaluator.evaluate(sync, BOUNCER_OK, DcsLeader.UNWATCHED, history, node2, TIME.nanos(),
        TIME);
    assertEquals("replica, lag 0B", before.view(Config.View.SYNC).reason());
    assertEquals(Verdict.Kind.WRONG_ROLE, before.view(Config.View.ASYNC).kind());
    assertEquals("synchronous standby", before.view(Config.View.ASYNC).reason());
    assertEquals(PASSING, before.view(Config.View.READ_ONLY).status());

    TIME.advance(Duration.ofSeconds(4));
    history = history.after(broken, TIME.nanos());
    NodeHealth inGrace = HealthEvaluator.evaluate(broken, BOUNCER_OK, DcsLeader.UNWATCHED, history, node2,
        TIME.nanos(), TIME);
    assertEquals(WARNING, inGrace.replica().status());
    assertTrue(inGrace.replica().reason().endsWith(", not streaming (no replication_state) for 4s, within"
        + " streaming-grace 10s"), inGrace.replica().reason());

    TIME.advance(Duration.ofSeconds(7));
    history = history.after(broken, TIME.nanos());
    NodeHealth out = HealthEvaluator.evaluate(broken, BOUNCER_OK, DcsLeader.UNWATCHED, history, node2, TIME.nanos(),
        TIME);
    for (Config.View view : List.of(Config.View.REPLICA, Config.View.ASYNC, Config.View.SYNC,
        Config.View.READ_ONLY)) {
      assertEquals("not streaming (no replication_state) for 11s, past streaming-grace 10s", out.view(view).reason(),
          view.key());
      assertEquals(Verdict.Kind.FAILING, out.view(view).kind(), view.key());
    }
  }

  private static PatroniReading recorded(String patroni, String cluster) throws Exception {
    return new PatroniReading.Observed(PatroniParser.status(recording(patroni), false),
        Optional.of(PatroniParser.cluster(recording(cluster))), Optional.empty());
  }

  private static byte[] recording(String name) throws java.io.IOException {
    try (java.io.InputStream in = HealthEvaluatorTest.class.getResourceAsStream("/patroni/4.1.5/" + name)) {
      if (in == null) {
        throw new java.io.IOException("missing fixture patroni/4.1.5/" + name);
      }
      return in.readAllBytes();
    }
  }

  /** The agent's reply for the replica view: what HAProxy is told. */
  private static final class AgentReplyLine {
    static String of(NodeHealth health) {
      return io.pgbeacon.agent.AgentReply.line(health, Config.View.REPLICA, new io.pgbeacon.agent.ReplyPolicy(
          Config.WrongRole.MAINT, Config.PastMaxLag.DRAIN, 12 * MB, 16 * MB, 10, Map.of()));
    }
  }

  private static NodeHealth evalStreams(PatroniReading reading, StreamHistory history) {
    return HealthEvaluator.evaluate(reading, BOUNCER_OK, DcsLeader.UNWATCHED, history, POLICY, TIME.nanos(), TIME);
  }

  @Test
  void theWatchedLeaderKeyCanWithdrawThePrimaryButNeverGrantIt() {
    DcsLeader elsewhere = held(Optional.of("node2"));
    DcsLeader nobody = held(Optional.empty());
    DcsLeader here = held(Optional.of("node1"));
    NodeHealth moved = eval(leader(), BOUNCER_OK, elsewhere, POLICY);
    assertEquals(CRITICAL, moved.primary().status());
    assertEquals("leader key names node2, not node1", moved.primary().reason());
    assertEquals(CRITICAL, eval(leader(), BOUNCER_OK, nobody, POLICY).primary().status());
    assertEquals(PASSING, eval(leader(), BOUNCER_OK, here, POLICY).primary().status());
    // A replica is not made primary by the key: promotion must have completed in PostgreSQL.
    NodeHealth promoting = eval(
        observed(status("running", "replica", true), cluster("node1", 0)), BOUNCER_OK, here, POLICY);
    assertEquals(CRITICAL, promoting.primary().status());
    assertEquals(PASSING, eval(replica(0), BOUNCER_OK, elsewhere, POLICY).replica().status());
  }

  @Test
  void aRequestedSwitchoverWithdrawsThePrimaryBeforePatroniDemotesIt() {
    DcsLeader here = held(Optional.of("node1"));
    NodeHealth away = eval(leader(), BOUNCER_OK, here.withRequest(request("node1", "node2")),
        POLICY);
    assertEquals(CRITICAL, away.primary().status());
    assertEquals("switchover to node2 requested", away.primary().reason());
    assertEquals(PASSING, eval(leader(), BOUNCER_OK,
        here.withRequest(request("node3", "node2")), POLICY).primary().status(),
        "a request about another member changes nothing here");
    assertEquals(PASSING, eval(leader(), BOUNCER_OK,
        here.withRequest(request("node1", "node1")), POLICY).primary().status(),
        "a request to stay where it is changes nothing");
  }

  @Test
  void aFailoverNamingOnlyTheCandidateWithdrawsWhoeverLeads() {
    // `patronictl failover --candidate node2` (Patroni 3.2+) writes no leader: it moves the leadership from
    // whoever holds it, whether or not pgbeacon has seen the leader key yet.
    Optional<FailoverRequest> toNode2 = Optional.of(new FailoverRequest(Optional.empty(), Optional.of("node2"), Optional.empty()));
    for (DcsLeader known : List.of(held(Optional.of("node1")), DcsLeader.UNWATCHED)) {
      NodeHealth away = eval(leader(), BOUNCER_OK, known.withRequest(toNode2), POLICY);
      assertEquals(CRITICAL, away.primary().status(), known.toString());
      assertEquals("failover to node2 requested", away.primary().reason());
    }
    Optional<FailoverRequest> toNode1 = Optional.of(new FailoverRequest(Optional.empty(), Optional.of("node1"), Optional.empty()));
    assertEquals(PASSING, eval(leader(), BOUNCER_OK,
        held(Optional.of("node1")).withRequest(toNode1), POLICY).primary().status(),
        "the candidate itself is not withdrawn");
  }

  private static Optional<FailoverRequest> request(String leader, String candidate) {
    return Optional.of(new FailoverRequest(Optional.of(leader), Optional.of(candidate), Optional.empty()));
  }

  @Test
  void reasonsNameTheCause() {
    assertEquals("PgBouncer: Connection refused",
        eval(leader(), BOUNCER_DOWN, POLICY).primary().reason());
    assertEquals("replica lag 17MB exceeds max-lag 16MB",
        eval(replica(17 * MB), BOUNCER_OK, POLICY).replica().reason());
    assertEquals("Patroni unreachable: timeout", eval(
        new PatroniReading.Unavailable("Patroni unreachable: timeout"), BOUNCER_OK, POLICY).primary().reason());
    assertTrue(eval(observed(pausedLeader(), cluster("node1", 0)), BOUNCER_OK, POLICY)
        .primary().reason().contains("Patroni paused"));
  }

  @Test
  void findsItsOwnNameThroughTheRestApiWhenPatroniDoesNotSayIt() {
    // Patroni 3.0/3.1 do not put the member name in /patroni; /cluster's api_url does.
    HealthPolicy unnamed = new HealthPolicy(Optional.empty(), "127.0.0.1", 8009, 16 * MB, 12 * MB, true, true,
        GRACE);
    ClusterView view = new ClusterView(List.of(
        new Member("node1", "leader", "running", "127.0.0.1", 5441, "http://127.0.0.1:8008/patroni",
            OptionalLong.empty()),
        new Member("node2", "replica", "running", "127.0.0.2", 5442, "http://127.0.0.1:8009/patroni",
            OptionalLong.of(42))), false, Optional.of("demo"));
    PatroniStatus nameless = new PatroniStatus("running", Role.REPLICA, "replica", false, OptionalLong.of(1),
        OptionalLong.of(1), false, false, false, false, Map.of(), Optional.of("demo"), Optional.empty(),
        Optional.of("3.0.2"), OptionalLong.of(1));
    NodeHealth health = eval(observed(nameless, view), BOUNCER_OK, unnamed);
    assertEquals(Optional.of("node2"), health.node());
    assertEquals(OptionalLong.of(42), health.lagBytes());
    assertEquals(Optional.of("127.0.0.2"), health.host());
    assertEquals(PASSING, health.replica().status());
  }

  @Test
  void walReceivedButNotReplayedCountsAsLag() {
    // Patroni's /cluster lag counts from max(received, replayed): with replay paused it stays ~0 while the
    // replica serves ever older data. pgbeacon adds the received-but-not-replayed part.
    PatroniStatus stalled = new PatroniStatus("running", Role.REPLICA, "replica", false, OptionalLong.of(3),
        OptionalLong.of(1000), true, true, false, false, Map.of(), Optional.of("demo"), Optional.of("node1"),
        Optional.of("4.1.5"), OptionalLong.of(1000 + 20 * MB), Optional.of("streaming"), STARTED, false, PG15);
    NodeHealth health = eval(observed(stalled, cluster("node2", 1024)), BOUNCER_OK, POLICY);
    assertEquals(OptionalLong.of(1024 + 20 * MB), health.lagBytes());
    assertEquals(CRITICAL, health.replica().status());
    assertTrue(health.replica().reason().contains("replay paused"), health.replica().reason());
  }

  @Test
  void aPausedLeaderWithoutADcsViewPassesOnlyWhileItsLeaderKeyWasReadRecently() {
    // Paused, Patroni answers 200 on /primary for a running primary once its DCS view is gone, lock or not, and
    // never demotes. Only pgbeacon's own recent read of the leader key naming this node still vouches for it.
    PatroniReading noView = new PatroniReading.Observed(pausedLeader(), Optional.empty(),
        Optional.of("cluster view unavailable: HTTP 503"));
    NodeHealth unconfirmed = eval(noView, BOUNCER_OK, DcsLeader.UNWATCHED, POLICY);
    assertEquals(CRITICAL, unconfirmed.primary().status());
    assertTrue(unconfirmed.primary().reason().startsWith("Patroni paused and no DCS view"),
        unconfirmed.primary().reason());

    DcsLeader readNow = held(Optional.of("node1"));
    assertEquals(PASSING, eval(noView, BOUNCER_OK, readNow, POLICY).primary().status());
    TIME.advance(java.time.Duration.ofSeconds(19));
    assertEquals(PASSING, eval(noView, BOUNCER_OK, readNow, POLICY).primary().status(), "read 19 s ago");
    TIME.advance(java.time.Duration.ofSeconds(2));
    assertEquals(CRITICAL, eval(noView, BOUNCER_OK, readNow, POLICY).primary().status(),
        "read 21 s ago: longer than Patroni's smallest ttl");
    assertEquals(PASSING, eval(observed(pausedLeader(), cluster("node1", 0)), BOUNCER_OK, DcsLeader.UNWATCHED,
        POLICY).primary().status(), "a DCS view naming this node is confirmation enough");
    assertEquals(CRITICAL, eval(noView, BOUNCER_OK, held(Optional.of("node2")), POLICY).primary().status());
  }

  @Test
  void aScheduledSwitchoverWithdrawsThePrimaryFromItsTimeOn() {
    java.time.Instant at = TIME.wall().plusSeconds(60);
    DcsLeader scheduled = held(Optional.of("node1")).withRequest(Optional.of(new FailoverRequest(
        Optional.of("node1"), Optional.of("node2"), Optional.of(at))));
    assertEquals(PASSING, eval(leader(), BOUNCER_OK, scheduled, POLICY).primary().status(), "not due yet");
    TIME.advance(java.time.Duration.ofSeconds(60));
    NodeHealth due = eval(leader(), BOUNCER_OK, scheduled, POLICY);
    assertEquals(CRITICAL, due.primary().status());
    assertEquals("switchover to node2 requested", due.primary().reason());
  }

  // ---- situations ----------------------------------------------------------------------------------------

  private static Arguments row(String name, PatroniReading reading, PgBouncerStatus bouncer, HealthPolicy policy,
      Expect primary, Expect replica) {
    return Arguments.of(name, reading, bouncer, policy, primary, replica);
  }

  private static final FakeTime TIME = new FakeTime();

  private static NodeHealth eval(PatroniReading reading, PgBouncerStatus bouncer, HealthPolicy policy) {
    return eval(reading, bouncer, DcsLeader.UNWATCHED, policy);
  }

  private static NodeHealth eval(PatroniReading reading, PgBouncerStatus bouncer, DcsLeader dcs,
      HealthPolicy policy) {
    return HealthEvaluator.evaluate(reading, bouncer, dcs, policy, TIME.nanos(), TIME);
  }

  /** The leader key, read just now, naming {@code holder}. */
  private static DcsLeader held(Optional<String> holder) {
    return DcsLeader.UNWATCHED.heldBy(holder, TIME.nanos());
  }

  private static HealthPolicy notRequired() {
    return new HealthPolicy(POLICY.node(), POLICY.patroniHost(), POLICY.patroniPort(), POLICY.maxLag(),
        POLICY.warnLag(), false, true, GRACE);
  }

  private static HealthPolicy streamingNotRequired() {
    return new HealthPolicy(POLICY.node(), POLICY.patroniHost(), POLICY.patroniPort(), POLICY.maxLag(),
        POLICY.warnLag(), true, false, GRACE);
  }

  private static PatroniReading leader() {
    return observed(status("running", "primary", true), cluster("node1", 0));
  }

  private static PatroniReading replica(long lag) {
    return observed(status("running", "replica", false), cluster("node2", lag));
  }

  private static PatroniStatus pausedLeader() {
    return new PatroniStatus("running", Role.PRIMARY, "primary", true, OptionalLong.of(1), OptionalLong.of(1),
        false, true, false, false, Map.of(), Optional.of("demo"), Optional.of("node1"), Optional.of("4.1.5"),
        OptionalLong.empty());
  }

  private static PatroniStatus status(String state, String role, boolean lock) {
    return status(state, role, lock, Map.of());
  }

  private static PatroniStatus status(String state, String role, boolean lock, Map<String, String> tags) {
    Role parsed = switch (role) {
      case "primary", "master" -> Role.PRIMARY;
      case "replica" -> Role.REPLICA;
      case "standby_leader" -> Role.STANDBY_LEADER;
      default -> Role.OTHER;
    };
    // A running replica or standby leader streams unless a row says otherwise (as Patroni 3.0.4+ reports it).
    Optional<String> replication = "running".equals(state) && (parsed == Role.REPLICA
        || parsed == Role.STANDBY_LEADER) ? Optional.of("streaming") : Optional.empty();
    return status(state, role, lock, tags, "4.1.5", replication);
  }

  private static PatroniStatus status(String state, String role, boolean lock, Map<String, String> tags,
      String version, Optional<String> replicationState) {
    Role parsed = switch (role) {
      case "primary", "master" -> Role.PRIMARY;
      case "replica" -> Role.REPLICA;
      case "standby_leader" -> Role.STANDBY_LEADER;
      default -> Role.OTHER;
    };
    return new PatroniStatus(state, parsed, role, lock, OptionalLong.of(3), OptionalLong.of(1000), false, false,
        false, false, tags, Optional.of("demo"), Optional.of("node1"), Optional.of(version),
        OptionalLong.of(1000), replicationState, STARTED, false, PG15);
  }

  private static final Optional<String> STARTED = Optional.of("2026-12-02 07:00:00.000000+00:00");
  private static final OptionalLong PG15 = OptionalLong.of(150018);

  /** A 4.x replica in good health but for its replication state ({@code in archive recovery}, or none). */
  private static PatroniReading notStreaming(Optional<String> replicationState) {
    return observed(status("running", "replica", false, Map.of(), "4.1.5", replicationState), cluster("node2", 0));
  }

  /** A standby cluster led by node1, this node: Patroni reports no lag for its standby leader. */
  private static ClusterView standbyCluster() {
    return new ClusterView(List.of(
        new Member("node1", "standby_leader", "streaming", "127.0.0.1", 5432, "http://127.0.0.1:8008/patroni",
            OptionalLong.empty()),
        member("node2", "replica", 0)), false, Optional.of("demo"));
  }

  /** node1 is always "this node"; {@code leader} names who holds the leader key. */
  private static ClusterView cluster(String leader, long node1Lag) {
    return new ClusterView(List.of(
        member("node1", leader.equals("node1") ? "leader" : "replica", node1Lag),
        member("node2", leader.equals("node2") ? "leader" : "replica", 0)), false, Optional.of("demo"));
  }

  private static Member member(String name, String role, long lag) {
    return new Member(name, role, "running", "127.0.0.1", 5432, "http://127.0.0.1:8008/patroni",
        "leader".equals(role) ? OptionalLong.empty() : OptionalLong.of(lag));
  }

  private static PatroniReading observed(PatroniStatus status, ClusterView cluster) {
    return new PatroniReading.Observed(status, Optional.of(cluster), Optional.empty());
  }
}
