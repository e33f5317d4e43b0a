//! What a request's principal may do, asked by the handlers as Kafka's
//! authorizer is asked (`chronik::security::acl` decides). Without an
//! authorizer everything is allowed and nothing is looked up.

use std::sync::Arc;

use chronik::metrics::DeniedLabels;
use chronik::security::acl::{AuthorizerSettings, Operation, ResourceType, CLUSTER_NAME};
use chronik::security::SecurityState;
use chronik::PartitionStore;

use crate::server::{Caller, Context};

/// One request's view of the authorizer.
pub struct Authz<'a> {
    on: Option<(&'a AuthorizerSettings, Arc<SecurityState>)>,
    caller: &'a Caller,
    host: String,
    metrics: &'a chronik::metrics::Metrics,
}

impl<S: PartitionStore> Context<S> {
    pub fn authz<'a>(&'a self, caller: &'a Caller) -> Authz<'a> {
        let on = self.cfg.security.authorizer.as_ref().map(|a| (a, self.store.security()));
        Authz { on, caller, host: caller.peer.ip().to_string(), metrics: &self.metrics }
    }
}

impl Authz<'_> {
    /// Whether an authorizer is on at all.
    pub fn enabled(&self) -> bool {
        self.on.is_some()
    }

    /// Whether the principal may do `op` on the resource; a denial is
    /// counted (`chronik_authorization_denied_total`).
    pub fn allows(&self, op: Operation, rt: ResourceType, name: &str) -> bool {
        let Some((settings, state)) = &self.on else {
            return true;
        };
        let ok = state.acls.authorize(settings, &self.caller.principal, &self.host, op, rt, name);
        if !ok {
            self.metrics
                .authorization_denied
                .get_or_create(&DeniedLabels { node_id: self.metrics.node_id.clone(), api: self.caller.api, resource_type: rt.text() })
                .inc();
            tracing::debug!(principal = %self.caller.principal, host = %self.host, api = self.caller.api, operation = %op, resource = %rt, name, "denied");
        }
        ok
    }

    pub fn topic(&self, op: Operation, name: &str) -> bool {
        self.allows(op, ResourceType::Topic, name)
    }

    pub fn group(&self, op: Operation, name: &str) -> bool {
        self.allows(op, ResourceType::Group, name)
    }

    pub fn cluster(&self, op: Operation) -> bool {
        self.allows(op, ResourceType::Cluster, CLUSTER_NAME)
    }

    /// Whether the principal may do `op` on some resource of type `rt`
    /// (idempotent producers: WRITE on any topic, KIP-679).
    pub fn any(&self, op: Operation, rt: ResourceType) -> bool {
        let Some((settings, state)) = &self.on else {
            return true;
        };
        state.acls.authorize_any(settings, &self.caller.principal, &self.host, op, rt)
    }

    /// Kafka's authorized-operations bit set of a resource (Metadata,
    /// DescribeGroups, DescribeCluster with include_*_authorized_operations).
    pub fn operations(&self, rt: ResourceType, name: &str) -> i32 {
        use Operation::*;
        let ops: &[Operation] = match rt {
            ResourceType::Topic => &[Read, Write, Create, Delete, Alter, Describe, DescribeConfigs, AlterConfigs],
            ResourceType::Group => &[Read, Delete, Describe],
            ResourceType::Cluster => &[Create, Alter, Describe, ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite],
            _ => &[],
        };
        let Some((settings, state)) = &self.on else {
            return ops.iter().fold(0, |acc, op| acc | 1 << op.code());
        };
        ops.iter().filter(|op| state.acls.authorize(settings, &self.caller.principal, &self.host, **op, rt, name)).fold(0, |acc, op| acc | 1 << op.code())
    }
}
