package io.pgbeacon.patroni;

/** Patroni answered, but not with something pgbeacon can read; the message becomes the verdict's reason. */
public final class PatroniParseException extends Exception {
  private static final long serialVersionUID = 1L;

  PatroniParseException(String message) {
    super(message);
  }
}
