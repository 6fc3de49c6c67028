package io.pgbeacon.config;

import java.net.URI;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;

/**
 * The whole, validated configuration. Built only by {@link ConfigLoader}, which holds every rule (each value's
 * range, how values relate) and reports every problem at once; the records here only refuse what is missing.
 *
 * @param node this node's Patroni member name; empty means "ask Patroni"
 * @param pgbouncer empty when PgBouncer is not checked at all
 * @param http empty with {@code http: off}
 * @param sources where a key's value came from when the operator did not write it: {@code patroni.url} →
 *     {@code /etc/patroni/config.yml: restapi.listen} (from {@code patroni.config-file}), and Patroni's scope there as
 *     {@code scope <name>}, which no key takes (the leader key follows the scope Patroni answers); for messages only
 */
public record Config(
    Optional<String> node,
    Patroni patroni,
    Optional<PgBouncer> pgbouncer,
    Consul consul,
    Services services,
    Duration pollInterval,
    Agent agent,
    Optional<Http> http,
    Map<String, String> sources) {

  public Config {
    Objects.requireNonNull(node, "node");
    Objects.requireNonNull(patroni, "patroni");
    Objects.requireNonNull(pgbouncer, "pgbouncer");
    Objects.requireNonNull(consul, "consul");
    Objects.requireNonNull(services, "services");
    Objects.requireNonNull(agent, "agent");
    Objects.requireNonNull(pollInterval, "poll.interval");
    Objects.requireNonNull(http, "http");
    sources = Map.copyOf(sources);
  }

  /** The status, metrics and health endpoints' listener. */
  public record Http(String address, int port) {}

  /** Patroni's REST API; GET is never authenticated, so TLS client certificates are the way to protect it. */
  public record Patroni(
      URI url,
      Duration timeout,
      Optional<Path> caFile,
      Optional<Path> certFile,
      Optional<Path> keyFile,
      Optional<String> username,
      Optional<Secret> password,
      LeaderKey leaderKey) {
    public Patroni {
      Objects.requireNonNull(url, "patroni.url");
      Objects.requireNonNull(timeout, "patroni.timeout");
      Objects.requireNonNull(leaderKey, "patroni.leader-key");
    }
  }

  /**
   * Patroni's leader key in Consul, watched with a blocking query so the primary is withdrawn the moment the key
   * stops naming this node — without waiting for the next poll.
   *
   * @param template the key, where {@code {scope}} stands for Patroni's scope; empty when off
   * @param auto true for the default: trust the key only once it has been seen in this Consul (a Patroni whose
   *     DCS is etcd or ZooKeeper leaves it absent, and then the watch changes nothing)
   */
  public record LeaderKey(Optional<String> template, boolean auto) {
    public static final LeaderKey OFF = new LeaderKey(Optional.empty(), false);
    public static final LeaderKey AUTO = auto(PatroniFile.DEFAULT_NAMESPACE);

    /**
     * The default, in Patroni's {@code namespace}: Patroni keeps its keys under {@code <namespace>/<scope>/}, slashes
     * at either end and doubled ones dropped (Consul keys have no leading slash).
     */
    public static LeaderKey auto(String namespace) {
      String prefix = namespace.replaceAll("/+", "/").replaceAll("^/|/$", "");
      return new LeaderKey(Optional.of((prefix.isEmpty() ? "" : prefix + "/") + "{scope}/leader"), true);
    }

    public Optional<String> resolve(String scope) {
      return template.map(t -> t.replace("{scope}", scope));
    }

    /** Patroni keeps its failover key beside the leader key: {@code …/<scope>/failover}. */
    public Optional<String> resolveFailover(String scope) {
      return resolve(scope).filter(k -> k.endsWith("/leader"))
          .map(k -> k.substring(0, k.length() - "leader".length()) + "failover");
    }
  }

  /**
   * The local PgBouncer: pgbeacon connects as {@code user} to {@code database} and runs a query that must reach
   * PostgreSQL. With {@code adminUser}, it also reads PgBouncer's admin console ({@code SHOW DATABASES}).
   */
  public record PgBouncer(
      String host,
      int port,
      String database,
      String user,
      Optional<Secret> password,
      boolean required,
      Duration timeout,
      Optional<String> adminUser,
      Optional<Secret> adminPassword) {
    public PgBouncer {
      Objects.requireNonNull(timeout, "pgbouncer.timeout");
    }
  }

  /** What to do with the two services when pgbeacon stops cleanly. */
  public enum OnStop {
    /** Keep the registrations, checks critical: consumers see the node as down at once. */
    CRITICAL,
    /** Remove both services from the agent. */
    DEREGISTER
  }

  /** The local Consul agent. */
  public record Consul(
      URI address,
      Duration ttl,
      Duration deregisterCriticalAfter,
      OnStop onStop,
      Optional<Secret> token,
      ConsulTls tls,
      Duration timeout) {
    public Consul {
      Objects.requireNonNull(address, "consul.address");
      Objects.requireNonNull(ttl, "consul.ttl");
      Objects.requireNonNull(timeout, "consul.timeout");
      Objects.requireNonNull(onStop, "consul.on-stop");
      Objects.requireNonNull(tls, "consul TLS");
    }

    /** The same agent, called with {@code token}: what a reload changes (the token file was rewritten). */
    public Consul withToken(Optional<Secret> token) {
      return new Consul(address, ttl, deregisterCriticalAfter, onStop, token, tls, timeout);
    }

    /** How often a TTL check is refreshed even when nothing changed: a third of the TTL, as Consul advises. */
    public Duration refreshInterval() {
      return ttl.dividedBy(3);
    }

    /**
     * The TTL of pgbeacon's liveness check: its only job is to keep a running pgbeacon's services from being
     * reaped and to let a gone one's go, so it may live longer than the verdict's — half of
     * {@code deregister-critical-after}, at least the TTL — and is refreshed a third as often.
     */
    public Duration aliveTtl() {
      Duration half = deregisterCriticalAfter.dividedBy(2);
      return half.compareTo(ttl) > 0 ? half : ttl;
    }
  }

  /**
   * A value and the key or environment variable that gave it: what does not load later (a key that does not match its
   * certificate) is named as the operator wrote it.
   */
  public record Setting<T>(String key, T value) {
    public Setting {
      Objects.requireNonNull(key, "key");
      Objects.requireNonNull(value, key);
    }
  }

  /**
   * TLS to the Consul agent, as Consul's CLI sets it up from the same settings ({@code api.SetupTLSConfig}): the CA as
   * a PEM file or a directory of them (Consul's {@code CAPATH}; empty both: the JDK's trust store), the client
   * certificate and key that an agent with {@code verify_incoming} asks for, the name the agent's certificate must
   * carry when it is not the address's host (also sent as SNI), and whether the agent's certificate is verified at
   * all. Used only with an {@code https://} address.
   *
   * @param caFile a PEM file of CA certificates; at most one of it and {@code caPath}
   * @param verify as set by {@code consul.ssl-verify} or {@code CONSUL_HTTP_SSL_VERIFY}; not set: verified
   */
  public record ConsulTls(
      Optional<Setting<Path>> caFile,
      Optional<Setting<Path>> caPath,
      Optional<Setting<Path>> certFile,
      Optional<Setting<Path>> keyFile,
      Optional<Setting<String>> serverName,
      Optional<Setting<Boolean>> verify) {

    public static final ConsulTls NONE = new ConsulTls(Optional.empty(), Optional.empty(), Optional.empty(),
        Optional.empty(), Optional.empty(), Optional.empty());

    public ConsulTls {
      if (caFile.isPresent() && caPath.isPresent()) {
        throw new IllegalArgumentException("a CA file or a CA directory, not both");
      }
      if (certFile.isPresent() != keyFile.isPresent()) {
        throw new IllegalArgumentException("a client certificate needs its key, and a key its certificate");
      }
    }

    /** False only when told so: then no CA is used and no name checked. */
    public boolean verifies() {
      return verify.map(Setting::value).orElse(true);
    }

    /** Anything that changes the TLS handshake from the JDK's default: none of it makes sense over http. */
    public List<String> keys() {
      List<String> keys = new java.util.ArrayList<>();
      caFile.ifPresent(s -> keys.add(s.key()));
      caPath.ifPresent(s -> keys.add(s.key()));
      certFile.ifPresent(s -> keys.add(s.key()));
      keyFile.ifPresent(s -> keys.add(s.key()));
      serverName.ifPresent(s -> keys.add(s.key()));
      verify.filter(s -> !s.value()).ifPresent(s -> keys.add(s.key()));
      return keys;
    }
  }

  /** The advertised services; {@code address} empty means "Patroni's PostgreSQL host". */
  public record Services(Optional<String> address, Service primary, Replica replica) {}

  public record Service(String name, int port) {}

  /**
   * The replica service: critical when lag exceeds {@code maxLag}, warning above {@code warnLag}.
   */
  public record Replica(String name, int port, long maxLag, long warnLag, boolean requireStreaming,
      Duration streamingGrace) {

    public Replica {
      Objects.requireNonNull(streamingGrace, "streamingGrace");
    }

    public Service asService() {
      return new Service(name, port);
    }
  }

  /**
   * Which verdict an agent-check port, an HTTP health endpoint or a Consul service answers from. Two are decided
   * ({@link #PRIMARY}, {@link #REPLICA}) and published in Consul; the others are read from those two and the
   * node's facts ({@link io.pgbeacon.health.NodeHealth#view}).
   */
  public enum View {
    PRIMARY,
    REPLICA,
    /** Healthy replicas that are synchronous standbys now. */
    SYNC,
    /** Healthy replicas that are not synchronous standbys (a standby leader included). */
    ASYNC,
    /** Any node that serves reads: the primary, or a healthy replica. */
    READ_ONLY,
    /** The leader of a standby cluster, healthy and streaming from its source. */
    STANDBY_LEADER;

    /** The views that are Consul services; the others exist at the agent ports and HTTP endpoints only. */
    public static final List<View> IN_CONSUL = List.of(PRIMARY, REPLICA);

    /** {@code primary}, {@code read-only}, {@code standby-leader}: the name in the config, agent-send and HTTP. */
    public String key() {
      return name().toLowerCase(java.util.Locale.ROOT).replace('_', '-');
    }

    /** The view named {@code text} (any case, surrounding blanks ignored). */
    public static Optional<View> named(String text) {
      String name = text.strip().toLowerCase(java.util.Locale.ROOT);
      for (View view : values()) {
        if (view.key().equals(name)) {
          return Optional.of(view);
        }
      }
      return Optional.empty();
    }
  }

  /** What the agent tells HAProxy about a healthy node of the wrong role for the port's view. */
  public enum WrongRole {
    /** HAProxy shows the server in MAINT: not routed, and not an alarm (the point of the 2018 agent-check article). */
    MAINT,
    /** Drain: no new connections. */
    DRAIN,
    /** Plain DOWN, like a Patroni httpchk backend. */
    DOWN
  }

  /**
   * What the agent tells HAProxy about a replica past {@code max-lag}: critical in Consul either way, but the
   * node is healthy, just behind.
   */
  public enum PastMaxLag {
    /** {@code up drain}: HAProxy keeps the sessions it has and sends no new ones until the replica catches up. */
    DRAIN,
    /** {@code down}: HAProxy takes it out at once (and closes its sessions with {@code on-marked-down}). */
    DOWN
  }

  /**
   * One agent-check listener; {@code view} empty means the view is chosen per connection by HAProxy's
   * {@code agent-send "primary\n"}.
   */
  public record Listener(String address, int port, Optional<View> view) {}

  /**
   * The agent-check ports and their vocabulary.
   *
   * @param weightLagStart a replica's weight is 100% up to this lag, then falls linearly to {@code weightFloor}
   *     at {@code services.replica.max-lag}
   * @param weightFloor the weight, in percent (1..100), of a replica at max-lag; 100 turns lag weights off
   * @param maxconn the {@code maxconn:N} each view's replies carry; a view not in the map sends none
   */
  public record Agent(List<Listener> listen, WrongRole wrongRole, PastMaxLag pastMaxLag, long weightLagStart,
      int weightFloor, Map<View, Integer> maxconn, Duration readTimeout) {

    public static final int MAX_MAXCONN = 1_000_000;

    public Agent {
      listen = List.copyOf(listen);
      maxconn = Map.copyOf(maxconn);
      Objects.requireNonNull(wrongRole, "agent.wrong-role");
      Objects.requireNonNull(pastMaxLag, "agent.past-max-lag");
      Objects.requireNonNull(readTimeout, "agent.read-timeout");
    }
  }
}
