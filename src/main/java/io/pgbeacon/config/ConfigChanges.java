package io.pgbeacon.config;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.RecordComponent;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.Set;

/**
 * What a reload changes: the keys whose values differ between the running config and the one just read, which of
 * them are applied while running ({@link #RELOADABLE}) and which need a restart, and the config in force afterwards —
 * the running one with only the reloadable values taken from the new. Pure.
 *
 * <p>Reloadable is what only shapes replies and the replica's thresholds, or how Consul is called: none of it can
 * advertise a node as primary that the verdict would not, nor touch a registration's shape (name, ID, port), so a
 * reload never makes a Consul check flap or a service re-register. What binds a socket, names a service or check,
 * or sizes a timer (listeners, node, addresses, TTLs, intervals, timeouts) needs a restart.
 *
 * <p>The keys are found by walking the config's records, so a key added to a record is compared (as needing a
 * restart) without being listed here.
 *
 * @param applied the changed keys applied now, in config order
 * @param restartNeeded the changed keys kept as they run until a restart
 * @param effective the config in force after the reload
 */
public record ConfigChanges(List<String> applied, List<String> restartNeeded, Config effective) {

  /** The keys a reload applies. {@code consul.token-file} stands for the token wherever it comes from. */
  public static final Set<String> RELOADABLE = Set.of(
      "agent.wrong-role", "agent.past-max-lag", "agent.weight-lag-start", "agent.weight-floor", "agent.maxconn",
      "services.replica.max-lag", "services.replica.warn-lag", "services.replica.require-streaming",
      "services.replica.streaming-grace", "consul.token-file");

  public ConfigChanges {
    applied = List.copyOf(applied);
    restartNeeded = List.copyOf(restartNeeded);
  }

  public boolean none() {
    return applied.isEmpty() && restartNeeded.isEmpty();
  }

  public static ConfigChanges between(Config running, Config next) {
    List<String> changed = new ArrayList<>();
    compare("", running, next, changed);
    List<String> applied = changed.stream().filter(RELOADABLE::contains).toList();
    List<String> kept = changed.stream().filter(k -> !RELOADABLE.contains(k)).toList();
    return new ConfigChanges(applied, kept, effective(running, next));
  }

  /** The running config with the reloadable values of {@code next}; every rule between them holds in {@code next}. */
  private static Config effective(Config running, Config next) {
    Config.Agent a = running.agent();
    Config.Agent n = next.agent();
    Config.Agent agent = new Config.Agent(a.listen(), n.wrongRole(), n.pastMaxLag(), n.weightLagStart(),
        n.weightFloor(), n.maxconn(), a.readTimeout());
    Config.Replica r = running.services().replica();
    Config.Replica nr = next.services().replica();
    Config.Services services = new Config.Services(running.services().address(), running.services().primary(),
        new Config.Replica(r.name(), r.port(), nr.maxLag(), nr.warnLag(), nr.requireStreaming(),
            nr.streamingGrace()));
    return new Config(running.node(), running.patroni(), running.pgbouncer(),
        running.consul().withToken(next.consul().token()), services, running.pollInterval(), agent, running.http(),
        running.sources());
  }

  /** Adds the key of every value that differs, descending into the config's blocks (present optional ones too). */
  private static void compare(String key, Object was, Object now, List<String> changed) {
    Object a = was instanceof Optional<?> o && o.isPresent() && block(o.get()) ? o.get() : was;
    Object b = now instanceof Optional<?> o && o.isPresent() && block(o.get()) ? o.get() : now;
    if (block(a) && block(b) && a.getClass() == b.getClass()) {
      Record ra = (Record) a;
      Record rb = (Record) b;
      for (RecordComponent c : ra.getClass().getRecordComponents()) {
        if (c.getName().equals("sources")) {
          continue; // where a value came from is not a value: a change of it shows as the keys whose values changed
        }
        compare(child(key, c.getName()), value(c, ra), value(c, rb), changed);
      }
    } else if (!java.util.Objects.equals(a, b)) {
      changed.add(settingKey(b).or(() -> settingKey(a)).orElse(key));
    }
  }

  /** A TLS setting is reported under the key it was given by ({@code consul.cert-file}, {@code CONSUL_CLIENT_CERT}). */
  private static Optional<String> settingKey(Object value) {
    Object v = value instanceof Optional<?> o ? o.orElse(null) : value;
    return v instanceof Config.Setting<?> s ? Optional.of(s.key()) : Optional.empty();
  }

  /**
   * A record of YAML keys: the config and its nested records, but not a value that happens to be a record (a
   * {@link Secret}, whose change is the change of its file key; the leader key, one YAML value; a TLS setting, a value
   * with the key it came from).
   */
  private static boolean block(Object value) {
    return value instanceof Record && value.getClass() != Config.LeaderKey.class
        && value.getClass() != Config.Setting.class
        && (value.getClass() == Config.class || value.getClass().getEnclosingClass() == Config.class);
  }

  private static Object value(RecordComponent c, Record r) {
    try {
      return c.getAccessor().invoke(r);
    } catch (IllegalAccessException | InvocationTargetException e) {
      throw new IllegalStateException("cannot read " + c.getName() + " of " + r.getClass().getSimpleName(), e);
    }
  }

  /** The YAML key of a record component: {@code weightLagStart} → {@code weight-lag-start}; secrets by their file key. */
  private static String child(String key, String component) {
    String name = switch (component) {
      case "pollInterval" -> "poll.interval";
      case "password", "adminPassword", "token" -> component + "File";
      default -> component;
    };
    String kebab = name.replaceAll("([a-z0-9])([A-Z])", "$1-$2").toLowerCase(Locale.ROOT);
    return key.isEmpty() ? kebab : key + "." + kebab;
  }
}
