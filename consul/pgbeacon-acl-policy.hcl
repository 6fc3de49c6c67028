# Consul ACL policy for pgbeacon: what it needs, nothing more (see consul/README.md).
#
#   consul acl policy create -name pgbeacon -rules @consul/pgbeacon-acl-policy.hcl
#   consul acl token create -description "pgbeacon on <node>" -policy-name pgbeacon
#
# What pgbeacon calls on its local agent, and what each call needs:
#   PUT /v1/agent/service/register               service:write on the service's name
#   PUT /v1/agent/check/pass|warn|fail/<id>      service:write on the service the TTL check belongs to
#   PUT /v1/agent/service/deregister/<id>        service:write (consul.on-stop: deregister)
#   GET /v1/agent/services                       service:read (implied by service:write): at start, the old-form IDs
#                                                <service>-<node> of this node to deregister
#   GET /v1/kv/service/<scope>/leader?index=…    key:read (patroni.leader-key, a blocking query)
#   GET /v1/kv/service/<scope>/failover?index=…  key:read (switchover requests, beside the leader key)
# The agent syncs the services to the catalog with the token that registered them, and the node entry is the
# agent's own: no node or agent rules are needed. Checked on Consul 1.8.7 with default_policy = "deny".
#
# If you renamed the services (services.primary.name / services.replica.name), rename them here too.

service "patroni-primary" {
  policy = "write"
}

service "patroni-replica" {
  policy = "write"
}

# Patroni's keys under its default namespace "service/": read only (Patroni keeps no passwords in the DCS).
# With another Patroni namespace, change the prefix. To allow exactly one cluster, use instead
#   key "service/<scope>/leader"   { policy = "read" }
#   key "service/<scope>/failover" { policy = "read" }
# With patroni.leader-key: "off", this rule can go.
key_prefix "service/" {
  policy = "read"
}
