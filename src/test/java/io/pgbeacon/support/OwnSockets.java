package io.pgbeacon.support;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.Collectors;

/**
 * The TCP sockets this JVM holds open, read from {@code /proc} (Linux): the sockets behind this process's file
 * descriptors, matched by inode against {@code /proc/net/tcp} and {@code tcp6} (the JDK and Netty open IPv6
 * sockets for IPv4 peers too). A socket this process has closed is no longer counted, whatever state the kernel
 * keeps it in for the peer.
 */
public final class OwnSockets {

  private OwnSockets() {}

  /** The states ("ESTABLISHED", "SYN_SENT", …) of this process's TCP sockets whose remote port is {@code port}. */
  public static List<String> to(int port) {
    Set<String> inodes = ownSocketInodes();
    List<String> states = new ArrayList<>();
    for (String table : List.of("/proc/net/tcp", "/proc/net/tcp6")) {
      List<String> lines;
      try {
        lines = Files.readAllLines(Path.of(table));
      } catch (IOException e) {
        continue; // no IPv6 on this machine
      }
      for (String line : lines.subList(1, lines.size())) {
        // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode …
        String[] f = line.trim().split("\\s+");
        String remote = f[2];
        int remotePort = Integer.parseInt(remote.substring(remote.indexOf(':') + 1), 16);
        if (remotePort == port && inodes.contains(f[9])) {
          states.add(state(Integer.parseInt(f[3], 16)));
        }
      }
    }
    return states;
  }

  /** States counted, e.g. {@code {ESTABLISHED=40}}: for failure messages. */
  public static Map<String, Long> summary(List<String> states) {
    return states.stream().collect(Collectors.groupingBy(s -> s, TreeMap::new, Collectors.counting()));
  }

  private static Set<String> ownSocketInodes() {
    Set<String> inodes = new HashSet<>();
    try (DirectoryStream<Path> fds = Files.newDirectoryStream(Path.of("/proc/self/fd"))) {
      for (Path fd : fds) {
        try {
          String target = Files.readSymbolicLink(fd).toString(); // "socket:[12345]"
          if (target.startsWith("socket:[")) {
            inodes.add(target.substring(8, target.length() - 1));
          }
        } catch (IOException e) {
          // closed while we listed it
        }
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return inodes;
  }

  private static String state(int code) {
    // include/net/tcp_states.h
    String[] names = {"?", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT", "CLOSE",
        "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV"};
    return code < names.length ? names[code] : Integer.toString(code);
  }
}
