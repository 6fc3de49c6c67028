package io.pgbeacon.support;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** Asks Consul's DNS interface through the real {@code dig}, as an application's resolver would. */
public final class Dns {

  private Dns() {}

  /** SRV answers as "port target" strings. */
  public static List<String> srv(String server, int dnsPort, String name) {
    List<String> out = new ArrayList<>();
    for (String line : dig(server, dnsPort, name, "SRV")) {
      String[] parts = line.trim().split("\\s+");
      if (parts.length == 4) {
        out.add(parts[2] + " " + parts[3]);
      }
    }
    return out;
  }

  /** A answers, sorted. */
  public static List<String> a(String server, int dnsPort, String name) {
    return dig(server, dnsPort, name, "A").stream().sorted().toList();
  }

  /** SRV ports only, sorted (each lab node's PgBouncer has its own port). */
  public static List<Integer> srvPorts(String server, int dnsPort, String name) {
    return srv(server, dnsPort, name).stream().map(s -> Integer.parseInt(s.split(" ")[0])).sorted().toList();
  }

  private static List<String> dig(String server, int port, String name, String type) {
    String dig = Components.require("dig", "/usr/bin/dig").toString();
    try {
      Process p = new ProcessBuilder(dig, "@" + server, "-p", Integer.toString(port), "+short", "+time=2",
          "+tries=1", name, type).redirectErrorStream(true).start();
      if (!p.waitFor(5, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        throw new IllegalStateException("dig timed out");
      }
      String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.US_ASCII);
      List<String> lines = new ArrayList<>();
      for (String line : output.split("\n")) {
        if (!line.isBlank() && !line.startsWith(";")) {
          lines.add(line.trim());
        }
      }
      return lines;
    } catch (IOException e) {
      throw new IllegalStateException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }
}
