package io.pgbeacon.support;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;

/**
 * A TCP port that writes one line to every connection and closes it: a stand-in PgBouncer or PostgreSQL whose
 * greeting tells which one a client reached, or a scripted HAProxy agent ({@link #reply}). {@link #stop()} closes
 * the port (connection refused), {@link #start()} opens the same port again.
 */
public final class TcpStub implements AutoCloseable {

  private final String address;
  private volatile byte[] reply;
  private int port;
  private ServerSocket server;
  private Thread thread;

  private TcpStub(String address, int port, String reply) {
    this.address = address;
    this.port = port;
    reply(reply);
  }

  /** Listening on {@code address:port} (port 0: a free port) and answering {@code reply} (a newline is added). */
  public static TcpStub start(String address, int port, String reply) {
    TcpStub stub = new TcpStub(address, port, reply);
    stub.start();
    return stub;
  }

  public int port() {
    return port;
  }

  /** What the next connections read: {@code line} and a newline. */
  public TcpStub reply(String line) {
    this.reply = (line + "\n").getBytes(StandardCharsets.US_ASCII);
    return this;
  }

  public synchronized TcpStub start() {
    if (server != null) {
      return this;
    }
    try {
      ServerSocket s = new ServerSocket();
      s.setReuseAddress(true);
      s.bind(new InetSocketAddress(InetAddress.getByName(address), port), 50);
      port = s.getLocalPort();
      server = s;
      thread = new Thread(() -> serve(s), "tcp-stub-" + address + ":" + port);
      thread.setDaemon(true);
      thread.start();
      return this;
    } catch (IOException e) {
      throw new UncheckedIOException("cannot listen on " + address + ":" + port, e);
    }
  }

  private void serve(ServerSocket s) {
    while (!s.isClosed()) {
      try (Socket client = s.accept()) {
        client.getOutputStream().write(reply);
      } catch (IOException e) {
        // a health check that closed first, or the stub stopping: next connection
      }
    }
  }

  /** Closes the port: connections are refused until {@link #start()}. */
  public synchronized TcpStub stop() {
    if (server != null) {
      try {
        server.close();
        thread.join(2000);
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
      server = null;
    }
    return this;
  }

  @Override
  public void close() {
    stop();
  }
}
