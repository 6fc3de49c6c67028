package io.pgbeacon.consul;

import com.ecwid.consul.transport.HttpResponse;
import com.ecwid.consul.transport.TransportException;
import com.ecwid.consul.v1.ConsulClient;
import com.ecwid.consul.v1.ConsulRawClient;
import com.ecwid.consul.v1.OperationException;
import com.ecwid.consul.v1.QueryParams;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.micrometer.core.instrument.Tags;
import io.pgbeacon.config.Config;
import io.pgbeacon.config.Secret;
import io.pgbeacon.config.Units;
import io.pgbeacon.health.Status;
import io.pgbeacon.metrics.Metrics;
import java.io.IOException;
import java.net.ConnectException;
import java.net.NoRouteToHostException;
import java.net.UnknownHostException;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.function.Supplier;
import org.apache.http.HttpRequestInterceptor;
import org.apache.http.conn.ConnectTimeoutException;
import org.apache.http.conn.ssl.SSLConnectionSocketFactory;
import org.apache.http.client.config.RequestConfig;
import org.apache.http.impl.client.CloseableHttpClient;
import org.apache.http.impl.client.HttpClientBuilder;

/**
 * {@link ConsulAgent} over Ecwid's consul-api (the design card's choice), with its defaults fixed:
 * <ul>
 *   <li>the ACL token travels only in the {@code X-Consul-Token} header of our own HttpClient (consul-api would put
 *       it in the URL, where it ends up in logs);
 *   <li>state-changing calls go over one connection, one at a time, and are waited for up to
 *       {@link #GIVE_UP_AFTER}: the agent serves connections concurrently, so a call abandoned on one connection
 *       could be applied after a later call on another (seen with a SIGSTOPped agent). On one connection, the agent
 *       reads the next request only after answering the previous one. The caller's own deadline
 *       ({@code consul.timeout}) decides when to call the agent failing, not when to stop waiting;
 *   <li>registrations carry two checks with IDs of our choosing (consul-api's model has no CheckID), sent as JSON
 *       through consul-api's raw client;
 *   <li>blocking reads have a socket timeout that outlasts the wait plus Consul's jitter;
 *   <li>both clients talk TLS as Consul's CLI would with the same settings ({@link ConsulTls}).
 * </ul>
 */
public final class EcwidConsulAgent implements ConsulAgent {

  private static final int MAX_OUTPUT = 1024; // Consul keeps up to 4 KiB; a verdict's reason is far shorter
  private static final JsonMapper JSON = JsonMapper.builder().build();

  /** How long a state-changing call may go unanswered before it is given up (and may still land later). */
  static final Duration GIVE_UP_AFTER = Duration.ofSeconds(60);

  /** Longest blocking read; Consul may add up to wait/16 of jitter, and the socket timeout must outlast both. */
  static final Duration MAX_WAIT = Duration.ofSeconds(20);

  private final Metrics metrics;
  private final CloseableHttpClient http;
  private final ConsulRawClient raw;
  private final CloseableHttpClient watchHttp;
  private final ConsulClient watchClient;
  /** Read by every request as it is sent: a reload swaps it ({@link #useToken}) without a new client. */
  private volatile Optional<Secret> token;

  /** Without metrics: for tools and tests. */
  public EcwidConsulAgent(Config.Consul config) {
    this(config, Metrics.none());
  }

  public EcwidConsulAgent(Config.Consul config, Metrics metrics) {
    this.metrics = metrics;
    this.token = config.token();
    Optional<SSLConnectionSocketFactory> tls = ConsulTls.socketFactory(config);
    this.http = httpClient(config, tls, GIVE_UP_AFTER.toMillis(), 1, () -> token);
    this.raw = rawClient(config, http);
    long watchMillis = MAX_WAIT.toMillis() * 17 / 16 + config.timeout().toMillis();
    this.watchHttp = httpClient(config, tls, watchMillis, 2, () -> token);
    this.watchClient = new ConsulClient(rawClient(config, watchHttp));
  }

  private static CloseableHttpClient httpClient(Config.Consul config, Optional<SSLConnectionSocketFactory> tls,
      long socketMillis, int connections, Supplier<Optional<Secret>> token) {
    int connectMillis = (int) config.timeout().toMillis();
    RequestConfig deadlines = RequestConfig.custom()
        .setConnectTimeout(connectMillis)
        .setConnectionRequestTimeout(connectMillis)
        .setSocketTimeout((int) socketMillis)
        .build();
    HttpClientBuilder builder = HttpClientBuilder.create()
        .setDefaultRequestConfig(deadlines)
        .setMaxConnPerRoute(connections)
        .setMaxConnTotal(connections)
        .disableAutomaticRetries()
        .setUserAgent("pgbeacon")
        .addInterceptorLast((HttpRequestInterceptor) (request, context) -> token.get()
            .ifPresent(t -> request.setHeader("X-Consul-Token", t.value())));
    tls.ifPresent(builder::setSSLSocketFactory);
    return builder.build();
  }

  private static ConsulRawClient rawClient(Config.Consul config, CloseableHttpClient http) {
    var uri = config.address();
    int port = uri.getPort() > 0 ? uri.getPort() : ("https".equals(uri.getScheme()) ? 8501 : 8500);
    return ConsulRawClient.Builder.builder()
        .setHost(uri.getScheme() + "://" + uri.getHost())
        .setPort(port)
        .setHttpClient(http)
        .build();
  }

  @Override
  public void register(ServiceRegistration r) throws ConsulException {
    ObjectNode body = JSON.createObjectNode();
    body.put("ID", r.id());
    body.put("Name", r.name());
    ArrayNode tags = body.putArray("Tags");
    r.tags().forEach(tags::add);
    body.put("Address", r.address());
    body.put("Port", r.port());
    ObjectNode meta = body.putObject("Meta");
    r.meta().forEach(meta::put);
    ArrayNode checks = body.putArray("Checks");
    ObjectNode verdict = checks.addObject();
    verdict.put("CheckID", r.checkId());
    verdict.put("Name", r.name() + " verdict (pgbeacon)");
    verdict.put("TTL", Units.consulDuration(r.ttl()));
    verdict.put("Status", r.status().consul());
    ObjectNode alive = checks.addObject();
    alive.put("CheckID", r.aliveCheckId());
    alive.put("Name", "pgbeacon alive");
    alive.put("TTL", Units.consulDuration(r.aliveTtl()));
    alive.put("Status", Status.PASSING.consul());
    alive.put("DeregisterCriticalServiceAfter", Units.consulDuration(r.deregisterCriticalAfter()));
    put("register", "register " + r.id(), "/v1/agent/service/register", body.toString());
  }

  @Override
  public void updateCheck(String checkId, Status status, String output) throws ConsulException {
    ObjectNode body = JSON.createObjectNode();
    body.put("Status", status.consul());
    body.put("Output", output.length() > MAX_OUTPUT ? output.substring(0, MAX_OUTPUT) : output);
    put("update", "update " + checkId, "/v1/agent/check/update/" + checkId, body.toString());
  }

  @Override
  public void deregister(String serviceId) throws ConsulException {
    put("deregister", "deregister " + serviceId, "/v1/agent/service/deregister/" + serviceId, "");
  }

  @Override
  public Map<String, CheckState> checks() throws ConsulException {
    HttpResponse response = call("read_checks", "read checks", () -> raw.makeGetRequest("/v1/agent/checks"));
    Map<String, CheckState> checks = new LinkedHashMap<>();
    try {
      JsonNode root = JSON.readTree(response.getContent());
      for (var it = root.fields(); it.hasNext(); ) {
        var entry = it.next();
        Optional<Status> status = Status.fromConsul(entry.getValue().path("Status").asText());
        status.ifPresent(s -> checks.put(entry.getKey(), new CheckState(s, entry.getValue().path("Output").asText())));
      }
    } catch (IOException e) {
      throw new ConsulException("read checks: not JSON (" + e.getMessage() + ")", false);
    }
    return checks;
  }

  @Override
  public Map<String, ServiceEntry> services() throws ConsulException {
    HttpResponse response = call("read_services", "read services", () -> raw.makeGetRequest("/v1/agent/services"));
    Map<String, ServiceEntry> services = new LinkedHashMap<>();
    try {
      JsonNode root = JSON.readTree(response.getContent());
      for (var it = root.fields(); it.hasNext(); ) {
        var entry = it.next();
        Map<String, String> meta = new LinkedHashMap<>();
        entry.getValue().path("Meta").fields().forEachRemaining(m -> meta.put(m.getKey(), m.getValue().asText()));
        services.put(entry.getKey(), new ServiceEntry(entry.getValue().path("Service").asText(), meta));
      }
    } catch (IOException e) {
      throw new ConsulException("read services: not JSON (" + e.getMessage() + ")", false);
    }
    return services;
  }

  @Override
  public KeyRead readKey(String key, long index, Duration wait) throws ConsulException {
    long seconds = Math.max(1, Math.min(wait.toSeconds(), MAX_WAIT.toSeconds()));
    KeyRead[] result = new KeyRead[1];
    call("read_key", "read " + key, () -> {
      var response = watchClient.getKVValue(key, new QueryParams(seconds, index));
      var value = response.getValue();
      Long next = response.getConsulIndex();
      result[0] = new KeyRead(value == null ? Optional.empty() : Optional.ofNullable(value.getDecodedValue()),
          next == null ? 0 : next);
      return null;
    });
    return result[0];
  }

  @Override
  public void useToken(Optional<Secret> token) {
    this.token = token;
  }

  @Override
  public Duration giveUpAfter() {
    return GIVE_UP_AFTER;
  }

  @Override
  public void close() {
    // Closing the watch client also ends a blocking read in progress.
    for (CloseableHttpClient c : List.of(watchHttp, http)) {
      try {
        c.close();
      } catch (IOException ignored) {
        // closing a pool of loopback connections: nothing to report
      }
    }
  }

  private void put(String operation, String what, String endpoint, String body) throws ConsulException {
    HttpResponse response = call(operation, what, () -> raw.makePutRequest(endpoint, body));
    if (response.getStatusCode() != 200) {
      throw failure(what, response.getStatusCode(), response.getContent());
    }
  }

  private interface Call<T> {
    T run();
  }

  /** One call, timed and counted by {@code operation} (and its error's kind) in the metrics. */
  private <T> T call(String operation, String what, Call<T> call) throws ConsulException {
    long started = System.nanoTime();
    Optional<String> kind = Optional.of("other");
    try {
      T result = call.run();
      if (result instanceof HttpResponse r && r.getStatusCode() != 200) {
        throw failure(what, r.getStatusCode(), r.getContent());
      }
      kind = Optional.empty();
      return result;
    } catch (OperationException e) {
      ConsulException answered = failure(what, e.getStatusCode(), e.getStatusContent());
      kind = Optional.of(answered instanceof UnknownCheckException ? "unknown_check" : "error_answer");
      throw answered;
    } catch (TransportException e) {
      Throwable cause = e.getCause() == null ? e : e.getCause();
      kind = Optional.of(mayHaveLanded(cause) ? "no_answer" : "unreachable");
      // A refused client certificate or a name the agent's certificate lacks is no outage: say TLS.
      String failed = cause instanceof javax.net.ssl.SSLException ? "TLS with Consul failed" : "Consul unreachable";
      throw new ConsulException(what + ": " + failed + " (" + cause.getClass().getSimpleName()
          + (cause.getMessage() == null ? "" : ": " + cause.getMessage()) + ")", mayHaveLanded(cause));
    } catch (ConsulException e) {
      kind = Optional.of(e instanceof UnknownCheckException ? "unknown_check" : "error_answer");
      throw e;
    } catch (RuntimeException e) {
      throw new ConsulException(what + ": " + e, true);
    } finally {
      metrics.call("pgbeacon.consul.call", "pgbeacon.consul.errors", "Consul agent call",
          Tags.of("operation", operation),
          java.time.Duration.ofNanos(System.nanoTime() - started), kind);
    }
  }

  /** The agent answered with an error: the request was not applied. */
  private static ConsulException failure(String what, int code, String content) {
    String text = content == null ? "" : content.strip();
    // 404 on Consul ≥ 1.9 ("Unknown check ID"); 500 on older agents ("does not have associated TTL").
    String lower = text.toLowerCase(Locale.ROOT);
    if (code == 404 || (code == 500 && (lower.contains("unknown check") || lower.contains("associated ttl")))) {
      return new UnknownCheckException(what + ": " + text);
    }
    return new ConsulException(what + ": HTTP " + code + " " + text, false);
  }

  /** Only a connection that was never made proves the request did not reach the agent. */
  private static boolean mayHaveLanded(Throwable cause) {
    return !(cause instanceof ConnectException || cause instanceof ConnectTimeoutException
        || cause instanceof UnknownHostException || cause instanceof NoRouteToHostException);
  }
}
