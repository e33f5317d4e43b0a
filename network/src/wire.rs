//! What travels between nodes. Raft messages of many groups to one peer ride
//! in one [`BatchRequest`]; the answers come back in the same order.

use chronik::{NodeId, SnapshotMeta, TypeConfig};
use openraft::alias::VoteOf;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, TransferLeaderRequest, TransferLeaderResponse, VoteRequest, VoteResponse};
use serde::{Deserialize, Serialize};

/// One Raft RPC addressed to one group.
#[derive(Serialize, Deserialize)]
pub enum RaftRpc {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<TypeConfig>),
    PreVote(VoteRequest<TypeConfig>),
    /// The leader hands leadership to a named replica.
    TransferLeader(TransferLeaderRequest<TypeConfig>),
}

#[derive(Serialize, Deserialize)]
pub enum RaftReply {
    Append(AppendEntriesResponse<TypeConfig>),
    Vote(VoteResponse<TypeConfig>),
    TransferLeader(TransferLeaderResponse<TypeConfig>),
}

#[derive(Serialize, Deserialize)]
pub struct BatchItem {
    pub group: u64,
    pub rpc: RaftRpc,
}

#[derive(Serialize, Deserialize)]
pub struct BatchRequest {
    pub from: NodeId,
    /// The node the sender meant to reach: a node answering for another id
    /// (a stale address, a port reused) refuses the whole batch.
    pub to: NodeId,
    pub items: Vec<BatchItem>,
}

#[derive(Serialize, Deserialize)]
pub struct BatchResponse {
    /// One answer per item, in order; an error is the group's own
    /// (for example not running on that node).
    pub items: Vec<Result<RaftReply, String>>,
}

/// The snapshot request body (sent on its own, never batched).
#[derive(Serialize, Deserialize)]
pub struct SnapshotRpc {
    pub to: NodeId,
    pub vote: VoteOf<TypeConfig>,
    pub meta: SnapshotMeta,
    #[serde(with = "chronik::serde_b64")]
    pub data: bytes::Bytes,
}

#[derive(Serialize, Deserialize)]
pub struct ControllerForward {
    pub to: NodeId,
    pub cmd: chronik::metadata::ControllerCommand,
}

/// Largest snapshot sent in one request.
pub const SNAPSHOT_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Bound on one batch request body (entries are sent as base64 JSON).
pub const BATCH_BYTES_MAX: usize = 16 * 1024 * 1024;
