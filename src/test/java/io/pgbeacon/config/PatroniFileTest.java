package io.pgbeacon.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Optional;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** What pgbeacon reads from Patroni's YAML: one Patroni setting a row, and the pgbeacon key it becomes. */
class PatroniFileTest {

  @ParameterizedTest(name = "{0} → {1} = {2}")
  @CsvSource(delimiter = '|', textBlock = """
      name: db1                                                          | node              | db1
      namespace: /postgresql-common/                                     | patroni.namespace | /postgresql-common/
      scope: 15-main                                                     | scope             | 15-main
      restapi: {listen: 127.0.0.11:8008, connect_address: db1:8008}     | patroni.url       | http://127.0.0.11:8008
      restapi: {listen: 0.0.0.0:8008, connect_address: db1:8008}        | patroni.url       | http://127.0.0.1:8008
      restapi: {listen: '[::]:8009'}                                     | patroni.url       | http://127.0.0.1:8009
      restapi: {listen: ':8010'}                                         | patroni.url       | http://127.0.0.1:8010
      restapi: {connect_address: 10.0.0.5:8008}                          | patroni.url       | http://10.0.0.5:8008
      restapi: {listen: 0.0.0.0:8008, connect_address: db1:8008, certfile: s.pem} | patroni.url | https://db1:8008
      restapi: {listen: a:8008, certfile: s.pem, cafile: ca.pem}        | patroni.ca-file   | ca.pem
      {restapi: {listen: a:8008, certfile: s.pem, cafile: r.pem}, ctl: {cacert: c.pem}} | patroni.ca-file | c.pem
      {restapi: {listen: a:8008, certfile: s.pem}, ctl: {certfile: c.pem, keyfile: k.pem}} | patroni.key-file | k.pem
      restapi: {listen: a:8008, certfile: s.pem, authentication: {username: u, password: p}} | patroni.username | u
      consul: {host: 127.0.0.1:8500}                                     | consul.address    | http://127.0.0.1:8500
      consul: {host: 127.0.0.1, port: 8501, scheme: https}               | consul.address    | https://127.0.0.1:8501
      consul: {url: 'https://consul.local:8501'}                         | consul.address    | https://consul.local:8501
      consul: {}                                                         | consul.address    | http://127.0.0.1:8500
      consul: {host: 127.0.0.1:8500, cacert: ca.pem}                     | consul.ca-file    | ca.pem
      consul: {host: 127.0.0.1:8500, verify: false}                      | consul.ssl-verify | false
      """)
  void readsPatronisSettingAsPgbeaconsKey(String yaml, String key, String value) {
    PatroniFile.Result result = PatroniFile.read(yaml);
    assertEquals(List.of(), result.problems());
    assertEquals(Optional.of(value), result.get(key).map(PatroniFile.Value::value), result.values().toString());
  }

  @ParameterizedTest(name = "{0}: nothing for {1}")
  @CsvSource(delimiter = '|', textBlock = """
      restapi: {listen: a:8008, authentication: {username: u, password: p}} | patroni.username
      restapi: {listen: a:8008, cafile: ca.pem}                              | patroni.ca-file
      etcd3: {hosts: 127.0.0.1:2379}                                         | consul.address
      consul: {host: 127.0.0.1:8500, verify: true}                           | consul.ssl-verify
      {restapi: {listen: a:8008, certfile: s.pem}, ctl: {certfile: c.pem}}   | patroni.cert-file
      """)
  void leavesOutWhatPgbeaconWouldNotUse(String yaml, String key) {
    // basic auth only over https (Patroni never asks for it on a GET); no Consul settings from a Patroni on etcd.
    assertEquals(Optional.empty(), PatroniFile.read(yaml).get(key));
  }

  @ParameterizedTest
  @CsvSource(delimiter = '|', textBlock = """
      consul: {token: t}                                                      | consul.token-file
      restapi: {listen: a:8008, certfile: s.pem, authentication: {username: u, password: p}} | patroni.password-file
      """)
  void marksPasswordsAndTokensSecret(String yaml, String key) {
    assertTrue(PatroniFile.read(yaml).get(key).orElseThrow().secret());
  }

  @ParameterizedTest
  @CsvSource(delimiter = '|', textBlock = """
      'restapi: [unclosed'                                                 | is not valid YAML
      '- a list'                                                           | is not a Patroni configuration
      'restapi: {listen: a:8008, certfile: s.pem, verify_client: required}' | restapi.verify_client is required
      """)
  void saysWhyAFileCannotBeUsed(String yaml, String start) {
    List<String> problems = PatroniFile.read(yaml).problems();
    assertTrue(problems.size() == 1 && problems.get(0).startsWith(start), problems.toString());
  }
}
