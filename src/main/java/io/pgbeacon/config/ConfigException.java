package io.pgbeacon.config;

import java.util.List;

/** The config cannot be used; {@link #problems()} has one line per problem, each naming its key. */
public final class ConfigException extends Exception {

  private static final long serialVersionUID = 1L;
  private final List<String> problems;

  public ConfigException(List<String> problems) {
    super(String.join("; ", problems));
    this.problems = List.copyOf(problems);
  }

  public List<String> problems() {
    return problems;
  }
}
