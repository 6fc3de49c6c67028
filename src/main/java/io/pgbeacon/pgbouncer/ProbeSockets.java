package io.pgbeacon.pgbouncer;

import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import io.vertx.core.internal.VertxInternal;
import io.vertx.core.internal.VertxWrapper;
import io.vertx.core.internal.net.NetSocketInternal;
import io.vertx.core.net.ClientSSLOptions;
import io.vertx.core.net.ConnectOptions;
import io.vertx.core.net.NetClient;
import io.vertx.core.net.NetClientOptions;
import io.vertx.core.net.NetSocket;
import io.vertx.core.net.SocketAddress;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The sockets of one probe connection, which {@link #closeSockets()} closes whatever state the PostgreSQL handshake
 * is in.
 *
 * <p>Why this exists: vertx-pg-client gives no handle on a connection before its startup has completed, and once a
 * socket carries its codec, every close of the channel — the connection's, its NetClient's, an undeploy's — becomes
 * Terminate plus a half-close, after which the client waits for the server to close its end (5.0.10
 * {@code PgEncoder.close} never passes the close on). A PgBouncer that completed the TCP handshake in the kernel but
 * does not run (SIGSTOP, a stuck process) never closes its end: measured, each probe then kept its sockets open
 * (ESTABLISHED, or FIN_WAIT2 after a close) for as long as PgBouncer was stopped, and closing the NetClient never
 * completed.
 *
 * <p>How: this is the {@link Vertx} the probe's connection factory is made with. The factory asks it for a
 * NetClient and gets one that connects through the probe's single NetClient and keeps every socket it hands out;
 * {@link #closeSockets()} closes them from the head of their pipelines, below the codec. Nothing is registered with a
 * context, so nothing outlives the connection (a NetClient per connection would stay registered with the verticle).
 * Thread-safe: sockets arrive on event loops, the deadline may fire on another.
 */
final class ProbeSockets extends VertxWrapper {

  private final NetClient client;
  private final List<NetSocket> sockets = new ArrayList<>(2);
  private boolean closed;

  ProbeSockets(Vertx vertx, NetClient client) {
    super((VertxInternal) vertx);
    this.client = client;
  }

  /** What the connection factory connects with; its options are the probe's NetClient's, not {@code ignored}. */
  @Override
  public NetClient createNetClient(NetClientOptions ignored) {
    return new Kept();
  }

  /** Closes every socket of this connection now, and any that connects later at once. Idempotent. */
  void closeSockets() {
    List<NetSocket> open;
    synchronized (sockets) {
      closed = true;
      open = new ArrayList<>(sockets);
      sockets.clear();
    }
    open.forEach(ProbeSockets::abort);
  }

  private Future<NetSocket> keep(Future<NetSocket> connect) {
    return connect.andThen(ar -> {
      if (ar.failed()) {
        return;
      }
      boolean late;
      synchronized (sockets) {
        late = closed;
        if (!late) {
          sockets.add(ar.result());
        }
      }
      if (late) {
        abort(ar.result());
      }
    });
  }

  private static void abort(NetSocket socket) {
    Channel channel = ((NetSocketInternal) socket).channelHandlerContext().channel();
    if (!channel.isOpen()) {
      return; // the connection closed it, the usual end of a probe that got its answer
    }
    channel.eventLoop().execute(() -> {
      // From the first handler's context a close goes straight to the transport, past the codec that would only
      // half-close. No first handler: the channel closed meanwhile and Netty removed them.
      ChannelHandlerContext first = channel.pipeline().firstContext();
      if (first != null) {
        first.close();
      }
    });
  }

  /** The NetClient the factory gets: the probe's, with each socket kept for {@link #closeSockets()}. */
  private final class Kept implements NetClient {

    @Override
    public Future<NetSocket> connect(int port, String host) {
      return keep(client.connect(port, host));
    }

    @Override
    public Future<NetSocket> connect(int port, String host, String serverName) {
      return keep(client.connect(port, host, serverName));
    }

    @Override
    public Future<NetSocket> connect(SocketAddress remoteAddress) {
      return keep(client.connect(remoteAddress));
    }

    @Override
    public Future<NetSocket> connect(SocketAddress remoteAddress, String serverName) {
      return keep(client.connect(remoteAddress, serverName));
    }

    @Override
    public Future<NetSocket> connect(ConnectOptions connectOptions) {
      return keep(client.connect(connectOptions));
    }

    /** The factory's close: this connection's sockets; the probe's NetClient stays open for the next probe. */
    @Override
    public Future<Void> shutdown(long timeout, TimeUnit unit) {
      closeSockets();
      return Future.succeededFuture();
    }

    @Override
    public Future<Boolean> updateSSLOptions(ClientSSLOptions options, boolean force) {
      throw new UnsupportedOperationException("the probe's NetClient is shared by its connections");
    }
  }
}
