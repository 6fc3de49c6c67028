package io.pgbeacon.support;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The few endpoints of a Consul agent that pgbeacon's registrar calls (register, check update, deregister, list
 * checks), kept in memory over plain HTTP/1.1 with keep-alive, for faults a real agent cannot produce on cue: a call
 * that is applied and then never answered (its connection dropped), and an agent answering every call with an
 * error. It counts every request. Everything else is tested against a real agent ({@link ConsulDevAgent}).
 */
public final class StandInConsul implements AutoCloseable {

  private static final ObjectMapper JSON = new ObjectMapper();

  /** One check as the stand-in holds it. */
  public record Check(String status, String output) {}

  private final ServerSocket server;
  private final ExecutorService threads = Executors.newCachedThreadPool(r -> {
    Thread t = new Thread(r, "stand-in-consul");
    t.setDaemon(true);
    return t;
  });
  private final Map<String, Check> checks = new ConcurrentHashMap<>();
  private final Map<String, JsonNode> services = new ConcurrentHashMap<>();
  private final List<String> dropAfterApplying = new CopyOnWriteArrayList<>();
  private final List<String> requests = new CopyOnWriteArrayList<>();
  private final AtomicInteger calls = new AtomicInteger();
  private volatile boolean failing;

  private StandInConsul() {
    try {
      server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    threads.execute(this::accept);
  }

  public static StandInConsul start() {
    return new StandInConsul();
  }

  /** host:port, as pgbeacon's {@code consul.address} takes it after {@code http://}. */
  public String address() {
    return "127.0.0.1:" + server.getLocalPort();
  }

  /** The next request whose path contains {@code pathPart} is applied, then its connection closed unanswered. */
  public void dropAfterApplying(String pathPart) {
    dropAfterApplying.add(pathPart);
  }

  /** While true, every request is answered {@code 500} and applied not at all. */
  public void failing(boolean failing) {
    this.failing = failing;
  }

  public Check check(String id) {
    return checks.get(id);
  }

  public int calls() {
    return calls.get();
  }

  /** Method and path of every request so far, in the order they arrived. */
  public List<String> requests() {
    return List.copyOf(requests);
  }

  private void accept() {
    while (!server.isClosed()) {
      try {
        Socket socket = server.accept();
        threads.execute(() -> serve(socket));
      } catch (IOException e) {
        return; // closed
      }
    }
  }

  private void serve(Socket socket) {
    try (socket) {
      InputStream in = socket.getInputStream();
      OutputStream out = socket.getOutputStream();
      while (true) {
        String requestLine = line(in);
        if (requestLine == null || requestLine.isEmpty()) {
          return;
        }
        int length = 0;
        for (String header = line(in); header != null && !header.isEmpty(); header = line(in)) {
          if (header.toLowerCase(Locale.ROOT).startsWith("content-length:")) {
            length = Integer.parseInt(header.substring("content-length:".length()).strip());
          }
        }
        byte[] body = in.readNBytes(length);
        String[] parts = requestLine.split(" ");
        String method = parts[0];
        String path = parts[1].contains("?") ? parts[1].substring(0, parts[1].indexOf('?')) : parts[1];
        calls.incrementAndGet();
        requests.add(method + " " + path);
        if (failing) {
          answer(out, 500, "stand-in: failing on purpose");
          continue;
        }
        Answer answer = apply(method, path, new String(body, StandardCharsets.UTF_8));
        String drop = dropAfterApplying.stream().filter(path::contains).findFirst().orElse(null);
        if (drop != null) {
          dropAfterApplying.remove(drop);
          return; // applied, never answered: the connection closes
        }
        answer(out, answer.code(), answer.body());
      }
    } catch (IOException | RuntimeException e) {
      // the client went away: next connection
    }
  }

  private record Answer(int code, String body) {}

  private Answer apply(String method, String path, String body) throws IOException {
    if (method.equals("PUT") && path.equals("/v1/agent/service/register")) {
      JsonNode service = JSON.readTree(body);
      services.put(service.path("ID").asText(), service);
      for (JsonNode check : service.path("Checks")) {
        checks.put(check.path("CheckID").asText(), new Check(check.path("Status").asText("critical"), ""));
      }
      if (service.has("Check")) { // one check without an ID, as consul-api's model sends it
        checks.put("service:" + service.path("ID").asText(),
            new Check(service.path("Check").path("Status").asText("critical"), ""));
      }
      return new Answer(200, "");
    }
    for (String status : List.of("pass", "warn", "fail")) { // the older TTL endpoints, note in the query
      if (method.equals("PUT") && path.startsWith("/v1/agent/check/" + status + "/")) {
        String id = path.substring(("/v1/agent/check/" + status + "/").length());
        if (!checks.containsKey(id)) {
          return new Answer(404, "Unknown check ID \"" + id + "\"");
        }
        checks.put(id, new Check(status.equals("pass") ? "passing" : status.equals("warn") ? "warning" : "critical",
            ""));
        return new Answer(200, "");
      }
    }
    if (method.equals("PUT") && path.startsWith("/v1/agent/check/update/")) {
      String id = path.substring("/v1/agent/check/update/".length());
      if (!checks.containsKey(id)) {
        return new Answer(404, "Unknown check ID \"" + id + "\"");
      }
      JsonNode update = JSON.readTree(body);
      checks.put(id, new Check(update.path("Status").asText(), update.path("Output").asText()));
      return new Answer(200, "");
    }
    if (method.equals("PUT") && path.startsWith("/v1/agent/service/deregister/")) {
      String id = path.substring("/v1/agent/service/deregister/".length());
      services.remove(id);
      checks.keySet().removeIf(c -> c.equals("service:" + id) || c.startsWith("service:" + id + ":"));
      return new Answer(200, "");
    }
    if (method.equals("GET") && path.equals("/v1/agent/checks")) {
      ObjectNode all = JSON.createObjectNode();
      checks.forEach((id, c) -> all.putObject(id).put("CheckID", id).put("Status", c.status())
          .put("Output", c.output()));
      return new Answer(200, all.toString());
    }
    if (method.equals("GET") && path.equals("/v1/agent/services")) {
      ObjectNode all = JSON.createObjectNode();
      services.forEach((id, r) -> all.putObject(id).put("ID", id).put("Service", r.path("Name").asText())
          .set("Meta", r.path("Meta")));
      return new Answer(200, all.toString());
    }
    return new Answer(404, "stand-in: no such endpoint " + method + " " + path);
  }

  private static void answer(OutputStream out, int code, String body) throws IOException {
    byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
    String head = "HTTP/1.1 " + code + (code == 200 ? " OK" : " Error") + "\r\nContent-Type: application/json\r\n"
        + "Content-Length: " + bytes.length + "\r\n\r\n";
    out.write(head.getBytes(StandardCharsets.US_ASCII));
    out.write(bytes);
    out.flush();
  }

  private static String line(InputStream in) throws IOException {
    ByteArrayOutputStream buffer = new ByteArrayOutputStream();
    int c;
    while ((c = in.read()) >= 0) {
      if (c == '\n') {
        String s = buffer.toString(StandardCharsets.US_ASCII);
        return s.endsWith("\r") ? s.substring(0, s.length() - 1) : s;
      }
      buffer.write(c);
    }
    return buffer.size() == 0 ? null : buffer.toString(StandardCharsets.US_ASCII);
  }

  @Override
  public void close() {
    try {
      server.close();
    } catch (IOException ignored) {
      // closing a loopback listener
    }
    threads.shutdownNow();
  }
}
