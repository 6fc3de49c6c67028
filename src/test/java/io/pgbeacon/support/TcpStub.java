package io.pgbeacon.support;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A TCP port that writes one line to every connection and closes it: a stand-in PgBouncer or PostgreSQL whose
 * greeting tells which one a client reached, or a scripted HAProxy agent ({@link #reply}). {@link #stop()} closes
 * the port (connection refused), {@link #start()} opens the same port again. {@link #silent()} makes it a hung
 * server instead: connections are accepted and never answered.
 */
public final class TcpStub implements AutoCloseable {

  private final String address;
  private volatile byte[] reply;
  private volatile boolean silent;
  private final List<Socket> held = new CopyOnWriteArrayList<>();
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

  /** A port that accepts every connection and holds it open without a byte: a hung agent, as {@link #silent()}. */
  public static TcpStub silent(String address, int port) {
    TcpStub stub = new TcpStub(address, port, "");
    stub.silent = true;
    stub.start();
    return stub;
  }

  public int port() {
    return port;
  }

  /** What the next connections read: {@code line} and a newline. Ends {@link #silent()} and its held connections. */
  public TcpStub reply(String line) {
    this.reply = (line + "\n").getBytes(StandardCharsets.US_ASCII);
    this.silent = false;
    closeHeld();
    return this;
  }

  /**
   * The next connections are accepted and held open, never read from nor written to, until {@link #reply} or
   * {@link #stop()}: what a client sees of a hung process (SIGSTOP) whose listening socket the kernel still
   * serves.
   */
  public TcpStub silent() {
    this.silent = true;
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
      Socket client;
      try {
        client = s.accept();
      } catch (IOException e) {
        continue; // the stub stopping: the loop ends
      }
      if (silent) {
        held.add(client);
        continue;
      }
      try (client) {
        client.getOutputStream().write(reply);
      } catch (IOException e) {
        // a health check that closed first: next connection
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
    closeHeld();
    return this;
  }

  private void closeHeld() {
    for (Socket client : held) {
      try {
        client.close();
      } catch (IOException e) {
        // closing anyway
      }
    }
    held.clear();
  }

  @Override
  public void close() {
    stop();
  }
}
