package io.pgbeacon.support;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/** A real Prometheus's HTTP query API (the lab's, {@code LAB_PROMETHEUS}): instant queries and firing alerts. */
public final class Prometheus {

  private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
  private static final ObjectMapper JSON = new ObjectMapper();

  /** One series of an instant vector: its labels and value. */
  public record Sample(Map<String, String> labels, double value) {
    public String label(String name) {
      return labels.getOrDefault(name, "");
    }
  }

  private final String url;

  public Prometheus(String url) {
    this.url = url;
  }

  /** {@code GET /api/v1/query}: the instant vector {@code promql} evaluates to now. */
  public List<Sample> query(String promql) {
    JsonNode body = get("/api/v1/query?query=" + URLEncoder.encode(promql, StandardCharsets.UTF_8));
    if (!body.path("status").asText().equals("success")) {
      throw new IllegalStateException(promql + ": " + body);
    }
    List<Sample> samples = new ArrayList<>();
    for (JsonNode result : body.path("data").path("result")) {
      Map<String, String> labels = new TreeMap<>();
      result.path("metric").fields().forEachRemaining(e -> labels.put(e.getKey(), e.getValue().asText()));
      samples.add(new Sample(labels, Double.parseDouble(result.path("value").path(1).asText())));
    }
    return samples;
  }

  /** The labels of each firing instance of {@code alertname} ({@code GET /api/v1/alerts}). */
  public List<Map<String, String>> firing(String alertname) {
    List<Map<String, String>> out = new ArrayList<>();
    for (JsonNode alert : get("/api/v1/alerts").path("data").path("alerts")) {
      if (alert.path("labels").path("alertname").asText().equals(alertname)
          && alert.path("state").asText().equals("firing")) {
        Map<String, String> labels = new TreeMap<>();
        alert.path("labels").fields().forEachRemaining(e -> labels.put(e.getKey(), e.getValue().asText()));
        out.add(labels);
      }
    }
    return out;
  }

  private JsonNode get(String path) {
    try {
      HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create(url + path))
          .timeout(Duration.ofSeconds(5)).build(), HttpResponse.BodyHandlers.ofString());
      if (r.statusCode() != 200) {
        throw new IllegalStateException("Prometheus " + path + ": HTTP " + r.statusCode() + " " + r.body());
      }
      return JSON.readTree(r.body());
    } catch (IOException e) {
      throw new IllegalStateException("Prometheus " + url + path + ": " + e, e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }
}
