package io.pgbeacon.agent;

import io.pgbeacon.config.Config;
import java.util.Map;
import java.util.Objects;
import java.util.OptionalInt;
import java.util.OptionalLong;

/**
 * What the agent says beyond the verdict itself: the words for the two kinds of critical of a healthy node (the
 * wrong role; a replica past max-lag), a replica's weight by its lag, and each view's {@code maxconn}.
 *
 * @param weightLagStart a replica's weight is 100% up to this lag
 * @param maxLag {@code services.replica.max-lag}: the weight reaches {@code weightFloor} here
 * @param weightFloor percent, 1..100; 100 turns lag weights off (static balance algorithms accept only 0% and 100%)
 * @param maxconn {@code maxconn:N} per view; a view not in the map sends no such word
 */
public record ReplyPolicy(Config.WrongRole wrongRole, Config.PastMaxLag pastMaxLag, long weightLagStart,
    long maxLag, int weightFloor, Map<Config.View, Integer> maxconn) {

  /** The values' rules are the config's ({@link io.pgbeacon.config.ConfigLoader}). */
  public ReplyPolicy {
    Objects.requireNonNull(wrongRole, "wrongRole");
    Objects.requireNonNull(pastMaxLag, "pastMaxLag");
    maxconn = Map.copyOf(maxconn);
  }

  public static ReplyPolicy of(Config config) {
    Config.Agent agent = config.agent();
    return new ReplyPolicy(agent.wrongRole(), agent.pastMaxLag(), agent.weightLagStart(),
        config.services().replica().maxLag(), agent.weightFloor(), agent.maxconn());
  }

  /**
   * A replica's weight in percent: 100 up to {@code weightLagStart}, then falling linearly to {@code weightFloor}
   * at {@code maxLag} (rounded to the nearest percent), the floor beyond. An unknown lag weighs 100: it is
   * usually the DCS view failing on every node at once, where lowering one weight would only shuffle load.
   */
  public int weight(OptionalLong lag) {
    if (lag.isEmpty() || lag.getAsLong() <= weightLagStart) {
      return 100;
    }
    long bytes = lag.getAsLong();
    if (bytes >= maxLag) {
      return weightFloor;
    }
    double fallen = (double) (bytes - weightLagStart) / (maxLag - weightLagStart);
    return (int) Math.round(100 - (100 - weightFloor) * fallen);
  }

  OptionalInt maxconn(Config.View view) {
    Integer n = maxconn.get(view);
    return n == null ? OptionalInt.empty() : OptionalInt.of(n);
  }
}
