package io.pgbeacon.support;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * What a lab node's pgbeacon answers for each view on its two doors: the agent port (HAProxy's agent-check) and
 * HTTP {@code GET /primary}, {@code /replica} (HAProxy's {@code option httpchk}). They must agree: traffic (agent
 * "up", not draining; HTTP 200), no new traffic (agent down, maint or drain; HTTP 503), or no answer from either.
 */
public final class ViewAnswers {

  private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(1)).build();
  private static final Duration WAIT = Duration.ofSeconds(1);

  /** One door's answer, reduced to what a load balancer does with it. */
  public enum Meaning { TRAFFIC, NO_NEW_TRAFFIC, NO_ANSWER }

  /** Both doors' answers for one view of one node, as said. */
  public record Pair(String agent, String http) {
    public boolean agree() {
      return ofAgent(agent) == ofHttp(http);
    }
  }

  private ViewAnswers() {}

  /**
   * Asks every node both doors for both views until they agree (a verdict may change between two questions),
   * failing with the last answers after {@code deadline}.
   */
  public static void assertAgree(Lab lab, Duration deadline) {
    for (String node : lab.nodeNames()) {
      for (String view : new String[] {"primary", "replica"}) {
        Pair last = Await.until(node + ": agent port and /" + view + " agree", deadline, () -> ask(lab, node, view),
            Pair::agree);
        assertEquals(ofAgent(last.agent()), ofHttp(last.http()), node + " " + view + ": " + last);
      }
    }
  }

  /** Both doors of {@code node} for {@code view}, one right after the other. */
  public static Pair ask(Lab lab, String node, String view) {
    String agentPort = view.equals("primary") ? "AGENT_PRIMARY" : "AGENT_REPLICA";
    return new Pair(agent(lab.address(node), lab.port(node, agentPort)),
        http(lab.env("LAB_NODE" + lab.index(node) + "_PGBEACON_HTTP") + "/" + view));
  }

  /** All nodes, both views, both doors: for a test's log. */
  public static Map<String, Pair> all(Lab lab) {
    Map<String, Pair> all = new LinkedHashMap<>();
    for (String node : lab.nodeNames()) {
      for (String view : new String[] {"primary", "replica"}) {
        all.put(node + " " + view, ask(lab, node, view));
      }
    }
    return all;
  }

  static Meaning ofAgent(String reply) {
    if (reply.isEmpty() || reply.startsWith("(")) { // pgbeacon always answers a line: nothing is no answer
      return Meaning.NO_ANSWER;
    }
    return reply.startsWith("up") && !reply.startsWith("up drain") ? Meaning.TRAFFIC : Meaning.NO_NEW_TRAFFIC;
  }

  static Meaning ofHttp(String answer) {
    if (answer.startsWith("(")) {
      return Meaning.NO_ANSWER;
    }
    return answer.startsWith("200 ") ? Meaning.TRAFFIC : Meaning.NO_NEW_TRAFFIC;
  }

  /** The agent's reply line, or "(why not)". */
  private static String agent(String address, int port) {
    try (Socket s = new Socket()) {
      s.connect(new InetSocketAddress(address, port), (int) WAIT.toMillis());
      s.setSoTimeout((int) WAIT.toMillis());
      ByteArrayOutputStream out = new ByteArrayOutputStream();
      s.getInputStream().transferTo(out);
      return out.toString(StandardCharsets.US_ASCII).strip();
    } catch (IOException e) {
      return "(" + e + ")";
    }
  }

  private static String http(String url) {
    return http(url, WAIT);
  }

  /** "CODE body" of a GET within {@code timeout}, or "(why not)". */
  public static String http(String url, Duration timeout) {
    try {
      HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create(url)).timeout(timeout).build(),
          HttpResponse.BodyHandlers.ofString());
      return r.statusCode() + " " + r.body().strip();
    } catch (IOException e) {
      return "(" + e + ")";
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }
}
