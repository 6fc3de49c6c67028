package io.pgbeacon.consul;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pgbeacon.config.Config;
import io.pgbeacon.health.DcsLeader;
import io.pgbeacon.health.Status;
import io.pgbeacon.health.TimeSource;
import io.pgbeacon.metrics.Metrics;
import io.pgbeacon.patroni.PatroniReading;
import io.pgbeacon.patroni.PatroniStatus;
import io.pgbeacon.patroni.Role;
import io.pgbeacon.support.Await;
import io.vertx.core.Vertx;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * DcsWatch's rules with a scripted agent (each key's reads answered from its own script, a failure on cue): what a
 * real Consul does only rarely. The real watch against a real agent is in MonitorIT and the e2e suite.
 */
class DcsWatchTest {

  private static final Duration SOON = Duration.ofSeconds(5);
  private static final String LEADER = "service/demo/leader";
  private static final String FAILOVER = "service/demo/failover";

  Vertx vertx;
  Scripted consul;
  DcsWatch watch;
  final List<String> heard = new CopyOnWriteArrayList<>();

  @BeforeEach
  void setUp() {
    vertx = Vertx.vertx();
    consul = new Scripted();
  }

  @AfterEach
  void tearDown() throws Exception {
    vertx.runOnContext(v -> watch.stop());
    vertx.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
  }

  @Test
  void aKeyNeverSeenSaysNothingWithAuto() {
    consul.answer(LEADER, null, 5);
    consul.answer(FAILOVER, null, 5);
    start(Config.LeaderKey.AUTO);
    Await.until("both answered", SOON, () -> List.copyOf(heard), h -> h.contains("answered"));
    assertFalse(leader().watched(), "Patroni's DCS is probably elsewhere: absence says nothing");
  }

  @Test
  void theKeyMovingAwayCanWithdrawAndMovingHereAsksForAPoll() {
    consul.answer(LEADER, "node1", 5);
    consul.answer(FAILOVER, null, 5);
    start(Config.LeaderKey.AUTO);
    Await.until("node1 holds it", SOON, () -> leader().holder(), Optional.of("node1")::equals);
    assertTrue(heard.contains("changed canWithdraw=false towardsSelf=true"), heard.toString());
    consul.answer(LEADER, "node2", 6);
    Await.until("node2 holds it", SOON, () -> leader().holder(), Optional.of("node2")::equals);
    assertTrue(heard.contains("changed canWithdraw=true towardsSelf=false"), heard.toString());
  }

  @Test
  void aFailingReadKeepsWhatItLastSaw() {
    consul.answer(LEADER, "node2", 5);
    consul.answer(FAILOVER, null, 5);
    start(Config.LeaderKey.AUTO);
    Await.until("node2 holds it", SOON, () -> leader().holder(), Optional.of("node2")::equals);
    consul.fail(LEADER, "Consul unreachable");
    Await.until("the failure read", SOON, () -> consul.failed.get(), f -> f);
    assertEquals(Optional.of("node2"), leader().holder(), "a denial stays until a read succeeds");
    assertTrue(leader().watched());
  }

  @Test
  void aScheduledSwitchoverWithdrawsWhenItsTimeComes() {
    consul.answer(LEADER, "node1", 5);
    consul.answer(FAILOVER, "{\"leader\": \"node1\", \"member\": \"node2\", \"scheduled_at\": \""
        + Instant.now().plusSeconds(4) + "\"}", 5);
    start(Config.LeaderKey.AUTO);
    Await.until("the request read", SOON, () -> leader().request().isPresent(), r -> r);
    assertFalse(leader().switchingAwayFrom(Optional.of("node1"), Instant.now()), "not due yet");
    int before = heard.size();
    Await.until("a change that can withdraw when it falls due", Duration.ofSeconds(10),
        () -> heard.subList(before, heard.size()),
        h -> h.contains("changed canWithdraw=true towardsSelf=false"));
    assertTrue(leader().switchingAwayFrom(Optional.of("node1"), Instant.now()));
  }

  @Test
  void theUpGaugeIsZeroOnlyWhileReadsFail() {
    DcsWatch.WatchState idle = DcsWatch.WatchState.idle(LEADER);
    assertTrue(Double.isNaN(DcsWatch.up(idle)), "off, or not answered yet: no alert on == 0 may fire");
    DcsWatch.WatchState read = idle.read(Optional.of("node1"), true, Instant.now());
    assertEquals(1, DcsWatch.up(read));
    DcsWatch.WatchState failing = read.failed("Consul unreachable");
    assertEquals(0, DcsWatch.up(failing));
    assertEquals(1, DcsWatch.up(failing.read(Optional.of("node1"), false, Instant.now())));
    assertEquals(0, DcsWatch.up(idle.failed("Consul unreachable")), "failing from the first read is failing");
  }

  @Test
  void aWatchTurnedOffExportsNaNNotZero() {
    Metrics metrics = new Metrics("test", Optional.of("node1"));
    start(Config.LeaderKey.OFF, metrics);
    String scrape = metrics.scrape("text/plain; version=0.0.4; charset=utf-8");
    for (String key : List.of("leader", "failover")) {
      assertTrue(scrape.lines().anyMatch(l -> l.startsWith("pgbeacon_dcs_watch_up{") && l.contains("key=\"" + key
          + "\"") && l.endsWith(" NaN")), scrape);
    }
  }

  private DcsLeader leader() {
    AtomicReference<DcsLeader> read = new AtomicReference<>();
    vertx.runOnContext(v -> read.set(watch.leader()));
    return Await.until("the watch's state", SOON, read::get, r -> r != null);
  }

  private void start(Config.LeaderKey key) {
    start(key, Metrics.none());
  }

  private void start(Config.LeaderKey key, Metrics metrics) {
    vertx.runOnContext(v -> {
      watch = new DcsWatch(vertx, consul, key, TimeSource.SYSTEM, () -> Optional.of("node1"),
          new DcsWatch.Listener() {
            @Override
            public void dcsChanged(boolean canWithdraw, boolean towardsSelf) {
              heard.add("changed canWithdraw=" + canWithdraw + " towardsSelf=" + towardsSelf);
            }

            @Override
            public void watchesAnswered() {
              heard.add("answered");
            }
          }, metrics);
      watch.startOnce(primaryOf("demo"));
    });
    Await.until("the watch started", SOON, () -> watch != null, started -> started);
  }

  private static PatroniReading primaryOf(String scope) {
    return new PatroniReading.Observed(new PatroniStatus("running", Role.PRIMARY, "primary", true,
        OptionalLong.of(1), OptionalLong.of(1), false, false, false, false, Map.of(), Optional.of(scope),
        Optional.of("node1"), Optional.of("4.1.5"), OptionalLong.empty()), Optional.empty(), Optional.empty());
  }

  /** Each key's reads from its own script; a quiet key blocks until its wait, as Consul's blocking query does. */
  static final class Scripted implements ConsulAgent {
    private final Map<String, BlockingQueue<Object>> scripts = new ConcurrentHashMap<>();
    private final Map<String, Optional<String>> last = new ConcurrentHashMap<>();
    final AtomicReference<Boolean> failed = new AtomicReference<>(false);

    void answer(String key, String value, long index) {
      script(key).add(new KeyRead(Optional.ofNullable(value), index));
    }

    void fail(String key, String message) {
      script(key).add(new ConsulException(message, false));
    }

    private BlockingQueue<Object> script(String key) {
      return scripts.computeIfAbsent(key, k -> new LinkedBlockingQueue<>());
    }

    @Override
    public KeyRead readKey(String key, long index, Duration wait) throws ConsulException {
      Object next;
      try {
        next = script(key).poll(Math.min(wait.toMillis(), 300), TimeUnit.MILLISECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new ConsulException("interrupted", false);
      }
      if (next == null) {
        return new KeyRead(last.getOrDefault(key, Optional.empty()), Math.max(1, index));
      }
      if (next instanceof ConsulException e) {
        failed.set(true);
        throw e;
      }
      KeyRead read = (KeyRead) next;
      last.put(key, read.value());
      return read;
    }

    @Override
    public void register(ServiceRegistration registration) {
      throw new UnsupportedOperationException();
    }

    @Override
    public void updateCheck(String checkId, Status status, String output) {
      throw new UnsupportedOperationException();
    }

    @Override
    public void deregister(String serviceId) {
      throw new UnsupportedOperationException();
    }

    @Override
    public Map<String, CheckState> checks() {
      throw new UnsupportedOperationException();
    }

    @Override
    public Map<String, ServiceEntry> services() {
      throw new UnsupportedOperationException();
    }

    @Override
    public Duration giveUpAfter() {
      return Duration.ofSeconds(60);
    }

    @Override
    public void close() {}
  }
}
