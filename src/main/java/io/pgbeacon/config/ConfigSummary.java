package io.pgbeacon.config;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.stream.Collectors;

/**
 * The effective config in a few lines, secrets shown only by where they come from: what {@code validate} prints and
 * what {@code run} logs once at start.
 */
public final class ConfigSummary {

  private ConfigSummary() {}

  public static List<String> lines(Config config) {
    List<String> out = new ArrayList<>();
    out.add("node:      " + config.node().orElse("(Patroni's member name)"));
    out.add("patroni:   " + config.patroni().url() + " (timeout " + Units.formatDuration(config.patroni().timeout())
        + config.patroni().certFile().map(c -> ", client certificate " + c).orElse("")
        + config.patroni().password().map(p -> ", basic auth from " + p.source()).orElse("") + ")");
    out.add("leader key: " + config.patroni().leaderKey().template().map(t -> t
        + (config.patroni().leaderKey().auto() ? " (auto: once seen in Consul)" : "")).orElse("off"));
    out.add("poll:      every " + Units.formatDuration(config.pollInterval()));
    out.add("pgbouncer: " + config.pgbouncer().map(p -> p.host() + ":" + p.port() + "/" + p.database()
        + " as " + p.user() + (p.required() ? " (required" : " (not required") + ", timeout "
        + Units.formatDuration(p.timeout()) + p.adminUser().map(a -> ", admin console as " + a).orElse("") + ")")
        .orElse("not checked"));
    out.add("consul:    " + config.consul().address() + ", ttl " + Units.consulDuration(config.consul().ttl())
        + ", timeout " + Units.formatDuration(config.consul().timeout())
        + ", token " + config.consul().token().map(t -> "from " + t.source()).orElse("none")
        + ", on-stop " + lower(config.consul().onStop()) + tls(config.consul()));
    out.add("services:  " + config.services().primary().name() + ":" + config.services().primary().port()
        + ", " + config.services().replica().name() + ":" + config.services().replica().port()
        + " (max-lag " + Units.formatSize(config.services().replica().maxLag())
        + (config.services().replica().requireStreaming() ? ", streaming required, grace "
            + Units.formatDuration(config.services().replica().streamingGrace()) : ", streaming not required")
        + ")");
    config.agent().listen().forEach(l -> out.add("agent:     " + l.address() + ":" + l.port() + " "
        + l.view().map(Config.View::key).orElse("(agent-send)")));
    Config.Agent agent = config.agent();
    out.add("agent replies: wrong role " + lower(agent.wrongRole()) + ", past max-lag "
        + lower(agent.pastMaxLag()) + ", replica weight 100% up to " + Units.formatSize(agent.weightLagStart())
        + " lag, " + agent.weightFloor() + "% at " + Units.formatSize(config.services().replica().maxLag())
        + ", maxconn " + maxconn(agent) + ", read-timeout " + Units.formatDuration(agent.readTimeout()));
    config.sources().forEach((key, origin) -> out.add("from:      " + key + " ← " + origin));
    return out;
  }

  /** What the TLS handshake with the agent uses, by where each part comes from. */
  private static String tls(Config.Consul consul) {
    if (!"https".equals(consul.address().getScheme())) {
      return "";
    }
    Config.ConsulTls tls = consul.tls();
    if (!tls.verifies()) {
      return ", TLS without verifying the agent's certificate (" + tls.verify().orElseThrow().key() + " false)"
          + tls.certFile().map(c -> ", client certificate from " + c.key()).orElse("");
    }
    return ", TLS: CA " + tls.caFile().or(tls::caPath).map(c -> "from " + c.key()).orElse("the JDK's")
        + tls.certFile().map(c -> ", client certificate from " + c.key()).orElse(", no client certificate")
        + tls.serverName().map(n -> ", server name " + n.value() + " (" + n.key() + ")").orElse("");
  }

  private static String lower(Enum<?> e) {
    return e.name().toLowerCase(Locale.ROOT);
  }

  private static String maxconn(Config.Agent agent) {
    if (agent.maxconn().isEmpty()) {
      return "not sent";
    }
    return Arrays.stream(Config.View.values()).filter(agent.maxconn()::containsKey)
        .map(v -> v.key() + " " + agent.maxconn().get(v)).collect(Collectors.joining(", "));
  }
}
