//! The server side of the cluster port:
//! - `POST /raft/batch`: Raft messages of many groups; each is handled in its
//!   own future, so a slow group never holds up another's answer computation;
//! - `POST /raft/{group}/snapshot`: one whole snapshot;
//! - `POST /cluster/ping/{node}`: status exchange (liveness, leader gossip);
//! - `POST /cluster/controller`: a metadata change forwarded to the controller.
//!
//! Every request names the node it is meant for; another node refuses it with
//! 409, so a stale address never reaches the wrong replica.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chronik::engine::RaftRpcHandler;
use chronik::liveness::NodeStatus;
use chronik::{GroupId, NodeId};

use crate::wire::*;

pub fn router<H: RaftRpcHandler>(handler: Arc<H>) -> Router {
    Router::new()
        .route("/raft/batch", post(batch::<H>))
        .route("/raft/{group}/snapshot", post(snapshot::<H>))
        .route("/cluster/ping/{node}", post(ping::<H>))
        .route("/cluster/controller", post(controller::<H>))
        .layer(DefaultBodyLimit::max(SNAPSHOT_BYTES_MAX * 4 / 3 + 4096))
        .with_state(handler)
}

fn wrong_node(me: NodeId, to: NodeId) -> Response {
    (StatusCode::CONFLICT, format!("this is node {me}, not node {to}")).into_response()
}

async fn batch<H: RaftRpcHandler>(State(h): State<Arc<H>>, Json(req): Json<BatchRequest>) -> Response {
    if req.to != h.node_id() {
        return wrong_node(h.node_id(), req.to);
    }
    let h = &h;
    let answers = futures::future::join_all(req.items.into_iter().map(|item| async move {
        let group = GroupId(item.group);
        match item.rpc {
            RaftRpc::Append(r) => h.append_entries(group, r).await.map(RaftReply::Append),
            RaftRpc::Vote(r) => h.vote(group, r, false).await.map(RaftReply::Vote),
            RaftRpc::PreVote(r) => h.vote(group, r, true).await.map(RaftReply::Vote),
            RaftRpc::TransferLeader(r) => h.transfer_leader(group, r).await.map(RaftReply::TransferLeader),
        }
    }))
    .await;
    Json(BatchResponse { items: answers }).into_response()
}

async fn snapshot<H: RaftRpcHandler>(State(h): State<Arc<H>>, Path(group): Path<u64>, Json(req): Json<SnapshotRpc>) -> Response {
    if req.to != h.node_id() {
        return wrong_node(h.node_id(), req.to);
    }
    tracing::info!(node_id = h.node_id(), group, bytes = req.data.len(), "installing snapshot");
    Json(h.install_snapshot(GroupId(group), req.vote, req.meta, req.data.to_vec()).await).into_response()
}

async fn ping<H: RaftRpcHandler>(State(h): State<Arc<H>>, Path(node): Path<NodeId>, Json(status): Json<NodeStatus>) -> Response {
    if node != h.node_id() {
        return wrong_node(h.node_id(), node);
    }
    Json(h.ping(status)).into_response()
}

async fn controller<H: RaftRpcHandler>(State(h): State<Arc<H>>, Json(req): Json<ControllerForward>) -> Response {
    if req.to != h.node_id() {
        return wrong_node(h.node_id(), req.to);
    }
    Json(h.controller_write(req.cmd).await).into_response()
}
