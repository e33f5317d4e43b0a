use chronik::PartitionStore;
use kafka_protocol::messages::find_coordinator_response::Coordinator as KCoordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use tracing::warn;

use crate::errors;
use crate::server::{Caller, Context};

/// Key type 0 is a consumer group; 1 (transactions) is not supported.
const KEY_TYPE_GROUP: i8 = 0;

/// (error, node, host, port, message) for one key.
async fn locate<S: PartitionStore>(ctx: &Context<S>, key: &str, key_type: i8, caller: &Caller) -> (i16, i32, String, i32, Option<String>) {
    let listener: &str = &caller.listener;
    let fail = |code: i16, msg: String| (code, -1, String::new(), -1, Some(msg));
    if key_type != KEY_TYPE_GROUP {
        return fail(errors::INVALID_REQUEST, format!("key type {key_type} is not supported: Chronik has no transactions"));
    }
    if !ctx.authz(caller).group(chronik::security::acl::Operation::Describe, key) {
        return fail(errors::GROUP_AUTHORIZATION_FAILED, "Group authorization failed.".into());
    }
    if let Err(e) = ctx.store.ensure_offsets_topic().await {
        warn!(group = %key, error = %e, "offsets topic not available");
        return fail(errors::COORDINATOR_NOT_AVAILABLE, e.to_string());
    }
    let view = match ctx.store.coordinator(key) {
        Ok(v) => v,
        Err(e) => return fail(errors::COORDINATOR_NOT_AVAILABLE, e.to_string()),
    };
    let Some(leader) = view.leader else {
        return fail(errors::COORDINATOR_NOT_AVAILABLE, format!("{} has no leader yet", view.tp));
    };
    let cluster = ctx.store.cluster_view(Some(&[]));
    match cluster.nodes.iter().find(|n| n.id == leader).map(|n| n.endpoint(listener)) {
        Some(Some((host, port))) => (errors::NONE, leader as i32, host, port, None),
        Some(None) => fail(errors::COORDINATOR_NOT_AVAILABLE, format!("node {leader} has no listener {listener} (yet)")),
        None => fail(errors::COORDINATOR_NOT_AVAILABLE, format!("node {leader} is not registered")),
    }
}

pub async fn handle<S: PartitionStore>(ctx: &Context<S>, req: FindCoordinatorRequest, version: i16, caller: &Caller) -> FindCoordinatorResponse {
    let mut resp = FindCoordinatorResponse::default();
    if version >= 4 {
        for key in req.coordinator_keys {
            let (code, node, host, port, msg) = locate(ctx, &key, req.key_type, caller).await;
            resp.coordinators.push(
                KCoordinator::default()
                    .with_key(key)
                    .with_node_id(BrokerId(node))
                    .with_host(super::str(host))
                    .with_port(port)
                    .with_error_code(code)
                    .with_error_message(msg.map(super::str)),
            );
        }
        return resp;
    }
    let (code, node, host, port, msg) = locate(ctx, &req.key, req.key_type, caller).await;
    resp.error_code = code;
    resp.node_id = BrokerId(node);
    resp.host = super::str(host);
    resp.port = port;
    if version >= 1 {
        resp.error_message = msg.map(super::str);
    }
    resp
}
