//! The server side of Raft RPCs: `POST /raft/{group}/append|vote|pre-vote|snapshot`.
//! Each request is handled in its own task by axum, so a slow group never
//! blocks another.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::routing::post;
use axum::{Json, Router};
use chronik::engine::RaftRpcHandler;
use chronik::{GroupId, TypeConfig};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};

use crate::client::{SnapshotRpc, SNAPSHOT_BYTES_MAX};

pub fn router<H: RaftRpcHandler>(handler: Arc<H>) -> Router {
    Router::new()
        .route("/raft/{group}/append", post(append::<H>))
        .route("/raft/{group}/vote", post(vote::<H>))
        .route("/raft/{group}/pre-vote", post(pre_vote::<H>))
        .route("/raft/{group}/snapshot", post(snapshot::<H>))
        .layer(DefaultBodyLimit::max(SNAPSHOT_BYTES_MAX * 4 / 3 + 4096))
        .with_state(handler)
}

async fn append<H: RaftRpcHandler>(
    State(h): State<Arc<H>>,
    Path(group): Path<u64>,
    Json(req): Json<AppendEntriesRequest<TypeConfig>>,
) -> Json<Result<AppendEntriesResponse<TypeConfig>, String>> {
    Json(h.append_entries(GroupId(group), req).await)
}

async fn vote<H: RaftRpcHandler>(
    State(h): State<Arc<H>>,
    Path(group): Path<u64>,
    Json(req): Json<VoteRequest<TypeConfig>>,
) -> Json<Result<VoteResponse<TypeConfig>, String>> {
    Json(h.vote(GroupId(group), req, false).await)
}

async fn pre_vote<H: RaftRpcHandler>(
    State(h): State<Arc<H>>,
    Path(group): Path<u64>,
    Json(req): Json<VoteRequest<TypeConfig>>,
) -> Json<Result<VoteResponse<TypeConfig>, String>> {
    Json(h.vote(GroupId(group), req, true).await)
}

async fn snapshot<H: RaftRpcHandler>(
    State(h): State<Arc<H>>,
    Path(group): Path<u64>,
    Json(req): Json<SnapshotRpc>,
) -> Json<Result<SnapshotResponse<TypeConfig>, String>> {
    Json(h.install_snapshot(GroupId(group), req.vote, req.meta, req.data.to_vec()).await)
}
