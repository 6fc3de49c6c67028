package io.pgbeacon;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.classic.encoder.PatternLayoutEncoder;
import ch.qos.logback.core.ConsoleAppender;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.slf4j.LoggerFactory;

class LogConfiguratorTest {

  @Test
  void logbackFindsItAndItSetsWhatTheXmlUsedTo() {
    // This JVM's own Logback was set up by it (through META-INF/services), not by an XML file.
    LoggerContext context = (LoggerContext) LoggerFactory.getILoggerFactory();
    Logger root = context.getLogger(Logger.ROOT_LOGGER_NAME);
    ConsoleAppender<?> stderr = assertInstanceOf(ConsoleAppender.class, root.getAppender("STDERR"));
    assertEquals("System.err", stderr.getTarget());
    assertEquals(LogConfigurator.PATTERN, ((PatternLayoutEncoder) stderr.getEncoder()).getPattern());
    assertEquals(Level.INFO, root.getLevel());
    assertEquals(Level.WARN, context.getLogger("io.netty").getLevel());
    assertEquals(Level.WARN, context.getLogger("io.vertx").getLevel());
    assertEquals(Level.WARN, context.getLogger("org.apache.http").getLevel());
    assertEquals(null, LogConfigurator.class.getClassLoader().getResource("logback.xml"), "no XML to parse");
  }

  @Test
  void theLevelComesFromPgbeaconLogLevelAndDefaultsToInfo() {
    assertEquals(Level.INFO, LogConfigurator.level(Optional.empty()));
    assertEquals(Level.DEBUG, LogConfigurator.level(Optional.of("debug")));
    assertEquals(Level.WARN, LogConfigurator.level(Optional.of(" WARN ")));
    assertEquals(Level.INFO, LogConfigurator.level(Optional.of("loud")), "an unknown name is INFO, as in Logback");
  }

  @Test
  void aSystemPropertySetsTheLevelOfPgbeaconsLoggers() {
    LoggerContext context = new LoggerContext();
    System.setProperty(LogConfigurator.LEVEL_VARIABLE, "DEBUG");
    try {
      new LogConfigurator().configure(context);
    } finally {
      System.clearProperty(LogConfigurator.LEVEL_VARIABLE);
    }
    assertEquals(Level.DEBUG, context.getLogger("io.pgbeacon").getLevel());
    assertEquals(Level.INFO, context.getLogger(Logger.ROOT_LOGGER_NAME).getLevel());
    context.stop();
  }
}
