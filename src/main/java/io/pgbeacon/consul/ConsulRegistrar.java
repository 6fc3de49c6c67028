package io.pgbeacon.consul;

import io.micrometer.core.instrument.Tags;
import io.pgbeacon.config.Config;
import io.pgbeacon.config.Units;
import io.pgbeacon.health.Freshness;
import io.pgbeacon.net.FailureRun;
import io.pgbeacon.patroni.Role;
import io.pgbeacon.health.NodeHealth;
import io.pgbeacon.health.Status;
import io.pgbeacon.health.TimeSource;
import io.pgbeacon.health.Verdict;
import io.pgbeacon.metrics.Metrics;
import io.vertx.core.Future;
import io.vertx.core.Promise;
import io.vertx.core.Vertx;
import io.vertx.core.WorkerExecutor;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Keeps the two Consul services true to the latest verdict: register → push on change → refresh every TTL/3 (the
 * liveness checks every third of their longer TTL) → re-register when the agent forgot us → critical (or
 * deregister) on stop, confirmed.
 *
 * <p>What Consul holds is known only from calls it answered. After any failed call it is unknown, and the next
 * call pushes every check of both services again. Calls are made one at a time, each after the previous one was
 * answered, on one connection ({@link ConsulAgent}): the agent applies them in that order. A call that is slow is
 * waited for — past {@code consul.timeout} it counts as a failure for the log, but it is not abandoned, because an
 * abandoned call can still be applied after newer ones. Only a call given up on by the agent client
 * ({@link ConsulAgent#giveUpAfter()}) may land late; then everything is pushed again {@code consul.timeout} after
 * Consul answers again, so that the latest word is the last applied.
 *
 * <p>Service IDs are {@code <service>/<scope>/<node>} ({@link ServiceRegistration#idOf}), so nothing is registered
 * before Patroni has named both. The first sync that can register first retires this node's services of the old
 * form {@code <service>-<node>} that carry its scope (or none), so an upgrade leaves no orphan passing beside the new
 * ones; another cluster's old-form service of the same node name on a shared agent is left alone.
 *
 * <p>A verdict older than the freshness limit is pushed as critical "verdict stale": the TTL refresh never carries
 * a verdict the poll loop has stopped renewing.
 *
 * <p>Threading: every method, timer and completion runs on the owning verticle's event loop, which owns every field;
 * Consul calls run on a single-thread worker of their own (unordered in Vert.x's sense: "ordered" would queue them
 * behind the key watches' long blocking reads on the same context), each working on an immutable copy of what to
 * send. A newer verdict arriving meanwhile is sent as soon as the current call ends: only the latest matters.
 */
public final class ConsulRegistrar {

  private static final Logger log = LoggerFactory.getLogger(ConsulRegistrar.class);
  private static final Duration RETRY = Duration.ofSeconds(1);
  private static final Duration STOP_RETRY = Duration.ofMillis(250);
  static final String LAG_META = "lag_bytes";
  static final String STOPPED = "pgbeacon stopped";

  private final Vertx vertx;
  private final ConsulAgent agent;
  private final Config config;
  private final String version;
  private final Freshness freshness;
  private final TimeSource time;
  private final WorkerExecutor worker;
  private final FailureRun failures;
  /** The registration Consul is known to hold for each view (answered calls only). */
  private final Map<Config.View, ServiceRegistration> registered = new EnumMap<>(Config.View.class);
  /** The verdict check's status and output Consul is known to hold. */
  private final Map<Config.View, Pushed> pushed = new EnumMap<>(Config.View.class);
  /** The last registration asked for: the shape kept while Patroni is unreachable and the role unknown. */
  private final Map<Config.View, ServiceRegistration> advertised = new EnumMap<>(Config.View.class);
  private final Map<Config.View, LagMeta> lagMeta = new EnumMap<>(Config.View.class);
  private final Metrics metrics;
  /** For /status and the metrics: written on the worker, read anywhere. */
  private final Map<String, Push> pushes = new java.util.concurrent.ConcurrentHashMap<>();
  private final Map<String, java.time.Instant> registeredAt = new java.util.concurrent.ConcurrentHashMap<>();

  private NodeHealth latest;
  /** The verdict the last completed sync carried, answered or failed: for systemd's READY=1. Read anywhere. */
  private volatile NodeHealth synced;
  private boolean dirty;
  private boolean refreshDue;
  private boolean aliveDue;
  private boolean busy;
  private boolean late;
  private boolean stopped;
  /** The old-form IDs of this node were looked for and removed (answered calls only). */
  private boolean retired;
  /** A call given up on may still be applied: push everything again once Consul answers. */
  private boolean unsettled;
  private long refreshTimer = -1;
  private long aliveTimer = -1;
  private long retryTimer = -1;
  private long deadlineTimer = -1;
  private long staleTimer = -1;
  private long settleTimer = -1;

  private record Pushed(Status status, String output) {}

  /** What one sync confirmed, and the failure that ended it early, if any. */
  private record SyncResult(Map<Config.View, ServiceRegistration> registered, Map<Config.View, Pushed> pushed,
      Optional<Config.View> registerFailed, Optional<ConsulAgent.ConsulException> failure, int calls,
      boolean retired) {}

  public ConsulRegistrar(Vertx vertx, ConsulAgent agent, Config config, String version, Freshness freshness,
      TimeSource time, Metrics metrics) {
    this.metrics = metrics;
    this.vertx = vertx;
    this.agent = agent;
    this.config = config;
    this.version = version;
    this.freshness = freshness;
    this.time = time;
    // One thread: calls stay ordered; a hung agent blocks only us, never the event loop or the poller.
    this.worker = vertx.createSharedWorkerExecutor("pgbeacon-consul", 1,
        agent.giveUpAfter().plus(config.consul().timeout()).toMillis(), TimeUnit.MILLISECONDS);
    this.failures = new FailureRun(log, "Consul", time);
    for (Config.View view : Config.View.IN_CONSUL) {
      lagMeta.put(view, new LagMeta());
    }
  }

  public void start() {
    refreshTimer = vertx.setPeriodic(config.consul().refreshInterval().toMillis(), id -> {
      refreshDue = true;
      pump();
    });
    aliveTimer = vertx.setPeriodic(config.consul().aliveTtl().dividedBy(3).toMillis(), id -> {
      aliveDue = true;
      refreshDue = true;
      pump();
    });
  }

  /** Takes the latest verdict; an outcome change is sent at once, other changes ride the next refresh. */
  public void publish(NodeHealth health) {
    if (stopped) {
      return;
    }
    // Against what was last in force: a stale verdict went out as critical, so a fresh one is news.
    boolean changed = latest == null || health.outcomeDiffers(freshness.apply(latest, time.nanos()));
    latest = health;
    watchAge(health);
    if (changed) {
      dirty = true;
      pump();
    }
  }

  /** Pushes critical "verdict stale" the moment {@code health} outlives the freshness limit unless replaced. */
  private void watchAge(NodeHealth health) {
    if (staleTimer >= 0) {
      vertx.cancelTimer(staleTimer);
    }
    long left = health.observedAt() + freshness.limit().toNanos() - time.nanos();
    staleTimer = vertx.setTimer(Math.max(1, TimeUnit.NANOSECONDS.toMillis(left) + 1), id -> {
      staleTimer = -1;
      if (latest == health) {
        dirty = true;
        pump();
      }
    });
  }

  private void pump() {
    if (busy || stopped || retryTimer >= 0 || latest == null || !(dirty || refreshDue)) {
      return;
    }
    NodeHealth health = freshness.apply(latest, time.nanos());
    Optional<List<ServiceRegistration>> wanted = registrations(health);
    if (wanted.isEmpty()) {
      return; // node name or scope not known yet: nothing can be registered
    }
    busy = true;
    late = false;
    boolean refresh = refreshDue;
    boolean alive = aliveDue;
    dirty = false;
    refreshDue = false;
    aliveDue = false;
    Map<Config.View, ServiceRegistration> knownShapes = Map.copyOf(registered);
    Map<Config.View, Pushed> knownChecks = Map.copyOf(pushed);
    boolean retire = !retired;
    deadlineTimer = vertx.setTimer(config.consul().timeout().toMillis(), id -> {
      deadlineTimer = -1;
      late = true;
      failures.failed("no answer within " + Units.formatDuration(config.consul().timeout())
          + " (waiting for it: calls are applied in order)", "newer verdicts follow once it answers");
    });
    worker.executeBlocking(() -> sync(wanted.get(), health, knownShapes, knownChecks, refresh, alive, retire), false)
        .onComplete(ar -> {
          busy = false;
          synced = health;
          if (deadlineTimer >= 0) {
            vertx.cancelTimer(deadlineTimer);
            deadlineTimer = -1;
          }
          if (ar.failed()) { // a bug in sync: treat it as a failed call of unknown effect
            failed(new ConsulAgent.ConsulException(String.valueOf(ar.cause()), true));
          } else {
            settle(ar.result());
          }
          pump();
        });
  }

  private void settle(SyncResult result) {
    registered.putAll(result.registered());
    pushed.putAll(result.pushed());
    retired |= result.retired();
    if (result.failure().isPresent()) {
      result.registerFailed().ifPresent(registered::remove);
      failed(result.failure().get());
      return;
    }
    if (result.calls() > 0 && !late) {
      failures.succeeded();
    }
    if (unsettled && result.calls() > 0 && settleTimer < 0) {
      // Consul answers again; a call given up on earlier may still be applied around now. Push the latest again
      // once that can no longer happen.
      unsettled = false;
      settleTimer = vertx.setTimer(config.consul().timeout().toMillis(), id -> {
        settleTimer = -1;
        pushed.clear();
        refreshDue = true;
        aliveDue = true;
        pump();
      });
    }
  }

  /** After a failed call what Consul holds is unknown: everything is pushed again, after one retry interval. */
  private void failed(ConsulAgent.ConsulException e) {
    pushed.clear();
    refreshDue = true;
    aliveDue = true;
    if (e.mayHaveLanded()) {
      unsettled = true;
    }
    failures.failed(e.getMessage(), "retrying every " + Units.formatDuration(RETRY));
    retryTimer = vertx.setTimer(RETRY.toMillis(), id -> {
      retryTimer = -1;
      pump();
    });
  }

  /** Runs on the worker: brings Consul to the wanted state, and reports what it confirmed. Never throws. */
  private SyncResult sync(List<ServiceRegistration> wanted, NodeHealth health,
      Map<Config.View, ServiceRegistration> knownShapes, Map<Config.View, Pushed> knownChecks, boolean refresh,
      boolean alive, boolean retire) {
    Map<Config.View, ServiceRegistration> nowRegistered = new EnumMap<>(Config.View.class);
    Map<Config.View, Pushed> nowPushed = new EnumMap<>(Config.View.class);
    int calls = 0;
    List<Config.View> views = Config.View.IN_CONSUL;
    Config.View current = null;
    boolean registering = false;
    boolean retiredNow = false;
    try {
      if (retire) {
        calls += retire(health.node().get(), health.scope().get());
        retiredNow = true;
      }
      for (int i = 0; i < views.size(); i++) {
        Config.View view = current = views.get(i);
        ServiceRegistration want = wanted.get(i);
        Verdict verdict = health.view(view);
        Pushed was = knownChecks.get(view);
        Pushed now = new Pushed(verdict.status(), verdict.reason());
        ServiceRegistration shape = knownShapes.get(view);
        if (!want.sameShape(shape)) {
          registering = true;
          calls += register(want, now, shape);
          registering = false;
          nowRegistered.put(view, want);
        } else if (refresh || alive || !now.equals(was)) {
          try {
            push(want.checkId(), now.status(), now.output());
            calls++;
            if (alive) {
              push(want.aliveCheckId(), Status.PASSING, aliveOutput());
              calls++;
            }
          } catch (ConsulAgent.UnknownCheckException e) {
            // The agent restarted (a -dev agent forgets everything), someone removed us, or an older pgbeacon
            // registered the service without the liveness check: register again.
            log.info("[{}] the agent does not know {}, registering again", want.id(), e.getMessage());
            registering = true;
            calls += register(want, now, null);
            registering = false;
          }
        }
        if (was == null || was.status() != now.status()) {
          log.info("[{}] {} → {}: {}", want.id(), was == null ? "(unknown)" : was.status().consul(),
              now.status().consul(), now.output());
        }
        nowPushed.put(view, now);
      }
      return new SyncResult(nowRegistered, nowPushed, Optional.empty(), Optional.empty(), calls, retiredNow);
    } catch (ConsulAgent.ConsulException e) {
      return new SyncResult(nowRegistered, nowPushed, registering ? Optional.of(current) : Optional.empty(),
          Optional.of(e), calls, retiredNow);
    }
  }

  /** Runs on the worker: deregisters this node's services of the old ID form; returns the calls made. */
  private int retire(String node, String scope) throws ConsulAgent.ConsulException {
    List<String> old = legacyIds(agent.services(), serviceNames(), node, scope);
    for (String id : old) {
      agent.deregister(id);
      log.info("[{}] deregistered: the ID form before <service>/<scope>/<node>", id);
    }
    return 1 + old.size();
  }

  private List<String> serviceNames() {
    return List.of(config.services().primary().name(), config.services().replica().asService().name());
  }

  /**
   * The services on the agent that an older pgbeacon registered for this node: ID {@code <name>-<node>} of one of
   * our service names, with meta naming this node and this scope (or no scope). Another cluster's member of the same
   * name registered the same ID: its meta names its own scope, and it is not ours to remove.
   */
  static List<String> legacyIds(Map<String, ConsulAgent.ServiceEntry> services, List<String> names, String node,
      String scope) {
    List<String> ids = new ArrayList<>();
    for (String name : names) {
      String id = ServiceRegistration.legacyIdOf(name, node);
      ConsulAgent.ServiceEntry entry = services.get(id);
      if (entry != null && entry.name().equals(name) && node.equals(entry.meta().getOrDefault("node", node))
          && scope.equals(entry.meta().getOrDefault("scope", scope))) {
        ids.add(id);
      }
    }
    return ids;
  }

  /** Registers {@code want} with both checks, then sets the verdict's output (registration sets only status). */
  private int register(ServiceRegistration want, Pushed now, ServiceRegistration before)
      throws ConsulAgent.ConsulException {
    agent.register(want);
    registeredAt.put(want.id(), time.wall());
    push(want.checkId(), now.status(), now.output());
    push(want.aliveCheckId(), Status.PASSING, aliveOutput());
    if (before == null || !before.tags().equals(want.tags()) || !before.name().equals(want.name())) {
      log.info("[{}] registered {} ({}, tags {})", want.id(), want.name(), now.status().consul(), want.tags());
    } else {
      log.debug("[{}] registered again: meta {}", want.id(), want.meta());
    }
    return 3;
  }

  /**
   * One check update, remembered for {@code /status} and the push-age metric: when, what, and whether Consul took
   * it. Runs on the worker.
   */
  private void push(String checkId, Status status, String output) throws ConsulAgent.ConsulException {
    try {
      agent.updateCheck(checkId, status, output);
      Push was = pushes.get(checkId);
      pushes.put(checkId, new Push(time.wall(), status, output, Optional.empty(), Optional.of(time.wall())));
      if (was == null) {
        metrics.gauge("pgbeacon.consul.push.age", "how long ago Consul last took an update of the check", "seconds",
            Tags.of("check", checkId), () -> pushes.get(checkId).lastOk()
                .map(t -> java.time.Duration.between(t, time.wall()).toMillis() / 1000.0).orElse(Double.NaN));
      }
    } catch (ConsulAgent.ConsulException e) {
      Push was = pushes.get(checkId);
      pushes.put(checkId, new Push(time.wall(), status, output, Optional.of(e.getMessage()),
          was == null ? Optional.empty() : was.lastOk()));
      throw e;
    }
  }

  /** The last update of each check: when it was sent, what, the error if Consul did not take it, its last success. */
  public record Push(java.time.Instant at, Status status, String output, Optional<String> error,
      Optional<java.time.Instant> lastOk) {}

  /** The verdict the last completed sync carried (Consul answered or not); null before the first. Any thread. */
  public NodeHealth synced() {
    return synced;
  }

  /** The last push of every check, and when each service was last registered; any thread. */
  public Map<String, Push> pushes() {
    return Map.copyOf(pushes);
  }

  public Map<String, java.time.Instant> registered() {
    return Map.copyOf(registeredAt);
  }

  private String aliveOutput() {
    return "pgbeacon " + version + " running";
  }

  /**
   * Turns every check critical (or deregisters both services, per {@code consul.on-stop}) and confirms it by reading
   * the agent's checks back, within {@code budget}. The final word goes on the same single worker, after any call in
   * flight, so nothing sent before can be applied after it. If Consul does not confirm in time (it is stalled for
   * the whole budget), a call still queued in the agent may land later: the checks then pass for at most one TTL
   * after the agent resumes, and expire. Idempotent.
   */
  public Future<Void> stop(Duration budget) {
    if (stopped) {
      return Future.succeededFuture();
    }
    stopped = true;
    for (long timer : new long[] {refreshTimer, aliveTimer, retryTimer, deadlineTimer, staleTimer, settleTimer}) {
      if (timer >= 0) {
        vertx.cancelTimer(timer);
      }
    }
    // What we asked for, not only what Consul confirmed: a first registration may still be in flight.
    List<ServiceRegistration> targets = new ArrayList<>(advertised.values());
    Config.OnStop onStop = config.consul().onStop();
    boolean queuedMayLand = unsettled;
    long deadline = time.nanos() + budget.toNanos();
    Promise<Void> done = Promise.promise();
    long guard = vertx.setTimer(Math.max(1, budget.toMillis()), id -> {
      if (!done.future().isComplete()) {
        log.warn("Consul did not confirm the stop within {}: its checks pass at most one TTL ({}) longer, from when"
            + " the agent answers again", Units.formatDuration(budget), Units.formatDuration(config.consul().ttl()));
        agent.close(); // ends a call blocked on a stalled agent, so the process can exit
        worker.close();
        done.tryComplete();
      }
    });
    worker.<Boolean>executeBlocking(() -> finalWord(targets, onStop, deadline, queuedMayLand), false).onComplete(ar -> {
      vertx.cancelTimer(guard);
      if (done.future().isComplete()) {
        return;
      }
      if (ar.succeeded() && ar.result()) {
        targets.forEach(r -> log.info("[{}] {} on stop, confirmed", r.id(),
            onStop == Config.OnStop.DEREGISTER ? "deregistered" : "critical"));
      } else if (!targets.isEmpty()) {
        log.warn("Consul did not confirm the stop within {}: its checks expire after their TTL ({})",
            Units.formatDuration(budget), Units.formatDuration(config.consul().ttl()));
      }
      worker.close();
      agent.close();
      done.tryComplete();
    });
    return done.future();
  }

  /**
   * Runs on the worker: the final word, repeated until the agent's own checks show it or the deadline passes.
   * {@code queuedMayLand}: a call given up on earlier may still be applied, so the word is said again once that can
   * no longer happen, and read back; otherwise an agent that cannot be reached has nothing of ours to apply later,
   * and one failed attempt ends the stop.
   */
  private boolean finalWord(List<ServiceRegistration> targets, Config.OnStop onStop, long deadline,
      boolean queuedMayLand) {
    if (targets.isEmpty()) {
      return true;
    }
    boolean settled = !queuedMayLand;
    while (time.nanos() - deadline < 0) {
      try {
        for (ServiceRegistration r : targets) {
          if (onStop == Config.OnStop.DEREGISTER) {
            agent.deregister(r.id());
          } else {
            push(r.checkId(), Status.CRITICAL, STOPPED);
            push(r.aliveCheckId(), Status.CRITICAL, STOPPED);
          }
        }
        if (settled && confirmed(agent.checks(), targets, onStop)) {
          return true;
        }
        if (!settled) {
          settled = true;
          pause(config.consul().timeout(), deadline);
          continue;
        }
      } catch (ConsulAgent.UnknownCheckException e) {
        return true; // the agent does not know our checks: nothing of ours passes there
      } catch (ConsulAgent.ConsulException e) {
        log.debug("stop: {}", e.getMessage());
        if (!e.mayHaveLanded() && !queuedMayLand) {
          return false;
        }
        queuedMayLand |= e.mayHaveLanded();
        settled = !queuedMayLand;
      }
      pause(STOP_RETRY, deadline);
    }
    return false;
  }

  private void pause(Duration pause, long deadline) {
    long left = TimeUnit.NANOSECONDS.toMillis(deadline - time.nanos());
    if (left > 0) {
      try {
        Thread.sleep(Math.min(left, pause.toMillis()));
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }

  private static boolean confirmed(Map<String, ConsulAgent.CheckState> checks, List<ServiceRegistration> targets,
      Config.OnStop onStop) {
    for (ServiceRegistration r : targets) {
      for (String id : List.of(r.checkId(), r.aliveCheckId())) {
        ConsulAgent.CheckState state = checks.get(id);
        boolean ok = onStop == Config.OnStop.DEREGISTER ? state == null
            // A critical check of ours that some earlier call did not overwrite; absent is fine too (removed).
            : state == null || (state.status() == Status.CRITICAL && STOPPED.equals(state.output()));
        if (!ok) {
          return false;
        }
      }
    }
    return true;
  }

  /** The two registrations the verdict asks for; empty while the node's name or its cluster's scope is unknown. */
  Optional<List<ServiceRegistration>> registrations(NodeHealth health) {
    if (health.node().isEmpty() || health.scope().isEmpty()) {
      return Optional.empty();
    }
    String node = health.node().get();
    String scope = health.scope().get();
    // While Patroni is unreachable the verdict knows no role: keep advertising the last known shape.
    boolean knowsFacts = health.role().isPresent();
    List<ServiceRegistration> list = new ArrayList<>();
    for (Config.View view : Config.View.IN_CONSUL) {
      ServiceRegistration was = advertised.get(view);
      Status status = health.view(view).status();
      ServiceRegistration r;
      if (!knowsFacts && was != null) {
        r = new ServiceRegistration(was.id(), was.name(), was.tags(), was.address(), was.port(), was.meta(),
            was.ttl(), was.aliveTtl(), was.deregisterCriticalAfter(), status);
      } else {
        Config.Service service = view == Config.View.PRIMARY
            ? config.services().primary() : config.services().replica().asService();
        r = new ServiceRegistration(
            ServiceRegistration.idOf(service.name(), scope, node),
            service.name(),
            tags(health),
            config.services().address().or(health::host).orElse(""),
            service.port(),
            meta(health, node, lagMeta.get(view).advertise(health.lagBytes(), time.nanos())),
            config.consul().ttl(),
            config.consul().aliveTtl(),
            config.consul().deregisterCriticalAfter(),
            status);
      }
      advertised.put(view, r);
      list.add(r);
    }
    return Optional.of(list);
  }

  /**
   * Patroni's own register_service tags: its role word ({@code master}/{@code primary}, {@code replica},
   * {@code standby-leader} for a standby cluster's leader, as Patroni spells that tag), sync, quorum or async on a
   * replica,
   * and the scope, so that {@code <scope>.patroni-primary.service.consul} names one cluster's primary.
   */
  private static List<String> tags(NodeHealth health) {
    List<String> tags = new ArrayList<>();
    health.role().ifPresent(r -> tags.add(r.role() == Role.STANDBY_LEADER ? "standby-leader" : r.word()));
    if (health.role().map(r -> r.role() == Role.REPLICA).orElse(false)) {
      tags.add(health.sync() ? "sync" : health.quorum() ? "quorum" : "async");
    }
    health.scope().ifPresent(tags::add);
    return tags;
  }

  private Map<String, String> meta(NodeHealth health, String node, OptionalLong lag) {
    Map<String, String> meta = new LinkedHashMap<>();
    meta.put("node", node);
    health.role().ifPresent(r -> meta.put("role", r.word()));
    health.scope().ifPresent(s -> meta.put("scope", s));
    health.timeline().ifPresent(t -> meta.put("timeline", Long.toString(t)));
    lag.ifPresent(l -> meta.put(LAG_META, Long.toString(l)));
    health.patroniVersion().ifPresent(v -> meta.put("patroni_version", v));
    meta.put("pgbeacon_version", version);
    return meta;
  }
}
