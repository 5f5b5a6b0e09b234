//! The ACL check every handler makes before it acts (issue 17): the
//! request's principal and host against the ACLs of this shard's metadata
//! snapshot (no lock; the snapshot is immutable), with Kafka's
//! StandardAuthorizer semantics (`replication::metadata::acl`). Without
//! an authorizer configured everything is allowed, as in Kafka.

use replication::metadata::acl::{self, CLUSTER_NAME, resource};

use super::Shard;
use crate::frame::Request;

impl Shard {
    /// Whether an authorizer is configured.
    pub fn authorizing(&self) -> bool {
        self.settings.authorizer.is_some()
    }

    /// Whether `request`'s principal may do `op` (Kafka's AclOperation) on
    /// the resource of `resource_type` named `name`.
    pub fn allowed(&self, request: &Request, op: i8, resource_type: i8, name: &str) -> bool {
        let host = request.client_host.trim_start_matches('/');
        self.allowed_as(&request.principal, host, op, resource_type, name)
    }

    /// Whether `principal` connecting from `host` (an address, no `/`) may
    /// do `op` on the resource of `resource_type` named `name`: the check
    /// of a request that is not a Kafka one (the HTTP API's).
    pub fn allowed_as(
        &self,
        principal: &str,
        host: &str,
        op: i8,
        resource_type: i8,
        name: &str,
    ) -> bool {
        let Some(config) = &self.settings.authorizer else {
            return true;
        };
        // A super user skips the lookups of the ACLs that could apply.
        let allowed = config.is_super_user(principal)
            || acl::authorize(
                config,
                self.metadata().acls_for(resource_type, name).into_iter(),
                principal,
                host,
                op,
                resource_type,
                name,
            );
        if !allowed {
            tracing::debug!(
                principal,
                host,
                op,
                resource_type,
                name,
                "denied by the ACLs"
            );
        }
        allowed
    }

    /// Whether `request`'s principal may do `op` on some resource of
    /// `resource_type` (Write on any topic lets an idempotent producer
    /// have a producer id, KIP-679).
    pub fn allowed_any(&self, request: &Request, op: i8, resource_type: i8) -> bool {
        let Some(config) = &self.settings.authorizer else {
            return true;
        };
        let metadata = self.metadata();
        let acls: Vec<_> = metadata.acls().collect();
        acl::authorize_any(
            config,
            acls.iter().copied(),
            &request.principal,
            request.client_host.trim_start_matches('/'),
            op,
            resource_type,
        )
    }

    pub fn allowed_topic(&self, request: &Request, op: i8, topic: &str) -> bool {
        self.allowed(request, op, resource::TOPIC, topic)
    }

    pub fn allowed_group(&self, request: &Request, op: i8, group: &str) -> bool {
        self.allowed(request, op, resource::GROUP, group)
    }

    pub fn allowed_transactional_id(&self, request: &Request, op: i8, id: &str) -> bool {
        self.allowed(request, op, resource::TRANSACTIONAL_ID, id)
    }

    pub fn allowed_cluster(&self, request: &Request, op: i8) -> bool {
        self.allowed(request, op, resource::CLUSTER, CLUSTER_NAME)
    }
}
