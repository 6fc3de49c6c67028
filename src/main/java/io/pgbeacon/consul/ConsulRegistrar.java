package io.pgbeacon.consul;

import io.pgbeacon.config.Config;
import io.pgbeacon.health.NodeHealth;
import io.pgbeacon.health.Status;
import io.pgbeacon.health.Verdict;
import io.vertx.core.Future;
import io.vertx.core.Promise;
import io.vertx.core.Vertx;
import io.vertx.core.WorkerExecutor;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Keeps the two Consul services true to the latest verdict: register → push on change → refresh ≤ TTL/3 →
 * re-register when the agent forgot us → critical or deregister on stop.
 *
 * <p>Threading: {@link #publish}, {@link #start} and {@link #stop} are called on the owning verticle's event
 * loop, which also owns every field. Consul calls run one at a time on a single-thread worker pool of their own
 * (unordered in Vert.x's sense: "ordered" would queue them behind the leader watch's long blocking reads on the
 * same context; the single thread keeps them in order anyway), each working on an
 * immutable copy of what to send; a newer verdict arriving meanwhile is sent as soon as the current call ends
 * (only the latest matters).
 */
public final class ConsulRegistrar {

  private static final Logger log = LoggerFactory.getLogger(ConsulRegistrar.class);
  private static final Duration RETRY = Duration.ofSeconds(1);
  static final String LAG_META = "lag_bytes";

  private final Vertx vertx;
  private final ConsulAgent agent;
  private final Config config;
  private final String version;
  private final WorkerExecutor worker;
  private final Map<Config.View, Published> published = new LinkedHashMap<>();

  private NodeHealth latest;
  private boolean dirty;
  private boolean refreshDue;
  private boolean busy;
  private boolean stopped;
  private long refreshTimer = -1;
  private long retryTimer = -1;
  private String lastError;

  /** What Consul holds for one service, as far as we know. */
  private record Published(ServiceRegistration registration, Status status, String output) {}

  public ConsulRegistrar(Vertx vertx, ConsulAgent agent, Config config, String version) {
    this.vertx = vertx;
    this.agent = agent;
    this.config = config;
    this.version = version;
    // One thread: calls stay ordered; a hung agent blocks only us, never the event loop or the poller.
    this.worker = vertx.createSharedWorkerExecutor("pgbeacon-consul", 1,
        config.consul().timeout().toMillis() * 4, TimeUnit.MILLISECONDS);
  }

  public void start() {
    long every = config.consul().refreshInterval().toMillis();
    refreshTimer = vertx.setPeriodic(every, id -> {
      refreshDue = true;
      pump();
    });
  }

  /** Takes the latest verdict; an outcome change is sent at once, other changes ride the next refresh. */
  public void publish(NodeHealth health) {
    if (stopped) {
      return;
    }
    boolean changed = latest == null || health.outcomeDiffers(latest);
    latest = health;
    if (changed) {
      dirty = true;
      pump();
    }
  }

  /** Turns both checks critical (or deregisters, per {@code consul.on-stop}); idempotent. */
  public Future<Void> stop() {
    if (stopped) {
      return Future.succeededFuture();
    }
    stopped = true;
    vertx.cancelTimer(refreshTimer);
    vertx.cancelTimer(retryTimer);
    // What we asked for, not only what Consul confirmed: a first registration may still be in flight.
    List<ServiceRegistration> known = latest == null ? List.of() : registrations(latest).orElse(List.of());
    Config.OnStop onStop = config.consul().onStop();
    Promise<Void> done = Promise.promise();
    // The worker's single thread runs this after any call in flight: a late "passing" cannot overwrite it.
    worker.<Void>executeBlocking(() -> {
      for (ServiceRegistration r : known) {
        try {
          if (onStop == Config.OnStop.DEREGISTER) {
            agent.deregister(r.id());
          } else {
            agent.updateTtl(r.checkId(), Status.CRITICAL, "pgbeacon stopped");
          }
          log.info("[{}] {} on stop", r.id(), onStop == Config.OnStop.DEREGISTER ? "deregistered" : "critical");
        } catch (ConsulAgent.ConsulException e) {
          log.warn("[{}] could not mark stopped: {}", r.id(), e.getMessage());
        }
      }
      return null;
    }, false).onComplete(ar -> {
      worker.close();
      agent.close();
      done.complete();
    });
    return done.future();
  }

  private void pump() {
    if (busy || stopped || latest == null || !(dirty || refreshDue)) {
      return;
    }
    Optional<List<ServiceRegistration>> wanted = registrations(latest);
    if (wanted.isEmpty()) {
      return; // node name not known yet: nothing can be registered
    }
    busy = true;
    boolean refresh = refreshDue;
    dirty = false;
    refreshDue = false;
    Map<Config.View, Published> before = Map.copyOf(published);
    NodeHealth health = latest;
    worker.executeBlocking(() -> sync(wanted.get(), health, before, refresh), false)
        .onComplete(ar -> {
          busy = false;
          if (ar.succeeded()) {
            published.putAll(ar.result());
            if (lastError != null) {
              log.info("[{}] Consul reachable again", health.node().orElse("?"));
              lastError = null;
            }
          } else {
            String error = ar.cause().getMessage();
            if (!error.equals(lastError)) {
              log.warn("[{}] Consul: {}", health.node().orElse("?"), error);
              lastError = error;
            }
            dirty = true;
            retryTimer = vertx.setTimer(RETRY.toMillis(), id -> pump());
            return;
          }
          pump();
        });
  }

  /** Runs on the worker: brings Consul to the wanted state and reports what it now holds. */
  private Map<Config.View, Published> sync(List<ServiceRegistration> wanted, NodeHealth health,
      Map<Config.View, Published> before, boolean refresh) throws ConsulAgent.ConsulException {
    Map<Config.View, Published> now = new LinkedHashMap<>();
    Config.View[] views = Config.View.values();
    for (int i = 0; i < views.length; i++) {
      Config.View view = views[i];
      ServiceRegistration want = wanted.get(i);
      Verdict verdict = health.view(view);
      Published was = before.get(view);
      String output = verdict.reason();
      boolean shapeChanged = was == null || !want.sameShape(was.registration(), LAG_META);
      boolean lagChanged = !shapeChanged && refresh && !want.meta().equals(was.registration().meta());
      if (shapeChanged || lagChanged) {
        agent.register(want);
        if (shapeChanged) {
          log.info("[{}] registered {} ({}, tags {})", want.id(), want.name(), verdict.status().consul(), want.tags());
        } else {
          log.debug("[{}] re-registered for {} {}", want.id(), LAG_META, want.meta().get(LAG_META));
        }
        push(want, verdict.status(), output);
      } else if (refresh || was.status() != verdict.status() || !was.output().equals(output)) {
        try {
          push(want, verdict.status(), output);
        } catch (ConsulAgent.UnknownCheckException e) {
          // The agent restarted (a -dev agent forgets everything) or someone removed us: register again.
          log.info("[{}] agent does not know the check any more, registering again", want.id());
          agent.register(want);
          push(want, verdict.status(), output);
        }
      }
      if (was == null || was.status() != verdict.status()) {
        log.info("[{}] {} → {}: {}", want.id(), was == null ? "new" : was.status().consul(),
            verdict.status().consul(), output);
      }
      now.put(view, new Published(want, verdict.status(), output));
    }
    return now;
  }

  private void push(ServiceRegistration r, Status status, String output) throws ConsulAgent.ConsulException {
    agent.updateTtl(r.checkId(), status, output);
  }

  /** The two registrations the verdict asks for; empty while the node's name is unknown. */
  Optional<List<ServiceRegistration>> registrations(NodeHealth health) {
    if (health.node().isEmpty()) {
      return Optional.empty();
    }
    String node = health.node().get();
    // While Patroni is unreachable the verdict knows no role: keep advertising the last known shape.
    boolean knowsFacts = !"unknown".equals(health.role());
    List<ServiceRegistration> list = new ArrayList<>();
    for (Config.View view : Config.View.values()) {
      Published was = published.get(view);
      Status status = health.view(view).status();
      if (!knowsFacts && was != null) {
        ServiceRegistration r = was.registration();
        list.add(new ServiceRegistration(r.id(), r.name(), r.tags(), r.address(), r.port(), r.meta(), r.ttl(),
            r.deregisterCriticalAfter(), status));
        continue;
      }
      Config.Service service = view == Config.View.PRIMARY
          ? config.services().primary() : config.services().replica().asService();
      list.add(new ServiceRegistration(
          service.name() + "-" + node,
          service.name(),
          tags(health),
          config.services().address().or(health::host).orElse(""),
          service.port(),
          meta(health, node),
          config.consul().ttl(),
          config.consul().deregisterCriticalAfter(),
          status));
    }
    return Optional.of(list);
  }

  private static List<String> tags(NodeHealth health) {
    List<String> tags = new ArrayList<>();
    if (!"unknown".equals(health.role())) {
      tags.add(health.role());
    }
    if ("replica".equals(health.role())) {
      tags.add(health.sync() ? "sync" : "async");
    }
    health.scope().ifPresent(tags::add);
    return tags;
  }

  private Map<String, String> meta(NodeHealth health, String node) {
    Map<String, String> meta = new LinkedHashMap<>();
    meta.put("node", node);
    meta.put("role", health.role());
    health.scope().ifPresent(s -> meta.put("scope", s));
    health.timeline().ifPresent(t -> meta.put("timeline", Long.toString(t)));
    health.lagBytes().ifPresent(l -> meta.put(LAG_META, Long.toString(l)));
    health.patroniVersion().ifPresent(v -> meta.put("patroni_version", v));
    meta.put("pgbeacon_version", version);
    return meta;
  }
}
