package io.pgbeacon.support;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * One of the shipped {@code haproxy/*.cfg}, rewritten from the documented topology (nodes {@code 10.0.0.11-13})
 * to addresses and ports a test can use, then written to a directory for {@link Haproxy}.
 *
 * <pre>{@code
 * HaproxyConfig cfg = HaproxyConfig.load("haproxy/b-agent-pgbouncer.cfg")
 *     .node(1, "127.0.0.11", Map.of(6432, 16412, 5480, 16413))   // pg1: address and its ports
 *     .node(2, "127.0.0.12", Map.of(6432, 16422, 5480, 16423))
 *     .node(3, "127.0.0.13", Map.of(6432, 16432, 5480, 16433))
 *     .listen(5000, writePort)                                     // HAProxy's own "bind *:5000"
 *     .set("agent-inter 1s", "agent-inter 100ms");                // edit the original, literally
 * Path file = cfg.write(tempDir);                                  // stats socket in tempDir; cfg.statsSocket()
 * }</pre>
 *
 * <p>What {@link #write} changes:
 * <ul>
 *   <li>on a line naming node N ({@code 10.0.0.1N}): the address, and every port of that line found in the
 *       node's map ({@code :6432}, {@code agent-port 5480}, {@code port 8008}); {@code agent-addr} follows;
 *   <li>on other lines (e.g. {@code server-template}): {@code agent-port}/{@code port} by {@link #ports};
 *   <li>{@code tcp-check connect port P}, a port of the whole section, not in {@link #ports}: the nodes' port for P
 *       when they all have the same one; when they differ (as on the lab, where each node has its own ports),
 *       {@code port srv_name,map_str_int(<file>)}: a lookup by server name in a map file written beside the
 *       configuration ({@code <name>.port-P.map}), from the servers naming each node;
 *   <li>{@code bind *:P}: bound to {@link #bindAddress} (127.0.0.1), port by {@link #listen} or else a free port
 *       ({@link #port} tells which);
 *   <li>{@code stats socket}: a socket in the target directory;
 *   <li>{@code nameserver}: by {@link #nameserver};
 *   <li>what only a production host has: {@code chroot}, {@code user}, {@code group}, {@code daemon} are
 *       dropped and {@code log /dev/log} becomes {@code log stdout} (HAProxy's output is the test's log).
 * </ul>
 * Unmapped ports stay as they are. Edits ({@link #set}, {@link #replace}) apply to the original text first, in
 * order; the file itself is never modified; {@link #text()} shows the result.
 */
public final class HaproxyConfig {

  private static final Pattern NODE = Pattern.compile("10\\.0\\.0\\.1([1-9])\\b");
  private static final Pattern BIND = Pattern.compile("^(\\s*bind\\s+)(\\*|0\\.0\\.0\\.0|::)?:(\\d+)(.*)$");
  private static final Pattern SERVER = Pattern.compile("^\\s*server\\s+(\\S+)\\s");
  private static final Pattern RULE_PORT = Pattern.compile("(?<=\\bport )(\\d+)\\b");

  private final String name;
  private final String original;
  private final Map<Integer, Node> nodes = new HashMap<>();
  private final Map<Integer, Integer> ports = new HashMap<>();
  private final Map<Integer, Integer> listen = new LinkedHashMap<>();
  private final Map<String, String> nameservers = new HashMap<>();
  private final List<String[]> edits = new ArrayList<>();
  private String bindAddress = "127.0.0.1";
  private Path statsSocket;
  private Path dir;
  /** Original port → the lines of its map file (server name, port), as the last {@link #text()} made them. */
  private final Map<Integer, String> portMaps = new TreeMap<>();

  private record Node(String address, Map<Integer, Integer> ports) {}

  private HaproxyConfig(String name, String original) {
    this.name = name;
    this.original = original;
  }

  /** A file of the repository, e.g. {@code haproxy/c-agent-fallback.cfg}. */
  public static HaproxyConfig load(String repoRelative) {
    return of(Components.repoFile(repoRelative));
  }

  public static HaproxyConfig of(Path file) {
    try {
      return new HaproxyConfig(file.getFileName().toString(), Files.readString(file));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** Every shipped configuration: {@code haproxy/*.cfg}, sorted by name. */
  public static List<Path> shipped() {
    try (var files = Files.list(Components.repoFile("haproxy"))) {
      return files.filter(p -> p.getFileName().toString().endsWith(".cfg")).sorted().toList();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** Node {@code n} (1 for pg1 at 10.0.0.11): its new address, and its ports as {original: new}. */
  public HaproxyConfig node(int n, String address, Map<Integer, Integer> nodePorts) {
    if (n < 1 || n > 9) {
      throw new IllegalArgumentException("node must be 1..9 (10.0.0.11-19), got " + n);
    }
    nodes.put(n, new Node(address, Map.copyOf(nodePorts)));
    return this;
  }

  /** Ports on lines that name no node (server-template, default-server): {original: new}. */
  public HaproxyConfig ports(Map<Integer, Integer> map) {
    ports.putAll(map);
    return this;
  }

  /** HAProxy's own listener {@code bind *:original} becomes {@code bind <bindAddress>:port}. */
  public HaproxyConfig listen(int original, int port) {
    listen.put(original, port);
    return this;
  }

  public HaproxyConfig bindAddress(String address) {
    this.bindAddress = address;
    return this;
  }

  /** {@code nameserver <name> …} of a resolvers section points at {@code hostPort} instead. */
  public HaproxyConfig nameserver(String name, String hostPort) {
    nameservers.put(name, hostPort);
    return this;
  }

  /**
   * Every occurrence of {@code from} becomes {@code to} (literal text, not a regex), in the original text: the
   * address and port mapping applies to the result.
   */
  public HaproxyConfig set(String from, String to) {
    edits.add(new String[] {from, to});
    return this;
  }

  /** Like {@link #set} with a regular expression ({@code String.replaceAll}). */
  public HaproxyConfig replace(String regex, String replacement) {
    edits.add(new String[] {null, regex, replacement});
    return this;
  }

  /** The port a {@code bind *:original} ends up on (assigned by {@link #text()} when not given). */
  public int port(int original) {
    text();
    Integer port = listen.get(original);
    if (port == null) {
      throw new IllegalArgumentException(name + " has no bind on port " + original);
    }
    return port;
  }

  /** The stats socket of the written file; set by {@link #write}. */
  public Path statsSocket() {
    if (statsSocket == null) {
      throw new IllegalStateException("write() the configuration first");
    }
    return statsSocket;
  }

  /** The rewritten configuration. */
  public String text() {
    String edited = original;
    for (String[] r : edits) {
      edited = r[0] != null ? edited.replace(r[0], r[1]) : edited.replaceAll(r[1], r[2]);
    }
    String[] lines = edited.split("\n", -1);
    Map<String, Node> servers = serversByName(lines);
    portMaps.clear();
    StringBuilder out = new StringBuilder();
    for (String line : lines) {
      out.append(rewrite(line, servers)).append('\n');
    }
    return out.substring(0, out.length() - 1);
  }

  /**
   * Writes the rewritten file as {@code dir/<name>}, with its stats socket {@code dir/admin.sock} and the map files
   * of its per-node ports, if any.
   */
  public Path write(Path dir) {
    this.dir = dir;
    statsSocket = dir.resolve("admin.sock");
    Path file = dir.resolve(name);
    try {
      Files.createDirectories(dir);
      String text = text();
      for (Map.Entry<Integer, String> map : portMaps.entrySet()) {
        Files.writeString(mapFile(map.getKey()), map.getValue());
      }
      Files.writeString(file, text);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return file;
  }

  private String rewrite(String line, Map<String, Node> servers) {
    String code = line.strip();
    if (code.startsWith("#") || code.isEmpty()) {
      return line;
    }
    String keyword = code.split("\\s+")[0];
    switch (keyword) {
      case "chroot", "user", "group", "daemon":
        return "    # (test) " + code;
      case "log":
        return code.startsWith("log /dev/log") ? line.replace("/dev/log", "stdout format short") : line;
      case "stats":
        if (code.startsWith("stats socket ")) {
          Path socket = statsSocket != null ? statsSocket : Path.of("admin.sock");
          return line.replaceFirst("stats socket \\S+", "stats socket " + socket);
        }
        return line;
      case "nameserver": {
        String[] words = code.split("\\s+");
        String to = words.length >= 3 ? nameservers.get(words[1]) : null;
        return to == null ? line : line.replace(words[2], to);
      }
      case "bind": {
        Matcher m = BIND.matcher(line);
        if (m.matches()) {
          int original = Integer.parseInt(m.group(3));
          int port = listen.computeIfAbsent(original, p -> FreePorts.next());
          return m.group(1) + bindAddress + ":" + port + m.group(4);
        }
        return line;
      }
      default:
        break;
    }
    Matcher node = NODE.matcher(line);
    if (node.find()) {
      Node target = nodes.get(Integer.parseInt(node.group(1)));
      return target == null ? line : remapPorts(node.replaceAll(target.address()), target.ports());
    }
    return remapPorts(keyword.equals("tcp-check") ? perNodePorts(line, servers) : line, ports);
  }

  /** The servers on lines naming a configured node, by name (one name, one node: across sections too). */
  private Map<String, Node> serversByName(String[] lines) {
    Map<String, Node> servers = new TreeMap<>();
    for (String line : lines) {
      Matcher server = SERVER.matcher(line);
      Matcher node = NODE.matcher(line);
      if (!line.strip().startsWith("#") && server.find() && node.find()) {
        Node target = nodes.get(Integer.parseInt(node.group(1)));
        Node before = target == null ? null : servers.putIfAbsent(server.group(1), target);
        if (before != null && before != target) {
          throw new IllegalStateException(name + ": server " + server.group(1) + " names two nodes");
        }
      }
    }
    return servers;
  }

  /**
   * A section-wide {@code port P} of a tcp-check rule, when the nodes map P: the nodes' port if they agree,
   * else a lookup by server name ({@code srv_name}, a tcp-check fetch) in a map file that {@link #write} writes.
   */
  private String perNodePorts(String line, Map<String, Node> servers) {
    Matcher m = RULE_PORT.matcher(line);
    StringBuilder out = new StringBuilder();
    while (m.find()) {
      int port = Integer.parseInt(m.group());
      List<Integer> mapped = nodes.values().stream().map(n -> n.ports().get(port)).filter(Objects::nonNull)
          .distinct().toList();
      String to = m.group();
      if (!ports.containsKey(port) && mapped.size() == 1) {
        to = String.valueOf(mapped.get(0));
      } else if (!ports.containsKey(port) && mapped.size() > 1) {
        StringBuilder map = new StringBuilder();
        servers.forEach((server, node) -> {
          Integer p = node.ports().get(port);
          if (p != null) {
            map.append(server).append(' ').append(p).append('\n');
          }
        });
        portMaps.put(port, map.toString());
        to = "srv_name,map_str_int(" + mapFile(port) + ")";
      }
      m.appendReplacement(out, Matcher.quoteReplacement(to));
    }
    return m.appendTail(out).toString();
  }

  private Path mapFile(int port) {
    Path file = Path.of(name + ".port-" + port + ".map");
    return dir == null ? file : dir.resolve(file);
  }

  /** {@code :P} after an address, {@code agent-port P} and {@code port P}, by the map. */
  private static String remapPorts(String line, Map<Integer, Integer> map) {
    if (map.isEmpty()) {
      return line;
    }
    Matcher m = Pattern.compile("(?<=\\d:)(\\d+)\\b|(?<=\\b(?:agent-port|port) )(\\d+)\\b").matcher(line);
    StringBuilder out = new StringBuilder();
    while (m.find()) {
      int port = Integer.parseInt(m.group());
      m.appendReplacement(out, String.valueOf(map.getOrDefault(port, port)));
    }
    return m.appendTail(out).toString();
  }

  @Override
  public String toString() {
    return name;
  }
}
