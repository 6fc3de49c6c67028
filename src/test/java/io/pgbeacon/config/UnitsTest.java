package io.pgbeacon.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class UnitsTest {

  @Test
  void parsesDurations() {
    assertEquals(Duration.ofMillis(500), Units.parseDuration("500ms"));
    assertEquals(Duration.ofSeconds(10), Units.parseDuration("10s"));
    assertEquals(Duration.ofMinutes(1), Units.parseDuration(" 1m "));
    assertEquals(Duration.ofHours(2), Units.parseDuration("2h"));
  }

  @Test
  void parsesSizesAsPatroniDoes() {
    assertEquals(16L << 20, Units.parseSize("16MB"));
    assertEquals(1024, Units.parseSize("1kB"));
    assertEquals(1048576, Units.parseSize("1048576"));
    assertEquals(3L << 30, Units.parseSize("3GB"));
  }

  @ParameterizedTest
  @ValueSource(strings = {"16M", "1KB", "10mb", "-1MB", "MB", "1.5MB", "99999999999999TB"})
  void refusesSizesPatroniWouldSilentlyIgnore(String text) {
    // Patroni treats an unknown unit as "no limit"; pgbeacon refuses to start instead.
    assertThrows(IllegalArgumentException.class, () -> Units.parseSize(text));
  }

  @ParameterizedTest
  @ValueSource(strings = {"9999999999999999h", "99999999999999999999ms", "597h", "2147483648ms"})
  void refusesDurationsTooLongForAnyTimeoutInsteadOfOverflowing(String text) {
    assertThrows(IllegalArgumentException.class, () -> Units.parseDuration(text));
  }

  @Test
  void acceptsDurationsUpToTwentyFourDays() {
    assertEquals(Duration.ofMillis(Integer.MAX_VALUE), Units.parseDuration("2147483647ms"));
    assertEquals(Duration.ofHours(596), Units.parseDuration("596h"));
  }

  @Test
  void formatsForConsulAndHumans() {
    assertEquals("10s", Units.consulDuration(Duration.ofSeconds(10)));
    assertEquals("1500ms", Units.consulDuration(Duration.ofMillis(1500)));
    assertEquals("16MB", Units.formatSize(16L << 20));
    assertEquals("1.5kB", Units.formatSize(1536));
    assertEquals("12B", Units.formatSize(12));
  }
}
