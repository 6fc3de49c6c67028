package io.pgbeacon.support;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/** HAProxy's view of its servers, read from its stats socket ({@code show stat}): for assertions only. */
public final class HaproxyStats {

  private HaproxyStats() {}

  /** Server name → status ({@code UP}, {@code DOWN}, {@code MAINT}, {@code DRAIN}, …) of one backend. */
  public static Map<String, String> servers(Path socket, String backend) {
    Map<String, String> out = new TreeMap<>();
    List<String> lines = command(socket, "show stat");
    if (lines.isEmpty() || !lines.get(0).startsWith("# ")) {
      throw new IllegalStateException("HAProxy 'show stat' answered " + lines);
    }
    List<String> header = Arrays.asList(lines.get(0).substring(2).split(","));
    int px = header.indexOf("pxname");
    int sv = header.indexOf("svname");
    int status = header.indexOf("status");
    for (String line : lines.subList(1, lines.size())) {
      String[] f = line.split(",", -1);
      if (f.length > status && f[px].equals(backend) && !f[sv].equals("FRONTEND") && !f[sv].equals("BACKEND")) {
        out.put(f[sv], f[status]);
      }
    }
    return out;
  }

  /** The servers of {@code backend} that would take new connections now (status UP). */
  public static List<String> up(Path socket, String backend) {
    return servers(socket, backend).entrySet().stream().filter(e -> e.getValue().equals("UP"))
        .map(Map.Entry::getKey).toList();
  }

  /** Sends one command on a fresh connection and returns the answer's non-empty lines. */
  public static List<String> command(Path socket, String command) {
    try (SocketChannel channel = SocketChannel.open(UnixDomainSocketAddress.of(socket))) {
      channel.write(ByteBuffer.wrap((command + "\n").getBytes(StandardCharsets.US_ASCII)));
      ByteBuffer buffer = ByteBuffer.allocate(1 << 16);
      StringBuilder text = new StringBuilder();
      while (channel.read(buffer) >= 0) {
        buffer.flip();
        text.append(StandardCharsets.US_ASCII.decode(buffer));
        buffer.clear();
      }
      List<String> lines = new ArrayList<>();
      for (String line : text.toString().split("\n")) {
        if (!line.isBlank()) {
          lines.add(line);
        }
      }
      return lines;
    } catch (IOException e) {
      throw new UncheckedIOException("HAProxy stats socket " + socket + ": " + e.getMessage(), e);
    }
  }
}
