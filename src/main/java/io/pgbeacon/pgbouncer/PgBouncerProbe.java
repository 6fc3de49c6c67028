package io.pgbeacon.pgbouncer;

import io.micrometer.core.instrument.Tags;
import io.pgbeacon.config.Config;
import io.pgbeacon.metrics.Metrics;
import io.pgbeacon.net.ErrorText;
import io.vertx.core.Future;
import io.vertx.core.Promise;
import io.vertx.core.Vertx;
import io.vertx.core.net.NetClient;
import io.vertx.core.net.NetClientOptions;
import io.vertx.pgclient.PgConnectOptions;
import io.vertx.pgclient.spi.PgDriver;
import io.vertx.sqlclient.Row;
import io.vertx.sqlclient.RowSet;
import io.vertx.sqlclient.SqlConnection;
import io.vertx.sqlclient.spi.ConnectionFactory;
import java.time.Duration;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeoutException;
import java.util.function.Function;

/**
 * Proves that the local PgBouncer accepts a new PostgreSQL-protocol connection and passes a query through to
 * PostgreSQL, and, given admin credentials, that the database is neither paused nor disabled.
 *
 * <p>A fresh connection per probe on purpose: a kept-open connection would keep passing while PgBouncer refuses
 * new clients (max_client_conn, auth failures, a stopped listener).
 *
 * <p>Nothing of a probe outlives its deadline. All connections go through one NetClient, made once, whose connect
 * timeout is the deadline (a SYN to a full backlog); each connection gets a factory of its own over it, with its
 * sockets kept ({@link ProbeSockets}) so that the deadline closes them whatever the handshake's state — a
 * PgBouncer that accepted in the kernel but does not run never answers the startup message, and vertx-pg-client
 * alone would keep that socket open. No NetClient is made per probe: {@code PgConnection.connect} makes a factory
 * per call, and in Vert.x 5.0 each one's NetClient stays registered with the calling verticle until it undeploys —
 * measured, one {@code NetClientImpl} kept per probe, two to four a second for the daemon's life. {@link #close()}
 * releases the NetClient and the sockets of a probe in flight.
 */
public final class PgBouncerProbe {

  // PgBouncer rejects startup parameters it does not track (extra_float_digits, IntervalStyle, …) unless the
  // operator lists them in ignore_startup_parameters; send only ones it always accepts.
  private static final Map<String, String> STARTUP = Map.of("application_name", "pgbeacon", "client_encoding", "UTF8");

  private final Vertx vertx;
  private final Config.PgBouncer config;
  private final Metrics metrics;
  private final long deadlineMillis;
  private final NetClient client;
  private final Set<ProbeSockets> inFlight = ConcurrentHashMap.newKeySet();

  public PgBouncerProbe(Vertx vertx, Config.PgBouncer config, Metrics metrics) {
    this.metrics = metrics;
    this.vertx = vertx;
    this.config = config;
    this.deadlineMillis = config.timeout().toMillis();
    this.client = vertx.createNetClient(new NetClientOptions().setConnectTimeout((int) deadlineMillis));
  }

  /** Releases the NetClient, closing the sockets of probes in flight; probes after this fail. */
  public Future<Void> close() {
    // The NetClient's own close would wait for them forever if PgBouncer hangs (see ProbeSockets), and with it the
    // undeploy of the verticle that made this probe.
    inFlight.forEach(ProbeSockets::closeSockets);
    return client.close();
  }

  /** One probe; completes within the configured timeout, always successfully. */
  public Future<PgBouncerStatus> probe() {
    long started = System.nanoTime();
    Future<Optional<String>> admin = config.adminUser().isPresent() ? adminProblem() : Future.succeededFuture(
        Optional.empty());
    Future<PgBouncerStatus> query = query();
    return Future.join(admin, query).transform(ignored -> {
      // The admin console explains a hung query better than the timeout does.
      PgBouncerStatus status = admin.succeeded() && admin.result().isPresent()
          ? PgBouncerStatus.failed(admin.result().get()) : query.result();
      metrics.call("pgbeacon.pgbouncer.probe", "pgbeacon.pgbouncer.errors", "PgBouncer probe",
          Tags.empty(),
          Duration.ofNanos(System.nanoTime() - started), status.passes() ? Optional.empty() : Optional.of(kind(status)));
      return Future.succeededFuture(status);
    });
  }

  /** A failed probe's kind for the errors metric. */
  static String kind(PgBouncerStatus status) {
    String detail = status.detail();
    if (detail.equals("no answer within the deadline")) {
      return "timeout";
    }
    if (detail.contains("Connection refused")) {
      return "refused";
    }
    if (detail.contains("is paused") || detail.contains("is disabled") || detail.contains("is not defined")) {
      return "database";
    }
    if (detail.contains("authentication failed")) {
      return "auth";
    }
    return "other";
  }

  private Future<PgBouncerStatus> query() {
    PgConnectOptions options = options(config.database(), config.user(),
        config.password().map(s -> s.value()).orElse(null));
    return withConnection(options, conn -> conn.query("SELECT 1").execute())
        .map(rows -> PgBouncerStatus.ok())
        .otherwise(e -> PgBouncerStatus.failed(ErrorText.describe(e)));
  }

  /** Reads {@code SHOW DATABASES} on PgBouncer's admin console; empty when the database looks fine. */
  private Future<Optional<String>> adminProblem() {
    PgConnectOptions options = options("pgbouncer", config.adminUser().orElseThrow(),
        config.adminPassword().map(s -> s.value()).orElse(null));
    // The admin console speaks only the simple query protocol, which query() uses.
    return withConnection(options, conn -> conn.query("SHOW DATABASES").execute())
        .map(this::databaseProblem)
        .otherwise(e -> Optional.of("admin console: " + ErrorText.describe(e)));
  }

  private Optional<String> databaseProblem(RowSet<Row> rows) {
    for (Row row : rows) {
      if (!config.database().equals(row.getString("name"))) {
        continue;
      }
      if (flag(row, "disabled")) {
        return Optional.of("database " + config.database() + " is disabled in PgBouncer");
      }
      if (flag(row, "paused")) {
        return Optional.of("database " + config.database() + " is paused in PgBouncer");
      }
      return Optional.empty();
    }
    return Optional.of("database " + config.database() + " is not defined in PgBouncer");
  }

  private static boolean flag(Row row, String column) {
    int index = row.getColumnIndex(column);
    if (index < 0) {
      return false;
    }
    Object value = row.getValue(index);
    return value != null && !"0".equals(value.toString());
  }

  private PgConnectOptions options(String database, String user, String password) {
    PgConnectOptions options = new PgConnectOptions()
        .setHost(config.host())
        .setPort(config.port())
        .setDatabase(database)
        .setUser(user)
        .setProperties(STARTUP)
        .setPipeliningLimit(1);
    if (password != null) {
      options.setPassword(password);
    }
    return options;
  }

  private <T> Future<T> withConnection(PgConnectOptions options, Function<SqlConnection, Future<T>> work) {
    ProbeSockets sockets = new ProbeSockets(vertx, client);
    inFlight.add(sockets);
    ConnectionFactory<PgConnectOptions> factory = PgDriver.INSTANCE.createConnectionFactory(sockets,
        new NetClientOptions());
    Promise<T> answer = Promise.promise();
    // One timer is the deadline for both the answer and the sockets, so the answer fails with the timeout rather
    // than with the closed socket.
    long deadline = vertx.setTimer(deadlineMillis, id -> {
      answer.tryFail(new TimeoutException());
      sockets.closeSockets();
    });
    Future<SqlConnection> connect = factory.connect(vertx.getOrCreateContext(), options);
    connect.compose(work).onComplete(done -> {
      if (done.succeeded()) {
        answer.tryComplete(done.result());
      } else {
        answer.tryFail(done.cause());
      }
    });
    answer.future().onComplete(done -> {
      // Terminate first when the connection exists, so PgBouncer logs a client close request, not an unexpected
      // EOF; it cannot be sent behind a hung query, and a hung PgBouncer never closes its end: the deadline closes
      // the sockets in any case.
      Future<Void> goodbye = connect.succeeded() ? connect.result().close() : Future.succeededFuture();
      goodbye.onComplete(closed -> {
        vertx.cancelTimer(deadline);
        sockets.closeSockets();
        inFlight.remove(sockets);
      });
    });
    return answer.future();
  }

}
