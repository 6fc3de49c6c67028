package io.pgbeacon.support;

import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Patroni's health endpoints as HAProxy's {@code option httpchk} sees them: a status code per path
 * ({@code /primary}, {@code /replica}), nothing else. For HAProxy configurations without a real cluster; the
 * real Patroni is what {@code e2e} tests talk to.
 */
public final class PatroniStub implements AutoCloseable {

  private final HttpServer server;
  private final Map<String, Integer> status = new ConcurrentHashMap<>();

  private PatroniStub(HttpServer server) {
    this.server = server;
  }

  /** On {@code address:port} (port 0: a free port); every path answers 503 until {@link #answer} says otherwise. */
  public static PatroniStub start(String address, int port) {
    try {
      HttpServer server = HttpServer.create(new InetSocketAddress(InetAddress.getByName(address), port), 50);
      PatroniStub stub = new PatroniStub(server);
      server.createContext("/", exchange -> {
        int code = stub.status.getOrDefault(exchange.getRequestURI().getPath(), 503);
        byte[] body = ("{\"stub\": " + code + "}").getBytes(StandardCharsets.US_ASCII);
        exchange.sendResponseHeaders(code, body.length);
        exchange.getResponseBody().write(body);
        exchange.close();
      });
      server.start();
      return stub;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** A node that holds the leader lock: 200 on /primary, 503 on /replica; false: the other way round. */
  public PatroniStub primary(boolean primary) {
    status.put("/primary", primary ? 200 : 503);
    status.put("/replica", primary ? 503 : 200);
    return this;
  }

  public PatroniStub answer(String path, int code) {
    status.put(path, code);
    return this;
  }

  public int port() {
    return server.getAddress().getPort();
  }

  @Override
  public void close() {
    server.stop(0);
  }
}
