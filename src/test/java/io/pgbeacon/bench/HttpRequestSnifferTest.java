package io.pgbeacon.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class HttpRequestSnifferTest {

  private final List<String> seen = new ArrayList<>();
  private final HttpRequestSniffer sniffer = new HttpRequestSniffer((m, t) -> seen.add(m + " " + t));

  @Test
  void countsKeepAliveRequestsAndSkipsTheirBodies() {
    feed("GET /primary HTTP/1.1\r\nHost: x\r\n\r\n"
        + "PUT /v1/agent/check/update/service:a HTTP/1.1\r\nContent-Length: 28\r\n\r\n"
        + "GET /cluster HTTP/1.1 inside\r\n"
        + "GET /cluster HTTP/1.1\r\n\r\n");
    assertEquals(List.of("GET /primary", "PUT /v1/agent/check/update/service:a", "GET /cluster"), seen);
  }

  @Test
  void findsRequestsSplitAtAnyByte() {
    String stream = "GET /primary HTTP/1.1\r\nAccept: application/json\r\n\r\n"
        + "PUT /v1/agent/service/register HTTP/1.1\r\ncontent-length: 5\r\n\r\n{\"a\"}"
        + "GET /v1/kv/service/s/leader?index=7&wait=20s HTTP/1.1\r\n\r\n";
    byte[] bytes = stream.getBytes(StandardCharsets.US_ASCII);
    for (byte b : bytes) {
      sniffer.feed(new byte[] {b});
    }
    assertEquals(List.of("GET /primary", "PUT /v1/agent/service/register",
        "GET /v1/kv/service/s/leader?index=7&wait=20s"), seen);
  }

  @Test
  void skipsChunkedBodies() {
    feed("PUT /v1/agent/check/pass/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        + "5\r\nGET /\r\n3;ext=1\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n"
        + "GET /patroni HTTP/1.1\r\n\r\n");
    assertEquals(List.of("PUT /v1/agent/check/pass/x", "GET /patroni"), seen);
    assertFalse(sniffer.lost());
  }

  @Test
  void givesUpOnWhatItCannotFrame() {
    feed("GET /primary HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    assertTrue(sniffer.lost());
    feed("GET /cluster HTTP/1.1\r\n\r\n");
    assertEquals(List.of("GET /primary"), seen);
  }

  private void feed(String s) {
    sniffer.feed(s.getBytes(StandardCharsets.US_ASCII));
  }
}
