package io.pgbeacon.consul;

import io.netty.handler.ssl.util.InsecureTrustManagerFactory;
import io.pgbeacon.config.Config;
import io.pgbeacon.config.TlsMaterial;
import java.io.IOException;
import java.net.Socket;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.Principal;
import java.security.PrivateKey;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.stream.Collectors;
import javax.net.ssl.HostnameVerifier;
import javax.net.ssl.KeyManager;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLHandshakeException;
import javax.net.ssl.TrustManager;
import javax.net.ssl.X509ExtendedKeyManager;
import javax.net.ssl.X509KeyManager;
import org.apache.http.conn.ssl.DefaultHostnameVerifier;
import org.apache.http.conn.ssl.NoopHostnameVerifier;
import org.apache.http.conn.ssl.SSLConnectionSocketFactory;
import org.apache.http.protocol.HttpContext;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The TLS of pgbeacon's Consul client, set up as Consul's CLI sets it up from the same settings
 * ({@code api.SetupTLSConfig}): trust in the CA file or directory, else the JDK's trust store; the client certificate
 * an agent with {@code verify_incoming} asks for; the server name, sent as SNI and checked against the agent's
 * certificate in place of the address's host (as Go's {@code tls.Config.ServerName}); and with verification off,
 * neither the chain nor the name checked (Go's {@code InsecureSkipVerify}).
 *
 * <p>One socket factory for both of the agent's HTTP clients, registration and blocking reads: whatever talks to Consul
 * talks with the same TLS.
 */
final class ConsulTls {

  private static final Logger log = LoggerFactory.getLogger(ConsulTls.class);

  private ConsulTls() {}

  /** Empty for an {@code http://} address. The files were checked by the config; one that broke since fails here. */
  static Optional<SSLConnectionSocketFactory> socketFactory(Config.Consul config) {
    if (!"https".equals(config.address().getScheme())) {
      return Optional.empty();
    }
    Config.ConsulTls tls = config.tls();
    try {
      Optional<X509KeyManager> own = Optional.empty();
      if (tls.certFile().isPresent()) {
        Config.Setting<Path> cert = tls.certFile().get();
        for (KeyManager manager : TlsMaterial.keyManagers(cert.value(), tls.keyFile().orElseThrow().value(),
            cert.key()).getKeyManagers()) {
          if (manager instanceof X509KeyManager x509) {
            own = Optional.of(x509);
          }
        }
      }
      Answering keys = new Answering(own, tls.certFile().map(Config.Setting::key));
      TrustManager[] trust = null; // the JDK's trust store, as Consul's CLI falls back to the system's
      HostnameVerifier names = new DefaultHostnameVerifier();
      if (!tls.verifies()) {
        log.warn("consul: {} is false: the agent's certificate is not verified, so anyone between pgbeacon and {}"
            + " can pose as the agent and read its ACL token", tls.verify().orElseThrow().key(), config.address());
        trust = InsecureTrustManagerFactory.INSTANCE.getTrustManagers();
        names = NoopHostnameVerifier.INSTANCE;
      } else if (tls.caFile().isPresent() || tls.caPath().isPresent()) {
        trust = TlsMaterial.trustManagers(cas(tls)).getTrustManagers();
      }
      SSLContext context = SSLContext.getInstance("TLS");
      context.init(new KeyManager[] {keys}, trust, null);
      Optional<String> serverName = tls.serverName().map(Config.Setting::value);
      return Optional.of(new SSLConnectionSocketFactory(context, names) {
        @Override
        public Socket createLayeredSocket(Socket socket, String target, int port, HttpContext http)
            throws IOException {
          // The TCP connection is made; the TLS one names its peer: the JDK sends that name as SNI (none for an IP
          // address) and the certificate is checked against it — the server name, as Go's tls.Config.ServerName.
          keys.handshakeBegins();
          Socket layered = super.createLayeredSocket(socket, serverName.orElse(target), port, http);
          Optional<String> unanswered = keys.handshakeEnded();
          if (unanswered.isPresent()) {
            layered.close();
            throw new SSLHandshakeException(unanswered.get());
          }
          return layered;
        }
      });
    } catch (TlsMaterial.BadFile | IOException | GeneralSecurityException e) {
      // The config read these files a moment ago: one changed since.
      throw new IllegalStateException("Consul TLS cannot be set up: " + tls.keys() + ": " + e.getMessage(), e);
    }
  }

  /**
   * The client's key manager, which also remembers, for the handshake on this thread, whether the agent asked for a
   * client certificate and got none — none is set, or the one set is not from a CA the agent names. Over TLS 1.3 the
   * agent refuses only once the handshake is over, and the client hears of it as a broken pipe when it sends its
   * request; this way pgbeacon says why, before it sends anything.
   */
  private static final class Answering extends X509ExtendedKeyManager {
    private final Optional<X509KeyManager> own;
    private final Optional<String> certKey;
    /** Per handshake: the CAs the agent named when it asked (empty array: any), and whether a certificate went. */
    private final ThreadLocal<Principal[]> asked = new ThreadLocal<>();
    private final ThreadLocal<Boolean> answered = ThreadLocal.withInitial(() -> false);

    Answering(Optional<X509KeyManager> own, Optional<String> certKey) {
      this.own = own;
      this.certKey = certKey;
    }

    void handshakeBegins() {
      asked.remove();
      answered.set(false);
    }

    /** Why the agent will refuse this connection, if it asked for a certificate that did not go. */
    Optional<String> handshakeEnded() {
      Principal[] issuers = asked.get();
      boolean sent = answered.get();
      handshakeBegins();
      if (issuers == null || sent) {
        return Optional.empty();
      }
      String from = issuers.length == 0 ? "" : " from " + Arrays.stream(issuers).map(Principal::getName)
          .collect(Collectors.joining(" or "));
      return Optional.of(certKey.map(key -> "the agent asks for a client certificate" + from + " (verify_incoming),"
              + " and the one in " + key + " is not")
          .orElse("the agent asks for a client certificate" + from + " (verify_incoming), and none is set:"
              + " consul.cert-file and consul.key-file, or CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY"));
    }

    @Override
    public String chooseClientAlias(String[] keyType, Principal[] issuers, Socket socket) {
      // The JDK asks once per kind of key the agent accepts, until one is given.
      if (asked.get() == null) {
        asked.set(issuers == null ? new Principal[0] : issuers);
      }
      String alias = own.map(k -> k.chooseClientAlias(keyType, issuers, socket)).orElse(null);
      if (alias != null) {
        answered.set(true);
      }
      return alias;
    }

    @Override
    public String[] getClientAliases(String keyType, Principal[] issuers) {
      return own.map(k -> k.getClientAliases(keyType, issuers)).orElse(null);
    }

    @Override
    public X509Certificate[] getCertificateChain(String alias) {
      return own.map(k -> k.getCertificateChain(alias)).orElse(null);
    }

    @Override
    public PrivateKey getPrivateKey(String alias) {
      return own.map(k -> k.getPrivateKey(alias)).orElse(null);
    }

    @Override
    public String[] getServerAliases(String keyType, Principal[] issuers) {
      return null; // a client only
    }

    @Override
    public String chooseServerAlias(String keyType, Principal[] issuers, Socket socket) {
      return null;
    }
  }

  private static List<X509Certificate> cas(Config.ConsulTls tls) throws IOException, TlsMaterial.BadFile {
    List<Path> files = tls.caFile().isPresent() ? List.of(tls.caFile().get().value())
        : TlsMaterial.caDirectory(tls.caPath().orElseThrow().value());
    List<X509Certificate> cas = new ArrayList<>();
    for (Path file : files) {
      cas.addAll(TlsMaterial.certificates(file));
    }
    return cas;
  }
}
