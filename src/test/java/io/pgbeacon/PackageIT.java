package io.pgbeacon;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pgbeacon.support.Await;
import io.pgbeacon.support.Commands;
import io.pgbeacon.support.Components;
import io.pgbeacon.support.ConsulHttp;
import io.pgbeacon.support.Haproxy;
import io.pgbeacon.support.Lab;
import io.pgbeacon.support.SafetySampler;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFileAttributes;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * The Debian package ({@code target/pgbeacon_<version>_all.deb}), for real on this machine (the tests run as root):
 * lintian finds no error in it; {@code dpkg -i} installs it; the installed launcher runs the installed jar, the shipped
 * conffile validates as the service user, both units pass {@code systemd-analyze verify}; installing it again keeps
 * an edited conffile, the user and the override; a lab whose pgbeacons all run from {@code /usr/bin/pgbeacon} passes
 * a switchover under the safety sampler; {@code dpkg --purge} removes every file, the user, the group and the
 * override it made, and leaves {@code /etc} as it was.
 *
 * <p>It installs and purges the package for real, so it refuses to start where the package (or a {@code pgbeacon}
 * user) is there already and not from an interrupted run of its own: purging would take someone's configuration.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class PackageIT {

  private static final Duration DPKG = Duration.ofMinutes(2);
  private static final Duration JVM = Duration.ofSeconds(30);
  /** Left while the package is installed by this test: a later run may purge what an interrupted one left. */
  private static final Path MARKER = Path.of("/tmp/pgbeacon-it-pkg.installed-by-PackageIT");
  /** Where the maintainer scripts and dpkg may leave traces; compared before install and after purge. */
  private static final List<Path> WATCHED = List.of(Path.of("/etc"), Path.of("/lib/systemd/system"),
      Path.of("/usr/bin"), Path.of("/usr/share/pgbeacon"), Path.of("/usr/share/doc/pgbeacon"),
      Path.of("/var/lib/systemd"), Path.of("/nonexistent"));
  /** Whose content must be the same again after the purge: the user and the group are gone, nothing else changed. */
  private static final List<Path> ACCOUNTS = List.of(Path.of("/etc/passwd"), Path.of("/etc/group"),
      Path.of("/etc/shadow"), Path.of("/etc/gshadow"));
  /** The JVM options' and the jar's overrides: the launcher's defaults are under test. */
  private static final List<String> LAUNCHER_ENV = List.of("PGBEACON_JAR", "PGBEACON_JAVA_OPTS", "JAVA");

  static Path deb;
  static String version;
  static Set<String> before;
  static Map<Path, String> accountsBefore;
  static String overridesBefore;
  /** Each path the package holds, and whether it was there before the install (/usr/bin, /etc, …). */
  static Map<String, Boolean> packaged;
  static boolean installed;

  @BeforeAll
  static void install() throws IOException {
    deb = Path.of(System.getProperty("pgbeacon.deb", "target/pgbeacon_0.1.0_all.deb"));
    assertTrue(Files.isRegularFile(deb), "no package at " + deb + ": run the tests with 'mvn verify'");
    Components.require("dpkg", "/usr/bin/dpkg");
    version = sh(DPKG, "dpkg-deb", "--field", deb.toString(), "Version").orFail().output().strip();
    if (packageInstalled()) {
      if (!Files.exists(MARKER)) {
        throw new AssertionError("the pgbeacon package is installed, and not by an earlier PackageIT: this test"
            + " installs and purges it for real. Run it on a machine without it, or first `dpkg --purge pgbeacon`"
            + " (which removes /etc/pgbeacon)");
      }
      sh(DPKG, "dpkg", "--purge", "pgbeacon").orFail(); // an interrupted run's
    }
    assertFalse(sh(JVM, "getent", "passwd", "pgbeacon").ok() || sh(JVM, "getent", "group", "pgbeacon").ok(),
        "a pgbeacon user or group exists without the package (the hand-made one of the install steps before the"
            + " package?): purging the package would remove it. Remove it first (userdel pgbeacon) or run elsewhere");
    before = snapshot();
    // Else the comparison after the purge would take an earlier run's (or a hand install's) leftovers for the norm.
    assertEquals(List.of(), before.stream().filter(p -> p.contains("pgbeacon")).toList(),
        "files named pgbeacon before the install: left by an earlier install or run; remove them first");
    accountsBefore = contents(ACCOUNTS);
    overridesBefore = sh(JVM, "dpkg-statoverride", "--list").output();
    packaged = new LinkedHashMap<>();
    for (String line : sh(DPKG, "dpkg-deb", "--contents", deb.toString()).orFail().output().split("\n")) {
      // drwxr-xr-x 0/0 0 2026-12-02 03:30 ./usr/share/pgbeacon/  (a link: "… ./a -> b")
      String path = line.replaceFirst("^.*? \\./", "/").replaceFirst(" -> .*$", "").replaceFirst("(.)/$", "$1");
      packaged.put(path, Files.exists(Path.of(path), LinkOption.NOFOLLOW_LINKS));
    }
    Files.writeString(MARKER, deb + "\n");
    installed = true;
    sh(DPKG, "dpkg", "-i", deb.toString()).orFail();
  }

  @AfterAll
  static void purgeIfStillInstalled() throws IOException {
    if (installed && packageInstalled()) {
      sh(DPKG, "dpkg", "--purge", "pgbeacon");
    }
    if (!packageInstalled()) {
      Files.deleteIfExists(MARKER);
    }
  }

  @Test
  @Order(1)
  void lintianFindsNoErrorInThePackage() {
    Path lintian = Components.require("lintian", "/usr/bin/lintian");
    Commands.Result r = sh(Duration.ofMinutes(5), lintian.toString(), "--tag-display-limit", "0", "--fail-on", "error",
        deb.toString());
    System.out.println("lintian " + deb.getFileName() + ":\n" + r.output());
    List<String> errors = r.output().lines().filter(l -> l.startsWith("E: ")).toList();
    assertEquals(List.of(), errors, r.output());
    assertEquals(0, r.exit(), r.output());
  }

  @Test
  @Order(2)
  void theLauncherRunsTheInstalledJarWithItsOwnJvmOptionsUnlessTold() {
    assertEquals("pgbeacon " + version, launcher(Map.of(), "--version").orFail().output().strip());
    // The options come from PGBEACON_JAVA_OPTS when it is set: a JVM refuses one it does not know.
    Commands.Result bogus = launcher(Map.of("PGBEACON_JAVA_OPTS", "-XX:+NoSuchPgbeaconOption"), "--version");
    assertFalse(bogus.ok(), bogus.output());
    assertTrue(bogus.output().contains("NoSuchPgbeaconOption"), bogus.output());
    assertEquals(Set.of("/etc/default/pgbeacon", "/etc/pgbeacon/pgbeacon.yml"),
        Set.copyOf(sh(JVM, "dpkg-query", "-W", "-f", "${Conffiles}", "pgbeacon").orFail().output().lines()
            .map(String::strip).filter(l -> !l.isEmpty()).map(l -> l.split(" ")[0]).toList()),
        "both files in /etc are conffiles");
    assertTrue(packaged.containsKey("/usr/share/pgbeacon/pgbeacon.jar"), packaged.keySet().toString());
    assertTrue(packaged.containsKey("/usr/share/doc/pgbeacon/changelog.gz"), packaged.keySet().toString());
  }

  @Test
  @Order(3)
  void theServiceUserExistsAndAloneWithRootReadsTheConfigDirectory() throws IOException {
    String[] user = sh(JVM, "getent", "passwd", "pgbeacon").orFail().output().strip().split(":");
    assertTrue(Integer.parseInt(user[2]) < 1000, "a system user: " + String.join(":", user));
    assertEquals("/nonexistent", user[5]);
    assertEquals("/usr/sbin/nologin", user[6]);
    String group = sh(JVM, "getent", "group", "pgbeacon").orFail().output().strip();
    assertEquals(user[3], group.split(":")[2], "the user's primary group is pgbeacon");
    PosixFileAttributes etc = Files.readAttributes(Path.of("/etc/pgbeacon"), PosixFileAttributes.class);
    assertEquals("root", etc.owner().getName());
    assertEquals("pgbeacon", etc.group().getName());
    assertEquals("rwxr-x---", PosixFilePermissions.toString(etc.permissions()));
  }

  @Test
  @Order(4)
  void theShippedConfigValidatesAsTheServiceUserOnANodeWithoutPatroni() {
    Commands.Result ok = asUser("pgbeacon", "validate", "--config", "/etc/pgbeacon/pgbeacon.yml");
    System.out.println(ok.output());
    assertEquals(0, ok.exit(), "validate needs the agent ports 5555 and 5556 free on 0.0.0.0:\n" + ok.output());
    assertTrue(ok.output().startsWith("config OK: /etc/pgbeacon/pgbeacon.yml"), ok.output());
    // Another user cannot read it: /etc/pgbeacon is root:pgbeacon 0750, for the secret files beside the config.
    Commands.Result other = asUser("nobody", "validate", "--config", "/etc/pgbeacon/pgbeacon.yml");
    assertEquals(2, other.exit(), other.output());
    assertTrue(other.output().contains("cannot read"), other.output());
  }

  @Test
  @Order(5)
  void bothInstalledUnitsPassSystemdAnalyzeVerify() {
    Path analyze = Components.require("systemd-analyze", "/usr/bin/systemd-analyze");
    Commands.Result r = sh(JVM, analyze.toString(), "verify", "/lib/systemd/system/pgbeacon.service",
        "/lib/systemd/system/pgbeacon@.service");
    assertEquals(0, r.exit(), r.output());
    assertEquals("", r.output().strip(), "systemd-analyze verify has something to say");
  }

  @Test
  @Order(6)
  void installingAgainKeepsAnEditedConffileTheUserAndTheOverride() throws IOException {
    Path config = Path.of("/etc/pgbeacon/pgbeacon.yml");
    String edited = Files.readString(config) + "# edited by PackageIT\n";
    Files.writeString(config, edited);
    String uid = sh(JVM, "id", "-u", "pgbeacon").orFail().output();
    // As an upgrade runs the maintainer scripts: postinst configure with the version before.
    sh(DPKG, "dpkg", "--force-confold", "-i", deb.toString()).orFail();
    assertEquals(edited, Files.readString(config), "dpkg kept the edited conffile");
    assertEquals(uid, sh(JVM, "id", "-u", "pgbeacon").orFail().output(), "the same user");
    assertEquals("root pgbeacon 750 /etc/pgbeacon", sh(JVM, "dpkg-statoverride", "--list", "/etc/pgbeacon")
        .orFail().output().strip());
  }

  @Test
  @Order(7)
  void aLabOfPackagedPgbeaconsPassesASwitchoverUnderTheSafetySampler() throws IOException {
    Lab lab = Lab.startWithPgbeacon(System.getProperty("pgbeacon.package.lab.dir", "/tmp/pgbeacon-it-pkg"),
        Integer.getInteger("pgbeacon.package.lab.port", 16800), "3", "package");
    try {
      for (int i = 1; i <= lab.nodes(); i++) {
        String cmdline = Files.readString(Path.of("/proc/" + lab.pgbeaconPid(i) + "/cmdline")).replace('\0', ' ');
        assertTrue(cmdline.contains(" -jar /usr/share/pgbeacon/pgbeacon.jar run "), "node" + i + ": " + cmdline);
      }
      ConsulHttp consul = new ConsulHttp(lab.consulAddress());
      String leader = lab.converged(consul, Duration.ofSeconds(45));
      String candidate = lab.nodeNames().stream().filter(n -> !n.equals(leader)).findFirst().orElseThrow();
      List<SafetySampler.Source> sources = List.of(
          new SafetySampler.Source("Consul patroni-primary (passing)", () -> consul.passingNodes("patroni-primary")),
          new SafetySampler.Source("HAProxy lab write", () -> Haproxy.stat(lab.haproxySocket(), "write").stream()
              .filter(row -> row.status().startsWith("UP")).map(Haproxy.StatRow::server).toList()));
      Await.until("HAProxy's write backend has only " + leader + " up", Duration.ofSeconds(45),
          sources.get(1).primaries(), List.of(leader)::equals);
      SafetySampler sampler = SafetySampler.start(() -> lab.leaderKeyHolder(consul), sources);
      List<SafetySampler.Result> results;
      try {
        lab.run(Duration.ofSeconds(90), "switchover", candidate);
        for (SafetySampler.Source source : sources) {
          Await.until(source.name() + " names " + candidate, Duration.ofSeconds(45), source.primaries(),
              List.of(candidate)::equals);
        }
      } finally {
        results = sampler.stop();
      }
      System.out.println("switchover " + leader + " → " + candidate + " on packaged pgbeacons:");
      results.forEach(r -> System.out.println("  " + r));
      for (SafetySampler.Result r : results) {
        assertTrue(r.samples() > 10, "the sampler hardly ran: " + r);
        assertTrue(r.maxPrimaries() <= 1, "two primaries at once: " + r);
        assertEquals(0, r.notLeader(), "a primary the leader key did not name: " + r);
      }
    } finally {
      lab.stop();
    }
  }

  @Test
  @Order(8)
  void purgeRemovesEverythingItInstalledAndLeavesTheMachineAsItWas() throws IOException {
    sh(DPKG, "dpkg", "--purge", "pgbeacon").orFail();
    assertFalse(packageInstalled());
    Files.deleteIfExists(MARKER);
    List<String> left = new ArrayList<>();
    packaged.forEach((path, existed) -> {
      if (Files.exists(Path.of(path), LinkOption.NOFOLLOW_LINKS) != existed) {
        left.add(path);
      }
    });
    assertEquals(List.of(), left, "packaged paths not back to how they were before the install");
    Set<String> after = snapshot();
    Set<String> added = new TreeSet<>(after);
    added.removeAll(before);
    Set<String> removed = new TreeSet<>(before);
    removed.removeAll(after);
    assertEquals(Set.of(), added, "left behind by install + purge");
    assertEquals(Set.of(), removed, "gone after install + purge");
    assertEquals(accountsBefore, contents(ACCOUNTS), "the user and group files are as they were");
    assertEquals(overridesBefore, sh(JVM, "dpkg-statoverride", "--list").output(), "dpkg's stat overrides");
    assertFalse(sh(JVM, "getent", "passwd", "pgbeacon").ok(), "the pgbeacon user is gone");
    assertFalse(sh(JVM, "getent", "group", "pgbeacon").ok(), "the pgbeacon group is gone");
    // What verify checked is real: without the package the same units fail on their missing command.
    Path units = Components.repoFile("src/main/dist/systemd");
    Commands.Result r = sh(JVM, "systemd-analyze", "verify", units.resolve("pgbeacon.service").toString(),
        units.resolve("pgbeacon@.service").toString());
    assertFalse(r.ok(), r.output());
    assertTrue(r.output().contains("/usr/bin/pgbeacon is not executable"), r.output());
  }

  // ---- helpers ------------------------------------------------------------------------------------------------

  private static boolean packageInstalled() {
    return sh(JVM, "dpkg-query", "-W", "-f", "${Status}", "pgbeacon").output().strip()
        .equals("install ok installed");
  }

  private static Commands.Result launcher(Map<String, String> env, String... args) {
    List<String> cmd = new ArrayList<>(List.of("/usr/bin/pgbeacon"));
    cmd.addAll(List.of(args));
    return Commands.run(JVM, env, LAUNCHER_ENV, cmd.toArray(String[]::new));
  }

  /** The installed launcher as {@code user} (with that user's groups), as systemd's User= would run it. */
  private static Commands.Result asUser(String user, String... args) {
    List<String> cmd = new ArrayList<>(List.of(Components.require("setpriv", "/usr/bin/setpriv").toString(),
        "--reuid=" + user, "--regid=" + groupOf(user), "--init-groups", "/usr/bin/pgbeacon"));
    cmd.addAll(List.of(args));
    return Commands.run(JVM, Map.of(), LAUNCHER_ENV, cmd.toArray(String[]::new));
  }

  private static String groupOf(String user) {
    return sh(JVM, "id", "-g", user).orFail().output().strip();
  }

  private static Commands.Result sh(Duration deadline, String... cmd) {
    return Commands.run(deadline, cmd);
  }

  /** Every path under {@link #WATCHED} (links not followed), less shadow's own backups (passwd- and the like). */
  private static Set<String> snapshot() {
    Set<String> paths = new TreeSet<>();
    for (Path root : WATCHED) {
      if (!Files.exists(root)) {
        continue;
      }
      try (Stream<Path> walk = Files.walk(root)) {
        walk.map(Path::toString).filter(p -> !p.matches("/etc/(passwd|group|shadow|gshadow)-")).forEach(paths::add);
      } catch (NoSuchFileException e) {
        // a file that went away while walking (another process's temporary file) is not ours
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
    return paths;
  }

  private static Map<Path, String> contents(List<Path> files) throws IOException {
    Map<Path, String> map = new LinkedHashMap<>();
    for (Path f : files) {
      map.put(f, Files.exists(f) ? Files.readString(f, StandardCharsets.UTF_8) : "(none)");
    }
    return map;
  }
}
