package io.pgbeacon.config;

import java.nio.file.Path;

/**
 * A credential read from a file or the environment. {@link #toString()} never shows the value, so a secret
 * can travel inside config records and still be logged safely.
 *
 * @param value the secret itself
 * @param source where it came from, for messages: a file path or an environment variable's name
 */
public record Secret(String value, String source) {

  public Secret {
    if (value == null || value.isEmpty()) {
      throw new IllegalArgumentException("empty secret from " + source);
    }
  }

  static Secret fromFile(Path file, String content) {
    return new Secret(content.strip(), file.toString());
  }

  @Override
  public String toString() {
    return "Secret[from " + source + "]";
  }
}
