package io.pgbeacon.patroni;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalLong;

/** Reads Patroni 3.x and 4.x JSON. Tolerant of fields it does not know, strict about the ones it decides on. */
public final class PatroniParser {

  private static final ObjectMapper JSON = JsonMapper.builder().build();

  private PatroniParser() {}

  /** Parses a status body ({@code /patroni}, {@code /primary}, …). */
  public static PatroniStatus status(byte[] body, boolean holdsLeaderLock) throws PatroniParseException {
    JsonNode root = tree(body);
    String state = requiredText(root, "state");
    String role = requiredText(root, "role");
    JsonNode xlog = root.path("xlog");
    OptionalLong position = longField(xlog, "location");
    if (position.isEmpty()) {
      position = longField(xlog, "replayed_location");
    }
    Map<String, String> tags = new LinkedHashMap<>();
    root.path("tags").fields().forEachRemaining(e -> tags.put(e.getKey(), e.getValue().asText()));
    JsonNode patroni = root.path("patroni");
    return new PatroniStatus(
        state,
        Role.parse(role),
        role,
        holdsLeaderLock,
        longField(root, "timeline"),
        position,
        xlog.path("paused").asBoolean(false),
        root.path("pause").asBoolean(false),
        root.path("cluster_unlocked").asBoolean(false),
        root.path("sync_standby").asBoolean(false),
        tags,
        optText(patroni, "scope"),
        optText(patroni, "name"),
        optText(patroni, "version"),
        longField(xlog, "received_location"),
        optText(root, "replication_state"),
        optText(root, "postmaster_start_time"),
        root.path("quorum_standby").asBoolean(false),
        longField(root, "server_version"));
  }

  /** Parses {@code GET /cluster}. */
  public static ClusterView cluster(byte[] body) throws PatroniParseException {
    JsonNode root = tree(body);
    JsonNode members = root.path("members");
    if (!members.isArray()) {
      throw new PatroniParseException("Patroni /cluster has no members list");
    }
    List<ClusterView.Member> list = new ArrayList<>();
    for (JsonNode m : members) {
      list.add(new ClusterView.Member(
          requiredText(m, "name"),
          m.path("role").asText(""),
          m.path("state").asText(""),
          m.path("host").asText(""),
          m.path("port").asInt(0),
          m.path("api_url").asText(null),
          longField(m, "lag")));
    }
    return new ClusterView(list, root.path("pause").asBoolean(false), optText(root, "scope"));
  }

  private static JsonNode tree(byte[] body) throws PatroniParseException {
    if (body == null || body.length == 0) {
      throw new PatroniParseException("Patroni sent an empty body");
    }
    try {
      JsonNode root = JSON.readTree(body);
      if (root == null || !root.isObject()) {
        throw new PatroniParseException("Patroni sent JSON that is not an object");
      }
      return root;
    } catch (JsonProcessingException e) {
      throw new PatroniParseException("Patroni sent invalid JSON: " + e.getOriginalMessage());
    } catch (java.io.IOException e) {
      throw new PatroniParseException("Patroni body unreadable: " + e.getMessage());
    }
  }

  private static String requiredText(JsonNode node, String field) throws PatroniParseException {
    JsonNode v = node.path(field);
    if (!v.isTextual() || v.asText().isEmpty()) {
      throw new PatroniParseException("Patroni JSON has no '" + field + "'");
    }
    return v.asText();
  }

  private static Optional<String> optText(JsonNode node, String field) {
    JsonNode v = node.path(field);
    return v.isTextual() ? Optional.of(v.asText()) : Optional.empty();
  }

  private static OptionalLong longField(JsonNode node, String field) {
    JsonNode v = node.path(field);
    return v.isIntegralNumber() ? OptionalLong.of(v.asLong()) : OptionalLong.empty();
  }
}
