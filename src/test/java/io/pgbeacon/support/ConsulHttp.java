package io.pgbeacon.support;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.pgbeacon.config.TlsMaterial;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.security.GeneralSecurityException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import javax.net.ssl.SSLContext;

/** What a Consul consumer sees, read over plain HTTP (or HTTPS with a client certificate): for assertions only. */
public final class ConsulHttp {

  private static final ObjectMapper JSON = new ObjectMapper();
  private final HttpClient client;
  private final String base;
  private final String token;

  public ConsulHttp(String hostPort, String token) {
    this("http://" + hostPort, token, HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build());
  }

  private ConsulHttp(String base, String token, HttpClient client) {
    this.base = base;
    this.token = token;
    this.client = client;
  }

  /** Over HTTPS, trusting the agent's CA and showing its client certificate, as a verifying agent's consumers do. */
  public static ConsulHttp overTls(String hostPort, ConsulDevAgent.Tls tls) {
    try {
      SSLContext context = SSLContext.getInstance("TLS");
      context.init(TlsMaterial.keyManagers(tls.clientCert(), tls.clientKey(), "client certificate").getKeyManagers(),
          TlsMaterial.trustManagers(TlsMaterial.certificates(tls.ca())).getTrustManagers(), null);
      return new ConsulHttp("https://" + hostPort, null,
          HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).sslContext(context).build());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (GeneralSecurityException | TlsMaterial.BadFile e) {
      throw new IllegalStateException("the agent's certificates: " + e.getMessage(), e);
    }
  }

  public ConsulHttp(String hostPort) {
    this(hostPort, null);
  }

  public JsonNode get(String path) {
    try {
      return JSON.readTree(request("GET", path, ""));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** PUT {@code value} at {@code key} in Consul's KV store, as Patroni writes its leader and failover keys. */
  public void putKv(String key, String value) {
    put("/v1/kv/" + key, value);
  }

  public void deleteKv(String key) {
    request("DELETE", "/v1/kv/" + key, "");
  }

  /** A DELETE of any endpoint, e.g. an ACL token; the answer's body. */
  public String delete(String path) {
    return request("DELETE", path, "");
  }

  /** A PUT to any endpoint (register, ACL, KV); the answer's body. */
  public String put(String path, String body) {
    return request("PUT", path, body);
  }

  /** One call with the token, if any; the body of a 200, else an exception naming the call. */
  private String request(String method, String path, String body) {
    try {
      HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(base + path)).timeout(Duration.ofSeconds(3))
          .method(method, body.isEmpty() ? HttpRequest.BodyPublishers.noBody() : HttpRequest.BodyPublishers.ofString(body));
      if (token != null) {
        b.header("X-Consul-Token", token);
      }
      HttpResponse<String> r = client.send(b.build(), HttpResponse.BodyHandlers.ofString());
      if (r.statusCode() != 200) {
        throw new IllegalStateException("Consul " + method + " " + path + " → HTTP " + r.statusCode() + ": " + r.body());
      }
      return r.body();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  /** Node names (meta "node") of the passing instances of a service, as a load balancer would list them. */
  public List<String> passingNodes(String service) {
    List<String> nodes = new ArrayList<>();
    for (JsonNode entry : get("/v1/health/service/" + service + "?passing")) {
      nodes.add(entry.path("Service").path("Meta").path("node").asText(entry.path("Service").path("ID").asText()));
    }
    return nodes;
  }

  /** Status of a check on the local agent, or "absent". */
  public String checkStatus(String checkId) {
    JsonNode check = get("/v1/agent/checks").path(checkId);
    return check.isMissingNode() ? "absent" : check.path("Status").asText();
  }

  public JsonNode check(String checkId) {
    return get("/v1/agent/checks").path(checkId);
  }

  public JsonNode service(String serviceId) {
    return get("/v1/agent/services").path(serviceId);
  }
}
