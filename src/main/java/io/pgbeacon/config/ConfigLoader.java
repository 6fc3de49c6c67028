package io.pgbeacon.config;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.MissingNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLMapper;
import io.pgbeacon.config.Config.Agent;
import io.pgbeacon.config.Config.Consul;
import io.pgbeacon.config.Config.Listener;
import io.pgbeacon.config.Config.OnStop;
import io.pgbeacon.config.Config.PastMaxLag;
import io.pgbeacon.config.Config.Patroni;
import io.pgbeacon.config.Config.PgBouncer;
import io.pgbeacon.config.Config.Replica;
import io.pgbeacon.config.Config.Service;
import io.pgbeacon.config.Config.Services;
import io.pgbeacon.config.Config.View;
import io.pgbeacon.config.Config.WrongRole;
import java.io.IOException;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.function.Function;

/**
 * Reads the YAML file, the standard Consul environment variables and the CLI overrides into a {@link Config}.
 *
 * <p>Every problem is collected, each naming its key and the bad value, so an operator fixes a file in one pass.
 * The file wins over the environment; CLI overrides win over both.
 */
public final class ConfigLoader {

  static final Duration MIN_DEREGISTER_AFTER = Duration.ofMinutes(1); // Consul's own floor
  static final Duration MIN_TTL = Duration.ofSeconds(3);

  private final Map<String, String> env;
  private final List<String> problems = new ArrayList<>();

  private ConfigLoader(Map<String, String> env) {
    this.env = env;
  }

  /** Loads {@code file} with the process environment. */
  public static Config load(Path file, Overrides overrides) throws ConfigException {
    return load(file, overrides, System.getenv());
  }

  public static Config load(Path file, Overrides overrides, Map<String, String> env) throws ConfigException {
    String text;
    try {
      text = Files.readString(file);
    } catch (IOException e) {
      throw new ConfigException(List.of("config file " + file + ": cannot read (" + e.getMessage() + ")"));
    }
    return parse(text, overrides, env);
  }

  public static Config parse(String yaml, Overrides overrides, Map<String, String> env) throws ConfigException {
    JsonNode root;
    try {
      root = new YAMLMapper().readTree(yaml);
    } catch (JsonProcessingException e) {
      throw new ConfigException(List.of("config file is not valid YAML: " + e.getOriginalMessage()
          + (e.getLocation() == null ? "" : " (line " + e.getLocation().getLineNr() + ")")));
    }
    if (root == null || root.isMissingNode() || root.isNull()) {
      root = MissingNode.getInstance();
    } else if (!root.isObject()) {
      throw new ConfigException(List.of("config file: the top level must be a mapping of keys"));
    }
    ConfigLoader loader = new ConfigLoader(env);
    Config config = loader.read(root, overrides);
    if (!loader.problems.isEmpty()) {
      throw new ConfigException(loader.problems);
    }
    return config;
  }

  /** Values given on the command line; each wins over the file. */
  public record Overrides(Optional<String> node, Optional<String> consulAddress) {
    public static Overrides none() {
      return new Overrides(Optional.empty(), Optional.empty());
    }
  }

  private Config read(JsonNode root, Overrides overrides) {
    Node top = new Node("", root);
    top.only("node", "patroni", "pgbouncer", "consul", "services", "poll", "agent");

    Optional<String> node = overrides.node().or(() -> top.optText("node"));
    node.filter(String::isBlank).ifPresent(n -> problem("node", n, "must not be blank"));

    Patroni patroni = readPatroni(top.child("patroni"));
    Optional<PgBouncer> pgbouncer = top.has("pgbouncer")
        ? Optional.ofNullable(readPgBouncer(top.child("pgbouncer"))) : Optional.empty();
    Consul consul = readConsul(top.child("consul"), overrides);
    Services services = readServices(top.child("services"));
    Node poll = top.child("poll");
    poll.only("interval");
    Duration interval = poll.duration("interval", Duration.ofMillis(500));
    Agent agent = readAgent(top.child("agent"), services.replica());

    if (!problems.isEmpty()) {
      return null;
    }
    return build(() -> new Config(node, patroni, pgbouncer, consul, services, interval, agent));
  }

  private Patroni readPatroni(Node n) {
    n.only("url", "timeout", "ca-file", "cert-file", "key-file", "username", "password-file", "leader-key");
    URI url = n.uri("url", "http://127.0.0.1:8008", Set.of("http", "https"));
    Duration timeout = n.duration("timeout", Duration.ofSeconds(1));
    Optional<Path> ca = n.readableFile("ca-file");
    Optional<Path> cert = n.readableFile("cert-file");
    Optional<Path> key = n.readableFile("key-file");
    if (cert.isPresent() != key.isPresent()) {
      problem(n.key(cert.isPresent() ? "key-file" : "cert-file"), "(missing)",
          "cert-file and key-file go together");
    }
    if (url != null && "http".equals(url.getScheme()) && (ca.isPresent() || cert.isPresent())) {
      problem(n.key("url"), url.toString(), "TLS files are set, so the URL must be https://");
    }
    Optional<String> username = n.optText("username");
    Optional<Secret> password = n.secretFile("password-file");
    if (username.isPresent() != password.isPresent()) {
      problem(n.key(username.isPresent() ? "password-file" : "username"), "(missing)",
          "username and password-file go together");
    }
    // YAML reads a bare off/no as false and on/yes as true: take them as meant.
    JsonNode rawKey = n.value.path("leader-key");
    String leaderKeyText = rawKey.isBoolean() ? (rawKey.asBoolean() ? "auto" : "off") : n.text("leader-key", "auto");
    Config.LeaderKey leaderKey = switch (leaderKeyText) {
      case "auto" -> Config.LeaderKey.AUTO;
      case "off" -> Config.LeaderKey.OFF;
      default -> {
        if (!leaderKeyText.matches("[A-Za-z0-9_.{}/-]+") || leaderKeyText.startsWith("/")) {
          problem(n.key("leader-key"), leaderKeyText, "must be auto, off or a Consul key such as service/{scope}/leader");
        }
        yield new Config.LeaderKey(Optional.of(leaderKeyText), false);
      }
    };
    return build(() -> new Patroni(url, timeout, ca, cert, key, username, password, leaderKey));
  }

  private PgBouncer readPgBouncer(Node n) {
    n.only("host", "port", "database", "user", "password-file", "required", "timeout",
        "admin-user", "admin-password-file");
    String host = n.text("host", "127.0.0.1");
    int port = n.port("port", 6432);
    String database = n.text("database", "postgres");
    String user = n.text("user", "pgbeacon");
    Optional<Secret> password = n.secretFile("password-file");
    boolean required = n.bool("required", true);
    Duration timeout = n.duration("timeout", Duration.ofSeconds(1));
    Optional<String> adminUser = n.optText("admin-user");
    Optional<Secret> adminPassword = n.secretFile("admin-password-file");
    return build(() -> new PgBouncer(host, port, database, user, password, required, timeout,
        adminUser, adminPassword));
  }

  private Consul readConsul(Node n, Overrides overrides) {
    n.only("address", "ttl", "deregister-critical-after", "on-stop", "token-file", "ca-file", "timeout");
    String defaultAddress = env.getOrDefault("CONSUL_HTTP_ADDR", "http://127.0.0.1:8500");
    String addressKey = n.has("address") ? n.key("address") : "CONSUL_HTTP_ADDR";
    String address = overrides.consulAddress().or(() -> n.optText("address")).orElse(defaultAddress);
    if (!address.contains("://")) {
      boolean ssl = "true".equalsIgnoreCase(env.getOrDefault("CONSUL_HTTP_SSL", "false"));
      address = (ssl ? "https://" : "http://") + address;
    }
    URI uri = parseUri(addressKey, address, Set.of("http", "https"));

    Duration ttl = n.duration("ttl", Duration.ofSeconds(10));
    if (ttl != null && ttl.compareTo(MIN_TTL) < 0) {
      problem(n.key("ttl"), n.raw("ttl"), "must be at least " + Units.consulDuration(MIN_TTL));
    }
    Duration deregister = n.duration("deregister-critical-after", Duration.ofMinutes(1));
    if (deregister != null && deregister.compareTo(MIN_DEREGISTER_AFTER) < 0) {
      problem(n.key("deregister-critical-after"), n.raw("deregister-critical-after"),
          "Consul's minimum is 1m");
    }
    OnStop onStop = n.enumValue("on-stop", OnStop.class, OnStop.CRITICAL);
    Duration timeout = n.duration("timeout", Duration.ofSeconds(2));

    Optional<Secret> token = n.secretFile("token-file");
    if (token.isEmpty() && !n.has("token-file")) {
      token = envSecret();
    }
    Optional<Path> ca = n.readableFile("ca-file");
    if (ca.isEmpty() && !n.has("ca-file") && env.containsKey("CONSUL_CACERT")) {
      ca = readable("CONSUL_CACERT", env.get("CONSUL_CACERT"));
    }
    if (uri != null && "http".equals(uri.getScheme()) && ca.isPresent()) {
      problem(addressKey, address, "a CA file is set, so the address must be https://");
    }
    Optional<Secret> finalToken = token;
    Optional<Path> finalCa = ca;
    return build(() -> new Consul(uri, ttl, deregister, onStop, finalToken, finalCa, timeout));
  }

  private Optional<Secret> envSecret() {
    String direct = env.get("CONSUL_HTTP_TOKEN");
    if (direct != null && !direct.isBlank()) {
      return Optional.of(new Secret(direct.strip(), "CONSUL_HTTP_TOKEN"));
    }
    String file = env.get("CONSUL_HTTP_TOKEN_FILE");
    return file == null ? Optional.empty() : readSecret("CONSUL_HTTP_TOKEN_FILE", file);
  }

  private Services readServices(Node n) {
    n.only("address", "primary", "replica");
    Optional<String> address = n.optText("address");
    Node p = n.child("primary");
    p.only("name", "port");
    String primaryName = p.serviceName("name", "patroni-primary");
    int primaryPort = p.port("port", 6432);
    Node r = n.child("replica");
    r.only("name", "port", "max-lag", "warn-lag");
    String replicaName = r.serviceName("name", "patroni-replica");
    int replicaPort = r.port("port", 6432);
    Long maxLag = r.size("max-lag", 16L << 20);
    Long warnLag = r.size("warn-lag", maxLag == null ? 0 : maxLag * 3 / 4);
    if (maxLag != null && warnLag != null && warnLag > maxLag) {
      problem(r.key("warn-lag"), r.raw("warn-lag"), "must not exceed max-lag");
    }
    if (primaryName != null && primaryName.equals(replicaName)) {
      problem(r.key("name"), replicaName, "must differ from services.primary.name");
    }
    Service primary = build(() -> new Service(primaryName, primaryPort));
    Replica replica = build(() -> new Replica(replicaName, replicaPort, maxLag, warnLag));
    return new Services(address, primary, replica);
  }

  private Agent readAgent(Node n, Replica replica) {
    n.only("listen", "wrong-role", "past-max-lag", "weight-lag-start", "weight-floor", "maxconn", "read-timeout");
    List<Listener> listeners = new ArrayList<>();
    JsonNode list = n.value.path("listen");
    if (!list.isMissingNode() && !list.isNull()) {
      if (!list.isArray()) {
        problem(n.key("listen"), list.toString(), "must be a list of {address, port, view}");
      } else {
        for (int i = 0; i < list.size(); i++) {
          Node l = new Node(n.key("listen") + "[" + i + "].", list.get(i));
          l.only("address", "port", "view");
          String address = l.text("address", "127.0.0.1");
          int port = l.port("port", -1);
          if (!l.has("port")) {
            problem(l.key("port"), null, "is required (0 picks a free port)");
          }
          Optional<View> view = l.has("view")
              ? Optional.ofNullable(l.enumValue("view", View.class, null)) : Optional.empty();
          Listener listener = build(() -> new Listener(address, port, view));
          if (listener != null) {
            listeners.add(listener);
          }
        }
        refuseOverlaps(n.key("listen"), listeners);
      }
    }
    WrongRole wrongRole = n.enumValue("wrong-role", WrongRole.class, WrongRole.MAINT);
    PastMaxLag pastMaxLag = n.enumValue("past-max-lag", PastMaxLag.class, PastMaxLag.DRAIN);
    // Weights fall over the warning band by default: a replica near max-lag gets fewer new sessions.
    Long weightLagStart = n.size("weight-lag-start", replica == null ? 0L : replica.warnLag());
    if (replica != null && weightLagStart != null && weightLagStart > replica.maxLag()) {
      problem(n.key("weight-lag-start"), n.raw("weight-lag-start"),
          "must not exceed services.replica.max-lag (" + Units.formatSize(replica.maxLag()) + ")");
    }
    Integer weightFloor = n.percent("weight-floor", 10);
    Node m = n.child("maxconn");
    m.only("primary", "replica");
    Map<View, Integer> maxconn = new EnumMap<>(View.class);
    for (View view : View.values()) {
      if (m.has(view.key())) {
        Integer limit = m.count(view.key(), Agent.MAX_MAXCONN);
        if (limit != null) {
          maxconn.put(view, limit);
        }
      }
    }
    Duration readTimeout = n.duration("read-timeout", Duration.ofSeconds(1));
    return build(() -> new Agent(listeners, wrongRole, pastMaxLag, weightLagStart, weightFloor, maxconn,
        readTimeout));
  }

  /**
   * Two listeners on one port of the same address, or of a wildcard address and any other, would share one socket:
   * Vert.x hands the connections to both in turn, so a port would answer two views by turns.
   */
  private void refuseOverlaps(String key, List<Listener> listeners) {
    List<java.net.InetAddress> addresses = new ArrayList<>();
    for (int i = 0; i < listeners.size(); i++) {
      Listener l = listeners.get(i);
      try {
        addresses.add(java.net.InetAddress.getByName(l.address()));
      } catch (java.net.UnknownHostException e) {
        problem(key + "[" + i + "].address", l.address(), "cannot be resolved to an address to listen on");
        addresses.add(null);
      }
    }
    for (int i = 0; i < listeners.size(); i++) {
      for (int j = 0; j < i; j++) {
        Listener a = listeners.get(j);
        Listener b = listeners.get(i);
        java.net.InetAddress x = addresses.get(j);
        java.net.InetAddress y = addresses.get(i);
        if (a.port() == 0 || a.port() != b.port() || x == null || y == null) {
          continue;
        }
        if (x.isAnyLocalAddress() || y.isAnyLocalAddress() || x.equals(y)) {
          problem(key + "[" + i + "]", b.address() + ":" + b.port(), "overlaps " + key + "[" + j + "] ("
              + a.address() + ":" + a.port() + "): one socket would answer both listeners' views by turns");
        }
      }
    }
  }

  // ---- plumbing -------------------------------------------------------------------------------------------

  private interface Builder<T> {
    T build();
  }

  /** Builds a record once its parts read cleanly; a record's own check becomes a problem, not a crash. */
  private <T> T build(Builder<T> builder) {
    if (!problems.isEmpty()) {
      return null;
    }
    try {
      return builder.build();
    } catch (IllegalArgumentException | NullPointerException e) {
      problems.add(e.getMessage());
      return null;
    }
  }

  private void problem(String key, String value, String why) {
    problems.add(key + ": " + why + (value == null ? "" : " (got " + value + ")"));
  }

  private URI parseUri(String key, String text, Set<String> schemes) {
    try {
      URI uri = new URI(text);
      if (uri.getScheme() == null || !schemes.contains(uri.getScheme().toLowerCase(Locale.ROOT))
          || uri.getHost() == null) {
        problem(key, text, "must be a URL like " + String.join(" or ", schemes.stream().sorted()
            .map(s -> s + "://host:port").toList()));
        return null;
      }
      if (uri.getUserInfo() != null) {
        problem(key, uri.getHost(), "must not carry credentials; use the password/token file keys");
        return null;
      }
      return uri;
    } catch (URISyntaxException e) {
      problem(key, text, "is not a valid URL");
      return null;
    }
  }

  private Optional<Path> readable(String key, String path) {
    Path p = Path.of(path);
    if (!Files.isRegularFile(p) || !Files.isReadable(p)) {
      problem(key, path, "file does not exist or is not readable");
      return Optional.empty();
    }
    return Optional.of(p);
  }

  private Optional<Secret> readSecret(String key, String path) {
    Optional<Path> file = readable(key, path);
    if (file.isEmpty()) {
      return Optional.empty();
    }
    try {
      String content = Files.readString(file.get());
      if (content.isBlank()) {
        problem(key, path, "file is empty");
        return Optional.empty();
      }
      return Optional.of(Secret.fromFile(file.get(), content));
    } catch (IOException e) {
      problem(key, path, "cannot read: " + e.getMessage());
      return Optional.empty();
    }
  }

  /** A YAML mapping and its dotted key prefix, with typed getters that record problems instead of throwing. */
  private final class Node {
    final String prefix;
    final JsonNode value;

    Node(String prefix, JsonNode value) {
      this.prefix = prefix;
      this.value = value == null ? MissingNode.getInstance() : value;
      if (!this.value.isMissingNode() && !this.value.isNull() && !this.value.isObject()) {
        problem(prefix.isEmpty() ? "(top level)" : prefix.substring(0, prefix.length() - 1),
            this.value.toString(), "must be a mapping of keys");
      }
    }

    String key(String name) {
      return prefix + name;
    }

    Node child(String name) {
      return new Node(prefix + name + ".", value.path(name));
    }

    boolean has(String name) {
      JsonNode v = value.path(name);
      return !v.isMissingNode() && !v.isNull();
    }

    String raw(String name) {
      JsonNode v = value.path(name);
      return v.isValueNode() ? v.asText() : v.toString();
    }

    /** Unknown keys are typos until proven otherwise. */
    void only(String... known) {
      if (!value.isObject()) {
        return;
      }
      Set<String> allowed = Set.of(known);
      for (Iterator<String> it = value.fieldNames(); it.hasNext(); ) {
        String name = it.next();
        if (!allowed.contains(name)) {
          problem(key(name), null, "unknown key (known here: " + String.join(", ", known) + ")");
        }
      }
    }

    Optional<String> optText(String name) {
      if (!has(name)) {
        return Optional.empty();
      }
      JsonNode v = value.path(name);
      if (!v.isValueNode()) {
        problem(key(name), v.toString(), "must be a plain value");
        return Optional.empty();
      }
      return Optional.of(v.asText());
    }

    String text(String name, String fallback) {
      return optText(name).orElse(fallback);
    }

    String serviceName(String name, String fallback) {
      String s = text(name, fallback);
      if (!s.matches("[a-zA-Z0-9][a-zA-Z0-9-]*")) {
        problem(key(name), s, "must be a DNS-safe service name (letters, digits, dashes)");
      }
      return s;
    }

    <T> T typed(String name, T fallback, Function<String, T> parse, String what) {
      Optional<String> text = optText(name);
      if (text.isEmpty()) {
        return fallback;
      }
      try {
        return parse.apply(text.get());
      } catch (IllegalArgumentException e) {
        problem(key(name), text.get(), e.getMessage() == null ? "not " + what : e.getMessage());
        return null;
      }
    }

    Duration duration(String name, Duration fallback) {
      return typed(name, fallback, Units::parseDuration, "a duration");
    }

    Long size(String name, Long fallback) {
      return typed(name, fallback, Units::parseSize, "a size");
    }

    int port(String name, int fallback) {
      Integer port = typed(name, fallback, s -> {
        try {
          int p = Integer.parseInt(s.trim());
          if (p < 0 || p > 65535) {
            throw new IllegalArgumentException("must be a port in 1..65535");
          }
          return p;
        } catch (NumberFormatException e) {
          throw new IllegalArgumentException("must be a port number");
        }
      }, "a port");
      return port == null ? -1 : port;
    }

    /** {@code 10%} or {@code 10}: a whole percentage in 1..100. */
    Integer percent(String name, int fallback) {
      return typed(name, fallback, s -> {
        String digits = s.strip().endsWith("%") ? s.strip().substring(0, s.strip().length() - 1).strip() : s.strip();
        int p;
        try {
          p = Integer.parseInt(digits);
        } catch (NumberFormatException e) {
          throw new IllegalArgumentException("must be a percentage such as 10%");
        }
        if (p < 1 || p > 100) {
          throw new IllegalArgumentException("must be 1%..100%");
        }
        return p;
      }, "a percentage");
    }

    /** A whole number in 0..{@code max}. */
    Integer count(String name, int max) {
      return typed(name, null, s -> {
        try {
          int n = Integer.parseInt(s.strip());
          if (n < 0 || n > max) {
            throw new IllegalArgumentException("must be 0.." + max);
          }
          return n;
        } catch (NumberFormatException e) {
          throw new IllegalArgumentException("must be a whole number in 0.." + max);
        }
      }, "a number");
    }

    boolean bool(String name, boolean fallback) {
      Boolean b = typed(name, fallback, s -> switch (s.toLowerCase(Locale.ROOT)) {
        case "true", "yes", "on" -> true;
        case "false", "no", "off" -> false;
        default -> throw new IllegalArgumentException("must be true or false");
      }, "a boolean");
      return b != null && b;
    }

    <E extends Enum<E>> E enumValue(String name, Class<E> type, E fallback) {
      List<String> names = java.util.Arrays.stream(type.getEnumConstants())
          .map(e -> e.name().toLowerCase(Locale.ROOT).replace('_', '-')).toList();
      return typed(name, fallback, s -> {
        int i = names.indexOf(s.toLowerCase(Locale.ROOT));
        if (i < 0) {
          throw new IllegalArgumentException("must be one of " + String.join("|", names));
        }
        return type.getEnumConstants()[i];
      }, "one of " + names);
    }

    URI uri(String name, String fallback, Set<String> schemes) {
      return parseUri(key(name), text(name, fallback), schemes);
    }

    Optional<Path> readableFile(String name) {
      return optText(name).flatMap(p -> readable(key(name), p));
    }

    Optional<Secret> secretFile(String name) {
      return optText(name).flatMap(p -> readSecret(key(name), p));
    }
  }
}
