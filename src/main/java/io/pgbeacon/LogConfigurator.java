package io.pgbeacon;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.classic.encoder.PatternLayoutEncoder;
import ch.qos.logback.classic.spi.Configurator;
import ch.qos.logback.classic.spi.ConfiguratorRank;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.ConsoleAppender;
import ch.qos.logback.core.spi.ContextAwareBase;
import java.util.Map;
import java.util.Optional;

/**
 * pgbeacon's logging, set up in code rather than by a {@code logback.xml}: found by Logback through
 * {@code META-INF/services}, ranked before its own configurators. Reading an XML file costs Logback's Joran and the
 * JDK's XML parser: about 400 classes more loaded at every start, whose metaspace and symbols the daemon keeps for
 * its life (scripts/bench-footprint.sh counts the classes by library); this loads none of them.
 *
 * <p>What it sets is what the XML said: one line per event on stderr, {@code io.pgbeacon} at
 * {@code PGBEACON_LOG_LEVEL} (a system property or the environment; INFO by default), Netty, Vert.x and Apache
 * HttpClient at WARN, everything else at INFO. {@code -Dlogback.configurationFile=FILE} still wins: then this steps
 * aside and Logback reads that file.
 */
@ConfiguratorRank(ConfiguratorRank.CUSTOM_HIGH_PRIORITY)
public final class LogConfigurator extends ContextAwareBase implements Configurator {

  static final String PATTERN = "%d{yyyy-MM-dd HH:mm:ss.SSS} %-5level %logger{0} - %msg%n";
  static final String LEVEL_VARIABLE = "PGBEACON_LOG_LEVEL";
  private static final Map<String, Level> QUIET = Map.of("io.netty", Level.WARN, "io.vertx", Level.WARN,
      "org.apache.http", Level.WARN);

  /** For Logback's ServiceLoader. */
  public LogConfigurator() {}

  @Override
  public ExecutionStatus configure(LoggerContext context) {
    if (System.getProperty("logback.configurationFile") != null) {
      return ExecutionStatus.INVOKE_NEXT_IF_ANY;
    }
    PatternLayoutEncoder encoder = new PatternLayoutEncoder();
    encoder.setContext(context);
    encoder.setPattern(PATTERN);
    encoder.start();
    ConsoleAppender<ILoggingEvent> stderr = new ConsoleAppender<>();
    stderr.setContext(context);
    stderr.setName("STDERR");
    stderr.setTarget("System.err");
    stderr.setEncoder(encoder);
    stderr.start();
    Logger root = context.getLogger(Logger.ROOT_LOGGER_NAME);
    root.setLevel(Level.INFO);
    root.addAppender(stderr);
    QUIET.forEach((name, level) -> context.getLogger(name).setLevel(level));
    context.getLogger("io.pgbeacon").setLevel(level(Optional.ofNullable(System.getProperty(LEVEL_VARIABLE))
        .or(() -> Optional.ofNullable(System.getenv(LEVEL_VARIABLE)))));
    return ExecutionStatus.DO_NOT_INVOKE_NEXT_IF_ANY;
  }

  /** The level named (as Logback reads a level: any case; an unknown name is INFO). */
  static Level level(Optional<String> name) {
    return name.map(n -> Level.toLevel(n.strip(), Level.INFO)).orElse(Level.INFO);
  }
}
