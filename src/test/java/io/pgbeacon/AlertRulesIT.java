package io.pgbeacon;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLMapper;
import io.pgbeacon.support.Promtool;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The shipped Prometheus alerting rules through Prometheus's own checker: {@code promtool check rules} loads them,
 * {@code promtool test rules} runs their unit tests (src/test/resources/prometheus). Copies with one rule broken or
 * weakened must fail, so that neither check passes by checking nothing.
 *
 * <p>Paths are the source tree's (failsafe runs in the project directory): the unit tests name the rules by a path
 * relative to themselves, which promtool resolves, and the mutated copies keep that layout in a temporary directory.
 */
class AlertRulesIT {

  private static final Path RULES = Path.of("src/main/dist/prometheus/pgbeacon-alerts.yml");
  private static final Path TESTS = Path.of("src/test/resources/prometheus/pgbeacon-alerts-test.yml");
  private static final List<String> ALERTS = List.of("PgbeaconNoPrimary", "PgbeaconTwoPrimaries", "PgbeaconDown",
      "PgbeaconAbsent", "PgbeaconStale", "PgbeaconConsulPushesFailing", "PgbeaconDcsWatchFailing",
      "PgbeaconReplicaPastMaxLag");

  @TempDir Path dir;

  @Test
  void promtoolLoadsTheShippedRulesAndCountsEveryAlert() {
    String out = Promtool.run("", "check", "rules", RULES.toString());
    assertTrue(out.contains("SUCCESS: " + ALERTS.size() + " rules found"), out);
  }

  @Test
  void theShippedRulesAreOneGroupOfTheseAlertsEachWithSeverityAndText() throws IOException {
    JsonNode groups = yaml(RULES).path("groups");
    assertEquals(1, groups.size(), "one group");
    assertEquals("pgbeacon", groups.path(0).path("name").asText());
    List<String> names = new ArrayList<>();
    for (JsonNode rule : groups.path(0).path("rules")) {
      String name = rule.path("alert").asText();
      names.add(name);
      assertTrue(Set.of("critical", "warning").contains(rule.path("labels").path("severity").asText()), name);
      assertTrue(rule.path("annotations").has("summary") && rule.path("annotations").has("description"), name);
      assertTrue(rule.has("for"), name + ": every alert says how long its condition must hold");
    }
    assertEquals(ALERTS, names, "alerts only (no recording rules), in this order");
  }

  @Test
  void promtoolPassesTheUnitTests() {
    String out = Promtool.run("", "test", "rules", TESTS.toString());
    assertTrue(out.contains("SUCCESS"), out);
  }

  @Test
  void everyAlertHasACaseWhereItFiresAndOneWhereItDoesNot() throws IOException {
    Set<String> fires = new TreeSet<>();
    Set<String> quiet = new TreeSet<>();
    for (JsonNode test : yaml(TESTS).path("tests")) {
      for (JsonNode check : test.path("alert_rule_test")) {
        (check.path("exp_alerts").isEmpty() ? quiet : fires).add(check.path("alertname").asText());
      }
    }
    assertEquals(new TreeSet<>(ALERTS), fires, "alerts with a case that fires");
    assertEquals(new TreeSet<>(ALERTS), quiet, "alerts with a case that stays quiet");
  }

  @Test
  void aBrokenExpressionFailsBothChecks() throws IOException {
    // a closing parenthesis short
    Path rules = mutated("status=\"passing\", scope!=\"\"}) == 0", "status=\"passing\", scope!=\"\"} == 0");
    AssertionError check = assertThrows(AssertionError.class,
        () -> Promtool.run("", "check", "rules", rules.toString()));
    assertTrue(check.getMessage().contains("FAILED"), check.getMessage());
    AssertionError test = assertThrows(AssertionError.class,
        () -> Promtool.run("", "test", "rules", dir.resolve(TESTS).toString()));
    assertTrue(test.getMessage().contains("FAILED"), test.getMessage());
  }

  /** One choice the rules' comments defend, undone: {@code from} in the rules becomes {@code to}. */
  record Weakening(String what, String from, String to) {
    @Override
    public String toString() {
      return what;
    }
  }

  static List<Weakening> weakenings() {
    String noPrimary = "sum by (scope) (pgbeacon_view_status{view=\"primary\", status=\"passing\", scope!=\"\"}) == 0";
    return List.of(
        new Weakening("NoPrimary fires on a switchover's gap", "[1h])) == 1\n        for: 10s",
            "[1h])) == 1\n        for: 0s"),
        new Weakening("a standby cluster counts as one without a primary", "\n          unless on (scope)\n", "\n          or on (scope)\n"),
        new Weakening("TwoPrimaries fires on a scrape skew", "> 1\n        for: 10s", "> 1\n        for: 0s"),
        new Weakening("an empty scope counts as a cluster", noPrimary, noPrimary.replace(", scope!=\"\"", "")),
        new Weakening("Down fires on a restart", "up{job=\"pgbeacon\"} == 0\n        for: 1m",
            "up{job=\"pgbeacon\"} == 0\n        for: 30s"),
        new Weakening("Absent counts any job's targets", "absent(up{job=\"pgbeacon\"})", "absent(up)"),
        new Weakening("Stale fires once for each view",
            "max without (view) (pgbeacon_view_observation_age_seconds)", "pgbeacon_view_observation_age_seconds"),
        new Weakening("liveness checks count as verdict checks",
            "pgbeacon_consul_push_age_seconds{check!~\".+:pgbeacon\"}", "pgbeacon_consul_push_age_seconds"),
        new Weakening("a watch that is off counts as failing", "pgbeacon_dcs_watch_up == 0",
            "pgbeacon_dcs_watch_up != 1"),
        new Weakening("any lag counts as past max-lag",
            "pgbeacon_replica_lag_bytes > pgbeacon_replica_max_lag_bytes", "pgbeacon_replica_lag_bytes > 0"));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("weakenings")
  void aWeakenedRuleFailsTheUnitTests(Weakening w) throws IOException {
    mutated(w.from(), w.to());
    AssertionError e = assertThrows(AssertionError.class,
        () -> Promtool.run("", "test", "rules", dir.resolve(TESTS).toString()), w.what());
    assertTrue(e.getMessage().contains("FAILED"), e.getMessage());
  }

  /** The rules with {@code from} (found exactly once) replaced, and the unit tests beside them as in the tree. */
  private Path mutated(String from, String to) throws IOException {
    String rules = Files.readString(RULES);
    assertEquals(1, rules.split(Pattern.quote(from), -1).length - 1,
        "the text to change occurs once in the rules: " + from);
    Path copy = dir.resolve(RULES);
    Files.createDirectories(copy.getParent());
    Files.writeString(copy, rules.replace(from, to));
    Path tests = dir.resolve(TESTS);
    Files.createDirectories(tests.getParent());
    Files.copy(TESTS, tests);
    return copy;
  }

  private static JsonNode yaml(Path file) throws IOException {
    assertTrue(Files.isRegularFile(file), file.toAbsolutePath() + ": run from the project directory");
    return new YAMLMapper().readTree(file.toFile());
  }
}
