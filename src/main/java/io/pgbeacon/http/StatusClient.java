package io.pgbeacon.http;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.json.JsonMapper;
import io.pgbeacon.agent.AgentClient;
import io.pgbeacon.config.Config;
import io.pgbeacon.net.ErrorText;
import java.net.ConnectException;
import java.net.URI;
import java.net.URISyntaxException;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Asks a running pgbeacon for {@code /status} ({@link StatusServer}), blocking, within one deadline for connect,
 * request and body together: for {@code pgbeacon status}.
 */
public final class StatusClient {

  private static final JsonMapper JSON = JsonMapper.builder().build();

  /** The daemon could not be asked, or did not answer with its status; the message names the URL and why. */
  public static final class NoStatus extends Exception {
    private static final long serialVersionUID = 1L;

    NoStatus(String message) {
      super(message);
    }
  }

  /** What {@code /status} answered: the body as sent, and as read. */
  public record Answer(String body, JsonNode json) {}

  private StatusClient() {}

  /** {@code /status} of the daemon listening on {@code http}; a wildcard address is asked on loopback. */
  public static URI url(Config.Http http) {
    String host = AgentClient.connectHost(http.address());
    return URI.create("http://" + (host.contains(":") && !host.startsWith("[") ? "[" + host + "]" : host) + ":"
        + http.port() + "/status");
  }

  /**
   * {@code /status} under {@code base} (e.g. {@code http://10.0.0.11:8009}); a URL that ends in {@code /status}
   * already is taken as it is.
   *
   * @throws IllegalArgumentException when {@code base} is not an http(s) URL with a host
   */
  public static URI url(String base) {
    URI uri;
    try {
      uri = new URI(base);
    } catch (URISyntaxException e) {
      uri = null;
    }
    if (uri == null || uri.getScheme() == null || !uri.getScheme().matches("(?i)https?") || uri.getHost() == null) {
      throw new IllegalArgumentException("must be a URL like http://host:port");
    }
    String path = uri.getRawPath() == null ? "" : uri.getRawPath();
    if (path.endsWith("/status")) {
      return uri;
    }
    return URI.create(uri.getScheme() + "://" + uri.getRawAuthority() + path.replaceAll("/+$", "") + "/status");
  }

  /**
   * GETs {@code url} within {@code deadline} from the request on (building the client, which loads the JDK's TLS
   * defaults, comes first): a 200 whose body is a JSON object, or {@link NoStatus}.
   */
  public static Answer fetch(URI url, Duration deadline) throws NoStatus {
    // One-shot: a client of its own, whose threads are daemons and go with it.
    HttpClient client = HttpClient.newBuilder().connectTimeout(deadline).build();
    HttpRequest request = HttpRequest.newBuilder(url).timeout(deadline).header("Accept", "application/json").GET()
        .build();
    CompletableFuture<HttpResponse<String>> call = client.sendAsync(request, HttpResponse.BodyHandlers.ofString());
    HttpResponse<String> response;
    try {
      response = call.get(deadline.toMillis(), TimeUnit.MILLISECONDS);
    } catch (TimeoutException e) {
      call.cancel(true);
      throw new NoStatus(notAnswered(url, deadline));
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new NoStatus("interrupted while asking " + url);
    } catch (ExecutionException e) {
      throw new NoStatus(unreachable(url, deadline, e.getCause()));
    }
    if (response.statusCode() != 200) {
      throw new NoStatus("pgbeacon at " + url + " answered HTTP " + response.statusCode() + firstLine(
          response.body()));
    }
    try {
      JsonNode json = JSON.readTree(response.body());
      if (json == null || !json.isObject()) {
        throw new NoStatus("pgbeacon at " + url + " answered no status (not a JSON object)" + firstLine(
            response.body()));
      }
      return new Answer(response.body(), json);
    } catch (JsonProcessingException e) {
      throw new NoStatus("pgbeacon at " + url + " answered no status (not JSON)" + firstLine(response.body()));
    }
  }

  /** The request's own timeout and the wait for it are one deadline: whichever fires first, the same words. */
  private static String notAnswered(URI url, Duration deadline) {
    return "pgbeacon did not answer at " + url + " within " + deadline.toMillis() + " ms";
  }

  private static String unreachable(URI url, Duration deadline, Throwable cause) {
    // The JDK's client often gives a ConnectException without a message; its type is the news.
    if (cause instanceof ConnectException) {
      return "pgbeacon not reachable at " + url + ": connection refused (is it running, with http on?)";
    }
    if (cause instanceof java.net.http.HttpTimeoutException) {
      return notAnswered(url, deadline);
    }
    return "pgbeacon not reachable at " + url + ": " + ErrorText.describe(cause);
  }

  private static String firstLine(String body) {
    String line = body == null ? "" : body.strip().lines().findFirst().orElse("");
    if (line.isEmpty()) {
      return "";
    }
    return ": " + (line.length() > 120 ? line.substring(0, 120) + "…" : line);
  }
}
