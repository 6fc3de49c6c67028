package io.pgbeacon.patroni;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.OptionalLong;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Real responses recorded from Patroni 3.0.2 (Debian) and 4.1.5 (PyPI) on the lab; see resources/patroni. */
class PatroniParserTest {

  @ParameterizedTest
  @ValueSource(strings = {"3.0.2", "4.1.5"})
  void readsARunningPrimaryAsPrimaryWhateverTheVersionCallsIt(String version) throws Exception {
    PatroniStatus s = PatroniParser.status(fixture(version, "primary.json"), true);
    assertEquals(Role.PRIMARY, s.role());
    assertEquals(version.startsWith("3") ? "master" : "primary", s.roleName());
    assertTrue(s.running());
    assertTrue(s.holdsLeaderLock());
    assertTrue(s.walPosition().isPresent());
    assertEquals(OptionalLong.of(1), s.timeline());
    assertEquals(Optional.of(version), s.version());
    assertEquals(Optional.of("pgbeacon-lab"), s.scope());
    // The member name appeared in /patroni with 3.2.
    assertEquals(version.startsWith("3") ? Optional.empty() : Optional.of("node1"), s.name());
  }

  @ParameterizedTest
  @ValueSource(strings = {"3.0.2", "4.1.5"})
  void readsAStreamingReplica(String version) throws Exception {
    PatroniStatus s = PatroniParser.status(fixture(version, "replica.json"), false);
    assertEquals(Role.REPLICA, s.role());
    assertTrue(s.running());
    assertFalse(s.replayPaused());
    assertFalse(s.paused());
    assertTrue(s.walPosition().isPresent(), "replayed_location");
    assertTrue(s.receivedPosition().isPresent(), "received_location");
    assertEquals(0, s.replayBacklog(), "caught up");
    // received can trail replayed (it restarts at a segment boundary): never a negative backlog
    assertEquals(0, PatroniParser.status(fixture("3.0.2", "replica-just-restarted.json"), false).replayBacklog());
  }

  @ParameterizedTest
  @ValueSource(strings = {"3.0.2", "4.1.5"})
  void readsWhetherAReplicaStreamsWherePatroniSaysIt(String version) throws Exception {
    PatroniStatus s = PatroniParser.status(fixture(version, "replica.json"), false);
    // replication_state appeared with 3.0.4: 3.0.2 says nothing, and its silence means nothing.
    assertEquals(version.startsWith("3") ? Optional.empty() : Optional.of("streaming"), s.replicationState());
    assertEquals(!version.startsWith("3"), s.streaming());
    assertEquals(!version.startsWith("3"), s.reportsStreaming());
    assertTrue(s.postmasterStart().isPresent());
  }

  @ParameterizedTest
  @ValueSource(strings = {"3.0.3|false", "3.0.4|true", "3.1.0|true", "4.1.5|true", "10.0|true", "2.1.7|false",
      "3|false", "x.y|false"})
  void knowsWhichPatroniReportsStreaming(String row) throws Exception {
    String[] cells = row.split("[|]");
    String body = "{\"state\": \"running\", \"role\": \"replica\", \"patroni\": {\"version\": \"" + cells[0]
        + "\"}}";
    PatroniStatus s = PatroniParser.status(body.getBytes(StandardCharsets.UTF_8), false);
    assertEquals(Boolean.parseBoolean(cells[1]), s.reportsStreaming(), cells[0]);
    assertFalse(s.streaming());
  }

  @ParameterizedTest
  @ValueSource(strings = {"3.0.2", "4.1.5"})
  void readsMaintenanceModeAndPausedReplay(String version) throws Exception {
    assertTrue(PatroniParser.status(fixture(version, "primary-paused.json"), true).paused());
    assertTrue(PatroniParser.status(fixture(version, "replica-paused.json"), false).paused());
    assertTrue(PatroniParser.status(fixture(version, "replica-replay-paused.json"), false).replayPaused());
  }

  @ParameterizedTest
  @ValueSource(strings = {"3.0.2", "4.1.5"})
  void readsAStoppedReplicaAsNotRunning(String version) throws Exception {
    PatroniStatus s = PatroniParser.status(fixture(version, "replica-stopped.json"), false);
    assertFalse(s.running());
    assertFalse(s.state().isEmpty());
  }

  @ParameterizedTest
  @ValueSource(strings = {
      "", "not json", "[1,2]", "{\"role\":\"master\"}", "{\"state\":\"running\"}", "{\"state\":1,\"role\":2}",
      "{\"state\":\"running\",\"role\":\"replica\"", "\u0000\u0001"})
  void refusesGarbageWithAReason(String body) {
    PatroniParseException e = assertThrows(PatroniParseException.class,
        () -> PatroniParser.status(body.getBytes(StandardCharsets.UTF_8), false));
    assertTrue(e.getMessage().startsWith("Patroni"), e.getMessage());
  }

  @ParameterizedTest
  @ValueSource(strings = {"3.0.2", "4.1.5"})
  void readsTheClusterView(String version) throws Exception {
    ClusterView view = PatroniParser.cluster(fixture(version, "cluster.json"));
    assertEquals(3, view.members().size());
    assertEquals(1, view.members().stream().filter(ClusterView.Member::leader).count());
    assertTrue(view.leader().isPresent());
    view.members().stream().filter(m -> !m.leader()).forEach(m -> assertTrue(m.lag().isPresent(), m.name()));
    String leader = view.leader().get().name();
    assertTrue(view.memberAt("127.0.0.1", view.leader().get().apiPort()).map(ClusterView.Member::name)
        .filter(leader::equals).isPresent());
  }

  @ParameterizedTest
  @ValueSource(strings = {"3.0.2", "4.1.5"})
  void readsTheSynchronousStandbyFromTheClusterViewAndFromPatroni(String version) throws Exception {
    ClusterView view = PatroniParser.cluster(fixture(version, "cluster-synchronous-mode.json"));
    assertEquals(List.of("node2"), view.members().stream().filter(ClusterView.Member::sync)
        .map(ClusterView.Member::name).toList());
    PatroniStatus standby = PatroniParser.status(fixture(version, "replica-sync-standby.json"), false);
    assertEquals(Role.REPLICA, standby.role());
    // Recorded: 3.0.2 says it in /patroni as well (only when true), not only 3.1+.
    assertTrue(standby.syncStandby());
    assertEquals(!version.startsWith("3"), standby.streaming());
    assertFalse(PatroniParser.status(fixture(version, "replica.json"), false).syncStandby());
  }

  @ParameterizedTest
  @ValueSource(strings = {"3.0.2", "4.1.5"})
  void readsAStandbyClustersLeader(String version) throws Exception {
    PatroniStatus s = PatroniParser.status(fixture(version, "standby-leader.json"), false);
    assertEquals(Role.STANDBY_LEADER, s.role());
    assertTrue(s.running());
    // 4.1.5 says it streams from the source cluster; 3.0.2 says nothing of it, as for its replicas.
    assertEquals(!version.startsWith("3"), s.replicating());
    assertEquals(!version.startsWith("3"), s.reportsStreaming());
    ClusterView view = PatroniParser.cluster(fixture(version, "cluster-standby.json"));
    assertEquals(Optional.of("node1"), view.leader().map(ClusterView.Member::name), "the standby leader leads");
  }

  @ParameterizedTest
  @ValueSource(strings = {"3.0.2", "4.1.5"})
  void readsAReplicaWhoseReplicationConnectionIsBroken(String version) throws Exception {
    PatroniStatus s = PatroniParser.status(fixture(version, "replica-not-streaming.json"), false);
    assertTrue(s.running());
    assertEquals(Optional.empty(), s.replicationState());
    assertFalse(s.streaming());
    // 4.1.5 drops replication_state, and that says "not streaming"; 3.0.2 looks as it does when it streams.
    assertEquals(!version.startsWith("3"), s.reportsStreaming());
    ClusterView view = PatroniParser.cluster(fixture(version, "cluster-replica-not-streaming.json"));
    Map<String, String> states = new TreeMap<>();
    view.members().forEach(m -> states.put(m.name(), m.state()));
    assertEquals(version.startsWith("3") ? Map.of("node1", "running", "node2", "running", "node3", "running")
        : Map.of("node1", "running", "node2", "running", "node3", "streaming"), states);
  }

  private static byte[] fixture(String version, String name) throws IOException {
    try (InputStream in = PatroniParserTest.class.getResourceAsStream("/patroni/" + version + "/" + name)) {
      if (in == null) {
        throw new IOException("missing fixture patroni/" + version + "/" + name);
      }
      return in.readAllBytes();
    }
  }
}
