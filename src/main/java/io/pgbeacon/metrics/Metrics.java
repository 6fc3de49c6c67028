package io.pgbeacon.metrics;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.Tag;
import io.micrometer.core.instrument.Tags;
import io.micrometer.core.instrument.Timer;
import io.micrometer.core.instrument.binder.jvm.ClassLoaderMetrics;
import io.micrometer.core.instrument.config.MeterFilter;
import io.micrometer.core.instrument.binder.jvm.JvmGcMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmMemoryMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmThreadMetrics;
import io.micrometer.core.instrument.binder.system.FileDescriptorMetrics;
import io.micrometer.core.instrument.binder.system.ProcessorMetrics;
import io.micrometer.core.instrument.binder.system.UptimeMetrics;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.DoubleSupplier;

/**
 * pgbeacon's meters, in Micrometer's Prometheus registry: names by Prometheus's conventions ({@code pgbeacon_}
 * prefix, base units, {@code _total}, {@code _seconds}), and {@code scope} and {@code node} on every series, as
 * Patroni labels its own.
 *
 * <p>The scope is known only once Patroni has answered (the node, often from the config): until then both labels are
 * empty, and when they become known the registry is made anew with them — meters are re-registered, counters and
 * histograms start over (Prometheus reads that as a restart). That happens once in a daemon's life, at its start.
 *
 * <p>Thread-safe: meters are recorded from every event loop and worker; scrapes come from the HTTP loop. The agent's
 * reply counters ({@link #counters}) cost one volatile read and one {@code increment()} per reply.
 */
public final class Metrics {

  /** The histogram buckets of every call's duration, in seconds: loopback calls, up to the longest deadline. */
  private static final Duration[] BUCKETS = {Duration.ofMillis(1), Duration.ofMillis(2), Duration.ofMillis(5),
      Duration.ofMillis(10), Duration.ofMillis(25), Duration.ofMillis(50), Duration.ofMillis(100),
      Duration.ofMillis(250), Duration.ofMillis(500), Duration.ofSeconds(1), Duration.ofMillis(2500),
      Duration.ofSeconds(5), Duration.ofSeconds(10)};

  /** A gauge to register again in every registry: its name, tags and value. */
  private record GaugeDef(String name, String description, String unit, Tags tags, DoubleSupplier value) {}

  private final String version;
  private final List<GaugeDef> gauges = new ArrayList<>();
  private final List<CounterSet> counterSets = new ArrayList<>();
  private volatile Registry current;

  /** One registry with its identity and the meters made in it. */
  private static final class Registry {
    final PrometheusMeterRegistry prometheus;
    final Tags identity;
    final JvmGcMetrics gc = new JvmGcMetrics();
    final Map<String, Timer> timers = new ConcurrentHashMap<>();
    final Map<String, Counter> counters = new ConcurrentHashMap<>();

    Registry(Tags identity) {
      this.identity = identity;
      this.prometheus = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
      prometheus.config().commonTags(identity)
          // What promtool's lint refuses in the JVM binders' output: an abbreviated unit (process_cpu_time_ns) and a
          // gauge ending in _count (system_cpu_count). process_cpu_usage and the JVM's own stay.
          .meterFilter(MeterFilter.deny(id -> id.getName().equals("process.cpu.time")
              || id.getName().equals("system.cpu.count")));
      new ClassLoaderMetrics().bindTo(prometheus);
      new JvmMemoryMetrics().bindTo(prometheus);
      gc.bindTo(prometheus);
      new JvmThreadMetrics().bindTo(prometheus);
      new ProcessorMetrics().bindTo(prometheus);
      new UptimeMetrics().bindTo(prometheus);
      new FileDescriptorMetrics().bindTo(prometheus);
    }
  }

  private static final class None {
    static final Metrics INSTANCE = new Metrics("none", Optional.empty());
  }

  /** Meters nobody scrapes, shared: for tools and tests that need no metrics. */
  public static Metrics none() {
    return None.INSTANCE;
  }

  public Metrics(String version, Optional<String> node) {
    this.version = version;
    this.current = newRegistry(Tags.of("scope", "", "node", node.orElse("")));
  }

  /** The scope and node labels from now on; a change makes the registry anew (see the class comment). */
  public synchronized void identify(Optional<String> scope, Optional<String> node) {
    Tags identity = Tags.of("scope", scope.orElse(""), "node", node.orElse(""));
    if (identity.equals(current.identity)) {
      return;
    }
    Registry old = current;
    current = newRegistry(identity);
    counterSets.forEach(CounterSet::bind);
    old.gc.close();
    old.prometheus.close();
  }

  private Registry newRegistry(Tags identity) {
    Registry r = new Registry(identity);
    Gauge.builder("pgbeacon.build.info", () -> 1).description("pgbeacon's version; always 1")
        .tag("version", version).register(r.prometheus);
    synchronized (this) {
      gauges.forEach(g -> register(r, g));
    }
    return r;
  }

  private static void register(Registry r, GaugeDef g) {
    Gauge.builder(g.name(), g.value()::getAsDouble).description(g.description()).baseUnit(g.unit()).tags(g.tags())
        .strongReference(true).register(r.prometheus);
  }

  /** A gauge read at every scrape; {@code unit} is a base unit ("seconds", "bytes") or null. */
  public synchronized void gauge(String name, String description, String unit, Tags tags, DoubleSupplier value) {
    GaugeDef def = new GaugeDef(name, description, unit, tags, value);
    gauges.add(def);
    register(current, def);
  }

  /**
   * Records one remote call of {@code what} ("Patroni REST request", …): its duration, and its error's kind if it
   * failed.
   */
  public void call(String timer, String errors, String what, Tags tags, Duration took, Optional<String> errorKind) {
    Registry r = current;
    r.timers.computeIfAbsent(timer + tags, k -> Timer.builder(timer).description("duration of each " + what)
        .tags(tags).serviceLevelObjectives(BUCKETS).register(r.prometheus)).record(took);
    errorKind.ifPresent(kind -> count(errors, "failed " + what + "s, by kind", tags.and("kind", kind)));
  }

  /** Adds one to a counter. */
  public void count(String counter, String description, Tags tags) {
    Registry r = current;
    r.counters.computeIfAbsent(counter + tags, k -> Counter.builder(counter).description(description).tags(tags)
        .register(r.prometheus)).increment();
  }

  /**
   * Counters of one name and fixed tags that differ in one label, prepared for a hot path: {@code increment(i)}
   * counts value {@code i} of that label.
   */
  public synchronized CounterSet counters(String name, String description, Tags fixed, String label,
      List<String> values) {
    CounterSet set = new CounterSet(this, name, description, fixed, label, values);
    counterSets.add(set);
    set.bind(); // every value shows from the start, at 0
    return set;
  }

  /** The text Prometheus scrapes, in {@code contentType}'s format (OpenMetrics when asked for, else 0.0.4). */
  public String scrape(String contentType) {
    return current.prometheus.scrape(contentType);
  }

  /** See {@link Metrics#counters}. */
  public static final class CounterSet {
    private final Metrics metrics;
    private final String name;
    private final String description;
    private final Tags fixed;
    private final String label;
    private final List<String> values;
    private volatile Bound bound;

    private record Bound(Registry registry, Counter[] counters) {}

    CounterSet(Metrics metrics, String name, String description, Tags fixed, String label, List<String> values) {
      this.metrics = metrics;
      this.name = Objects.requireNonNull(name);
      this.description = description;
      this.fixed = fixed;
      this.label = label;
      this.values = List.copyOf(values);
    }

    public void increment(int value) {
      Bound b = bound;
      if (b == null || b.registry() != metrics.current) {
        b = bind();
      }
      b.counters()[value].increment();
    }

    synchronized Bound bind() {
      Registry r = metrics.current;
      Counter[] counters = new Counter[values.size()];
      for (int i = 0; i < counters.length; i++) {
        counters[i] = Counter.builder(name).description(description).tags(fixed.and(Tag.of(label, values.get(i))))
            .register(r.prometheus);
      }
      Bound b = new Bound(r, counters);
      bound = b;
      return b;
    }
  }
}
