package io.pgbeacon;

import io.pgbeacon.agent.ReplyBoard;
import io.pgbeacon.agent.ReplyPolicy;
import io.pgbeacon.config.Config;
import io.pgbeacon.config.ConfigChanges;
import io.pgbeacon.config.ConfigException;
import io.pgbeacon.config.ConfigSummary;
import io.pgbeacon.consul.ConsulAgent;
import io.pgbeacon.consul.ConsulRegistrar;
import io.pgbeacon.consul.DcsWatch;
import io.pgbeacon.consul.EcwidConsulAgent;
import io.pgbeacon.health.Freshness;
import io.pgbeacon.health.HealthPolicy;
import io.pgbeacon.health.NodeHealth;
import io.pgbeacon.health.Observations;
import io.pgbeacon.http.StatusSource;
import io.pgbeacon.metrics.Metrics;
import io.pgbeacon.health.TimeSource;
import io.pgbeacon.systemd.Heartbeat;
import io.pgbeacon.systemd.SdNotify;
import io.pgbeacon.systemd.ServiceNotifier;
import io.vertx.core.Future;
import io.vertx.core.Promise;
import io.vertx.core.Vertx;
import io.vertx.core.VertxOptions;
import java.time.Instant;
import java.util.EnumSet;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.function.BiFunction;
import java.util.function.UnaryOperator;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The running daemon: one Vert.x, the agent verticle (first, so HAProxy hears {@code down #starting} at once) and
 * the monitor verticle. {@link #stop()} is idempotent and makes both Consul checks critical (or deregisters them)
 * before the agent ports close. {@link #reload} applies what of a re-read config can change while running. Under
 * systemd ({@code NOTIFY_SOCKET}) the {@link ServiceNotifier} reports each of these.
 */
public final class PgBeacon {

  private static final Logger log = LoggerFactory.getLogger(PgBeacon.class);
  static final java.time.Duration AGENT_LINGER = java.time.Duration.ofMillis(1200);
  /** Agent ports, HTTP endpoints, monitor, and one for the start's context and the monitor's clients. */
  static final int EVENT_LOOPS = 4;

  /** Lifecycle; each transition is logged once at INFO. */
  enum State {
    NEW, STARTING, RUNNING, STOPPING, STOPPED;

    private Set<State> next() {
      return switch (this) {
        case NEW -> EnumSet.of(STARTING, STOPPED);
        case STARTING -> EnumSet.of(RUNNING, STOPPING);
        case RUNNING -> EnumSet.of(STOPPING);
        case STOPPING -> EnumSet.of(STOPPED);
        case STOPPED -> EnumSet.noneOf(State.class);
      };
    }
  }

  /** The config in force: replaced by a reload (on the monitor's loop), read anywhere. */
  private volatile Config config;
  private final String version;
  private final BiFunction<Config.Consul, Metrics, ConsulAgent> consulAgents;
  private final Vertx vertx;
  private final ReplyBoard board;
  private final Metrics metrics;
  private final NodeHealth starting;
  private final ServiceNotifier notifier;
  private ConsulAgent consul;
  /** Reloads run one after another, each after the previous one ended. */
  private Future<Boolean> reloads = Future.succeededFuture(false);
  private State state = State.NEW;
  private String monitorId;
  private String agentId;
  private String httpId;
  private AgentVerticle agent;
  private volatile MonitorVerticle monitor;
  private UnaryOperator<NodeHealth> verdictStep = UnaryOperator.identity();
  private HttpVerticle http;
  private CompletableFuture<Void> stopped;

  public PgBeacon(Config config, String version) {
    this(config, version, System.getenv());
  }

  /** @param env where systemd's {@code NOTIFY_SOCKET}, {@code WATCHDOG_USEC} and {@code WATCHDOG_PID} are read */
  public PgBeacon(Config config, String version, Map<String, String> env) {
    this(config, version, EcwidConsulAgent::new, env);
  }

  PgBeacon(Config config, String version, BiFunction<Config.Consul, Metrics, ConsulAgent> consulAgents) {
    this(config, version, consulAgents, Map.of());
  }

  PgBeacon(Config config, String version, BiFunction<Config.Consul, Metrics, ConsulAgent> consulAgents,
      Map<String, String> env) {
    this.config = config;
    this.version = version;
    this.consulAgents = consulAgents;
    this.vertx = newVertx();
    Freshness freshness = Freshness.of(config);
    this.starting = NodeHealth.starting(config.node(), TimeSource.SYSTEM.nanos());
    this.board = new ReplyBoard(starting, ReplyPolicy.of(config), freshness, TimeSource.SYSTEM);
    this.metrics = new Metrics(version, config.node());
    VerdictMetrics.register(metrics, board::health, freshness, TimeSource.SYSTEM,
        () -> this.config.services().replica().maxLag());
    this.notifier = new ServiceNotifier(vertx, SdNotify.fromEnvironment(env),
        Heartbeat.watchdogInterval(env, ProcessHandle.current().pid()), board::health, this::firstVerdictOut,
        freshness, TimeSource.SYSTEM);
  }

  /** The first verdict is on the board, and Consul was sent one at least as new (whether it answered or not). */
  private boolean firstVerdictOut() {
    MonitorVerticle m = monitor;
    NodeHealth synced = m == null ? null : m.registrar().map(ConsulRegistrar::synced).orElse(null);
    return board.health() != starting && synced != null && synced.observedAt() - starting.observedAt() > 0;
  }

  /**
   * For tests, before {@link #start}: a step every verdict the monitor decides passes through, which can throw as a
   * bug in a decision would (no Patroni answer makes one throw: a bad answer is a reading of its own).
   */
  synchronized PgBeacon verdictsThrough(UnaryOperator<NodeHealth> step) {
    this.verdictStep = step;
    return this;
  }

  public synchronized Future<Void> start() {
    move(State.STARTING);
    agent = new AgentVerticle(config.agent(), board, metrics);
    consul = consulAgents.apply(config.consul(), metrics);
    monitor = new MonitorVerticle(config, board, consul, version, TimeSource.SYSTEM, metrics, verdictStep);
    // Vert.x hands out its event loops in turn, to every context made. Deployed from a context of its own (from a
    // thread outside Vert.x each deployment would make one more for its caller), in this order, the agent ports,
    // the HTTP endpoints and the monitor each take a loop of their own; the start's context and whatever the
    // monitor's clients make for themselves (Vert.x's HTTP client makes one) share the fourth.
    Promise<Void> started = Promise.promise();
    vertx.getOrCreateContext().runOnContext(v -> deploy().onComplete(started));
    return started.future();
  }

  private Future<Void> deploy() {
    return deployAgent(vertx, agent)
        .compose(id -> {
          agentId = id;
          if (config.http().isEmpty()) {
            return Future.succeededFuture((String) null);
          }
          http = new HttpVerticle(config, status(), metrics, version, Freshness.of(config));
          return vertx.deployVerticle(http);
        })
        .compose(id -> {
          httpId = id;
          return vertx.deployVerticle(monitor);
        })
        .map(id -> {
          monitorId = id;
          if (new HashSet<>(eventLoops().values()).size() < eventLoops().size()) {
            log.warn("event loops shared: {} (a slow scrape may delay agent replies)", eventLoops());
          }
          synchronized (this) {
            if (state == State.STARTING) {
              move(State.RUNNING);
            }
          }
          notifier.bound(); // on the start's context: its loop runs systemd's timer
          return (Void) null;
        });
  }

  /** The event-loop thread of each part, once started: "agent", "monitor", "http" (when on). */
  public Map<String, String> eventLoops() {
    Map<String, String> loops = new LinkedHashMap<>();
    loops.put("agent", agent.loop());
    loops.put("monitor", monitor.loop());
    if (http != null) {
      loops.put("http", http.loop());
    }
    return loops;
  }

  /**
   * The daemon's Vert.x, sized for a sidecar, on Linux's epoll transport when it loads, else on the JDK's. Epoll
   * lets the agent ports cork each reply with its FIN (AgentServer): about a quarter less server CPU per agent check
   * (scripts/bench-agent.sh).
   *
   * <p>Four event loops: the agent ports, the HTTP endpoints and the monitor each on one of their own, the fourth for
   * the start's context and the monitor's clients (see {@link #start()}). One worker thread and two for Vert.x's
   * internal blocking work (loading TLS material, host names looked up by the JDK): nothing of pgbeacon's own runs on
   * them — the Consul calls and key watches have single-thread executors of their own (ConsulRegistrar, KeyWatch).
   * The pools start their threads on demand, but a fixed pool starts a new thread for each task until it is full, so
   * Vert.x's defaults (20 and 20) would leave threads, each with its stack and malloc arena, that pgbeacon never needs
   * (scripts/bench-footprint.sh counts them).
   */
  static Vertx newVertx() {
    return Vertx.vertx(vertxOptions());
  }

  static VertxOptions vertxOptions() {
    return new VertxOptions().setEventLoopPoolSize(EVENT_LOOPS).setWorkerPoolSize(1).setInternalBlockingPoolSize(2)
        .setPreferNativeTransport(true);
  }

  /** What the HTTP endpoints show: the board, the monitor's reads and pushes, the agent ports. */
  private StatusSource status() {
    return new StatusSource() {
      @Override
      public NodeHealth health() {
        return board.health();
      }

      @Override
      public Map<Config.View, Instant> since() {
        return monitor.verdicts().since();
      }

      @Override
      public Observations.Latest reads() {
        return monitor.seen().latest();
      }

      @Override
      public List<DcsWatch.WatchState> watches() {
        return monitor.dcs().map(DcsWatch::states).orElse(List.of());
      }

      @Override
      public Map<String, ConsulRegistrar.Push> pushes() {
        return monitor.registrar().map(ConsulRegistrar::pushes).orElse(Map.of());
      }

      @Override
      public Map<String, Instant> registered() {
        return monitor.registrar().map(ConsulRegistrar::registered).orElse(Map.of());
      }

      @Override
      public boolean listening() {
        return agent.listening();
      }
    };
  }

  /** The HTTP endpoints' bound port; 0 when off or not started. */
  public int httpPort() {
    return http == null ? 0 : http.port();
  }

  /** Deploys the agent ports; shared with the in-process agent of the benchmark and the HAProxy tests. */
  static Future<String> deployAgent(Vertx vertx, AgentVerticle agent) {
    return vertx.deployVerticle(agent);
  }

  /** The agent ports actually bound, in config order. */
  public List<Integer> agentPorts() {
    return agent == null ? List.of() : agent.ports();
  }

  public NodeHealth health() {
    return board.health();
  }

  /**
   * Stops the monitor (checks go critical or are deregistered), then the agent ports, then Vert.x. Idempotent.
   * Returns a plain CompletableFuture: it completes after Vert.x's own threads are gone.
   */
  public synchronized CompletableFuture<Void> stop() {
    if (stopped != null) {
      return stopped;
    }
    notifier.stopping();
    if (state == State.NEW) {
      move(State.STOPPED);
      return stopped = vertx.close().toCompletionStage().toCompletableFuture();
    }
    move(State.STOPPING);
    Future<Void> monitorStopped = monitorId == null ? Future.succeededFuture() : vertx.undeploy(monitorId);
    // HAProxy keeps an agent's last word when the agent goes silent: keep answering "down #pgbeacon stopping"
    // for a moment so that a poller with agent-inter ≤ 1s hears it before the ports close.
    Future<Void> undeployed = monitorStopped
        .compose(v -> vertx.timer(AGENT_LINGER.toMillis(), java.util.concurrent.TimeUnit.MILLISECONDS))
        .eventually(() -> httpId == null ? Future.succeededFuture() : vertx.undeploy(httpId))
        .eventually(() -> agentId == null ? Future.succeededFuture() : vertx.undeploy(agentId))
        .mapEmpty();
    // Close Vert.x from a thread of its own: a completion emitted on a closing event loop would be lost.
    stopped = undeployed.toCompletionStage().toCompletableFuture()
        .handle((ok, error) -> null)
        .thenComposeAsync(ignored -> vertx.close().toCompletionStage())
        .whenComplete((ok, error) -> {
          notifier.close();
          synchronized (this) {
            move(State.STOPPED);
          }
        });
    return stopped;
  }

  /**
   * Re-reads the config with {@code read} (on a worker: it reads files) and applies what can change while running
   * ({@link ConfigChanges#RELOADABLE}: reply words, lag thresholds, the Consul token), on the monitor's loop, between
   * two decisions; changed keys that need a restart are logged and kept. A config that does not load is refused with
   * every problem logged, and nothing changes. Completes with true when the reload applied or confirmed a config;
   * never fails. Reloads queue: each starts after the previous one ended.
   */
  public synchronized Future<Boolean> reload(Callable<Config> read) {
    reloads = reloads.transform(previous -> reloadNow(read));
    return reloads;
  }

  private Future<Boolean> reloadNow(Callable<Config> read) {
    synchronized (this) {
      if (state != State.RUNNING) {
        log.warn("reload ignored: pgbeacon is {}", state.name().toLowerCase(java.util.Locale.ROOT));
        return Future.succeededFuture(false);
      }
    }
    notifier.reloading();
    log.info("reloading the configuration");
    return vertx.executeBlocking(read, false)
        .compose(next -> onMonitorLoop(() -> apply(next)))
        .recover(e -> {
          if (e instanceof ConfigException bad) {
            bad.problems().forEach(p -> log.error("reload: {}", p));
          } else {
            log.error("reload: {}", String.valueOf(e));
          }
          log.error("reload refused, running config kept");
          return Future.succeededFuture(false);
        })
        .eventually(() -> {
          notifier.reloaded();
          return Future.succeededFuture();
        });
  }

  /** On the monitor's loop: swaps in the reloadable part of {@code next}. */
  private boolean apply(Config next) {
    Config running = config;
    ConfigChanges changes = ConfigChanges.between(running, next);
    changes.restartNeeded().forEach(key -> log.warn("reload: {} changed: needs a restart, kept", key));
    if (changes.applied().isEmpty()) {
      log.info("reload: nothing to apply{}", changes.none() ? ", the configuration is unchanged" : "");
      return true;
    }
    Config effective = changes.effective();
    ReplyPolicy replies = ReplyPolicy.of(effective); // everything that may throw before anything is swapped
    if (!effective.consul().token().equals(running.consul().token())) {
      consul.useToken(effective.consul().token()); // first swap: it throws if the agent cannot, and nothing changed
    }
    monitor.seen().policy(HealthPolicy.of(effective));
    board.policy(replies);
    config = effective;
    log.info("reloaded ({}): {}", String.join(", ", changes.applied()),
        String.join("; ", ConfigSummary.lines(effective)));
    return true;
  }

  /** Runs {@code work} on the monitor's loop, where every decision is made (and how a test makes it hang). */
  <T> Future<T> onMonitorLoop(Callable<T> work) {
    io.vertx.core.Promise<T> done = io.vertx.core.Promise.promise();
    monitor.context().runOnContext(v -> {
      try {
        done.complete(work.call());
      } catch (Exception e) {
        done.fail(e);
      }
    });
    return done.future();
  }

  /** The config in force (after the reloads so far). */
  public Config config() {
    return config;
  }

  private void move(State to) {
    if (!state.next().contains(to)) {
      throw new IllegalStateException("pgbeacon cannot go from " + state + " to " + to);
    }
    log.info("pgbeacon {} {}", version, to.name().toLowerCase(java.util.Locale.ROOT));
    state = to;
  }
}
