package io.pgbeacon.consul;

import io.pgbeacon.health.Status;
import java.time.Duration;
import java.util.Map;
import java.util.Optional;

/**
 * The few calls pgbeacon makes to its local Consul agent. Implementations block: call them off the event loop.
 *
 * <p>Order: the calls that change the agent's state ({@link #register}, {@link #updateCheck}, {@link #deregister})
 * are applied by the agent in the order they were made, as long as each is made after the previous one returned.
 * An implementation gives up waiting for an answer only after {@link #giveUpAfter()}; a call given up on may still
 * be applied later ({@link ConsulException#mayHaveLanded()}).
 */
public interface ConsulAgent extends AutoCloseable {

  /** Registers the service with its two checks: the verdict (its current status) and pgbeacon's liveness. */
  void register(ServiceRegistration registration) throws ConsulException;

  /**
   * Sets a TTL check's status and output, and restarts its TTL.
   *
   * @throws UnknownCheckException when the agent does not know the check (it restarted, or an operator removed
   *     the service): the caller re-registers
   */
  void updateCheck(String checkId, Status status, String output) throws ConsulException;

  void deregister(String serviceId) throws ConsulException;

  /** The agent's checks by ID, as it holds them now: how a stop confirms that its final word was applied. */
  Map<String, CheckState> checks() throws ConsulException;

  /**
   * The agent's services by ID, with their name and meta: how a start finds this node's services of the old ID form
   * to retire.
   */
  Map<String, ServiceEntry> services() throws ConsulException;

  /**
   * A blocking read of one KV key: returns when the key's index moves past {@code index} or after about
   * {@code wait}. Blocks far longer than the other calls: give it a thread of its own.
   */
  KeyRead readKey(String key, long index, Duration wait) throws ConsulException;

  /**
   * Sends {@code token} (none when empty) with every call from now on: a reload after the token file was rewritten.
   * A call already sent keeps the token it was sent with.
   */
  default void useToken(Optional<io.pgbeacon.config.Secret> token) {
    throw new UnsupportedOperationException(getClass().getSimpleName() + " cannot change its token");
  }

  /** How long a state-changing call may go unanswered before the implementation stops waiting for it. */
  Duration giveUpAfter();

  /** A key's value (empty when absent) and Consul's index for the next blocking read. */
  record KeyRead(Optional<String> value, long index) {}

  /** One service as the agent holds it. */
  record ServiceEntry(String name, Map<String, String> meta) {
    public ServiceEntry {
      meta = Map.copyOf(meta);
    }
  }

  /** One check as the agent holds it. */
  record CheckState(Status status, String output) {}

  @Override
  void close();

  /** A Consul call failed; the message is safe to log (no token). */
  class ConsulException extends Exception {
    private static final long serialVersionUID = 1L;
    private final boolean mayHaveLanded;

    public ConsulException(String message, boolean mayHaveLanded) {
      super(message);
      this.mayHaveLanded = mayHaveLanded;
    }

    /**
     * True when the request may have reached the agent and be applied later (no answer, or the connection broke
     * after the request was sent); false when the agent answered with an error or was never reached.
     */
    public boolean mayHaveLanded() {
      return mayHaveLanded;
    }
  }

  /** The agent does not know this check. */
  final class UnknownCheckException extends ConsulException {
    private static final long serialVersionUID = 1L;

    public UnknownCheckException(String message) {
      super(message, false);
    }
  }
}
