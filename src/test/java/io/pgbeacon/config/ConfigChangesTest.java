package io.pgbeacon.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class ConfigChangesTest {

  private static final String BASE = """
      node: node1
      patroni: {url: 'http://127.0.0.1:8008', timeout: 1s}
      consul: {address: 'http://127.0.0.1:8500', ttl: 10s}
      services: {replica: {max-lag: 16MB, warn-lag: 12MB}}
      agent: {listen: [{port: 18501, view: primary}], wrong-role: maint}
      http: off
      """;

  @ParameterizedTest(name = "{0}")
  @CsvSource(delimiter = '|', textBlock = """
      the words for a node of the wrong role                | agent: {listen: [{port: 18501, view: primary}], wrong-role: down} | agent.wrong-role |
      the replica thresholds                                | services: {replica: {max-lag: 32MB, warn-lag: 24MB}}             | services.replica.max-lag services.replica.warn-lag agent.weight-lag-start |
      maxconn and the weights                               | agent: {listen: [{port: 18501, view: primary}], maxconn: {primary: 100}, weight-floor: 50%} | agent.weight-floor agent.maxconn |
      a listener: a socket to bind                          | agent: {listen: [{port: 18502, view: primary}]}                  |                  | agent.listen
      the poll interval: a timer                            | 'poll: {interval: 1s}'                                           |                  | poll.interval
      the Consul address                                    | consul: {address: "http://127.0.0.1:8501", ttl: 10s}             |                  | consul.address
      the Consul TTL: part of the registration               | consul: {address: "http://127.0.0.1:8500", ttl: 20s}             |                  | consul.ttl
      the node: part of every service ID                    | 'node: node2'                                                    |                  | node
      the Patroni timeout                                   | patroni: {url: "http://127.0.0.1:8008", timeout: 2s}             |                  | patroni.timeout
      the name of a service                                    | services: {primary: {name: pg-rw}, replica: {max-lag: 16MB, warn-lag: 12MB}} | | services.primary.name
      read-timeout sizes the listener timers                | agent: {listen: [{port: 18501, view: primary}], read-timeout: 2s} |                 | agent.read-timeout
      PgBouncer turned on                                   | 'pgbouncer: {required: false}'                                   |                  | pgbouncer
      """)
  void sortsEachChangedKeyIntoAppliedOrNeedingARestart(String situation, String edit, String applied,
      String restart) throws Exception {
    ConfigChanges changes = ConfigChanges.between(parse(BASE), parse(replace(BASE, edit)));
    assertEquals(words(applied), changes.applied(), situation);
    assertEquals(words(restart), changes.restartNeeded(), situation);
  }

  @Test
  void aChangedTlsSettingNeedsARestartUnderTheKeyItWasGivenBy() throws Exception {
    String https = BASE.replace("consul: {address: 'http://127.0.0.1:8500', ttl: 10s}",
        "consul: {address: 'https://127.0.0.1:8501', ttl: 10s, tls-server-name: a.consul}");
    ConfigChanges changes = ConfigChanges.between(parse(https), parse(https.replace("a.consul", "b.consul")));
    assertEquals(List.of(), changes.applied());
    assertEquals(List.of("consul.tls-server-name"), changes.restartNeeded());
  }

  @Test
  void theEffectiveConfigTakesOnlyTheReloadableValues() throws Exception {
    Config running = parse(BASE);
    Config next = parse(BASE.replace("wrong-role: maint", "wrong-role: drain").replace("18501", "18503")
        .replace("ttl: 10s", "ttl: 20s").replace("max-lag: 16MB", "max-lag: 20MB"));
    Config effective = ConfigChanges.between(running, next).effective();
    assertEquals(Config.WrongRole.DRAIN, effective.agent().wrongRole());
    assertEquals(20L << 20, effective.services().replica().maxLag());
    assertEquals(running.agent().listen(), effective.agent().listen(), "listeners kept: they need a restart");
    assertEquals(running.consul().ttl(), effective.consul().ttl());
    assertTrue(ConfigChanges.between(effective, effective).none());
  }

  @Test
  void aRewrittenTokenFileIsAppliedAndNeverShown(@TempDir Path dir) throws Exception {
    Path token = Files.writeString(dir.resolve("token"), "token-a\n");
    String yaml = BASE.replace("ttl: 10s}", "ttl: 10s, token-file: '" + token + "'}");
    Config running = parse(yaml);
    Files.writeString(token, "token-b\n");
    ConfigChanges changes = ConfigChanges.between(running, parse(yaml));
    assertEquals(List.of("consul.token-file"), changes.applied());
    assertEquals("token-b", changes.effective().consul().token().orElseThrow().value());
    assertTrue(ConfigSummary.lines(changes.effective()).stream().noneMatch(l -> l.contains("token-b")));
    assertTrue(ConfigChanges.between(parse(yaml), parse(yaml)).none(), "the same token: nothing changed");
  }

  /** {@code edit}'s top-level key replaces that line of {@code base}, or is added. */
  private static String replace(String base, String text) {
    String key = text.substring(0, text.indexOf(':') + 1);
    StringBuilder out = new StringBuilder();
    boolean replaced = false;
    for (String line : base.split("\n")) {
      if (line.startsWith(key)) {
        out.append(text).append('\n');
        replaced = true;
      } else {
        out.append(line).append('\n');
      }
    }
    return replaced ? out.toString() : out + text + "\n";
  }

  private static List<String> words(String text) {
    return text == null || text.isBlank() ? List.of() : List.of(text.strip().split("\\s+"));
  }

  private static Config parse(String yaml) throws ConfigException {
    return ConfigLoader.parse(yaml, ConfigLoader.Overrides.none(), Map.of());
  }
}
