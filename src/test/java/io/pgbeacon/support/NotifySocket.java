package io.pgbeacon.support;

import io.netty.bootstrap.Bootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.epoll.Epoll;
import io.netty.channel.epoll.EpollDomainDatagramChannel;
import io.netty.channel.epoll.EpollIoHandler;
import io.netty.channel.unix.DomainDatagramPacket;
import io.netty.channel.unix.DomainSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The listening half of systemd's notify protocol, as PID 1 holds it: an {@code AF_UNIX} datagram socket (a path,
 * or an abstract name given as {@code @name}) bound by the test, on Netty's epoll transport. It records every line
 * of every datagram with when it arrived, in order.
 */
public final class NotifySocket implements AutoCloseable {

  /** One line of a datagram, e.g. {@code WATCHDOG=1}, and when it arrived ({@link System#nanoTime()}). */
  public record Line(String text, long at) {
    public String key() {
      return text.substring(0, Math.max(0, text.indexOf('=')));
    }
  }

  private final EventLoopGroup group;
  private final Channel channel;
  private final String name;
  private final List<Line> lines = new ArrayList<>();

  private NotifySocket(String name, String address) throws InterruptedException {
    if (!Epoll.isAvailable()) {
      throw new AssertionError("Netty's native epoll transport does not load here: " + Epoll.unavailabilityCause());
    }
    this.name = name;
    this.group = new MultiThreadIoEventLoopGroup(1, EpollIoHandler.newFactory());
    this.channel = new Bootstrap().group(group).channel(EpollDomainDatagramChannel.class)
        .handler(new SimpleChannelInboundHandler<DomainDatagramPacket>() {
          @Override
          protected void channelRead0(ChannelHandlerContext ctx, DomainDatagramPacket packet) {
            long at = System.nanoTime();
            String text = packet.content().toString(StandardCharsets.UTF_8);
            synchronized (lines) {
              text.lines().filter(l -> !l.isEmpty()).forEach(l -> lines.add(new Line(l, at)));
            }
          }
        })
        .bind(new DomainSocketAddress(address)).sync().channel();
  }

  /** Listens on {@code path}, a socket file that must not exist yet. */
  public static NotifySocket at(Path path) throws InterruptedException {
    return new NotifySocket(path.toString(), path.toString());
  }

  /** Listens on {@code name} in the abstract namespace: NOTIFY_SOCKET is then {@code @name}. */
  public static NotifySocket abstractNamed(String name) throws InterruptedException {
    return new NotifySocket("@" + name, "\0" + name);
  }

  /** What to set NOTIFY_SOCKET to. */
  public String name() {
    return name;
  }

  public List<Line> lines() {
    synchronized (lines) {
      return List.copyOf(lines);
    }
  }

  /** The lines' texts so far. */
  public List<String> texts() {
    return lines().stream().map(Line::text).toList();
  }

  /** Waits until a line {@code text} (or {@code KEY=} prefix) has arrived at least {@code count} times. */
  public List<Line> await(String text, int count, Duration within) {
    return Await.until(count + " × " + text + " on NOTIFY_SOCKET", within, this::lines,
        all -> all.stream().filter(l -> matches(l, text)).count() >= count);
  }

  public static boolean matches(Line line, String text) {
    return text.endsWith("=") ? line.text().startsWith(text) : line.text().equals(text);
  }

  @Override
  public void close() throws InterruptedException {
    channel.close().sync();
    group.shutdownGracefully(0, 1, TimeUnit.SECONDS).sync();
  }
}
