package io.pgbeacon.support;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/** HAProxy's view of its servers, read from its stats socket ({@code show stat}): for assertions only. */
public final class HaproxyStats {

  private HaproxyStats() {}

  /** The addresses (host:port) of the servers of {@code backend} with status UP (DNS-discovered servers). */
  public static List<String> upAddresses(Path socket, String backend) {
    List<String> out = new ArrayList<>();
    for (Map<String, String> row : rows(socket, backend)) {
      if (row.get("status").equals("UP")) {
        out.add(row.get("addr"));
      }
    }
    return out;
  }

  /** Server name → status ({@code UP}, {@code DOWN}, {@code MAINT}, {@code DRAIN}, …) of one backend. */
  public static Map<String, String> servers(Path socket, String backend) {
    Map<String, String> out = new TreeMap<>();
    for (Map<String, String> row : rows(socket, backend)) {
      out.put(row.get("svname"), row.get("status"));
    }
    return out;
  }

  /** The {@code show stat} rows of one backend's servers, column name → value. */
  public static List<Map<String, String>> rows(Path socket, String backend) {
    List<String> lines = command(socket, "show stat");
    if (lines.isEmpty() || !lines.get(0).startsWith("# ")) {
      throw new IllegalStateException("HAProxy 'show stat' answered " + lines);
    }
    String[] header = lines.get(0).substring(2).split(",", -1);
    List<Map<String, String>> rows = new ArrayList<>();
    for (String line : lines.subList(1, lines.size())) {
      String[] f = line.split(",", -1);
      if (f.length < header.length || !f[0].equals(backend) || f[1].equals("FRONTEND") || f[1].equals("BACKEND")) {
        continue;
      }
      Map<String, String> row = new java.util.HashMap<>();
      for (int i = 0; i < header.length; i++) {
        row.put(header[i], f[i]);
      }
      rows.add(row);
    }
    return rows;
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
