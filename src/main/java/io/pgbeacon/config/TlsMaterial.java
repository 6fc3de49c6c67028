package io.pgbeacon.config;

import io.vertx.core.buffer.Buffer;
import io.vertx.core.net.PemKeyCertOptions;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.SecureRandom;
import java.security.Signature;
import java.security.cert.Certificate;
import java.security.cert.CertificateException;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.stream.Stream;
import javax.net.ssl.KeyManager;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.X509KeyManager;

/**
 * PEM files loaded as a TLS client uses them, by the config's checks and by the Consul client alike, so that a file
 * the config accepts is one the client can use.
 *
 * <p>Private keys are read by Vert.x's PEM reader, which takes PKCS#8 ({@code BEGIN PRIVATE KEY}), PKCS#1
 * ({@code BEGIN RSA PRIVATE KEY}) and SEC1 ({@code BEGIN EC PRIVATE KEY}, what {@code consul tls cert create} writes);
 * the JDK's {@code KeyFactory} reads PKCS#8 only. Certificates are read by the JDK.
 */
public final class TlsMaterial {

  /** A file that does not hold what it should; the message says what is wrong, not where (the caller names it). */
  public static final class BadFile extends Exception {
    BadFile(String message) {
      super(message);
    }
  }

  private static final String[] KEY_TYPES = {"RSA", "EC", "EdDSA", "RSASSA-PSS", "DSA"};

  private TlsMaterial() {}

  /**
   * The certificate (with the chain after it in the file) and its private key as a client presents them, once the
   * key is proven to be the certificate's: Consul's CLI (Go's {@code tls.LoadX509KeyPair}) refuses a pair that does
   * not match, and the JDK would only find out in the handshake, as the agent's "bad certificate".
   */
  public static KeyManagerFactory keyManagers(Path certFile, Path keyFile, String certName)
      throws BadFile, IOException {
    KeyManagerFactory factory;
    try {
      // Values, not paths: Vert.x reads paths through a Vertx instance's file system, values need none.
      factory = new PemKeyCertOptions()
          .setCertValue(Buffer.buffer(Files.readAllBytes(certFile)))
          .setKeyValue(Buffer.buffer(Files.readAllBytes(keyFile)))
          .getKeyManagerFactory(null);
    } catch (IOException e) {
      throw e;
    } catch (Exception e) {
      // The certificate was read already (certificates()): what fails here is the key, or a key of another kind
      // than the certificate's (the key store refuses that pair).
      throw new BadFile("is not a PEM private key of the certificate in " + certName + " (" + innermost(e) + ")");
    }
    X509KeyManager keys = null;
    for (KeyManager manager : factory.getKeyManagers()) {
      if (manager instanceof X509KeyManager x509) {
        keys = x509;
      }
    }
    String alias = keys == null ? null : keys.chooseClientAlias(KEY_TYPES, null, null);
    if (alias == null) {
      throw new BadFile("holds no private key of a kind TLS uses (RSA, EC, EdDSA, DSA)");
    }
    proveMatch(keys.getPrivateKey(alias), keys.getCertificateChain(alias)[0], certName);
    return factory;
  }

  /** Signs with the key and verifies with the certificate's public key: the one test that works for every kind. */
  private static void proveMatch(PrivateKey key, X509Certificate certificate, String certName) throws BadFile {
    String algorithm = switch (certificate.getPublicKey().getAlgorithm()) {
      case "RSA" -> "SHA256withRSA";
      case "EC" -> "SHA256withECDSA";
      case "EdDSA", "Ed25519", "Ed448" -> "EdDSA";
      case "DSA" -> "SHA256withDSA";
      default -> null; // RSASSA-PSS needs parameters of its own; the handshake is its test
    };
    if (algorithm == null) {
      return;
    }
    byte[] challenge = new byte[32];
    new SecureRandom().nextBytes(challenge);
    boolean matches;
    try {
      Signature signer = Signature.getInstance(algorithm);
      signer.initSign(key);
      signer.update(challenge);
      byte[] signature = signer.sign();
      Signature verifier = Signature.getInstance(algorithm);
      verifier.initVerify(certificate.getPublicKey());
      verifier.update(challenge);
      matches = verifier.verify(signature);
    } catch (GeneralSecurityException e) {
      matches = false; // an EC key for an RSA certificate, say
    }
    if (!matches) {
      throw new BadFile("is not the private key of the certificate in " + certName + " ("
          + certificate.getSubjectX500Principal().getName() + "): what it signs, the certificate's key does not"
          + " verify");
    }
  }

  /** The X.509 certificates of a PEM (or DER) file: at least one. */
  public static List<X509Certificate> certificates(Path file) throws BadFile, IOException {
    try (InputStream in = Files.newInputStream(file)) {
      Collection<? extends Certificate> read = CertificateFactory.getInstance("X.509").generateCertificates(in);
      if (read.isEmpty()) {
        throw new BadFile("holds no certificate");
      }
      List<X509Certificate> certificates = new ArrayList<>();
      read.forEach(c -> certificates.add((X509Certificate) c));
      return certificates;
    } catch (CertificateException e) {
      throw new BadFile("is not a PEM certificate (" + innermost(e) + ")");
    }
  }

  /**
   * The files of a CA directory as Consul reads {@code CONSUL_CAPATH} (go-rootcerts' {@code LoadCAPath}): every
   * regular file under it, subdirectories included; Consul fails on any that is not PEM, and so does the config.
   */
  public static List<Path> caDirectory(Path dir) throws IOException {
    try (Stream<Path> files = Files.walk(dir)) {
      return files.filter(Files::isRegularFile).sorted().toList();
    }
  }

  /** Trust in exactly these CA certificates. */
  public static TrustManagerFactory trustManagers(List<X509Certificate> cas) throws GeneralSecurityException {
    KeyStore store;
    try {
      store = KeyStore.getInstance(KeyStore.getDefaultType());
      store.load(null, null);
    } catch (IOException e) {
      throw new GeneralSecurityException("an empty key store: " + e.getMessage(), e);
    }
    for (int i = 0; i < cas.size(); i++) {
      store.setCertificateEntry("ca-" + i, cas.get(i));
    }
    TrustManagerFactory factory = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
    factory.init(store);
    return factory;
  }

  static String innermost(Throwable e) {
    Throwable cause = e;
    while (cause.getCause() != null && cause.getCause() != cause) {
      cause = cause.getCause();
    }
    return cause.getMessage() == null ? cause.getClass().getSimpleName() : cause.getMessage();
  }
}
