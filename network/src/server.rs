//! The server side of the cluster port:
//! - `POST /raft/batch`: Raft messages of many groups; each is handled in its
//!   own future, so a slow group never holds up another's answer computation;
//! - `POST /raft/{group}/snapshot`: one piece of a snapshot, installed once
//!   the last has come (see [`SnapshotChunk`]);
//! - `POST /cluster/ping/{node}`: status exchange (liveness, leader gossip);
//! - `POST /cluster/controller`: a metadata change forwarded to the controller.
//!
//! Every request names the node it is meant for; another node refuses it with
//! 409, so a stale address never reaches the wrong replica.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::Extension;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chronik::raft::engine::RaftRpcHandler;
use chronik::raft::liveness::NodeStatus;
use chronik::{GroupId, NodeId};

use crate::wire::*;

pub fn router<H: RaftRpcHandler>(handler: Arc<H>) -> Router {
    Router::new()
        .route("/raft/batch", post(batch::<H>))
        .route("/raft/{group}/snapshot", post(snapshot::<H>))
        .route("/cluster/ping/{node}", post(ping::<H>))
        .route("/cluster/controller", post(controller::<H>))
        .route("/cluster/join", post(join::<H>))
        .route("/cluster/move-leader", post(move_leader::<H>))
        .layer(DefaultBodyLimit::max(REQUEST_BODY_BYTES_MAX))
        .layer(Extension(Arc::new(Assemblies::default())))
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

/// Snapshots being received, by group; together at most SNAPSHOT_BYTES_MAX.
#[derive(Default)]
struct Assemblies(Mutex<HashMap<u64, Assembly>>);

struct Assembly {
    last_log_id: Option<chronik::LogId>,
    total: u64,
    data: Vec<u8>,
    touched: Instant,
}

/// A snapshot whose sender went quiet this long is dropped.
const ASSEMBLY_IDLE: Duration = Duration::from_secs(60);

impl Assemblies {
    /// Adds a chunk; the whole snapshot once this was its last piece.
    fn add(&self, group: u64, c: &SnapshotChunk) -> Result<Option<Vec<u8>>, String> {
        let mut all = self.0.lock().unwrap();
        all.retain(|_, a| a.touched.elapsed() < ASSEMBLY_IDLE);
        if c.offset == 0 {
            all.remove(&group);
            let held: u64 = all.values().map(|a| a.total).sum();
            if c.total as usize > SNAPSHOT_BYTES_MAX || held + c.total > SNAPSHOT_BYTES_MAX as u64 {
                return Err(format!("a snapshot of {} bytes does not fit: {held} bytes of snapshots are being received, of {SNAPSHOT_BYTES_MAX}", c.total));
            }
            let data = Vec::with_capacity(c.total as usize);
            all.insert(group, Assembly { last_log_id: c.meta.last_log_id, total: c.total, data, touched: Instant::now() });
        }
        let a = all.get_mut(&group).ok_or_else(|| format!("a chunk at byte {} of a snapshot whose start never came", c.offset))?;
        if a.last_log_id != c.meta.last_log_id || a.total != c.total || a.data.len() as u64 != c.offset || c.offset + c.data.len() as u64 > c.total {
            all.remove(&group);
            return Err(format!("chunk at byte {} of {} does not follow the {} bytes received; start again", c.offset, c.total, c.offset));
        }
        a.data.extend_from_slice(&c.data);
        a.touched = Instant::now();
        if a.data.len() as u64 == a.total {
            return Ok(all.remove(&group).map(|a| a.data));
        }
        Ok(None)
    }
}

async fn snapshot<H: RaftRpcHandler>(
    State(h): State<Arc<H>>,
    Extension(assemblies): Extension<Arc<Assemblies>>,
    Path(group): Path<u64>,
    Json(c): Json<SnapshotChunk>,
) -> Response {
    if c.to != h.node_id() {
        return wrong_node(h.node_id(), c.to);
    }
    let reply: SnapshotChunkReply = match assemblies.add(group, &c) {
        Err(e) => {
            tracing::warn!(node_id = h.node_id(), group, offset = c.offset, total = c.total, error = %e, "snapshot chunk refused");
            Err(e)
        }
        Ok(None) => Ok(None),
        Ok(Some(data)) => {
            tracing::info!(node_id = h.node_id(), group, bytes = data.len(), last = ?c.meta.last_log_id, "installing received snapshot");
            h.install_snapshot(GroupId(group), c.vote, c.meta, data).await.map(Some)
        }
    };
    Json(reply).into_response()
}

async fn ping<H: RaftRpcHandler>(State(h): State<Arc<H>>, Path(node): Path<NodeId>, Json(status): Json<NodeStatus>) -> Response {
    if node != h.node_id() {
        return wrong_node(h.node_id(), node);
    }
    Json(h.ping(status)).into_response()
}

async fn move_leader<H: RaftRpcHandler>(State(h): State<Arc<H>>, Json(req): Json<MoveLeader>) -> Response {
    if req.to != h.node_id() {
        return wrong_node(h.node_id(), req.to);
    }
    Json(h.move_leader(req.group, req.leader).await).into_response()
}

async fn controller<H: RaftRpcHandler>(State(h): State<Arc<H>>, Json(req): Json<ControllerForward>) -> Response {
    if req.to != h.node_id() {
        return wrong_node(h.node_id(), req.to);
    }
    Json(h.controller_write(req.cmd).await).into_response()
}

async fn join<H: RaftRpcHandler>(State(h): State<Arc<H>>, Json(req): Json<JoinRequest>) -> Response {
    Json(h.join(req.node, req.addr, req.rack).await).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(offset: u64, total: u64, data: &'static [u8], index: u64) -> SnapshotChunk {
        SnapshotChunk {
            to: 1,
            vote: openraft::Vote::new(1, 1),
            meta: chronik::SnapshotMeta { last_log_id: Some(openraft::testing::log_id::<chronik::TypeConfig>(1, 1, index)), ..Default::default() },
            offset,
            total,
            data: bytes::Bytes::from_static(data),
        }
    }

    #[test]
    fn snapshots_are_assembled_in_order_and_within_the_bound() {
        let a = Assemblies::default();
        assert_eq!(a.add(7, &chunk(0, 6, b"abc", 5)).unwrap(), None);
        assert_eq!(a.add(7, &chunk(3, 6, b"def", 5)).unwrap(), Some(b"abcdef".to_vec()));
        assert!(a.0.lock().unwrap().is_empty(), "nothing is held once installed");
        // A piece out of place drops what was received; the sender starts again.
        a.add(7, &chunk(0, 6, b"abc", 5)).unwrap();
        assert!(a.add(7, &chunk(4, 6, b"ef", 5)).is_err());
        assert!(a.add(7, &chunk(3, 6, b"def", 5)).is_err(), "its start is gone");
        // A piece of another snapshot (a newer one) is refused too.
        a.add(7, &chunk(0, 6, b"abc", 5)).unwrap();
        assert!(a.add(7, &chunk(3, 6, b"def", 9)).is_err());
        // The bound holds over all groups together.
        let big = SNAPSHOT_BYTES_MAX as u64 / 2 + 1;
        a.add(1, &chunk(0, big, b"x", 5)).unwrap();
        assert!(a.add(2, &chunk(0, big, b"x", 5)).is_err());
        assert!(a.add(3, &chunk(0, SNAPSHOT_BYTES_MAX as u64 + 1, b"x", 5)).is_err());
        assert_eq!(a.add(4, &chunk(0, 0, b"", 5)).unwrap(), Some(vec![]), "an empty snapshot is one empty piece");
    }
}
