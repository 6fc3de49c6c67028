package io.pgbeacon.bench;

import java.util.Locale;

/**
 * Finds the requests in the client-to-server half of an HTTP/1.1 connection, fed in whatever pieces the network
 * delivers them: request line and headers, then a body of {@code Content-Length} bytes or chunks. Keep-alive and
 * pipelining need nothing special. What it cannot frame (a header line longer than {@link #MAX_LINE}, a bad chunk
 * size) ends the counting for that connection, never the forwarding.
 *
 * <p>Not thread-safe: one sniffer per connection, fed from that connection's event loop.
 */
final class HttpRequestSniffer {

  interface Listener {
    void request(String method, String target);
  }

  static final int MAX_LINE = 16 * 1024;

  private enum State { HEAD, BODY, CHUNK_SIZE, CHUNK_DATA, TRAILER, LOST }

  private final Listener listener;
  private final StringBuilder line = new StringBuilder();
  private State state = State.HEAD;
  private long remaining;
  private String method;
  private String target;
  private long contentLength;
  private boolean chunked;

  HttpRequestSniffer(Listener listener) {
    this.listener = listener;
  }

  /** Whether framing was lost: later requests on this connection are not counted. */
  boolean lost() {
    return state == State.LOST;
  }

  void feed(byte[] bytes) {
    int i = 0;
    while (i < bytes.length && state != State.LOST) {
      if (state == State.BODY || state == State.CHUNK_DATA) {
        int skip = (int) Math.min(remaining, bytes.length - i);
        i += skip;
        remaining -= skip;
        if (remaining == 0) {
          state = state == State.BODY ? State.HEAD : State.CHUNK_SIZE;
        }
        continue;
      }
      byte b = bytes[i++];
      if (b == '\n') {
        String text = line.length() > 0 && line.charAt(line.length() - 1) == '\r'
            ? line.substring(0, line.length() - 1) : line.toString();
        line.setLength(0);
        onLine(text);
      } else if (line.length() >= MAX_LINE) {
        state = State.LOST;
      } else {
        line.append((char) (b & 0xff));
      }
    }
  }

  private void onLine(String text) {
    switch (state) {
      case HEAD -> onHeadLine(text);
      case CHUNK_SIZE -> {
        long size;
        try {
          String hex = text.contains(";") ? text.substring(0, text.indexOf(';')) : text;
          size = Long.parseLong(hex.trim(), 16);
        } catch (NumberFormatException e) {
          state = State.LOST;
          return;
        }
        if (size == 0) {
          state = State.TRAILER;
        } else {
          remaining = size + 2; // the data and its CRLF
          state = State.CHUNK_DATA;
        }
      }
      case TRAILER -> {
        if (text.isEmpty()) {
          state = State.HEAD;
        }
      }
      default -> state = State.LOST;
    }
  }

  private void onHeadLine(String text) {
    if (method == null) {
      if (text.isEmpty()) {
        return; // CRLFs between requests are allowed
      }
      String[] parts = text.split(" ");
      if (parts.length < 2) {
        state = State.LOST;
        return;
      }
      method = parts[0];
      target = parts[1];
      contentLength = 0;
      chunked = false;
      return;
    }
    if (!text.isEmpty()) {
      int colon = text.indexOf(':');
      if (colon > 0) {
        String name = text.substring(0, colon).trim().toLowerCase(Locale.ROOT);
        String value = text.substring(colon + 1).trim();
        if (name.equals("content-length")) {
          try {
            contentLength = Long.parseLong(value);
          } catch (NumberFormatException e) {
            state = State.LOST;
          }
        } else if (name.equals("transfer-encoding")) {
          chunked = value.toLowerCase(Locale.ROOT).contains("chunked");
        }
      }
      return;
    }
    listener.request(method, target);
    method = null;
    if (chunked) {
      state = State.CHUNK_SIZE;
    } else if (contentLength > 0) {
      remaining = contentLength;
      state = State.BODY;
    }
  }
}
