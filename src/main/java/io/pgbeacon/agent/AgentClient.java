package io.pgbeacon.agent;

import io.pgbeacon.config.Config;
import java.io.IOException;
import java.io.InputStream;
import java.net.ConnectException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

/**
 * Asks a running pgbeacon's agent port for one view, as HAProxy does — connect, send the view's name when the
 * listener has no fixed view ({@code agent-send}), read one line — and reads the reply back ({@link
 * AgentReply#read}). Blocking, within one deadline; for {@code pgbeacon check}.
 */
public final class AgentClient {

  private static final int MAX_REPLY = 1024;

  /** The daemon gave no complete reply line; the message says why, for the check's output. */
  public static final class NoAnswer extends Exception {
    private static final long serialVersionUID = 1L;

    NoAnswer(String message) {
      super(message);
    }
  }

  private AgentClient() {}

  /** The listener that answers {@code view}: one fixed to it, else one that lets agent-send choose. */
  public static Optional<Config.Listener> listenerFor(List<Config.Listener> listen, Config.View view) {
    return listen.stream().filter(l -> l.view().equals(Optional.of(view))).findFirst()
        .or(() -> listen.stream().filter(l -> l.view().isEmpty()).findFirst());
  }

  /** A wildcard bind address is reached on loopback. */
  public static String connectHost(String address) {
    return switch (address) {
      case "0.0.0.0", "" -> "127.0.0.1";
      case "::", "[::]", "::0" -> "::1";
      default -> address;
    };
  }

  /**
   * The reply of the configured listener for {@code view}, by {@code deadline} ({@link System#nanoTime()}).
   *
   * @throws NoAnswer when no listener answers that view, nothing listens, or no complete line came in time
   */
  public static AgentReply.Heard ask(List<Config.Listener> listen, Config.View view, long deadline)
      throws NoAnswer {
    Config.Listener listener = listenerFor(listen, view).orElseThrow(() -> new NoAnswer(
        "no agent port in the config answers the " + view.key() + " view (agent.listen); use --direct"));
    String host = connectHost(listener.address());
    String where = host + ":" + listener.port();
    try (Socket socket = new Socket()) {
      socket.connect(new InetSocketAddress(host, listener.port()), remainingMillis(deadline));
      if (listener.view().isEmpty()) {
        socket.getOutputStream().write((view.key() + "\n").getBytes(StandardCharsets.US_ASCII));
        socket.getOutputStream().flush();
      }
      String reply = readLine(socket, deadline);
      AgentReply.Heard heard = AgentReply.read(reply);
      if (reply.indexOf('\n') < 0 && reply.indexOf('\r') < 0) {
        throw new NoAnswer("pgbeacon on " + where + ": " + heard.reason());
      }
      return heard;
    } catch (ConnectException e) {
      throw new NoAnswer("pgbeacon not running: nothing listens on " + where);
    } catch (SocketTimeoutException e) {
      throw new NoAnswer("pgbeacon did not answer on " + where + " in time");
    } catch (IOException e) {
      throw new NoAnswer("pgbeacon not reachable on " + where + ": " + e.getMessage());
    }
  }

  /** Reads until the line ends, the daemon closes, or the deadline passes. */
  private static String readLine(Socket socket, long deadline) throws IOException {
    InputStream in = socket.getInputStream();
    byte[] buffer = new byte[MAX_REPLY];
    int length = 0;
    while (length < buffer.length) {
      socket.setSoTimeout(remainingMillis(deadline));
      int read = in.read(buffer, length, buffer.length - length);
      if (read < 0) {
        break;
      }
      length += read;
      String sofar = new String(buffer, 0, length, StandardCharsets.US_ASCII);
      if (sofar.indexOf('\n') >= 0 || sofar.indexOf('\r') >= 0) {
        return sofar;
      }
    }
    return new String(buffer, 0, length, StandardCharsets.US_ASCII);
  }

  /** At least 1: a socket timeout of 0 would mean no timeout at all. */
  private static int remainingMillis(long deadline) throws SocketTimeoutException {
    long millis = TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
    if (millis < 1) {
      throw new SocketTimeoutException("deadline passed");
    }
    return (int) Math.min(millis, Integer.MAX_VALUE);
  }
}
