package io.pgbeacon;

import io.pgbeacon.config.Config;
import io.pgbeacon.config.ConfigException;
import io.pgbeacon.config.ConfigLoader;
import io.pgbeacon.config.ConfigSummary;
import io.pgbeacon.config.Preflight;
import io.pgbeacon.config.Units;
import io.pgbeacon.health.Status;
import io.pgbeacon.http.StatusClient;
import io.pgbeacon.http.StatusReport;
import java.io.PrintWriter;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code pgbeacon run|validate|check|status}; exit 2 on bad config (one line per problem), 1 on a failed start.
 * {@code check} exits 0, 1 or 2 for passing, warning, critical — and a bad config is critical. {@code status} exits
 * 1 when the daemon cannot be asked.
 */
@Command(name = "pgbeacon", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
    description = "Publishes Patroni + PgBouncer health as Consul TTL services and an HAProxy agent-check port.",
    subcommands = {Main.Run.class, Main.Validate.class, Main.Check.class, Main.StatusCommand.class})
public final class Main implements Callable<Integer> {

  static final int CONFIG_ERROR = 2;

  @CommandLine.Spec
  CommandLine.Model.CommandSpec spec;

  public static void main(String[] args) {
    System.exit(execute(args));
  }

  /** The environment the config is read with: the process's, or a test's. */
  private final Map<String, String> env;

  Main() {
    this(System.getenv());
  }

  Main(Map<String, String> env) {
    this.env = Map.copyOf(env);
  }

  static int execute(String... args) {
    return execute(new CommandLine(new Main()), args);
  }

  /** As {@link #execute(PrintWriter, PrintWriter, String...)}, reading the config with {@code env}. */
  static int execute(Map<String, String> env, PrintWriter out, PrintWriter err, String... args) {
    CommandLine cli = new CommandLine(new Main(env));
    cli.setOut(out);
    cli.setErr(err);
    return execute(cli, args);
  }

  /** As {@link #execute(String...)}, printing to {@code out} and {@code err} instead of stdout and stderr. */
  static int execute(PrintWriter out, PrintWriter err, String... args) {
    CommandLine cli = new CommandLine(new Main());
    cli.setOut(out);
    cli.setErr(err);
    return execute(cli, args);
  }

  private static int execute(CommandLine cli, String... args) {
    cli.setCaseInsensitiveEnumValuesAllowed(true);
    cli.setExecutionExceptionHandler((e, cmd, parsed) -> {
      cmd.getErr().println("pgbeacon: " + e.getMessage());
      return 1;
    });
    return cli.execute(args);
  }

  @Override
  public Integer call() {
    spec.commandLine().usage(spec.commandLine().getErr());
    return CONFIG_ERROR;
  }

  static String version() {
    String v = Main.class.getPackage().getImplementationVersion();
    return v == null ? "dev" : v;
  }

  static final class Version implements CommandLine.IVersionProvider {
    @Override
    public String[] getVersion() {
      return new String[] {"pgbeacon " + version()};
    }
  }

  /** Options shared by the subcommands that read the config. */
  static void printProblems(PrintWriter err, Path file, List<String> problems) {
    err.println("pgbeacon: invalid configuration in " + file + ":");
    problems.forEach(p -> err.println("  - " + p));
    err.flush();
  }

  static class ConfigOptions {
    @CommandLine.Spec(CommandLine.Spec.Target.MIXEE)
    CommandLine.Model.CommandSpec mixee;

    @Option(names = {"-c", "--config"}, required = true, paramLabel = "FILE", description = "the YAML config file")
    Path file;

    @Option(names = "--node", paramLabel = "NAME", description = "this node's Patroni member name (overrides node)")
    Optional<String> node;

    @Option(names = "--consul-address", paramLabel = "URL",
        description = "the Consul agent (overrides consul.address and CONSUL_HTTP_ADDR)")
    Optional<String> consulAddress;

    /** The config, or null after printing every problem to {@code err}. */
    Config load(PrintWriter err) {
      try {
        return ConfigLoader.load(file, new ConfigLoader.Overrides(node, consulAddress),
            ((Main) mixee.root().userObject()).env);
      } catch (ConfigException e) {
        printProblems(err, e.problems());
        return null;
      }
    }

    /** The config file read again, as at start (same overrides, same environment): for a reload. */
    Config reread() throws ConfigException {
      return ConfigLoader.load(file, new ConfigLoader.Overrides(node, consulAddress),
          ((Main) mixee.root().userObject()).env);
    }

    /** As {@link #load}, and what only trying tells ({@link Preflight}): null after printing every problem. */
    Config loadAndTry(PrintWriter err, Preflight.Mode mode, List<String> notes) {
      Config config = load(err);
      if (config == null) {
        return null;
      }
      List<String> problems = Preflight.problems(config, mode, notes);
      if (!problems.isEmpty()) {
        printProblems(err, problems);
        return null;
      }
      return config;
    }

    void printProblems(PrintWriter err, List<String> problems) {
      Main.printProblems(err, file, problems);
    }
  }

  @Command(name = "validate", mixinStandardHelpOptions = true,
      description = "Checks the config and prints what it resolves to; starts nothing.")
  static final class Validate implements Callable<Integer> {
    @CommandLine.Mixin ConfigOptions options;
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() {
      List<String> notes = new ArrayList<>();
      Config config = options.loadAndTry(spec.commandLine().getErr(), Preflight.Mode.VALIDATE, notes);
      if (config == null) {
        return CONFIG_ERROR;
      }
      PrintWriter out = spec.commandLine().getOut();
      out.println("config OK: " + options.file);
      ConfigSummary.lines(config).forEach(line -> out.println("  " + line));
      notes.forEach(note -> out.println("  note: " + note));
      out.flush();
      return 0;
    }
  }

  /** A view by the name the config, agent-send and the HTTP endpoints use ({@code read-only}, not READ_ONLY). */
  static final class ViewConverter implements CommandLine.ITypeConverter<Config.View> {
    @Override
    public Config.View convert(String text) {
      return Config.View.named(text).orElseThrow(() -> new CommandLine.TypeConversionException("'" + text
          + "' is not a view: " + java.util.Arrays.stream(Config.View.values()).map(Config.View::key)
              .collect(java.util.stream.Collectors.joining(", "))));
    }
  }

  @Command(name = "check", mixinStandardHelpOptions = true, sortOptions = false,
      description = {"Prints this node's verdict for one view in one line and exits 0 (passing), 1 (warning) or"
          + " 2 (critical): for Consul script checks and keepalived's vrrp_script.",
          "Asks the running pgbeacon on its agent port (a listener with that view, else one without a view,"
          + " through agent-send); a pgbeacon that does not answer is critical. A bad config is critical too."})
  static final class Check implements Callable<Integer> {
    @CommandLine.Parameters(index = "0", paramLabel = "VIEW", converter = ViewConverter.class,
        description = "primary, replica, sync, async, read-only or standby-leader")
    Config.View view;

    @CommandLine.Mixin ConfigOptions options;

    @Option(names = "--direct",
        description = "poll Patroni and PgBouncer here, once, instead of asking the running pgbeacon")
    boolean direct;

    @Option(names = "--fallback-direct",
        description = "ask the running pgbeacon (within half the timeout); if it does not answer, poll directly")
    boolean fallbackDirect;

    @Option(names = "--timeout", paramLabel = "DURATION", defaultValue = "3s",
        description = "deadline for the whole check, e.g. 3s or 1500ms (default: ${DEFAULT-VALUE})")
    String timeout;

    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() {
      PrintWriter out = spec.commandLine().getOut();
      try {
        Duration deadline;
        try {
          deadline = Units.parseDuration(timeout);
        } catch (IllegalArgumentException e) {
          return critical(out, "--timeout: " + e.getMessage() + " (got " + timeout + ")");
        }
        if (deadline.isZero()) {
          return critical(out, "--timeout: must be positive (got " + timeout + ")");
        }
        Config config = options.load(spec.commandLine().getErr());
        if (config == null) {
          return critical(out, "invalid configuration in " + options.file);
        }
        OneShotCheck.Mode mode = direct ? OneShotCheck.Mode.DIRECT
            : fallbackDirect ? OneShotCheck.Mode.DAEMON_THEN_DIRECT : OneShotCheck.Mode.DAEMON;
        OneShotCheck.Outcome outcome = OneShotCheck.run(config, view, mode, deadline);
        out.println(outcome.line());
        out.flush();
        return outcome.exitCode();
      } catch (RuntimeException e) {
        // Whatever went wrong, a check that cannot tell is critical, never a warning.
        return critical(out, "check failed: " + e);
      }
    }

    private static int critical(PrintWriter out, String line) {
      out.println(line);
      out.flush();
      return Status.CRITICAL.exitCode();
    }
  }

  @Command(name = "status", mixinStandardHelpOptions = true, sortOptions = false,
      description = {"Asks the running pgbeacon for its status (GET /status) and prints it for a person.",
          "The node; each view's verdict, its reason, since when, how old its observations; the last Patroni and"
          + " PgBouncer reads; the DCS watches; the last push of each Consul check. Asks the config's http listener"
          + " (a wildcard address on loopback) unless --url says where.",
          "Exits 0 when printed, 1 when the daemon cannot be asked or gives no status, 2 for a bad config or"
          + " http: off."})
  static final class StatusCommand implements Callable<Integer> {
    /** Connect, request and body together: the daemon answers /status from memory, at once. */
    static final Duration DEADLINE = Duration.ofSeconds(2);
    /** The package's config: what {@code pgbeacon status} on a node asks about when told nothing. */
    static final Path PACKAGED_CONFIG = Path.of("/etc/pgbeacon/pgbeacon.yml");

    @Option(names = {"-c", "--config"}, paramLabel = "FILE", description = "the daemon's YAML config, for its http"
        + " address and port (default: " + "/etc/pgbeacon/pgbeacon.yml if it is there, else the default listener)")
    Optional<Path> file;

    @Option(names = "--url", paramLabel = "URL",
        description = "where to ask, e.g. http://10.0.0.11:8009 (default: the config's http address and port)")
    Optional<String> url;

    @Option(names = "--json", description = "print /status's JSON as the daemon sent it")
    boolean json;

    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() {
      PrintWriter err = spec.commandLine().getErr();
      Map<String, String> env = ((Main) spec.root().userObject()).env;
      Optional<Path> config = file.or(() -> Optional.of(PACKAGED_CONFIG).filter(Files::isReadable));
      Config loaded;
      try {
        // Without a config file, the listener a config without an http block gets (127.0.0.1:8009).
        loaded = config.isPresent() ? ConfigLoader.load(config.get(), ConfigLoader.Overrides.none(), env)
            : ConfigLoader.parse("", ConfigLoader.Overrides.none(), env);
      } catch (ConfigException e) {
        printProblems(err, config.orElse(PACKAGED_CONFIG), e.problems());
        return CONFIG_ERROR;
      }
      URI where;
      try {
        where = url.isPresent() ? StatusClient.url(url.get()) : configured(loaded, config, err);
      } catch (IllegalArgumentException e) {
        err.println("pgbeacon: --url: " + e.getMessage() + " (got " + url.orElse("") + ")");
        err.flush();
        return CONFIG_ERROR;
      }
      if (where == null) {
        return CONFIG_ERROR;
      }
      StatusClient.Answer answer;
      try {
        answer = StatusClient.fetch(where, DEADLINE);
      } catch (StatusClient.NoStatus e) {
        err.println("pgbeacon: " + e.getMessage());
        err.flush();
        return 1;
      }
      PrintWriter out = spec.commandLine().getOut();
      if (json) {
        out.println(answer.body().stripTrailing());
      } else {
        StatusReport.lines(answer.json()).forEach(out::println);
      }
      out.flush();
      return 0;
    }

    /** The config's http listener as a URL, or null after saying why there is none to ask. */
    private URI configured(Config config, Optional<Path> file, PrintWriter err) {
      String in = file.map(f -> " in " + f).orElse("");
      if (config.http().isEmpty()) {
        err.println("pgbeacon: http is off" + in + "; nothing to ask (or give --url)");
      } else if (config.http().get().port() == 0) {
        err.println("pgbeacon: http.port is 0" + in + ": the daemon listens on a free port of its"
            + " choosing; give --url");
      } else {
        return StatusClient.url(config.http().get());
      }
      err.flush();
      return null;
    }
  }

  @Command(name = "run", mixinStandardHelpOptions = true,
      description = "Runs the daemon until SIGTERM/SIGINT; SIGHUP re-reads the config file and the token file.")
  static final class Run implements Callable<Integer> {
    @CommandLine.Mixin ConfigOptions options;
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws Exception {
      Config config = options.loadAndTry(spec.commandLine().getErr(), Preflight.Mode.RUN, new ArrayList<>());
      if (config == null) {
        return CONFIG_ERROR;
      }
      org.slf4j.LoggerFactory.getLogger(Main.class).info("pgbeacon {}, {}: {}", version(), options.file,
          String.join("; ", ConfigSummary.lines(config)));
      PgBeacon beacon = new PgBeacon(config, version(), ((Main) spec.root().userObject()).env);
      // Before the start: the JVM's own SIGHUP action is to exit. The handler only hands the reload to Vert.x.
      try {
        sun.misc.Signal.handle(new sun.misc.Signal("HUP"), signal -> beacon.reload(options::reread));
      } catch (IllegalArgumentException e) { // -Xrs in the JVM options: the JVM leaves SIGHUP alone
        org.slf4j.LoggerFactory.getLogger(Main.class).warn("reload on SIGHUP is off: {}", e.getMessage());
      }
      CountDownLatch exited = new CountDownLatch(1);
      Runtime.getRuntime().addShutdownHook(new Thread(() -> {
        try {
          // Consul's final word (≤ 5 s), the agent ports' linger (1.2 s), Vert.x: within systemd's 10 s.
          beacon.stop().get(8, TimeUnit.SECONDS);
        } catch (Exception e) {
          System.err.println("pgbeacon: stop did not complete cleanly: " + e);
        } finally {
          exited.countDown();
        }
      }, "pgbeacon-shutdown"));
      try {
        beacon.start().toCompletionStage().toCompletableFuture().get(30, TimeUnit.SECONDS);
      } catch (java.util.concurrent.ExecutionException e) {
        beacon.stop();
        if (e.getCause() instanceof ConfigException bad) { // an agent port taken since the preflight
          options.printProblems(spec.commandLine().getErr(), bad.problems());
          return CONFIG_ERROR;
        }
        spec.commandLine().getErr().println("pgbeacon: cannot start: " + e.getCause().getMessage());
        return 1;
      }
      exited.await();
      return 0;
    }
  }
}
