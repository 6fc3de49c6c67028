package io.pgbeacon.patroni;

import io.micrometer.core.instrument.Tags;
import io.pgbeacon.config.Config;
import io.pgbeacon.metrics.Metrics;
import io.pgbeacon.net.ErrorText;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.http.HttpMethod;
import io.vertx.core.net.PemKeyCertOptions;
import io.vertx.core.net.PemTrustOptions;
import io.vertx.ext.web.client.HttpResponse;
import io.vertx.ext.web.client.WebClient;
import io.vertx.ext.web.client.WebClientOptions;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Reads the local Patroni: {@code GET /primary} (the node's status, and through its status code whether it holds
 * the leader lock) and {@code GET /cluster} (the DCS view: leader name, replica lag), both within one deadline.
 *
 * <p>Never fails its future: every failure becomes a {@link PatroniReading.Unavailable} with a reason.
 */
public final class PatroniClient {

  private final WebClient client;
  private final String base;
  private final long deadlineMillis;
  private final Config.Patroni config;
  private final Metrics metrics;

  public PatroniClient(Vertx vertx, Config.Patroni config, Metrics metrics) {
    this.config = config;
    this.metrics = metrics;
    this.deadlineMillis = config.timeout().toMillis();
    String url = config.url().toString();
    this.base = url.endsWith("/") ? url.substring(0, url.length() - 1) : url;
    WebClientOptions options = new WebClientOptions()
        .setUserAgent("pgbeacon")
        .setConnectTimeout((int) deadlineMillis)
        .setKeepAlive(true);
    if ("https".equalsIgnoreCase(config.url().getScheme())) {
      options.setSsl(true).setVerifyHost(true);
      config.caFile().ifPresent(ca -> options.setTrustOptions(new PemTrustOptions().addCertPath(ca.toString())));
      config.certFile().ifPresent(cert -> options.setKeyCertOptions(new PemKeyCertOptions()
          .setCertPath(cert.toString()).setKeyPath(config.keyFile().orElseThrow().toString())));
    }
    this.client = WebClient.create(vertx, options);
  }

  /** One poll of both endpoints, in parallel; completes within the configured timeout, always successfully. */
  public Future<PatroniReading> read() {
    Future<HttpResponse<Buffer>> primary = get("/primary");
    Future<HttpResponse<Buffer>> cluster = get("/cluster");
    return Future.join(primary, cluster).transform(ignored -> Future.succeededFuture(combine(primary, cluster)));
  }

  /**
   * One poll of {@code /primary} only, with the cluster view of {@code previous} (or its problem) reused: Patroni
   * reads the whole cluster from the DCS for every {@code GET /cluster}.
   */
  public Future<PatroniReading> read(PatroniReading.Observed previous) {
    Future<HttpResponse<Buffer>> primary = get("/primary");
    return primary.transform(ignored -> {
      PatroniReading reading = status(primary);
      return Future.succeededFuture(reading instanceof PatroniReading.Observed o
          ? new PatroniReading.Observed(o.status(), previous.cluster(), previous.clusterProblem(), true) : reading);
    });
  }

  private PatroniReading combine(Future<HttpResponse<Buffer>> primary, Future<HttpResponse<Buffer>> cluster) {
    PatroniReading reading = status(primary);
    if (!(reading instanceof PatroniReading.Observed observed)) {
      return reading;
    }
    PatroniStatus status = observed.status();
    if (cluster.failed()) {
      return new PatroniReading.Observed(status, Optional.empty(),
          Optional.of("cluster view unavailable: " + ErrorText.describe(cluster.cause())));
    }
    if (cluster.result().statusCode() != 200) {
      return new PatroniReading.Observed(status, Optional.empty(),
          Optional.of("cluster view unavailable: HTTP " + cluster.result().statusCode()));
    }
    try {
      return new PatroniReading.Observed(status, Optional.of(PatroniParser.cluster(bytes(cluster.result()))),
          Optional.empty());
    } catch (PatroniParseException e) {
      return new PatroniReading.Observed(status, Optional.empty(), Optional.of(e.getMessage()));
    }
  }

  /** The status in a {@code /primary} answer (without a cluster view), or why there is none. */
  private static PatroniReading status(Future<HttpResponse<Buffer>> primary) {
    if (primary.failed()) {
      return new PatroniReading.Unavailable("Patroni unreachable: " + ErrorText.describe(primary.cause()));
    }
    HttpResponse<Buffer> response = primary.result();
    int code = response.statusCode();
    // /primary answers 200 (leader lock held) or 503 (not), both with the status JSON; anything else is not Patroni.
    if (code != 200 && code != 503) {
      return new PatroniReading.Unavailable("Patroni answered HTTP " + code + " on /primary");
    }
    try {
      return new PatroniReading.Observed(PatroniParser.status(bytes(response), code == 200), Optional.empty(),
          Optional.empty());
    } catch (PatroniParseException e) {
      return new PatroniReading.Unavailable(e.getMessage());
    }
  }

  private Future<HttpResponse<Buffer>> get(String path) {
    var request = client.requestAbs(HttpMethod.GET, base + path)
        .timeout(deadlineMillis)
        .putHeader("Accept", "application/json");
    if (config.username().isPresent()) {
      request.basicAuthentication(config.username().get(), config.password().orElseThrow().value());
    }
    // timeout() bounds connect and idle time separately; this bounds the whole exchange.
    long started = System.nanoTime();
    return request.send().timeout(deadlineMillis, TimeUnit.MILLISECONDS).andThen(done -> {
      Optional<String> kind = done.succeeded() ? expectedStatus(path, done.result().statusCode())
          : Optional.of(kind(done.cause()));
      metrics.call("pgbeacon.patroni.request", "pgbeacon.patroni.errors", "Patroni REST request", Tags.of("endpoint", path.substring(1)),
          Duration.ofNanos(System.nanoTime() - started), kind);
    });
  }

  /** An answer no poll can use counts as an error of kind "status": /primary answers 200 or 503, /cluster 200. */
  private static Optional<String> expectedStatus(String path, int code) {
    boolean expected = code == 200 || (code == 503 && path.equals("/primary"));
    return expected ? Optional.empty() : Optional.of("status");
  }

  /** A failed request's kind for the errors metric: timeout, refused, tls or other. */
  static String kind(Throwable t) {
    if (ErrorText.describe(t).equals("no answer within the deadline")) {
      return "timeout";
    }
    if (t instanceof java.net.ConnectException) {
      return "refused";
    }
    if (t instanceof javax.net.ssl.SSLException) {
      return "tls";
    }
    return "other";
  }

  private static byte[] bytes(HttpResponse<Buffer> response) {
    Buffer body = response.body();
    return body == null ? new byte[0] : body.getBytes();
  }

  public void close() {
    client.close();
  }
}
