package io.pgbeacon.consul;

import io.pgbeacon.health.Status;

/**
 * The few calls pgbeacon makes to its local Consul agent. Implementations block: call them off the event loop.
 * Each call has a deadline shorter than a poll tick.
 */
public interface ConsulAgent extends AutoCloseable {

  void register(ServiceRegistration registration) throws ConsulException;

  /**
   * Sets a TTL check's status and output.
   *
   * @throws UnknownCheckException when the agent does not know the check (it restarted, or an operator removed
   *     the service): the caller re-registers
   */
  void updateTtl(String checkId, Status status, String output) throws ConsulException;

  void deregister(String serviceId) throws ConsulException;

  /**
   * A blocking read of one KV key: returns when the key's index moves past {@code index} or after about
   * {@code wait}. Blocks far longer than the other calls: give it a thread of its own.
   */
  KeyRead readKey(String key, long index, java.time.Duration wait) throws ConsulException;

  /** A key's value (empty when absent) and Consul's index for the next blocking read. */
  record KeyRead(java.util.Optional<String> value, long index) {}

  @Override
  void close();

  /** A Consul call failed; the message is safe to log (no token). */
  class ConsulException extends Exception {
    private static final long serialVersionUID = 1L;

    public ConsulException(String message) {
      super(message);
    }
  }

  /** The agent does not know this check. */
  final class UnknownCheckException extends ConsulException {
    private static final long serialVersionUID = 1L;

    public UnknownCheckException(String message) {
      super(message);
    }
  }
}
