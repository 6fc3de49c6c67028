package io.pgbeacon.config;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.MissingNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
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
import io.pgbeacon.config.Config.Setting;
import io.pgbeacon.config.Config.View;
import io.pgbeacon.config.Config.WrongRole;
import java.io.IOException;
import java.net.InetAddress;
import java.net.URI;
import java.net.URISyntaxException;
import java.net.UnknownHostException;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.function.Function;
import java.util.stream.Stream;

/**
 * Reads the YAML file, the standard Consul environment variables (as Consul's own CLI reads them) and the CLI
 * overrides into a {@link Config}. This is the one place where the config's rules live: each value's type and
 * range, and how values must relate.
 *
 * <p>Every problem is collected, each naming its key and the bad value, so an operator fixes a file in one pass.
 * The file wins over the environment; CLI overrides win over both. The files it names are read here (a certificate
 * must hold one; Consul's client key must load and be its certificate's, through {@link TlsMaterial}, as the client
 * loads it); what can only be known by trying otherwise (a port in use, Patroni's TLS as Vert.x loads it) is
 * {@link Preflight}'s.
 */
public final class ConfigLoader {

  static final Duration MIN_DEREGISTER_AFTER = Duration.ofMinutes(1); // Consul's own floor
  static final Duration MIN_TTL = Duration.ofSeconds(3);
  /** Patroni's default {@code loop_wait}: polling less often lets a demotion go unseen for over a Patroni cycle. */
  static final Duration MAX_POLL = Duration.ofSeconds(10);
  /** Patroni answers {@code /primary} from memory; faster only loads its REST API (polls quicken by themselves). */
  static final Duration MIN_POLL = Duration.ofMillis(100);
  static final Duration MIN_TIMEOUT = Duration.ofMillis(50);
  /**
   * How long a replica that streamed stays in the replica view while it does not: its walreceiver reconnecting to a
   * new leader after a switchover takes a few seconds, and every replica would leave the read pool at once.
   */
  static final Duration DEFAULT_STREAMING_GRACE = Duration.ofSeconds(10);
  static final Duration MAX_TIMEOUT = Duration.ofSeconds(10);
  /** A Patroni member name: part of Consul service IDs, which consul-api puts in URL paths unencoded. */
  private static final String NODE_NAME = "[A-Za-z0-9][A-Za-z0-9._-]*";

  private final Map<String, String> env;
  private final List<String> problems = new ArrayList<>();
  /** Values taken from Patroni's file, by key: where each came from. */
  private final Map<String, String> sources = new LinkedHashMap<>();
  /** Passwords and tokens Patroni's file holds in place (pgbeacon's own keys name files), by key. */
  private final Map<String, Secret> inlineSecrets = new LinkedHashMap<>();

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
    // A key given twice would silently be the last one; a second document would silently be ignored.
    YAMLMapper mapper = YAMLMapper.builder().enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION).build();
    try (JsonParser parser = mapper.createParser(yaml)) {
      root = mapper.readTree(parser);
      if (root != null && parser.nextToken() != null) {
        throw new ConfigException(List.of("config file: a second YAML document (after '---', line "
            + parser.currentLocation().getLineNr() + "): put every key in one document"));
      }
    } catch (JsonProcessingException e) {
      throw new ConfigException(List.of("config file is not valid YAML: " + describe(e)
          + (e.getLocation() == null ? "" : " (line " + e.getLocation().getLineNr() + ")")));
    } catch (IOException e) {
      throw new ConfigException(List.of("config file: cannot read (" + e.getMessage() + ")"));
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

  /** Jackson's words, except a repeated key, named by its dotted path. */
  private static String describe(JsonProcessingException e) {
    String message = e.getOriginalMessage();
    if (message.startsWith("Duplicate field '") && e.getProcessor() instanceof JsonParser parser) {
      List<String> path = new ArrayList<>();
      for (var context = parser.getParsingContext(); context != null; context = context.getParent()) {
        if (context.getCurrentName() != null) {
          path.add(0, context.getCurrentName());
        }
      }
      return String.join(".", path) + ": given twice; the second would silently win";
    }
    return message;
  }

  /** Values given on the command line; each wins over the file. */
  public record Overrides(Optional<String> node, Optional<String> consulAddress) {
    public static Overrides none() {
      return new Overrides(Optional.empty(), Optional.empty());
    }
  }

  private Config read(JsonNode given, Overrides overrides) {
    JsonNode root = withPatroniFile(given, overrides);
    Node top = new Node("", root);
    top.only("node", "patroni", "pgbouncer", "consul", "services", "poll", "agent", "http");

    Optional<String> node = overrides.node().isPresent() ? overrides.node().filter(n -> checkNode("--node", n))
        : top.optText("node").filter(n -> checkNode("node", n));

    Patroni patroni = readPatroni(top.child("patroni"));
    Optional<PgBouncer> pgbouncer = readPgBouncer(top);
    Consul consul = readConsul(top.child("consul"), overrides);
    Services services = readServices(top.child("services"));
    Node poll = top.child("poll");
    poll.only("interval");
    Duration interval = poll.duration("interval", Duration.ofMillis(500), MIN_POLL, MAX_POLL,
        ": at most Patroni's default loop_wait, or a demotion could go unseen for a Patroni cycle; at least 100ms,"
        + " as faster only loads Patroni's REST API (pgbeacon polls faster by itself around a change)");
    Optional<Config.Http> http = readHttp(top);
    Agent agent = readAgent(top.child("agent"), services == null ? null : services.replica(), http);

    if (!problems.isEmpty()) {
      return null;
    }
    relate(patroni, pgbouncer, consul, interval);
    if (!problems.isEmpty()) {
      return null;
    }
    return new Config(node, patroni, pgbouncer, consul, services, interval, agent, http, sources);
  }

  /**
   * The config with what {@code patroni.config-file} says under the keys not given, as if the operator had written
   * them, each remembered with the Patroni key it came from (a problem with it names both). Explicit keys win, and a
   * value that belongs with another comes only with it: TLS files and auth with the URL they are for, the Consul agent's
   * TLS and token with its address — an address given here, in {@code CONSUL_HTTP_ADDR} or by
   * {@code --consul-address} is someone else's agent, not Patroni's.
   */
  private JsonNode withPatroniFile(JsonNode root, Overrides overrides) {
    JsonNode file = root.path("patroni").path("config-file");
    if (!file.isValueNode() || file.isNull()) {
      return root; // absent; anything but a plain value is refused where the patroni block is read
    }
    String key = "patroni.config-file";
    Optional<Path> path = readable(key, file.asText());
    if (path.isEmpty()) {
      return root;
    }
    PatroniFile.Result result;
    try {
      result = PatroniFile.read(Files.readString(path.get()));
    } catch (IOException e) {
      problem(key, path.get().toString(), "cannot read: " + e.getMessage());
      return root;
    }
    result.problems().forEach(p -> problem(key, path.get().toString(), p));
    ObjectNode tree = (ObjectNode) root;
    ObjectNode written = tree.deepCopy(); // what the operator wrote, as the pairs are filled in below
    boolean urlGiven = tree.path("patroni").has("url");
    boolean consulGiven = overrides.consulAddress().isPresent() || tree.path("consul").has("address")
        || envValue("CONSUL_HTTP_ADDR").isPresent();
    boolean tokenGiven = tree.path("consul").has("token-file") || envValue("CONSUL_HTTP_TOKEN").isPresent()
        || envValue("CONSUL_HTTP_TOKEN_FILE").isPresent();
    for (PatroniFile.Value v : result.values()) {
      String k = v.key();
      String origin = path.get() + ": " + v.from();
      boolean skip = switch (k) {
        case "node" -> overrides.node().isPresent() || tree.has("node");
        case "scope", "patroni.namespace", "patroni.url" -> false;
        case "consul.token-file" -> consulGiven || tokenGiven;
        default -> k.startsWith("consul.") ? consulGiven : urlGiven;
      };
      if (skip || given(written, k)) {
        continue;
      }
      if (k.equals("scope")) {
        // Shown, not used: the leader key follows the scope Patroni answers (PATRONI_SCOPE may override the file's).
        sources.put("scope " + v.value(), origin);
        continue;
      }
      sources.put(k, origin);
      if (v.secret()) {
        inlineSecrets.put(k, new Secret(v.value(), origin));
      } else {
        int dot = k.indexOf('.');
        ObjectNode block = dot < 0 ? tree : tree.with(k.substring(0, dot));
        block.put(dot < 0 ? k : k.substring(dot + 1), v.value());
      }
    }
    return tree;
  }

  /** Whether the config gives {@code key}, or the key it goes with (a certificate and its key, a user and password). */
  private static boolean given(ObjectNode tree, String key) {
    String partner = switch (key) {
      case "patroni.cert-file", "consul.cert-file" -> key.replace("cert-file", "key-file");
      case "patroni.key-file", "consul.key-file" -> key.replace("key-file", "cert-file");
      case "patroni.username" -> "patroni.password-file";
      case "patroni.password-file" -> "patroni.username";
      case "consul.ca-file" -> "consul.ca-path";
      default -> key;
    };
    return has(tree, key) || has(tree, partner);
  }

  private static boolean has(ObjectNode tree, String key) {
    JsonNode n = tree;
    for (String part : key.split("\\.")) {
      n = n.path(part);
    }
    return !n.isMissingNode() && !n.isNull();
  }

  private boolean checkNode(String key, String node) {
    if (!node.matches(NODE_NAME)) {
      problem(key, node, "must be a Patroni member name of letters, digits, '.', '_' and '-' (it becomes part of"
          + " Consul service and check IDs)");
      return false;
    }
    return true;
  }

  /** Rules between keys of different blocks, named with both keys. */
  private void relate(Patroni patroni, Optional<PgBouncer> pgbouncer, Consul consul, Duration interval) {
    if (consul.timeout().compareTo(consul.refreshInterval()) >= 0) {
      problem("consul.timeout", Units.consulDuration(consul.timeout()), "must be shorter than consul.ttl / 3 ("
          + Units.formatDuration(consul.refreshInterval()) + "): a refresh must be answered before the next falls due");
    }
    Duration probe = pgbouncer.map(PgBouncer::timeout).filter(t -> t.compareTo(patroni.timeout()) > 0)
        .orElse(patroni.timeout());
    Duration freshness = interval.plus(probe.multipliedBy(2)).plusSeconds(1);
    if (freshness.compareTo(consul.ttl()) > 0) {
      String longer = probe.equals(patroni.timeout()) ? "patroni.timeout" : "pgbouncer.timeout";
      problem(longer, Units.consulDuration(probe), "with poll.interval " + Units.formatDuration(interval)
          + ", a verdict may be " + Units.formatDuration(freshness) + " old (interval + 2 × the longer probe timeout"
          + " + 1 s) before it counts as stale, more than consul.ttl (" + Units.formatDuration(consul.ttl())
          + "): shorten it or lengthen the TTL");
    }
  }

  private Patroni readPatroni(Node n) {
    n.only("url", "timeout", "ca-file", "cert-file", "key-file", "username", "password-file", "leader-key",
        "namespace", "config-file");
    n.optText("config-file"); // read before the rest (withPatroniFile): here only refused when not a plain value
    URI url = n.uri("url", "http://127.0.0.1:8008");
    Duration timeout = n.duration("timeout", Duration.ofSeconds(1), MIN_TIMEOUT, MAX_TIMEOUT);
    Optional<Path> ca = n.certificateFile("ca-file");
    Optional<Path> cert = n.certificateFile("cert-file");
    Optional<Path> key = n.readableFile("key-file");
    if (n.has("cert-file") != n.has("key-file")) {
      problem(n.key(n.has("cert-file") ? "key-file" : "cert-file"), "(missing)", "cert-file and key-file go together");
    }
    if (url != null && "http".equals(url.getScheme()) && (n.has("ca-file") || n.has("cert-file"))) {
      problem(n.key("url"), url.toString(), "TLS files are set, so the URL must be https://");
    }
    Optional<String> username = n.optText("username");
    Optional<Secret> password = n.has("password-file") ? n.secretFile("password-file")
        : Optional.ofNullable(inlineSecrets.get(n.key("password-file")));
    if (n.has("username") != (n.has("password-file") || password.isPresent())) {
      problem(n.key(n.has("username") ? "password-file" : "username"), "(missing)",
          "username and password-file go together");
    }
    if (url != null && "http".equals(url.getScheme()) && (n.has("username") || n.has("password-file"))) {
      // Basic auth is the password itself, in every request: over http anyone on the path reads it.
      String auth = n.key(n.has("username") ? "username" : "password-file");
      problem(n.key("url"), url.toString(), "basic auth is set (" + auth + "), so the URL must be https://: the"
          + " password would travel in clear in every request");
    }
    Config.LeaderKey leaderKey = leaderKey(n);
    return url == null || timeout == null ? null
        : new Patroni(url, timeout, ca, cert, key, username, password, leaderKey);
  }

  private Config.LeaderKey leaderKey(Node n) {
    // YAML reads a bare off/no as false and on/yes as true: take them as meant.
    JsonNode raw = n.value.path("leader-key");
    String text = raw.isBoolean() ? (raw.asBoolean() ? "auto" : "off") : n.text("leader-key", "auto");
    String namespace = n.text("namespace", PatroniFile.DEFAULT_NAMESPACE);
    if (!namespace.matches("[A-Za-z0-9_./-]+")) {
      problem(n.key("namespace"), namespace, "must be Patroni's namespace, letters, digits, '.', '_', '-' and '/'"
          + " (Patroni's default is /service/)");
    }
    return switch (text.strip().toLowerCase(Locale.ROOT)) {
      case "auto" -> Config.LeaderKey.auto(namespace);
      case "off" -> Config.LeaderKey.OFF;
      default -> {
        // Patroni's key is always <namespace>/<scope>/leader: anything else never exists, and the watch would deny
        // the primary on every node.
        if (!text.matches("[A-Za-z0-9_.{}/-]+") || text.startsWith("/") || !text.endsWith("/leader")) {
          problem(n.key("leader-key"), text,
              "must be auto, off or Patroni's leader key, <namespace>/<scope>/leader, e.g. service/{scope}/leader");
        }
        yield new Config.LeaderKey(Optional.of(text), false);
      }
    };
  }

  private Optional<PgBouncer> readPgBouncer(Node top) {
    if (!top.value.has("pgbouncer")) {
      return Optional.empty();
    }
    if (top.value.path("pgbouncer").isNull()) {
      problem("pgbouncer", "(empty)", "has no keys (all commented out?): give at least one, e.g. {required: true},"
          + " or remove the block to check no PgBouncer");
      return Optional.empty();
    }
    Node n = top.child("pgbouncer");
    n.only("host", "port", "database", "user", "password-file", "required", "timeout",
        "admin-user", "admin-password-file");
    String host = n.text("host", "127.0.0.1");
    int port = n.port("port", 6432);
    String database = n.text("database", "postgres");
    String user = n.text("user", "pgbeacon");
    Optional<Secret> password = n.secretFile("password-file");
    boolean required = n.bool("required", true);
    Duration timeout = n.duration("timeout", Duration.ofSeconds(1), MIN_TIMEOUT, MAX_TIMEOUT);
    Optional<String> adminUser = n.optText("admin-user");
    Optional<Secret> adminPassword = n.secretFile("admin-password-file");
    if (n.has("admin-password-file") && !n.has("admin-user")) {
      problem(n.key("admin-user"), "(missing)", "admin-password-file is set: name the admin console's user too");
    }
    return timeout == null ? Optional.empty() : Optional.of(new PgBouncer(host, port, database, user, password,
        required, timeout, adminUser, adminPassword));
  }

  private Consul readConsul(Node n, Overrides overrides) {
    n.only("address", "ttl", "deregister-critical-after", "on-stop", "token-file", "ca-file", "ca-path", "cert-file",
        "key-file", "tls-server-name", "ssl-verify", "timeout");
    String key;
    String address;
    if (overrides.consulAddress().isPresent()) {
      key = "--consul-address";
      address = overrides.consulAddress().get();
    } else if (n.has("address")) {
      key = n.key("address");
      address = n.text("address", "");
    } else if (envValue("CONSUL_HTTP_ADDR").isPresent()) {
      key = "CONSUL_HTTP_ADDR";
      address = envValue("CONSUL_HTTP_ADDR").get();
    } else {
      key = n.key("address");
      address = "http://127.0.0.1:8500";
    }
    if (!address.contains("://")) {
      address = (envBool("CONSUL_HTTP_SSL") ? "https://" : "http://") + address;
    }
    URI uri = parseUri(key, address);

    Duration ttl = n.duration("ttl", Duration.ofSeconds(10), MIN_TTL, Duration.ofMinutes(10));
    Duration deregister = n.duration("deregister-critical-after", Duration.ofMinutes(1), MIN_DEREGISTER_AFTER,
        Duration.ofDays(7));
    OnStop onStop = n.enumValue("on-stop", OnStop.class, OnStop.CRITICAL);
    Duration timeout = n.duration("timeout", Duration.ofSeconds(2), MIN_TIMEOUT, MAX_TIMEOUT);

    Optional<Secret> token = n.has("token-file") ? n.secretFile("token-file")
        : Optional.ofNullable(inlineSecrets.get(n.key("token-file"))).or(this::envToken);
    Config.ConsulTls tls = readConsulTls(n, uri, key, address);
    if (uri == null || ttl == null || deregister == null || onStop == null || timeout == null || tls == null) {
      return null;
    }
    return new Consul(uri, ttl, deregister, onStop, token, tls, timeout);
  }

  /**
   * Consul's TLS settings, each from the file or else from the variable Consul's CLI reads. The CA (a file or a
   * directory) and the client certificate (with its key) are each one setting of two keys, taken whole from the file
   * or whole from the environment: half of each would be a pair nobody wrote.
   */
  private Config.ConsulTls readConsulTls(Node n, URI uri, String addressKey, String address) {
    int before = problems.size();
    boolean caInFile = n.has("ca-file") || n.has("ca-path");
    Optional<Setting<String>> caFile = caInFile ? n.setting("ca-file") : envSetting("CONSUL_CACERT");
    Optional<Setting<String>> caPath = caInFile ? n.setting("ca-path") : envSetting("CONSUL_CAPATH");
    boolean certInFile = n.has("cert-file") || n.has("key-file");
    String certKey = certInFile ? n.key("cert-file") : "CONSUL_CLIENT_CERT";
    String keyKey = certInFile ? n.key("key-file") : "CONSUL_CLIENT_KEY";
    Optional<Setting<String>> certFile = certInFile ? n.setting("cert-file") : envSetting(certKey);
    Optional<Setting<String>> keyFile = certInFile ? n.setting("key-file") : envSetting(keyKey);
    Optional<Setting<String>> serverName = n.has("tls-server-name") ? n.setting("tls-server-name")
        : envSetting("CONSUL_TLS_SERVER_NAME");
    Optional<Setting<Boolean>> verify = n.has("ssl-verify")
        ? Optional.of(new Setting<>(n.key("ssl-verify"), n.bool("ssl-verify", true)))
        : envFlag("CONSUL_HTTP_SSL_VERIFY").map(v -> new Setting<>("CONSUL_HTTP_SSL_VERIFY", v));

    if (caFile.isPresent() && caPath.isPresent()) {
      problem(caPath.get().key(), caPath.get().value(), caFile.get().key() + " is set too: give one (Consul's CLI"
          + " would use the file and ignore the directory)");
    }
    if (certFile.isPresent() != keyFile.isPresent()) {
      problem(certFile.isPresent() ? keyKey : certKey, "(missing)", (certFile.isPresent() ? certKey : keyKey)
          + " is set: a client certificate and its key go together");
    }
    Optional<Setting<Path>> ca = checked(caFile, this::certificate);
    Optional<Setting<Path>> caDir = checked(caPath, this::caDirectory);
    Optional<Setting<Path>> cert = checked(certFile, this::certificate);
    Optional<Setting<Path>> keyPath = checked(keyFile, this::readable);
    if (cert.isPresent() && keyPath.isPresent()) {
      keyPair(cert.get(), keyPath.get());
    }
    Optional<Setting<String>> name = checked(serverName, this::serverName);

    List<String> given = new ArrayList<>();
    Stream.of(caFile, caPath, certFile, keyFile, serverName).flatMap(Optional::stream).map(Setting::key)
        .forEach(given::add);
    verify.filter(v -> !v.value()).ifPresent(v -> given.add(v.key()));
    if (uri != null && "http".equals(uri.getScheme()) && !given.isEmpty()) {
      problem(addressKey, address, "TLS is set (" + String.join(", ", given) + "), so the address must be https://");
    }
    if (problems.size() > before) {
      return null;
    }
    return new Config.ConsulTls(ca, caDir, cert, keyPath, name, verify);
  }

  /** {@code check} of a setting's text (it records its problems), the result keeping the setting's key. */
  private static <T> Optional<Setting<T>> checked(Optional<Setting<String>> setting,
      java.util.function.BiFunction<String, String, Optional<T>> check) {
    return setting.flatMap(s -> check.apply(s.key(), s.value()).map(value -> new Setting<>(s.key(), value)));
  }

  /** The client certificate's key must load (PKCS#8, PKCS#1 or SEC1) and be that certificate's. */
  private void keyPair(Setting<Path> cert, Setting<Path> key) {
    try {
      TlsMaterial.keyManagers(cert.value(), key.value(), cert.key());
    } catch (TlsMaterial.BadFile e) {
      problem(key.key(), key.value().toString(), e.getMessage());
    } catch (IOException e) {
      problem(key.key(), key.value().toString(), "cannot read: " + e.getMessage());
    }
  }

  /** A directory of PEM CA certificates, as Consul's {@code CAPATH}: every file under it must hold some. */
  private Optional<Path> caDirectory(String key, String path) {
    Path dir;
    try {
      dir = Path.of(path);
    } catch (InvalidPathException e) {
      problem(key, path.replace("\0", "\\0"), "is not a valid path (" + e.getReason() + ")");
      return Optional.empty();
    }
    if (!Files.isDirectory(dir)) {
      problem(key, path, "is not a directory (a single CA file is "
          + (key.startsWith("CONSUL_") ? "CONSUL_CACERT" : "consul.ca-file") + ")");
      return Optional.empty();
    }
    List<Path> files;
    try {
      files = TlsMaterial.caDirectory(dir);
    } catch (IOException | java.io.UncheckedIOException e) {
      problem(key, path, "cannot be read (" + e.getMessage() + ")");
      return Optional.empty();
    }
    if (files.isEmpty()) {
      problem(key, path, "holds no file: it would trust no CA");
      return Optional.empty();
    }
    boolean ok = true;
    for (Path file : files) {
      try {
        TlsMaterial.certificates(file);
      } catch (TlsMaterial.BadFile e) {
        problem(key, path, dir.relativize(file) + " " + e.getMessage());
        ok = false;
      } catch (IOException e) {
        problem(key, path, dir.relativize(file) + " cannot be read (" + e.getMessage() + ")");
        ok = false;
      }
    }
    return ok ? Optional.of(dir) : Optional.empty();
  }

  /**
   * The name the agent's certificate must carry: a host name or an IP address. A port after it is dropped, as Consul's
   * CLI drops it (its {@code TLSConfig.Address} takes an address).
   */
  private Optional<String> serverName(String key, String text) {
    URI uri = null;
    try {
      uri = new URI("https://" + text.strip());
    } catch (URISyntaxException e) {
      // refused below
    }
    if (uri == null || uri.getHost() == null || uri.getRawUserInfo() != null || !uri.getRawPath().isEmpty()
        || uri.getRawQuery() != null || uri.getRawFragment() != null) {
      problem(key, text, "must be a host name or an IP address, the name the agent's certificate carries"
          + " (e.g. server.dc1.consul)");
      return Optional.empty();
    }
    String host = uri.getHost();
    return Optional.of(host.startsWith("[") ? host.substring(1, host.length() - 1) : host);
  }

  /** An environment variable as Consul's CLI reads it: empty is unset. */
  private Optional<String> envValue(String name) {
    return Optional.ofNullable(env.get(name)).filter(v -> !v.isEmpty());
  }

  private Optional<Setting<String>> envSetting(String name) {
    return envValue(name).map(v -> new Setting<>(name, v));
  }

  /** Unset is false. */
  private boolean envBool(String name) {
    return envFlag(name).orElse(false);
  }

  /**
   * Go's {@code strconv.ParseBool}, which Consul uses for {@code CONSUL_HTTP_SSL} and {@code CONSUL_HTTP_SSL_VERIFY};
   * where Consul's CLI warns and goes on, a bad value is refused.
   */
  private Optional<Boolean> envFlag(String name) {
    return envValue(name).map(value -> switch (value) {
      case "1", "t", "T", "TRUE", "true", "True" -> true;
      case "0", "f", "F", "FALSE", "false", "False" -> false;
      default -> {
        problem(name, value, "must be a boolean as Consul reads it: 1, t, true, 0, f, false (any case of"
            + " TRUE/True/FALSE/False)");
        yield true; // unused: the config is refused
      }
    });
  }

  /** As Consul's CLI: {@code CONSUL_HTTP_TOKEN_FILE}, when set, wins over {@code CONSUL_HTTP_TOKEN}. */
  private Optional<Secret> envToken() {
    Optional<String> file = envValue("CONSUL_HTTP_TOKEN_FILE");
    if (file.isPresent()) {
      return readSecret("CONSUL_HTTP_TOKEN_FILE", file.get());
    }
    return envValue("CONSUL_HTTP_TOKEN").map(String::strip).filter(t -> !t.isEmpty())
        .map(t -> new Secret(t, "CONSUL_HTTP_TOKEN"));
  }

  private Services readServices(Node n) {
    n.only("address", "primary", "replica");
    Optional<String> address = n.optText("address");
    Node p = n.child("primary");
    p.only("name", "port");
    String primaryName = p.serviceName("name", "patroni-primary");
    int primaryPort = p.port("port", 6432);
    Node r = n.child("replica");
    r.only("name", "port", "max-lag", "warn-lag", "require-streaming", "streaming-grace");
    String replicaName = r.serviceName("name", "patroni-replica");
    int replicaPort = r.port("port", 6432);
    Long maxLag = r.size("max-lag", 16L << 20);
    Long warnLag = r.size("warn-lag", maxLag == null ? 0 : maxLag * 3 / 4);
    if (maxLag != null && warnLag != null && warnLag > maxLag) {
      problem(r.key("warn-lag"), r.raw("warn-lag"), "must not exceed services.replica.max-lag ("
          + Units.formatSize(maxLag) + ")");
    }
    if (primaryName != null && primaryName.equals(replicaName)) {
      problem(r.key("name"), replicaName, "must differ from services.primary.name");
    }
    boolean requireStreaming = r.bool("require-streaming", true);
    Duration streamingGrace = r.duration("streaming-grace", DEFAULT_STREAMING_GRACE, Duration.ZERO,
        Duration.ofMinutes(5));
    if (maxLag == null || warnLag == null || streamingGrace == null) {
      return null;
    }
    return new Services(address, new Service(primaryName, primaryPort),
        new Replica(replicaName, replicaPort, maxLag, warnLag, requireStreaming, streamingGrace));
  }

  /** {@code http: off} turns the endpoints off; a mapping, or nothing, gives 127.0.0.1:8009 unless it says else. */
  private Optional<Config.Http> readHttp(Node top) {
    JsonNode raw = top.value.path("http");
    if (raw.isBoolean() || (raw.isTextual() && raw.asText().strip().equalsIgnoreCase("off"))) {
      if (raw.isBoolean() && raw.asBoolean()) {
        return Optional.of(new Config.Http("127.0.0.1", 8009));
      }
      return Optional.empty(); // YAML reads a bare off as false
    }
    if (raw.isValueNode() && !raw.isNull()) {
      problem("http", raw.asText(), "must be off or a mapping {address, port}");
      return Optional.empty();
    }
    Node n = top.child("http");
    n.only("address", "port");
    String address = n.text("address", "127.0.0.1");
    int port = n.has("port") ? n.listenPort("port") : 8009;
    return Optional.of(new Config.Http(address, port));
  }

  private Agent readAgent(Node n, Replica replica, Optional<Config.Http> http) {
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
          int port = l.listenPort("port");
          Optional<View> view = l.has("view")
              ? Optional.ofNullable(l.enumValue("view", View.class, null)) : Optional.empty();
          listeners.add(new Listener(address, port, view));
        }
      }
    }
    // The HTTP endpoints' listener may not share a socket with an agent port either.
    List<Listener> all = new ArrayList<>(listeners);
    List<String> keys = new ArrayList<>();
    for (int i = 0; i < listeners.size(); i++) {
      keys.add(n.key("listen") + "[" + i + "]");
    }
    http.ifPresent(h -> {
      all.add(new Listener(h.address(), h.port(), Optional.empty()));
      keys.add("http");
    });
    refuseOverlaps(keys, all);
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
    m.only(Arrays.stream(View.values()).map(View::key).toArray(String[]::new));
    Map<View, Integer> maxconn = new EnumMap<>(View.class);
    for (View view : View.values()) {
      if (m.has(view.key())) {
        Integer limit = m.count(view.key(), Agent.MAX_MAXCONN);
        if (limit != null) {
          maxconn.put(view, limit);
        }
      }
    }
    Duration readTimeout = n.duration("read-timeout", Duration.ofSeconds(1), Duration.ofMillis(10), MAX_TIMEOUT);
    if (wrongRole == null || pastMaxLag == null || weightLagStart == null || weightFloor == null
        || readTimeout == null) {
      return null;
    }
    return new Agent(listeners, wrongRole, pastMaxLag, weightLagStart, weightFloor, maxconn, readTimeout);
  }

  /**
   * Two listeners on one port of the same address, or of a wildcard address and any other, would share one socket:
   * Vert.x hands the connections to both in turn, so a port would answer two views by turns.
   */
  private void refuseOverlaps(List<String> keys, List<Listener> listeners) {
    List<InetAddress> addresses = new ArrayList<>();
    for (int i = 0; i < listeners.size(); i++) {
      Listener l = listeners.get(i);
      try {
        addresses.add(InetAddress.getByName(l.address()));
      } catch (UnknownHostException e) {
        problem(keys.get(i) + ".address", l.address(), "cannot be resolved to an address to listen on");
        addresses.add(null);
      }
    }
    for (int i = 0; i < listeners.size(); i++) {
      for (int j = 0; j < i; j++) {
        Listener a = listeners.get(j);
        Listener b = listeners.get(i);
        InetAddress x = addresses.get(j);
        InetAddress y = addresses.get(i);
        if (a.port() <= 0 || a.port() != b.port() || x == null || y == null) {
          continue;
        }
        if (x.isAnyLocalAddress() || y.isAnyLocalAddress() || x.equals(y)) {
          problem(keys.get(i), b.address() + ":" + b.port(), "overlaps " + keys.get(j) + " ("
              + a.address() + ":" + a.port() + "): one socket would answer both listeners by turns");
        }
      }
    }
  }

  // ---- plumbing -------------------------------------------------------------------------------------------

  private void problem(String key, String value, String why) {
    String named = sources.containsKey(key) ? key + " (from " + sources.get(key) + ")" : key;
    problems.add(named + ": " + why + (value == null ? "" : " (got " + value + ")"));
  }

  /** An http(s) URL of a host and port only: no path, query, fragment or credentials; the scheme in any case. */
  private URI parseUri(String key, String text) {
    URI uri;
    try {
      uri = new URI(text.strip());
    } catch (URISyntaxException e) {
      problem(key, text, "is not a valid URL");
      return null;
    }
    String scheme = uri.getScheme() == null ? "" : uri.getScheme().toLowerCase(Locale.ROOT);
    if (!Set.of("http", "https").contains(scheme) || uri.getHost() == null) {
      problem(key, text, "must be a URL like http://host:port or https://host:port");
      return null;
    }
    if (uri.getUserInfo() != null) {
      problem(key, uri.getHost(), "must not carry credentials; use the password/token file keys");
      return null;
    }
    boolean ok = true;
    if (uri.getPort() == 0 || uri.getPort() > 65535 || (uri.getPort() < 0 && uri.getRawAuthority().matches(".*:$"))) {
      problem(key, text, "the port must be in 1..65535");
      ok = false;
    }
    if (uri.getRawPath() != null && !uri.getRawPath().isEmpty() && !uri.getRawPath().equals("/")) {
      problem(key, text, "must not have a path (" + uri.getRawPath() + "): it names the API's host and port only");
      ok = false;
    }
    if (uri.getRawQuery() != null || uri.getRawFragment() != null) {
      problem(key, text, "must not have a query or fragment");
      ok = false;
    }
    if (!ok) {
      return null;
    }
    try {
      return new URI(scheme, null, uri.getHost(), uri.getPort(), null, null, null);
    } catch (URISyntaxException e) {
      problem(key, text, "is not a valid URL");
      return null;
    }
  }

  private Optional<Path> readable(String key, String path) {
    Path p;
    try {
      p = Path.of(path);
    } catch (InvalidPathException e) {
      problem(key, path.replace("\0", "\\0"), "is not a valid path (" + e.getReason() + ")");
      return Optional.empty();
    }
    if (!Files.isRegularFile(p) || !Files.isReadable(p)) {
      problem(key, path, "file does not exist or is not readable");
      return Optional.empty();
    }
    return Optional.of(p);
  }

  /** A readable file holding at least one PEM (or DER) X.509 certificate. */
  private Optional<Path> certificate(String key, String path) {
    Optional<Path> file = readable(key, path);
    if (file.isEmpty()) {
      return file;
    }
    try {
      TlsMaterial.certificates(file.get());
      return file;
    } catch (TlsMaterial.BadFile e) {
      problem(key, path, e.getMessage());
    } catch (IOException e) {
      problem(key, path, "cannot read: " + e.getMessage());
    }
    return Optional.empty();
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
        return null;
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

    Duration duration(String name, Duration fallback, Duration min, Duration max) {
      return duration(name, fallback, min, max, "");
    }

    /** As above, {@code why} after the range when it is not obvious. */
    Duration duration(String name, Duration fallback, Duration min, Duration max, String why) {
      return typed(name, fallback, s -> {
        Duration d = Units.parseDuration(s);
        if (d.compareTo(min) < 0 || d.compareTo(max) > 0) {
          throw new IllegalArgumentException("must be " + Units.formatDuration(min) + ".." + Units.formatDuration(max)
              + why);
        }
        return d;
      }, "a duration");
    }

    Long size(String name, Long fallback) {
      return typed(name, fallback, Units::parseSize, "a size");
    }

    /** A port to connect to or advertise: 1..65535; -1 after a problem. */
    int port(String name, int fallback) {
      Integer port = typed(name, fallback, s -> parsePort(s, 1), "a port");
      return port == null ? -1 : port;
    }

    /** A port to listen on, required: 0 picks a free one; -1 after a problem. */
    int listenPort(String name) {
      if (!has(name)) {
        problem(key(name), null, "is required (0 picks a free port)");
        return -1;
      }
      Integer port = typed(name, null, s -> parsePort(s, 0), "a port");
      return port == null ? -1 : port;
    }

    private int parsePort(String s, int min) {
      try {
        int p = Integer.parseInt(s.strip());
        if (p < min || p > 65535) {
          throw new IllegalArgumentException("must be a port in " + min + "..65535");
        }
        return p;
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException("must be a port number");
      }
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
        int i = names.indexOf(s.strip().toLowerCase(Locale.ROOT));
        if (i < 0) {
          throw new IllegalArgumentException("must be one of " + String.join("|", names));
        }
        return type.getEnumConstants()[i];
      }, "one of " + names);
    }

    URI uri(String name, String fallback) {
      return parseUri(key(name), text(name, fallback));
    }

    /** The value of {@code name}, if given, with its dotted key. */
    Optional<Setting<String>> setting(String name) {
      return optText(name).map(v -> new Setting<>(key(name), v));
    }

    Optional<Path> readableFile(String name) {
      return optText(name).flatMap(p -> readable(key(name), p));
    }

    Optional<Path> certificateFile(String name) {
      return optText(name).flatMap(p -> certificate(key(name), p));
    }

    Optional<Secret> secretFile(String name) {
      return optText(name).flatMap(p -> readSecret(key(name), p));
    }
  }
}
