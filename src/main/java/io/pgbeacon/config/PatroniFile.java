package io.pgbeacon.config;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLMapper;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;

/**
 * What pgbeacon takes from Patroni's own YAML ({@code patroni.config-file}): the values an operator would otherwise
 * write twice — the member name, the scope and namespace, where the REST API answers, its TLS files and auth, and the
 * Consul agent Patroni talks to. Each value comes as the pgbeacon key it stands for and the Patroni key it was read
 * from. Pure: no rule on the values lives here; {@link ConfigLoader} uses them as defaults under explicit keys, checks
 * them as it checks its own, and names the Patroni key in every problem and in {@code validate}.
 *
 * <p>Read as Patroni reads its file, but only the file: {@code PATRONI_*} variables set Patroni's process environment,
 * not pgbeacon's, so they are not looked at.
 */
final class PatroniFile {

  /**
   * One value from Patroni's file.
   *
   * @param key the pgbeacon key it stands for ({@code patroni.url}), or {@code scope}, which has none
   * @param value the value as pgbeacon's key would take it
   * @param from the Patroni key(s) it was read from, e.g. {@code restapi.connect_address}
   * @param secret a password or token: shown only by where it comes from
   */
  record Value(String key, String value, String from, boolean secret) {}

  /** Patroni's default namespace, {@code namespace} in its YAML. */
  static final String DEFAULT_NAMESPACE = "/service/";

  private final JsonNode root;
  private final List<Value> values = new ArrayList<>();
  private final List<String> problems = new ArrayList<>();

  private PatroniFile(JsonNode root) {
    this.root = root;
  }

  /**
   * The values of Patroni's YAML text, or the problems that keep it from being read (each a sentence without the
   * file's name).
   */
  static Result read(String yaml) {
    JsonNode root;
    try {
      root = new YAMLMapper().readTree(yaml);
    } catch (JsonProcessingException e) {
      return new Result(List.of(), List.of("is not valid YAML: " + e.getOriginalMessage()
          + (e.getLocation() == null ? "" : " (line " + e.getLocation().getLineNr() + ")")));
    }
    if (root == null || !root.isObject()) {
      return new Result(List.of(), List.of("is not a Patroni configuration (the top level must be a mapping)"));
    }
    PatroniFile file = new PatroniFile(root);
    file.collect();
    return new Result(List.copyOf(file.values), List.copyOf(file.problems));
  }

  record Result(List<Value> values, List<String> problems) {
    Optional<Value> get(String key) {
      return values.stream().filter(v -> v.key().equals(key)).findFirst();
    }
  }

  private void collect() {
    text("name").ifPresent(v -> add("node", v, "name"));
    text("scope").ifPresent(v -> add("scope", v, "scope"));
    text("namespace").ifPresent(v -> add("patroni.namespace", v, "namespace"));
    restApi();
    consul();
  }

  /**
   * The REST API's URL: https when Patroni serves TLS ({@code restapi.certfile}). Over https by
   * {@code connect_address}, the name its certificate is made for; over http by {@code listen}, which answers on this
   * machine for certain, a wildcard address read as 127.0.0.1.
   */
  private void restApi() {
    JsonNode restapi = root.path("restapi");
    boolean tls = text(restapi, "certfile").isPresent();
    Optional<String> listen = text(restapi, "listen").map(l -> l.split(",")[0].strip());
    Optional<String> connect = text(restapi, "connect_address");
    boolean byConnect = tls ? connect.isPresent() : listen.isEmpty();
    Optional<String> address = byConnect ? connect : listen;
    if (address.isEmpty()) {
      return;
    }
    add("patroni.url", (tls ? "https://" : "http://") + local(address.get()),
        byConnect ? "restapi.connect_address" : "restapi.listen");
    if (!tls) {
      // Patroni asks for restapi.authentication only on the requests that change something, never on the GETs
      // pgbeacon makes, and pgbeacon sends basic auth only over https: over http there is nothing to take.
      return;
    }
    text(root.path("ctl"), "cacert").map(v -> new Value("patroni.ca-file", v, "ctl.cacert", false))
        .or(() -> text(restapi, "cafile").map(v -> new Value("patroni.ca-file", v, "restapi.cafile", false)))
        .ifPresent(values::add);
    Optional<String> cert = text(root.path("ctl"), "certfile");
    Optional<String> key = text(root.path("ctl"), "keyfile");
    if (cert.isPresent() && key.isPresent()) {
      add("patroni.cert-file", cert.get(), "ctl.certfile");
      add("patroni.key-file", key.get(), "ctl.keyfile");
    } else if (text(restapi, "verify_client").filter("required"::equalsIgnoreCase).isPresent()) {
      problems.add("restapi.verify_client is required, but ctl.certfile and ctl.keyfile (the client certificate"
          + " patronictl uses, and pgbeacon with it) are not both set: set them there, or patroni.cert-file and"
          + " patroni.key-file in pgbeacon's config");
    }
    JsonNode auth = restapi.path("authentication");
    Optional<String> user = text(auth, "username");
    Optional<String> password = text(auth, "password");
    if (user.isPresent() && password.isPresent()) {
      add("patroni.username", user.get(), "restapi.authentication.username");
      values.add(new Value("patroni.password-file", password.get(), "restapi.authentication.password", true));
    }
  }

  /** Patroni's Consul section, as Patroni reads it: {@code url}, else {@code scheme}, {@code host} and {@code port}. */
  private void consul() {
    JsonNode consul = root.path("consul");
    if (!consul.isObject()) {
      return;
    }
    Optional<String> url = text(consul, "url");
    if (url.isPresent()) {
      add("consul.address", url.get(), "consul.url");
    } else {
      String host = text(consul, "host").orElse("127.0.0.1:8500");
      Optional<String> port = text(consul, "port");
      if (port.isPresent() && !host.matches(".*:\\d+$")) {
        host = host + ":" + port.get();
      }
      String scheme = text(consul, "scheme").orElse("http").toLowerCase(Locale.ROOT);
      add("consul.address", scheme + "://" + host, "consul.host"
          + (consul.has("scheme") ? ", consul.scheme" : "") + (port.isPresent() ? ", consul.port" : ""));
    }
    text(consul, "token").ifPresent(t -> values.add(new Value("consul.token-file", t, "consul.token", true)));
    text(consul, "cacert").ifPresent(v -> add("consul.ca-file", v, "consul.cacert"));
    Optional<String> cert = text(consul, "cert");
    Optional<String> key = text(consul, "key");
    if (cert.isPresent() && key.isPresent()) {
      add("consul.cert-file", cert.get(), "consul.cert");
      add("consul.key-file", key.get(), "consul.key");
    }
    text(consul, "verify").filter(v -> v.equalsIgnoreCase("false")).ifPresent(v -> add("consul.ssl-verify", "false",
        "consul.verify"));
  }

  /** A wildcard listen address ({@code 0.0.0.0:8008}, {@code [::]:8008}, {@code :8008}) as this machine reaches it. */
  private static String local(String address) {
    String a = address.strip();
    int colon = a.lastIndexOf(':');
    String host = colon < 0 ? a : a.substring(0, colon);
    String port = colon < 0 ? "8008" : a.substring(colon + 1);
    if (host.isEmpty() || host.equals("0.0.0.0") || host.equals("*") || host.equals("[::]") || host.equals("::")) {
      host = "127.0.0.1";
    }
    return host + ":" + port;
  }

  private void add(String key, String value, String from) {
    values.add(new Value(key, value, from, false));
  }

  private Optional<String> text(String name) {
    return text(root, name);
  }

  private static Optional<String> text(JsonNode node, String name) {
    JsonNode v = node.path(name);
    return v.isValueNode() && !v.isNull() && !v.asText().isBlank() ? Optional.of(v.asText().strip())
        : Optional.empty();
  }
}
