package io.pgbeacon.consul;

import com.ecwid.consul.transport.TransportException;
import com.ecwid.consul.v1.ConsulClient;
import com.ecwid.consul.v1.ConsulRawClient;
import com.ecwid.consul.v1.OperationException;
import com.ecwid.consul.v1.agent.model.NewService;
import io.pgbeacon.config.Config;
import io.pgbeacon.config.Units;
import io.pgbeacon.health.Status;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;
import org.apache.http.Header;
import org.apache.http.client.config.RequestConfig;
import org.apache.http.impl.client.CloseableHttpClient;
import org.apache.http.impl.client.HttpClientBuilder;
import org.apache.http.message.BasicHeader;

/**
 * {@link ConsulAgent} over Ecwid's consul-api (the design card's choice), with its two defaults fixed:
 * the ACL token travels only in the {@code X-Consul-Token} header of our own HttpClient (consul-api would put it
 * in the URL, where it ends up in logs), and every call has our deadline instead of its 10-minute read timeout.
 */
public final class EcwidConsulAgent implements ConsulAgent {

  private static final int MAX_OUTPUT = 1024; // Consul keeps up to 4 KiB; a verdict's reason is far shorter

  /** Longest blocking read; Consul may add up to wait/16 of jitter, and the socket timeout must outlast both. */
  static final java.time.Duration MAX_WAIT = java.time.Duration.ofSeconds(20);

  private final CloseableHttpClient http;
  private final ConsulClient client;
  private final CloseableHttpClient watchHttp;
  private final ConsulClient watchClient;

  public EcwidConsulAgent(Config.Consul config) {
    int millis = (int) config.timeout().toMillis();
    this.http = httpClient(config, millis);
    this.client = consulClient(config, http);
    int watchMillis = (int) (MAX_WAIT.toMillis() * 17 / 16) + millis;
    this.watchHttp = httpClient(config, watchMillis);
    this.watchClient = consulClient(config, watchHttp);
  }

  private static CloseableHttpClient httpClient(Config.Consul config, int socketMillis) {
    int connectMillis = (int) config.timeout().toMillis();
    RequestConfig deadlines = RequestConfig.custom()
        .setConnectTimeout(connectMillis)
        .setConnectionRequestTimeout(connectMillis)
        .setSocketTimeout(socketMillis)
        .build();
    List<Header> headers = new ArrayList<>();
    config.token().ifPresent(token -> headers.add(new BasicHeader("X-Consul-Token", token.value())));
    HttpClientBuilder builder = HttpClientBuilder.create()
        .setDefaultRequestConfig(deadlines)
        .setDefaultHeaders(headers)
        .setMaxConnPerRoute(4)
        .setMaxConnTotal(4)
        .disableAutomaticRetries()
        .setUserAgent("pgbeacon");
    config.caFile().ifPresent(ca -> builder.setSSLContext(trusting(ca)));
    return builder.build();
  }

  private static ConsulClient consulClient(Config.Consul config, CloseableHttpClient http) {
    var uri = config.address();
    int port = uri.getPort() > 0 ? uri.getPort() : ("https".equals(uri.getScheme()) ? 8501 : 8500);
    return new ConsulClient(ConsulRawClient.Builder.builder()
        .setHost(uri.getScheme() + "://" + uri.getHost())
        .setPort(port)
        .setHttpClient(http)
        .build());
  }

  @Override
  public void register(ServiceRegistration r) throws ConsulException {
    NewService service = new NewService();
    service.setId(r.id());
    service.setName(r.name());
    service.setTags(r.tags());
    service.setAddress(r.address());
    service.setPort(r.port());
    service.setMeta(r.meta());
    NewService.Check check = new NewService.Check();
    check.setTtl(Units.consulDuration(r.ttl()));
    check.setDeregisterCriticalServiceAfter(Units.consulDuration(r.deregisterCriticalAfter()));
    check.setStatus(r.status().consul());
    service.setCheck(check);
    call("register " + r.id(), () -> client.agentServiceRegister(service));
  }

  @Override
  public void updateTtl(String checkId, Status status, String output) throws ConsulException {
    String note = output.length() > MAX_OUTPUT ? output.substring(0, MAX_OUTPUT) : output;
    call("update " + checkId, () -> {
      switch (status) {
        case PASSING -> client.agentCheckPass(checkId, note);
        case WARNING -> client.agentCheckWarn(checkId, note);
        case CRITICAL -> client.agentCheckFail(checkId, note);
      }
    });
  }

  @Override
  public void deregister(String serviceId) throws ConsulException {
    call("deregister " + serviceId, () -> client.agentServiceDeregister(serviceId));
  }

  @Override
  public KeyRead readKey(String key, long index, java.time.Duration wait) throws ConsulException {
    long seconds = Math.max(1, Math.min(wait.toSeconds(), MAX_WAIT.toSeconds()));
    KeyRead[] result = new KeyRead[1];
    call("read " + key, () -> {
      var response = watchClient.getKVValue(key, new com.ecwid.consul.v1.QueryParams(seconds, index));
      var value = response.getValue();
      Long next = response.getConsulIndex();
      result[0] = new KeyRead(value == null ? java.util.Optional.empty()
          : java.util.Optional.ofNullable(value.getDecodedValue()), next == null ? 0 : next);
    });
    return result[0];
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

  private interface Call {
    void run();
  }

  private static void call(String what, Call call) throws ConsulException {
    try {
      call.run();
    } catch (OperationException e) {
      String content = e.getStatusContent() == null ? "" : e.getStatusContent().strip();
      // 404 on Consul ≥ 1.9 ("Unknown check ID"); 500 on older agents ("does not have associated TTL").
      String lower = content.toLowerCase(Locale.ROOT);
      if (e.getStatusCode() == 404
          || (e.getStatusCode() == 500 && (lower.contains("unknown check") || lower.contains("associated ttl")))) {
        throw new UnknownCheckException(what + ": " + content);
      }
      throw new ConsulException(what + ": HTTP " + e.getStatusCode() + " " + content);
    } catch (TransportException e) {
      Throwable cause = e.getCause() == null ? e : e.getCause();
      throw new ConsulException(what + ": Consul unreachable (" + cause.getClass().getSimpleName()
          + (cause.getMessage() == null ? "" : ": " + cause.getMessage()) + ")");
    } catch (RuntimeException e) {
      throw new ConsulException(what + ": " + e);
    }
  }

  private static SSLContext trusting(Path caFile) {
    try (InputStream in = Files.newInputStream(caFile)) {
      KeyStore store = KeyStore.getInstance(KeyStore.getDefaultType());
      store.load(null, null);
      int i = 0;
      for (Certificate cert : CertificateFactory.getInstance("X.509").generateCertificates(in)) {
        store.setCertificateEntry("ca-" + i++, cert);
      }
      TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
      tmf.init(store);
      SSLContext context = SSLContext.getInstance("TLS");
      context.init(null, tmf.getTrustManagers(), null);
      return context;
    } catch (IOException | GeneralSecurityException e) {
      throw new IllegalStateException("cannot load Consul CA file " + caFile + ": " + e.getMessage(), e);
    }
  }
}
