# Consul ACL policy for consul-template rendering consul/haproxy.cfg.ctmpl (see consul/README.md).
#
#   consul acl policy create -name pgbeacon-consul-template -rules @consul/consul-template-acl-policy.hcl
#   consul acl token create -description "consul-template on <haproxy host>" -policy-name pgbeacon-consul-template
#
# The template calls GET /v1/health/service/<name>?passing (blocking queries) for the two services. Consul
# answers only the instances whose service AND node the token may read: without node:read the answer is empty
# and every backend would render without servers. Read only: consul-template writes nothing to Consul.
# Checked on Consul 1.8.7 with default_policy = "deny" (ConsulTemplateIT runs consul-template with this policy).
#
# If you renamed the services (PGBEACON_PRIMARY_SERVICE / PGBEACON_REPLICA_SERVICE), rename them here too.

service "patroni-primary" {
  policy = "read"
}

service "patroni-replica" {
  policy = "read"
}

# The nodes the services run on. To narrow it, list the database nodes' Consul node names instead:
#   node "pg1" { policy = "read" }
node_prefix "" {
  policy = "read"
}
