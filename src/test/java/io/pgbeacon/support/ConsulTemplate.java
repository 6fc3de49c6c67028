package io.pgbeacon.support;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Optional;

/**
 * The project's consul-template setup as a user runs it ({@code consul/consul-template.hcl} and
 * {@code consul/haproxy.cfg.ctmpl}, reloading through {@code scripts/haproxy-reload.sh}), in a directory of its
 * own: the render goes to {@code <work>/haproxy.cfg}, HAProxy's PID file is {@code <work>/haproxy.pid}.
 */
public final class ConsulTemplate {

  private ConsulTemplate() {}

  /**
   * The consul-template command for {@code work} (the template is copied there), talking to {@code consulAddress}
   * with {@code token}, rendering listeners on 127.0.0.1 {@code writePort}/{@code readPort} and a stats socket at
   * {@code statsSocket}; output appended to {@code log}. Only this call's CONSUL_* and PGBEACON_* settings reach it.
   */
  public static ProcessBuilder command(Path work, String consulAddress, Optional<String> token, String scope,
      int writePort, int readPort, Path statsSocket, Path log) {
    try {
      Files.copy(Components.repoFile("consul/haproxy.cfg.ctmpl"), work.resolve("haproxy.cfg.ctmpl"));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    ProcessBuilder pb = new ProcessBuilder(Components.consulTemplate().toString(),
        "-config", Components.repoFile("consul/consul-template.hcl").toString())
        .directory(work.toFile()).redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()));
    Map<String, String> env = pb.environment();
    env.keySet().removeIf(k -> k.startsWith("CONSUL_") || k.startsWith("PGBEACON_"));
    env.put("CONSUL_HTTP_ADDR", consulAddress);
    token.ifPresent(t -> env.put("CONSUL_HTTP_TOKEN", t));
    env.put("PGBEACON_SCOPE", scope);
    env.put("PGBEACON_HAPROXY_WRITE_BIND", "127.0.0.1:" + writePort);
    env.put("PGBEACON_HAPROXY_READ_BIND", "127.0.0.1:" + readPort);
    env.put("PGBEACON_HAPROXY_STATS_SOCKET", statsSocket.toString());
    env.put("PGBEACON_HAPROXY_LOG", "stdout");
    env.put("PGBEACON_HAPROXY_RELOAD", Components.repoFile("scripts/haproxy-reload.sh").toString());
    env.put("PGBEACON_HAPROXY_PIDFILE", work.resolve("haproxy.pid").toString());
    env.put("PGBEACON_HAPROXY_BIN", Components.haproxy().toString());
    return pb;
  }
}
