package io.pgbeacon.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class ConfigLoaderTest {

  @TempDir Path dir;

  /** The contract from the README, word for word. */
  private static final String DOCUMENTED = """
      node: node1
      patroni: {url: http://127.0.0.1:8008, timeout: 1s}
      pgbouncer: {host: 127.0.0.1, port: 6432, database: postgres, user: pgbeacon, required: true, timeout: 1s}
      consul: {address: http://127.0.0.1:8500, ttl: 10s, deregister-critical-after: 1m, on-stop: critical}
      services:
        address: 127.0.0.1
        primary: {name: patroni-primary, port: 6432}
        replica: {name: patroni-replica, port: 6432, max-lag: 16MB}
      poll: {interval: 500ms}
      agent: {listen: [{address: 0.0.0.0, port: 5555, view: primary}, {address: 0.0.0.0, port: 5556, view: replica}]}
      """;

  @Test
  void readsTheDocumentedExample() throws Exception {
    Config c = ConfigLoader.parse(DOCUMENTED, ConfigLoader.Overrides.none(), Map.of());
    assertEquals(Optional.of("node1"), c.node());
    assertEquals(URI.create("http://127.0.0.1:8008"), c.patroni().url());
    assertEquals(6432, c.pgbouncer().orElseThrow().port());
    assertTrue(c.pgbouncer().orElseThrow().required());
    assertEquals(Duration.ofSeconds(10), c.consul().ttl());
    assertEquals(Config.OnStop.CRITICAL, c.consul().onStop());
    assertEquals(16L << 20, c.services().replica().maxLag());
    assertEquals(12L << 20, c.services().replica().warnLag(), "warn at three quarters by default");
    assertEquals(Duration.ofMillis(500), c.pollInterval());
    assertEquals(List.of(Optional.of(Config.View.PRIMARY), Optional.of(Config.View.REPLICA)),
        c.agent().listen().stream().map(Config.Listener::view).toList());
    assertEquals(Config.WrongRole.MAINT, c.agent().wrongRole());
  }

  @ParameterizedTest(name = "{0} and {1}")
  @CsvSource({
      "127.0.0.1:5480, 127.0.0.1:5480",
      "0.0.0.0:5480, 127.0.0.1:5480",
      "127.0.0.1:5480, 0.0.0.0:5480",
      "'[::]:5480', 127.0.0.2:5480",
      "localhost:5480, 127.0.0.1:5480"})
  void refusesListenersThatWouldShareASocket(String first, String second) {
    // Vert.x hands the connections of one socket to both listeners in turn: one port answering two views.
    ConfigException e = assertThrows(ConfigException.class, () -> ConfigLoader.parse(
        "agent: {listen: [" + listener(first, "primary") + ", " + listener(second, "replica") + "]}\n",
        ConfigLoader.Overrides.none(), Map.of()));
    assertEquals(1, e.problems().size(), e.problems().toString());
    assertTrue(e.problems().get(0).startsWith("agent.listen[1]: overlaps agent.listen[0]"), e.problems().toString());
  }

  @Test
  void servesHttpOnLoopbackPort8009UnlessToldOtherwise() throws Exception {
    assertEquals(Optional.of(new Config.Http("127.0.0.1", 8009)),
        ConfigLoader.parse("", ConfigLoader.Overrides.none(), Map.of()).http());
    assertEquals(Optional.empty(), ConfigLoader.parse("http: off", ConfigLoader.Overrides.none(), Map.of()).http());
  }

  @ParameterizedTest(name = "agent {0}, http {1}")
  @CsvSource({"127.0.0.1:8009, 127.0.0.1:8009", "0.0.0.0:8009, 127.0.0.1:8009", "127.0.0.2:8009, 0.0.0.0:8009"})
  void refusesAnHttpListenerOnAnAgentPortsSocket(String agent, String http) {
    String[] h = http.split(":");
    ConfigException e = assertThrows(ConfigException.class, () -> ConfigLoader.parse("agent: {listen: ["
        + listener(agent, "primary") + "]}\nhttp: {address: " + h[0] + ", port: " + h[1] + "}\n",
        ConfigLoader.Overrides.none(), Map.of()));
    assertEquals(1, e.problems().size(), e.problems().toString());
    assertTrue(e.problems().get(0).startsWith("http: overlaps agent.listen[0]"), e.problems().toString());
  }

  @Test
  void acceptsListenersOnDistinctPortsOrAddressesAndFreePorts() throws Exception {
    ConfigLoader.parse("agent: {listen: [" + listener("127.0.0.1:5480", "primary") + ", "
        + listener("127.0.0.2:5480", "replica") + ", " + listener("0.0.0.0:5481", "replica") + ", "
        + listener("127.0.0.1:0", "primary") + ", " + listener("127.0.0.1:0", "replica") + "]}\n",
        ConfigLoader.Overrides.none(), Map.of());
  }

  private static String listener(String addressPort, String view) {
    int colon = addressPort.lastIndexOf(':');
    String address = addressPort.substring(0, colon).replace("[", "").replace("]", "");
    return "{address: '" + address + "', port: " + addressPort.substring(colon + 1) + ", view: " + view + "}";
  }

  @Test
  void anEmptyFileMeansAllDefaults() throws Exception {
    Config c = ConfigLoader.parse("", ConfigLoader.Overrides.none(), Map.of());
    assertEquals(Optional.empty(), c.node());
    assertEquals(Optional.empty(), c.pgbouncer(), "PgBouncer is checked only when configured");
    assertEquals(URI.create("http://127.0.0.1:8500"), c.consul().address());
    assertEquals("patroni-primary", c.services().primary().name());
    assertTrue(c.agent().listen().isEmpty());
  }

  @Test
  void listsEveryProblemNamingTheKeyAndValue() {
    String bad = """
        node: ""
        patroni: {url: ftp://x, timeout: 5 parsecs}
        pgbouncer: {port: 99999, password-file: /nonexistent/pw}
        consul: {ttl: 1s, deregister-critical-after: 10s, on-stop: explode}
        services:
          replica: {max-lag: 16M}
        poll: {interval: soon}
        agent: {listen: [{port: 5555, view: writer}, {address: 127.0.0.1}], colour: blue}
        """;
    ConfigException e = assertThrows(ConfigException.class,
        () -> ConfigLoader.parse(bad, ConfigLoader.Overrides.none(), Map.of()));
    List<String> expectedPrefixes = List.of("node:", "patroni.url:", "patroni.timeout:", "pgbouncer.port:",
        "pgbouncer.password-file:", "consul.ttl:", "consul.deregister-critical-after:", "consul.on-stop:",
        "services.replica.max-lag:", "poll.interval:", "agent.colour:", "agent.listen[0].view:",
        "agent.listen[1].port:");
    assertEquals(expectedPrefixes.size(), e.problems().size(), String.join("\n", e.problems()));
    for (int i = 0; i < expectedPrefixes.size(); i++) {
      assertTrue(e.problems().get(i).startsWith(expectedPrefixes.get(i)), e.problems().get(i));
    }
    assertTrue(e.problems().get(2).contains("5 parsecs"), "the bad value is shown");
  }

  @Test
  void refusesADurationThatWouldOverflowWithOneMessageNamingTheKey() {
    ConfigException e = assertThrows(ConfigException.class, () -> ConfigLoader.parse(
        "poll: {interval: 9999999999999999h}\nconsul: {timeout: 600h}\n", ConfigLoader.Overrides.none(), Map.of()));
    assertEquals(2, e.problems().size(), String.join("\n", e.problems()));
    for (String key : List.of("poll.interval:", "consul.timeout:")) {
      assertTrue(e.problems().stream().anyMatch(p -> p.startsWith(key) && p.contains("too long")),
          key + " " + e.problems());
    }
  }

  @Test
  void readsTheAgentVocabulary() throws Exception {
    Config c = ConfigLoader.parse("""
        agent:
          wrong-role: drain
          past-max-lag: down
          weight-lag-start: 4MB
          weight-floor: 25%
          maxconn: {primary: 200, replica: 0}
        """, ConfigLoader.Overrides.none(), Map.of());
    assertEquals(Config.WrongRole.DRAIN, c.agent().wrongRole());
    assertEquals(Config.PastMaxLag.DOWN, c.agent().pastMaxLag());
    assertEquals(4L << 20, c.agent().weightLagStart());
    assertEquals(25, c.agent().weightFloor());
    assertEquals(Map.of(Config.View.PRIMARY, 200, Config.View.REPLICA, 0), c.agent().maxconn());
    assertEquals(40, ConfigLoader.parse("agent: {weight-floor: 40}", ConfigLoader.Overrides.none(), Map.of())
        .agent().weightFloor(), "the % sign is optional");
  }

  @Test
  void readsEveryViewAndTheStreamingGate() throws Exception {
    Config c = ConfigLoader.parse("""
        agent:
          listen:
            - {port: 5480, view: sync}
            - {port: 5481, view: async}
            - {port: 5482, view: read-only}
            - {port: 5483, view: standby-leader}
          maxconn: {read-only: 300}
        services: {replica: {require-streaming: false, streaming-grace: 3s}}
        """, ConfigLoader.Overrides.none(), Map.of());
    assertEquals(List.of(Config.View.SYNC, Config.View.ASYNC, Config.View.READ_ONLY, Config.View.STANDBY_LEADER),
        c.agent().listen().stream().map(l -> l.view().orElseThrow()).toList());
    assertEquals(Map.of(Config.View.READ_ONLY, 300), c.agent().maxconn());
    assertFalse(c.services().replica().requireStreaming());
    assertEquals(java.time.Duration.ofSeconds(3), c.services().replica().streamingGrace());
    Config.Replica defaults = ConfigLoader.parse("", ConfigLoader.Overrides.none(), Map.of()).services().replica();
    assertTrue(defaults.requireStreaming());
    assertEquals(java.time.Duration.ofSeconds(10), defaults.streamingGrace());
  }

  @Test
  void theAgentVocabularyDefaultsDrainPastMaxLagAndWeighOverTheWarningBand() throws Exception {
    Config.Agent defaults = ConfigLoader.parse("", ConfigLoader.Overrides.none(), Map.of()).agent();
    assertEquals(Config.PastMaxLag.DRAIN, defaults.pastMaxLag());
    assertEquals(12L << 20, defaults.weightLagStart(), "from warn-lag");
    assertEquals(10, defaults.weightFloor());
    assertEquals(Map.of(), defaults.maxconn(), "no maxconn: word unless configured");
    assertEquals(50L << 20, ConfigLoader.parse("services: {replica: {max-lag: 100MB, warn-lag: 50MB}}",
        ConfigLoader.Overrides.none(), Map.of()).agent().weightLagStart(), "follows a configured warn-lag");
  }

  @ParameterizedTest(name = "{0}")
  @CsvSource(delimiter = '|', value = {
      "agent: {past-max-lag: maint}                 | agent.past-max-lag:     | maint",
      "agent: {weight-floor: 0%}                    | agent.weight-floor:     | 0%",
      "agent: {weight-floor: 150%}                  | agent.weight-floor:     | 150%",
      "agent: {weight-floor: ten}                   | agent.weight-floor:     | ten",
      "agent: {weight-lag-start: 20MB}              | agent.weight-lag-start: | 20MB",
      "agent: {weight-lag-start: lots}              | agent.weight-lag-start: | lots",
      "agent: {maxconn: {primary: -1}}              | agent.maxconn.primary:  | -1",
      "agent: {maxconn: {replica: 2000000}}         | agent.maxconn.replica:  | 2000000",
      "agent: {maxconn: {replica: many}}            | agent.maxconn.replica:  | many",
      "agent: {maxconn: {writer: 10}}               | agent.maxconn.writer:   | ",
      "agent: {maxconn: 100}                        | agent.maxconn:          | 100",
      "agent: {maxconn: {read-only: -5}}            | agent.maxconn.read-only: | -5",
      "agent: {listen: [{port: 5480, view: sink}]}  | agent.listen[0].view:   | sink",
      "services: {replica: {require-streaming: 2}}  | services.replica.require-streaming: | 2",
      "services: {replica: {streaming-grace: -1s}}  | services.replica.streaming-grace:   | -1s",
      "services: {replica: {streaming-grace: 6m}}   | services.replica.streaming-grace:   | 6m"})
  void refusesABadAgentVocabularyKeyWithOneMessageNamingIt(String yaml, String key, String value) {
    ConfigException e = assertThrows(ConfigException.class,
        () -> ConfigLoader.parse(yaml, ConfigLoader.Overrides.none(), Map.of()));
    assertEquals(1, e.problems().size(), String.join("\n", e.problems()));
    assertTrue(e.problems().get(0).startsWith(key), e.problems().get(0));
    if (value != null) {
      assertTrue(e.problems().get(0).contains(value), "the bad value is shown: " + e.problems().get(0));
    }
  }

  @Test
  void refusesBrokenYamlWithTheLine() {
    ConfigException e = assertThrows(ConfigException.class,
        () -> ConfigLoader.parse("patroni: {url: [\n", ConfigLoader.Overrides.none(), Map.of()));
    assertEquals(1, e.problems().size());
    assertTrue(e.problems().get(0).contains("not valid YAML"), e.problems().get(0));
  }

  @Test
  void takesConsulsStandardEnvironmentWhenTheFileIsSilent() throws Exception {
    Path token = Files.writeString(dir.resolve("token"), "s3cr3t-token\n");
    Path ca = tls("ca.pem");
    Config c = ConfigLoader.parse("", ConfigLoader.Overrides.none(), Map.of(
        "CONSUL_HTTP_ADDR", "127.0.0.9:8501", "CONSUL_HTTP_SSL", "true",
        "CONSUL_HTTP_TOKEN_FILE", token.toString(), "CONSUL_CACERT", ca.toString()));
    assertEquals(URI.create("https://127.0.0.9:8501"), c.consul().address());
    assertEquals("s3cr3t-token", c.consul().token().orElseThrow().value());
    assertEquals(Optional.of(new Config.Setting<>("CONSUL_CACERT", ca)), c.consul().tls().caFile());
    assertFalse(c.toString().contains("s3cr3t-token"), "secrets never appear in toString/logs");
  }

  @Test
  void theFileWinsOverTheEnvironmentAndTheCommandLineWinsOverBoth() throws Exception {
    Path token = Files.writeString(dir.resolve("token"), "from-file");
    String yaml = "consul: {address: http://127.0.0.2:8500, token-file: " + token + "}\nnode: filenode\n";
    Map<String, String> env = Map.of("CONSUL_HTTP_ADDR", "127.0.0.3:8500", "CONSUL_HTTP_TOKEN", "from-env");
    Config fromFile = ConfigLoader.parse(yaml, ConfigLoader.Overrides.none(), env);
    assertEquals(URI.create("http://127.0.0.2:8500"), fromFile.consul().address());
    assertEquals("from-file", fromFile.consul().token().orElseThrow().value());
    Config overridden = ConfigLoader.parse(yaml,
        new ConfigLoader.Overrides(Optional.of("clinode"), Optional.of("http://127.0.0.4:8500")), env);
    assertEquals(Optional.of("clinode"), overridden.node());
    assertEquals(URI.create("http://127.0.0.4:8500"), overridden.consul().address());
  }

  @Test
  void watchesPatronisLeaderKeyByDefaultAndCanBeToldOtherwise() throws Exception {
    assertEquals(Config.LeaderKey.AUTO, ConfigLoader.parse("", ConfigLoader.Overrides.none(), Map.of())
        .patroni().leaderKey());
    assertEquals(Optional.of("service/demo/leader"), Config.LeaderKey.AUTO.resolve("demo"));
    assertEquals(Config.LeaderKey.OFF, ConfigLoader.parse("patroni: {leader-key: 'off'}",
        ConfigLoader.Overrides.none(), Map.of()).patroni().leaderKey());
    assertEquals(Config.LeaderKey.OFF, ConfigLoader.parse("patroni: {leader-key: off}",
        ConfigLoader.Overrides.none(), Map.of()).patroni().leaderKey(), "YAML's bare off is a boolean");
    Config.LeaderKey custom = ConfigLoader.parse("patroni: {leader-key: 'pg/{scope}/leader'}",
        ConfigLoader.Overrides.none(), Map.of()).patroni().leaderKey();
    assertEquals(Optional.of("pg/main/leader"), custom.resolve("main"));
    assertFalse(custom.auto(), "an explicit key is trusted even before it is first seen");
    assertThrows(ConfigException.class, () -> ConfigLoader.parse("patroni: {leader-key: '/abs olute'}",
        ConfigLoader.Overrides.none(), Map.of()));
  }

  @Test
  void refusesCredentialsInUrls() {
    ConfigException e = assertThrows(ConfigException.class, () -> ConfigLoader.parse(
        "consul: {address: 'http://user:pw@127.0.0.1:8500'}", ConfigLoader.Overrides.none(), Map.of()));
    assertFalse(e.getMessage().contains("pw"), "the password is not echoed back");
  }

  @Test
  void reportsAnUnreadableConfigFile() {
    ConfigException e = assertThrows(ConfigException.class,
        () -> ConfigLoader.load(dir.resolve("missing.yml"), ConfigLoader.Overrides.none(), Map.of()));
    assertTrue(e.problems().get(0).contains("missing.yml"));
  }

  // ---- every input issue 10 found let through: each refused by name, or read as Consul's CLI reads it ---------

  @ParameterizedTest(name = "{0}")
  @CsvSource(delimiter = '|', textBlock = """
      patroni.url port out of range            | patroni: {url: 'http://127.0.0.1:70000'}                | patroni.url: the port must be in 1..65535
      consul.address port out of range         | consul: {address: 'http://127.0.0.1:70000'}             | consul.address: the port must be in 1..65535
      consul.address port 0                    | consul: {address: 'http://127.0.0.1:0'}                 | consul.address: the port must be in 1..65535
      consul.address with a path               | consul: {address: 'http://127.0.0.1:8500/v1'}           | consul.address: must not have a path
      consul.address with a query              | consul: {address: 'http://127.0.0.1:8500?dc=x'}         | consul.address: must not have a query
      patroni.url with a path                  | patroni: {url: 'http://127.0.0.1:8008/patroni'}         | patroni.url: must not have a path
      a top-level key twice                    | 'consul: {ttl: 10s}\nconsul: {on-stop: deregister}'     | config file is not valid YAML: consul: given twice
      a nested key twice                       | 'consul: {ttl: 10s, ttl: 20s}'                          | config file is not valid YAML: consul.ttl: given twice
      a second YAML document                   | 'node: a\n---\nnode: b'                                 | config file: a second YAML document
      pgbouncer with every key commented out   | 'pgbouncer:\n  # host: 127.0.0.1\n'                     | pgbouncer: has no keys
      admin-password-file without admin-user   | pgbouncer: {admin-password-file: '@token'}              | pgbouncer.admin-user: admin-password-file is set
      poll.interval of 1ms                     | poll: {interval: 1ms}                                   | poll.interval: must be 100ms..10s: at most Patroni's default loop_wait
      poll.interval of 1h                      | poll: {interval: 1h}                                    | poll.interval: must be 100ms..10s: at most Patroni's default loop_wait
      a timeout of 24 days                     | patroni: {timeout: 576h}                                | patroni.timeout: must be 50ms..10s
      consul.timeout of Integer.MAX_VALUE ms   | consul: {timeout: 2147483647ms}                         | consul.timeout: must be 50ms..10s
      consul.timeout not under TTL/3           | consul: {ttl: 6s, timeout: 2s}                          | consul.timeout: must be shorter than consul.ttl / 3
      a probe timeout the TTL cannot cover     | 'consul: {ttl: 5s}\npatroni: {timeout: 3s}'             | patroni.timeout: with poll.interval 500ms, a verdict may be 7.5s old
      leader-key typo                          | patroni: {leader-key: 'service/{scope}/leder'}          | patroni.leader-key: must be auto, off or Patroni's leader key
      node with a slash                        | node: 'node/1'                                          | node: must be a Patroni member name
      node with a question mark                | node: 'node?1'                                          | node: must be a Patroni member name
      node with a hash                         | node: 'node#1'                                          | node: must be a Patroni member name
      node with a space                        | node: 'node 1'                                          | node: must be a Patroni member name
      a garbage consul.ca-file                 | consul: {address: 'https://127.0.0.1:8501', ca-file: '@token'} | consul.ca-file: is not a PEM certificate
      a garbage patroni.ca-file                | patroni: {url: 'https://127.0.0.1:8008', ca-file: '@token'}    | patroni.ca-file: is not a PEM certificate
      an unresolvable listen address           | 'agent: {listen: [{address: no-such-host.invalid, port: 5480}]}' | agent.listen[0].address: cannot be resolved
      a NUL in a path                          | 'consul: {token-file: "/tmp/a\\0b"}'                     | consul.token-file: is not a valid path
      """)
  void refusesWhatItOnceLetThrough(String situation, String yaml, String expected) throws Exception {
    String text = yaml.replace("\\n", "\n").replace("@token", Files.writeString(dir.resolve("garbage"), "x").toString());
    ConfigException e = assertThrows(ConfigException.class,
        () -> ConfigLoader.parse(text, ConfigLoader.Overrides.none(), Map.of()), situation);
    assertTrue(e.problems().stream().anyMatch(p -> p.startsWith(expected)), situation + ": " + e.problems());
  }

  @Test
  void refusesBothServicePortsZeroOneMessageEach() {
    ConfigException e = assertThrows(ConfigException.class, () -> ConfigLoader.parse(
        "services: {primary: {port: 0}, replica: {port: 0}}", ConfigLoader.Overrides.none(), Map.of()));
    assertEquals(List.of("services.primary.port: must be a port in 1..65535 (got 0)",
        "services.replica.port: must be a port in 1..65535 (got 0)"), e.problems());
  }

  @Test
  void readsSchemesInAnyCaseAndUsesTlsFilesWithAnUppercaseHttps() throws Exception {
    Config c = ConfigLoader.parse("patroni: {url: 'HTTPS://127.0.0.1:8008', cert-file: " + tls("client.pem")
        + ", key-file: " + tls("client-key.pem") + "}", ConfigLoader.Overrides.none(), Map.of());
    assertEquals(URI.create("https://127.0.0.1:8008"), c.patroni().url());
    ConfigException e = assertThrows(ConfigException.class, () -> ConfigLoader.parse("patroni: {url: "
        + "'HTTP://127.0.0.1:8008', cert-file: " + tls("client.pem") + ", key-file: " + tls("client-key.pem") + "}",
        ConfigLoader.Overrides.none(), Map.of()));
    assertTrue(e.problems().get(0).startsWith("patroni.url: TLS files are set, so the URL must be https://"),
        e.problems().toString());
  }

  @Test
  void readsLeaderKeyWordsInAnyCase() throws Exception {
    assertEquals(Config.LeaderKey.AUTO, ConfigLoader.parse("patroni: {leader-key: 'AUTO'}",
        ConfigLoader.Overrides.none(), Map.of()).patroni().leaderKey());
    assertEquals(Config.LeaderKey.OFF, ConfigLoader.parse("patroni: {leader-key: 'Off'}",
        ConfigLoader.Overrides.none(), Map.of()).patroni().leaderKey());
  }

  @Test
  void readsConsulsEnvironmentAsConsulsCliDoes() throws Exception {
    // CONSUL_HTTP_SSL is Go's strconv.ParseBool; CONSUL_HTTP_TOKEN_FILE wins over CONSUL_HTTP_TOKEN; empty is unset.
    Path token = Files.writeString(dir.resolve("token"), "from-file\n");
    Config c = ConfigLoader.parse("", ConfigLoader.Overrides.none(), Map.of("CONSUL_HTTP_ADDR", "127.0.0.9:8501",
        "CONSUL_HTTP_SSL", "1", "CONSUL_HTTP_TOKEN", "from-env", "CONSUL_HTTP_TOKEN_FILE", token.toString(),
        "CONSUL_CACERT", ""));
    assertEquals(URI.create("https://127.0.0.9:8501"), c.consul().address());
    assertEquals("from-file", c.consul().token().orElseThrow().value());
    assertEquals(Optional.empty(), c.consul().tls().caFile());
    assertEquals(URI.create("http://127.0.0.1:8500"), ConfigLoader.parse("", ConfigLoader.Overrides.none(),
        Map.of("CONSUL_HTTP_ADDR", "", "CONSUL_HTTP_SSL", "")).consul().address(), "empty variables are unset");
    ConfigException e = assertThrows(ConfigException.class, () -> ConfigLoader.parse("",
        ConfigLoader.Overrides.none(), Map.of("CONSUL_HTTP_ADDR", "127.0.0.9:8501", "CONSUL_HTTP_SSL", "yes")));
    assertTrue(e.problems().get(0).startsWith("CONSUL_HTTP_SSL: must be a boolean"), e.problems().toString());
  }

  @Test
  void listsEveryNewProblemAtOnce() {
    ConfigException e = assertThrows(ConfigException.class, () -> ConfigLoader.parse("""
        node: 'a b'
        patroni: {url: 'http://127.0.0.1:70000', leader-key: 'service/{scope}/x'}
        consul: {address: 'http://127.0.0.1:8500/x'}
        poll: {interval: 1h}
        services: {primary: {port: 0}}
        """, ConfigLoader.Overrides.none(), Map.of()));
    assertEquals(List.of("node:", "patroni.url:", "patroni.leader-key:", "consul.address:", "services.primary.port:",
        "poll.interval:"), e.problems().stream().map(p -> p.substring(0, p.indexOf(':') + 1)).toList());
  }

  // ---- Consul TLS, read as Consul's CLI reads it (api.go's CONSUL_* variables), the file winning per setting ----

  @Test
  void readsConsulsTlsEnvironmentAsConsulsCliDoes() throws Exception {
    Path caDir = Files.createDirectories(dir.resolve("cas"));
    Files.copy(tls("ca.pem"), caDir.resolve("ca.pem"));
    Config.ConsulTls t = ConfigLoader.parse("", ConfigLoader.Overrides.none(), Map.of(
        "CONSUL_HTTP_ADDR", "https://127.0.0.1:8501", "CONSUL_CAPATH", caDir.toString(),
        "CONSUL_CLIENT_CERT", tls("ec-client.pem").toString(), "CONSUL_CLIENT_KEY", tls("ec-client-key.pem").toString(),
        "CONSUL_TLS_SERVER_NAME", "server.dc1.consul:8501", "CONSUL_HTTP_SSL_VERIFY", "T")).consul().tls();
    assertEquals(Optional.of(new Config.Setting<>("CONSUL_CAPATH", caDir)), t.caPath());
    assertEquals(Optional.of(new Config.Setting<>("CONSUL_CLIENT_CERT", tls("ec-client.pem"))), t.certFile());
    assertEquals(Optional.of(new Config.Setting<>("CONSUL_CLIENT_KEY", tls("ec-client-key.pem"))), t.keyFile());
    assertEquals(Optional.of(new Config.Setting<>("CONSUL_TLS_SERVER_NAME", "server.dc1.consul")), t.serverName(),
        "a port after the name is dropped, as Consul's CLI drops it");
    assertTrue(t.verifies());
    assertFalse(ConfigLoader.parse("", ConfigLoader.Overrides.none(), Map.of("CONSUL_HTTP_ADDR",
        "https://127.0.0.1:8501", "CONSUL_HTTP_SSL_VERIFY", "0")).consul().tls().verifies());
    assertEquals(Config.ConsulTls.NONE, ConfigLoader.parse("", ConfigLoader.Overrides.none(), Map.of(
        "CONSUL_CAPATH", "", "CONSUL_CLIENT_CERT", "", "CONSUL_TLS_SERVER_NAME", "", "CONSUL_HTTP_SSL_VERIFY", ""))
        .consul().tls(), "empty variables are unset");
  }

  @Test
  void theFileWinsOverTheEnvironmentForEachTlsSettingTakingTheCaAndTheKeyPairWhole() throws Exception {
    Path caDir = Files.createDirectories(dir.resolve("cas"));
    Files.copy(tls("ca.pem"), caDir.resolve("ca.pem"));
    Map<String, String> env = Map.of("CONSUL_CACERT", tls("ca.pem").toString(),
        "CONSUL_CLIENT_CERT", tls("client.pem").toString(), "CONSUL_CLIENT_KEY", tls("client-key.pem").toString(),
        "CONSUL_TLS_SERVER_NAME", "from-env.consul", "CONSUL_HTTP_SSL_VERIFY", "false");
    Config.ConsulTls t = ConfigLoader.parse("consul: {address: 'https://127.0.0.1:8501', ca-path: " + caDir
        + ", cert-file: " + tls("ec-client.pem") + ", key-file: " + tls("ec-client-key.pem")
        + ", tls-server-name: server.dc1.consul, ssl-verify: true}", ConfigLoader.Overrides.none(), env)
        .consul().tls();
    assertEquals(Optional.empty(), t.caFile(), "the file's CA directory replaces the environment's CA file");
    assertEquals("consul.ca-path", t.caPath().orElseThrow().key());
    assertEquals(new Config.Setting<>("consul.cert-file", tls("ec-client.pem")), t.certFile().orElseThrow());
    assertEquals(new Config.Setting<>("consul.key-file", tls("ec-client-key.pem")), t.keyFile().orElseThrow());
    assertEquals(new Config.Setting<>("consul.tls-server-name", "server.dc1.consul"), t.serverName().orElseThrow());
    assertTrue(t.verifies());
    Config.ConsulTls fromEnv = ConfigLoader.parse("consul: {address: 'https://127.0.0.1:8501'}",
        ConfigLoader.Overrides.none(), env).consul().tls();
    assertEquals(List.of("CONSUL_CACERT", "CONSUL_CLIENT_CERT", "CONSUL_CLIENT_KEY", "CONSUL_TLS_SERVER_NAME",
        "CONSUL_HTTP_SSL_VERIFY"), fromEnv.keys());
    assertFalse(fromEnv.verifies());
  }

  @Test
  void readsClientKeysInEachPemFormatConsulAndOpensslWrite() throws Exception {
    // SEC1 (consul tls cert create), PKCS#1 (openssl -traditional), PKCS#8 (openssl's default).
    for (String[] pair : List.of(new String[] {"ec-client.pem", "ec-client-key.pem"},
        new String[] {"client.pem", "client-key-rsa.pem"}, new String[] {"client.pem", "client-key.pem"})) {
      Config.ConsulTls t = ConfigLoader.parse("consul: {address: 'https://127.0.0.1:8501', cert-file: "
          + tls(pair[0]) + ", key-file: " + tls(pair[1]) + "}", ConfigLoader.Overrides.none(), Map.of()).consul().tls();
      assertEquals(tls(pair[1]), t.keyFile().orElseThrow().value());
    }
  }

  @ParameterizedTest(name = "{0}")
  @CsvSource(delimiter = '|', textBlock = """
      a cert-file without key-file        | consul: {address: '@https', cert-file: '@cert'}                          |                                        | consul.key-file: consul.cert-file is set: a client certificate and its key go together
      a key-file without cert-file        | consul: {address: '@https', key-file: '@key'}                            |                                        | consul.cert-file: consul.key-file is set
      a missing key-file                  | consul: {address: '@https', cert-file: '@cert', key-file: '@dir/nope'}   |                                        | consul.key-file: file does not exist or is not readable
      a garbage key-file                  | consul: {address: '@https', cert-file: '@cert', key-file: '@garbage'}    |                                        | consul.key-file: is not a PEM private key of the certificate in consul.cert-file (Missing -----BEGIN PRIVATE KEY-----
      an EC key for an RSA certificate    | consul: {address: '@https', cert-file: '@cert', key-file: '@eckey'}      |                                        | consul.key-file: is not a PEM private key of the certificate in consul.cert-file (private key algorithm does not match
      another RSA key                     | consul: {address: '@https', cert-file: '@cert', key-file: '@otherkey'}   |                                        | consul.key-file: is not the private key of the certificate in consul.cert-file (CN=pgbeacon-test): what it signs
      a key-file as the cert-file         | consul: {address: '@https', cert-file: '@key', key-file: '@key'}         |                                        | consul.cert-file:
      a missing cert-file                 | consul: {address: '@https', cert-file: '@dir/nope', key-file: '@key'}    |                                        | consul.cert-file: file does not exist or is not readable
      a ca-path that is a file            | consul: {address: '@https', ca-path: '@ca'}                              |                                        | consul.ca-path: is not a directory (a single CA file is consul.ca-file)
      a ca-path that does not exist       | consul: {address: '@https', ca-path: '@dir/nope'}                        |                                        | consul.ca-path: is not a directory
      a ca-path with a garbage file       | consul: {address: '@https', ca-path: '@cadir'}                           | @cadir/garbage.pem=x                   | consul.ca-path: garbage.pem is not a PEM certificate
      an empty file under the ca-path     | consul: {address: '@https', ca-path: '@cadir'}                           | @cadir/sub/.keep=                      | consul.ca-path: sub/.keep holds no certificate
      an empty ca-path                    | consul: {address: '@https', ca-path: '@cadir'}                           |                                        | consul.ca-path: holds no file: it would trust no CA
      both ca-file and ca-path            | consul: {address: '@https', ca-file: '@ca', ca-path: '@cadir'}           |                                        | consul.ca-path: consul.ca-file is set too: give one
      a tls-server-name with a space      | consul: {address: '@https', tls-server-name: 'server dc1'}               |                                        | consul.tls-server-name: must be a host name or an IP address
      a tls-server-name with a path       | consul: {address: '@https', tls-server-name: 'server.dc1.consul/x'}      |                                        | consul.tls-server-name: must be a host name or an IP address
      an empty tls-server-name            | consul: {address: '@https', tls-server-name: ''}                         |                                        | consul.tls-server-name: must be a host name or an IP address
      ssl-verify maybe                    | consul: {address: '@https', ssl-verify: maybe}                           |                                        | consul.ssl-verify: must be true or false (got maybe)
      a client certificate over http      | consul: {address: 'http://127.0.0.1:8500', cert-file: '@cert', key-file: '@key'} |                                | consul.address: TLS is set (consul.cert-file, consul.key-file), so the address must be https://
      a server name over http             | consul: {address: 'http://127.0.0.1:8500', tls-server-name: server.dc1.consul} |                                  | consul.address: TLS is set (consul.tls-server-name), so the address must be https://
      verification off over http          | consul: {address: 'http://127.0.0.1:8500', ssl-verify: false}            |                                        | consul.address: TLS is set (consul.ssl-verify), so the address must be https://
      CONSUL_CLIENT_CERT without its key  | consul: {address: '@https'}                                              | CONSUL_CLIENT_CERT=@cert               | CONSUL_CLIENT_KEY: CONSUL_CLIENT_CERT is set: a client certificate and its key go together
      a garbage CONSUL_CLIENT_KEY         | consul: {address: '@https'}                                              | CONSUL_CLIENT_CERT=@cert;CONSUL_CLIENT_KEY=@garbage | CONSUL_CLIENT_KEY: is not a PEM private key
      a mismatched CONSUL_CLIENT_KEY      | consul: {address: '@https'}                                              | CONSUL_CLIENT_CERT=@eccert;CONSUL_CLIENT_KEY=@key | CONSUL_CLIENT_KEY: is not a PEM private key of the certificate in CONSUL_CLIENT_CERT
      a missing CONSUL_CAPATH             | consul: {address: '@https'}                                              | CONSUL_CAPATH=@dir/nope                | CONSUL_CAPATH: is not a directory (a single CA file is CONSUL_CACERT)
      CONSUL_CACERT and CONSUL_CAPATH     | consul: {address: '@https'}                                              | CONSUL_CACERT=@ca;CONSUL_CAPATH=@cadir | CONSUL_CAPATH: CONSUL_CACERT is set too: give one
      CONSUL_HTTP_SSL_VERIFY nope         | consul: {address: '@https'}                                              | CONSUL_HTTP_SSL_VERIFY=nope            | CONSUL_HTTP_SSL_VERIFY: must be a boolean as Consul reads it
      a bad CONSUL_TLS_SERVER_NAME        | consul: {address: '@https'}                                              | CONSUL_TLS_SERVER_NAME=a_b c           | CONSUL_TLS_SERVER_NAME: must be a host name or an IP address
      CONSUL_CLIENT_CERT over http        | consul: {address: 'http://127.0.0.1:8500'}                               | CONSUL_CLIENT_CERT=@cert;CONSUL_CLIENT_KEY=@key | consul.address: TLS is set (CONSUL_CLIENT_CERT, CONSUL_CLIENT_KEY), so the address must be https://
      CONSUL_HTTP_SSL_VERIFY=0 over http  |                                                                          | CONSUL_HTTP_SSL_VERIFY=0               | consul.address: TLS is set (CONSUL_HTTP_SSL_VERIFY), so the address must be https://
      patroni basic auth over http        | patroni: {url: 'http://127.0.0.1:8008', username: pgbeacon, password-file: '@password'} |         | patroni.url: basic auth is set (patroni.username), so the URL must be https://
      """)
  void refusesABadConsulTlsSettingByName(String situation, String yaml, String envPairs, String expected)
      throws Exception {
    Path caDir = Files.createDirectories(dir.resolve("cadir"));
    Map<String, String> names = new java.util.LinkedHashMap<>();
    names.put("@https", "https://127.0.0.1:8501");
    names.put("@cadir", caDir.toString());
    names.put("@cert", tls("client.pem").toString());
    names.put("@key", tls("client-key.pem").toString());
    names.put("@eccert", tls("ec-client.pem").toString());
    names.put("@eckey", tls("ec-client-key.pem").toString());
    names.put("@otherkey", otherRsaKey().toString());
    names.put("@garbage", Files.writeString(dir.resolve("garbage.pem"), "not a key\n").toString());
    names.put("@password", Files.writeString(dir.resolve("password"), "secret\n").toString());
    names.put("@ca", tls("ca.pem").toString());
    names.put("@dir", dir.toString());
    java.util.function.UnaryOperator<String> fill = text -> {
      String filled = text == null ? "" : text;
      for (var name : names.entrySet()) {
        filled = filled.replace(name.getKey(), name.getValue());
      }
      return filled;
    };
    Map<String, String> env = new java.util.HashMap<>();
    for (String pair : fill.apply(envPairs).split(";")) {
      if (pair.isEmpty()) {
        continue;
      }
      String key = pair.substring(0, pair.indexOf('='));
      if (key.startsWith("/")) { // a file to make: path=content
        Path file = Path.of(key);
        Files.createDirectories(file.getParent());
        Files.writeString(file, pair.substring(pair.indexOf('=') + 1));
      } else {
        env.put(key, pair.substring(pair.indexOf('=') + 1));
      }
    }
    ConfigException e = assertThrows(ConfigException.class,
        () -> ConfigLoader.parse(fill.apply(yaml), ConfigLoader.Overrides.none(), env), situation);
    assertTrue(e.problems().stream().anyMatch(p -> p.startsWith(expected)), situation + ": " + e.problems());
    assertFalse(e.problems().stream().anyMatch(p -> p.contains("BEGIN CERTIFICATE") || p.contains("MII")),
        "no file's contents in a problem: " + e.problems());
  }

  @Test
  void basicAuthForPatroniIsAcceptedOverHttps() throws Exception {
    Path password = Files.writeString(dir.resolve("password"), "secret\n");
    Config c = ConfigLoader.parse("patroni: {url: 'https://127.0.0.1:8008', username: pgbeacon, password-file: "
        + password + "}", ConfigLoader.Overrides.none(), Map.of());
    assertEquals(Optional.of("pgbeacon"), c.patroni().username());
  }

  /** A PKCS#8 RSA key that is no certificate's here. */
  private Path otherRsaKey() throws Exception {
    java.security.KeyPairGenerator generator = java.security.KeyPairGenerator.getInstance("RSA");
    generator.initialize(2048);
    String pem = "-----BEGIN PRIVATE KEY-----\n"
        + java.util.Base64.getMimeEncoder(64, new byte[] {'\n'}).encodeToString(
            generator.generateKeyPair().getPrivate().getEncoded())
        + "\n-----END PRIVATE KEY-----\n";
    return Files.writeString(dir.resolve("other-key.pem"), pem);
  }

  static Path tls(String file) {
    return Path.of(System.getProperty("user.dir"), "src/test/resources/tls", file);
  }

  // ---- patroni.config-file and patroni.namespace ----------------------------------------------------------

  /** A Patroni file from src/test/resources/patroni-files, its ${DIR} pointing at the test's TLS files. */
  private Path patroniFile(String name) throws Exception {
    for (String pem : List.of("ca.pem", "client.pem", "client-key.pem")) {
      Path to = dir.resolve(pem);
      if (!Files.exists(to)) {
        Files.copy(Path.of("src/test/resources/tls", pem), to);
      }
    }
    Path file = dir.resolve("patroni-" + name);
    Files.writeString(file, Files.readString(Path.of("src/test/resources/patroni-files", name))
        .replace("${DIR}", dir.toString()));
    return file;
  }

  @Test
  void takesNameNamespaceRestApiAndConsulFromPatronisFile() throws Exception {
    Path file = patroniFile("debian.yml");
    Config c = ConfigLoader.parse("patroni: {config-file: " + file + "}", ConfigLoader.Overrides.none(), Map.of());
    assertEquals(Optional.of("db1"), c.node());
    assertEquals(URI.create("http://127.0.0.1:8008"), c.patroni().url(), "listen 0.0.0.0 is reached on 127.0.0.1");
    assertEquals(new Config.LeaderKey(Optional.of("postgresql-common/{scope}/leader"), true),
        c.patroni().leaderKey(), "in Patroni's namespace, for the scope Patroni answers");
    assertEquals(file + ": scope", c.sources().get("scope 15-main"), "the file's scope shown, not used");
    assertEquals(URI.create("http://127.0.0.1:8500"), c.consul().address());
    assertEquals(file + ": consul.token", c.consul().token().orElseThrow().source());
    assertEquals("patroni-consul-token", c.consul().token().orElseThrow().value());
    assertEquals(Optional.empty(), c.patroni().username(), "basic auth is never sent over http");
    assertEquals(file + ": restapi.listen", c.sources().get("patroni.url"));
    assertTrue(ConfigSummary.lines(c).contains("from:      node ← " + file + ": name"), ConfigSummary.lines(c).toString());
    assertTrue(ConfigSummary.lines(c).stream().noneMatch(l -> l.contains("patroni-consul-token")));
  }

  @Test
  void explicitKeysWinOverPatronisFile() throws Exception {
    Path file = patroniFile("debian.yml");
    Config c = ConfigLoader.parse("node: other\npatroni: {config-file: " + file + ", url: 'http://127.0.0.1:9000',"
        + " leader-key: 'pg/{scope}/leader'}\nconsul: {address: 'http://127.0.0.1:8600'}",
        ConfigLoader.Overrides.none(), Map.of());
    assertEquals(Optional.of("other"), c.node());
    assertEquals(URI.create("http://127.0.0.1:9000"), c.patroni().url());
    assertEquals(Optional.of("pg/{scope}/leader"), c.patroni().leaderKey().template());
    assertEquals(URI.create("http://127.0.0.1:8600"), c.consul().address());
    assertEquals(Optional.empty(), c.consul().token(), "Patroni's token is for Patroni's agent, not this one");
    assertEquals(java.util.Set.of("patroni.namespace", "scope 15-main"), c.sources().keySet(),
        "nothing else was left to Patroni");
  }

  @Test
  void theStandardConsulVariablesAndFlagsWinOverPatronisConsul() throws Exception {
    Path file = patroniFile("debian.yml");
    Config env = ConfigLoader.parse("patroni: {config-file: " + file + "}", ConfigLoader.Overrides.none(),
        Map.of("CONSUL_HTTP_ADDR", "127.0.0.1:8700", "CONSUL_HTTP_TOKEN", "env-token"));
    assertEquals(URI.create("http://127.0.0.1:8700"), env.consul().address());
    assertEquals("CONSUL_HTTP_TOKEN", env.consul().token().orElseThrow().source());
    Config flags = ConfigLoader.parse("patroni: {config-file: " + file + "}",
        new ConfigLoader.Overrides(Optional.of("n9"), Optional.of("http://127.0.0.1:8800")), Map.of());
    assertEquals(Optional.of("n9"), flags.node());
    assertEquals(URI.create("http://127.0.0.1:8800"), flags.consul().address());
  }

  @Test
  void takesTlsFilesAndAuthWithAnHttpsRestApi() throws Exception {
    Path file = patroniFile("tls.yml");
    Config c = ConfigLoader.parse("patroni: {config-file: " + file + "}", ConfigLoader.Overrides.none(), Map.of());
    assertEquals(URI.create("https://localhost:8443"), c.patroni().url(), "by connect_address, the certificate's name");
    assertEquals(Optional.of(dir.resolve("ca.pem")), c.patroni().caFile(), "restapi.cafile when ctl has no cacert");
    assertEquals(Optional.of(dir.resolve("client.pem")), c.patroni().certFile());
    assertEquals(Optional.of("admin"), c.patroni().username());
    assertEquals(file + ": restapi.authentication.password", c.patroni().password().orElseThrow().source());
    assertEquals(URI.create("https://127.0.0.1:8501"), c.consul().address());
    assertFalse(c.consul().tls().verifies());
    assertEquals(file + ": consul.cacert", c.sources().get("consul.ca-file"));
  }

  @ParameterizedTest
  @CsvSource({"/service/, service/{scope}/leader", "/postgresql-common/, postgresql-common/{scope}/leader",
      "pg, pg/{scope}/leader", "//a//b/, a/b/{scope}/leader", "/, {scope}/leader"})
  void autoWatchesTheLeaderKeyInPatronisNamespace(String namespace, String key) throws Exception {
    Config c = ConfigLoader.parse("patroni: {namespace: '" + namespace + "'}", ConfigLoader.Overrides.none(),
        Map.of());
    assertEquals(new Config.LeaderKey(Optional.of(key), true), c.patroni().leaderKey());
  }

  @Test
  void namesThePatroniKeyBehindABadValue() throws Exception {
    Path file = patroniFile("bad-consul-host.yml");
    ConfigException e = assertThrows(ConfigException.class, () -> ConfigLoader.parse("patroni: {config-file: " + file
        + "}", ConfigLoader.Overrides.none(), Map.of()));
    assertEquals(List.of("consul.address (from " + file + ": consul.host): the port must be in 1..65535 (got"
        + " http://127.0.0.1:99999)"), e.problems());
  }
}
