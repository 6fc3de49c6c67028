package io.pgbeacon.bench;

import io.vertx.core.Future;
import io.vertx.core.Vertx;
import io.vertx.core.net.NetClient;
import io.vertx.core.net.NetClientOptions;
import io.vertx.core.net.NetServer;
import io.vertx.core.net.NetServerOptions;
import io.vertx.core.net.NetSocket;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A TCP proxy in front of one HTTP server (a node's Patroni REST API or Consul agent) that counts what one client
 * sends through it: every TCP connection, and every HTTP request with its method and target, each with its
 * {@code System.nanoTime()}. It forwards bytes unchanged, one upstream connection per client connection, so
 * whatever the two ends do with connections (keep-alive or a connection per request, who closes) stays as it
 * would be without the proxy.
 *
 * <p>{@link #close()} stops listening and closes every connection: to the client the port then refuses, as it
 * does when the server behind it is stopped. {@link #open()} listens again.
 */
final class CountingProxy {

  record Request(long at, String method, String target) {
    /** The target without its query string. */
    String path() {
      int q = target.indexOf('?');
      return q < 0 ? target : target.substring(0, q);
    }
  }

  private final Vertx vertx;
  private final String name;
  private final String host;
  private final int port;
  private final String targetHost;
  private final int targetPort;
  private final NetClient client;
  private final List<Request> requests = new ArrayList<>();
  private final List<Long> connections = new ArrayList<>();
  private final Set<NetSocket> sockets = ConcurrentHashMap.newKeySet();
  private NetServer server;
  private final AtomicLong unframed = new AtomicLong();

  CountingProxy(Vertx vertx, String name, String host, int port, String targetHost, int targetPort) {
    this.vertx = vertx;
    this.name = name;
    this.host = host;
    this.port = port;
    this.targetHost = targetHost;
    this.targetPort = targetPort;
    this.client = vertx.createNetClient(new NetClientOptions().setConnectTimeout(2000).setTcpNoDelay(true));
  }

  String name() {
    return name;
  }

  String address() {
    return host + ":" + port;
  }

  int port() {
    return port;
  }

  synchronized Future<Void> open() {
    if (server != null) {
      return Future.succeededFuture();
    }
    NetServer s = vertx.createNetServer(new NetServerOptions().setHost(host).setPort(port).setTcpNoDelay(true)
        .setReuseAddress(true));
    s.connectHandler(this::accept);
    server = s;
    return s.listen().mapEmpty();
  }

  /** Stops listening and closes every connection, both sides. */
  synchronized Future<Void> close() {
    NetServer s = server;
    server = null;
    List<Future<Void>> closing = new ArrayList<>();
    if (s != null) {
      closing.add(s.close());
    }
    for (NetSocket socket : sockets) {
      closing.add(socket.close());
    }
    sockets.clear();
    return Future.join(closing).mapEmpty();
  }

  private void accept(NetSocket downstream) {
    long at = System.nanoTime();
    synchronized (connections) {
      connections.add(at);
    }
    sockets.add(downstream);
    downstream.pause();
    AtomicBoolean gone = new AtomicBoolean();
    downstream.closeHandler(v -> gone.set(true));
    client.connect(targetPort, targetHost).onComplete(ar -> {
      if (ar.failed() || gone.get()) {
        // The server behind is gone (or going): the client sees its connection closed.
        sockets.remove(downstream);
        downstream.close();
        if (ar.succeeded()) {
          ar.result().close();
        }
        return;
      }
      NetSocket upstream = ar.result();
      sockets.add(upstream);
      HttpRequestSniffer sniffer = new HttpRequestSniffer((method, target) -> {
        synchronized (requests) {
          requests.add(new Request(System.nanoTime(), method, target));
        }
      });
      pipe(downstream, upstream, sniffer);
      pipe(upstream, downstream, null);
      downstream.resume();
    });
  }

  private void pipe(NetSocket from, NetSocket to, HttpRequestSniffer sniffer) {
    from.handler(buffer -> {
      if (sniffer != null && !sniffer.lost()) {
        sniffer.feed(buffer.getBytes());
        if (sniffer.lost()) {
          unframed.incrementAndGet();
        }
      }
      to.write(buffer);
      if (to.writeQueueFull()) {
        from.pause();
        to.drainHandler(v -> from.resume());
      }
    });
    from.closeHandler(v -> {
      sockets.remove(from);
      to.close();
    });
    from.exceptionHandler(e -> from.close());
  }

  /** Requests that arrived in [from, until) (System.nanoTime()). */
  List<Request> requests(long from, long until) {
    synchronized (requests) {
      return requests.stream().filter(r -> r.at() >= from && r.at() < until).toList();
    }
  }

  /** The first request after {@code from}, if any. */
  Optional<Request> firstRequestAfter(long from) {
    synchronized (requests) {
      return requests.stream().filter(r -> r.at() >= from).findFirst();
    }
  }

  /** TCP connections accepted in [from, until). */
  long connections(long from, long until) {
    synchronized (connections) {
      return connections.stream().filter(t -> t >= from && t < until).count();
    }
  }

  /** Connections on which requests could no longer be framed (so some went uncounted). */
  long unframed() {
    return unframed.get();
  }
}
