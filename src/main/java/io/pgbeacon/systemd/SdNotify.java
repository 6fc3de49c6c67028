package io.pgbeacon.systemd;

import io.netty.channel.epoll.Epoll;
import io.netty.channel.unix.Socket;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * systemd's notify protocol, the sending half: each message is one datagram to the {@code AF_UNIX} socket that
 * {@code $NOTIFY_SOCKET} names, a path ({@code /run/systemd/notify}) or a name in the abstract namespace
 * ({@code @…}, sent with the leading NUL systemd means by it). Without {@code NOTIFY_SOCKET} (not started by systemd
 * with {@code Type=notify}) every send is a no-op.
 *
 * <p>Why Netty's socket: Java 17 cannot open a unix datagram socket (JDK 16's unix-domain channels are stream
 * only), and the libraries that speak sd_notify do it through JNA or JNI of their own. pgbeacon already loads
 * Netty's native epoll library for Vert.x's transport; its {@link Socket} opens the datagram socket and sends with
 * one {@code sendto(2)}, synchronously, from whatever thread calls — no event loop, no thread, no new dependency.
 * Where that library does not load (not Linux, or a libc it was not built for), notify is off, with one WARN.
 *
 * <p>Sends are best effort, as sd_notify's are: a failure is logged once at WARN, then at DEBUG.
 */
public final class SdNotify implements AutoCloseable {

  private static final Logger log = LoggerFactory.getLogger(SdNotify.class);

  /** Sends nothing: no {@code NOTIFY_SOCKET}. */
  public static final SdNotify OFF = new SdNotify(null, null, "(off)");

  private final Socket socket;
  private final byte[] address;
  private final String where;
  private boolean warned;

  private SdNotify(Socket socket, byte[] address, String where) {
    this.socket = socket;
    this.address = address;
    this.where = where;
  }

  /** The socket {@code env}'s {@code NOTIFY_SOCKET} names, or {@link #OFF} (with a WARN if it cannot be used). */
  public static SdNotify fromEnvironment(Map<String, String> env) {
    String name = env.get("NOTIFY_SOCKET");
    if (name == null || name.isEmpty()) {
      return OFF;
    }
    if (!name.startsWith("/") && !name.startsWith("@")) {
      // systemd 254+ may also name an AF_VSOCK address (vsock:…), for virtual machines: not for a sidecar.
      log.warn("NOTIFY_SOCKET={} is neither a path nor an abstract socket name (@…): not notifying systemd", name);
      return OFF;
    }
    byte[] address = (name.startsWith("@") ? "\0" + name.substring(1) : name).getBytes(StandardCharsets.UTF_8);
    if (address.length > Socket.UDS_SUN_PATH_SIZE) {
      log.warn("NOTIFY_SOCKET={} is longer than a unix socket address ({} bytes): not notifying systemd", name,
          Socket.UDS_SUN_PATH_SIZE);
      return OFF;
    }
    if (!Epoll.isAvailable()) {
      log.warn("NOTIFY_SOCKET is set but Netty's native epoll library does not load ({}): not notifying systemd",
          Epoll.unavailabilityCause().toString());
      return OFF;
    }
    try {
      return new SdNotify(Socket.newSocketDomainDgram(), address, name);
    } catch (RuntimeException e) {
      log.warn("cannot open a unix datagram socket for NOTIFY_SOCKET={} ({}): not notifying systemd", name,
          e.toString());
      return OFF;
    }
  }

  public boolean enabled() {
    return socket != null;
  }

  /**
   * Sends {@code message} (one or more {@code KEY=value} lines) in one datagram; true when the kernel took it.
   */
  public synchronized boolean send(String message) {
    if (socket == null) {
      return false;
    }
    byte[] bytes = message.getBytes(StandardCharsets.UTF_8);
    ByteBuffer buffer = ByteBuffer.allocateDirect(bytes.length); // the native send reads a direct buffer's memory
    buffer.put(bytes).flip();
    String shown = message.replace('\n', ' ');
    try {
      if (socket.sendToDomainSocket(buffer, 0, bytes.length, address) == bytes.length) {
        log.debug("systemd notify: {}", shown);
        return true;
      }
      failed(shown, "the socket's queue is full");
    } catch (IOException | RuntimeException e) {
      failed(shown, e.getMessage());
    }
    return false;
  }

  private void failed(String message, String why) {
    if (!warned) {
      warned = true;
      log.warn("systemd notify to {} failed ({}): {} not sent; later failures are logged at DEBUG", where, why,
          message);
    } else {
      log.debug("systemd notify to {} failed ({}): {}", where, why, message);
    }
  }

  @Override
  public synchronized void close() {
    if (socket != null) {
      try {
        socket.close();
      } catch (IOException ignored) {
        // a datagram socket of our own: nothing to flush, nothing to report
      }
    }
  }
}
