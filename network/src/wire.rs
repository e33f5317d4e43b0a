//! What travels between nodes. Raft messages of many groups to one peer ride
//! in one [`BatchRequest`]; the answers come back in the same order.

use chronik::{GroupId, NodeAddr, NodeId, SnapshotMeta, TypeConfig};
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

/// One piece of a snapshot (sent on its own, never batched). The pieces of
/// one snapshot go in order, each after the previous one was taken; the
/// receiver installs it when the last has come.
#[derive(Serialize, Deserialize)]
pub struct SnapshotChunk {
    pub to: NodeId,
    pub vote: VoteOf<TypeConfig>,
    pub meta: SnapshotMeta,
    /// Where this piece starts in the snapshot, and the snapshot's length.
    pub offset: u64,
    pub total: u64,
    #[serde(with = "chronik::serde_b64")]
    pub data: bytes::Bytes,
}

/// The answer to a chunk: None until the last, then the install's.
pub type SnapshotChunkReply = Result<Option<openraft::raft::SnapshotResponse<TypeConfig>>, String>;

/// A request to the node leading `group` to hand it to `leader`.
#[derive(Serialize, Deserialize)]
pub struct MoveLeader {
    pub to: NodeId,
    pub group: GroupId,
    pub leader: NodeId,
}

/// A node's request to join the cluster (`POST /cluster/join`).
#[derive(Serialize, Deserialize)]
pub struct JoinRequest {
    pub node: NodeId,
    pub addr: NodeAddr,
    #[serde(default)]
    pub rack: Option<String>,
}

#[derive(Serialize, Deserialize)]
pub struct ControllerForward {
    pub to: NodeId,
    pub cmd: chronik::cluster::metadata::ControllerCommand,
}

/// Largest snapshot sent or received; also the most a node holds of
/// snapshots being received, all groups together.
pub const SNAPSHOT_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Bytes of snapshot in one request.
pub const SNAPSHOT_CHUNK_BYTES: usize = 4 * 1024 * 1024;

/// Largest request body the cluster port reads (base64 JSON of the largest
/// batch or snapshot chunk).
pub const REQUEST_BODY_BYTES_MAX: usize = (if BATCH_BYTES_MAX > SNAPSHOT_CHUNK_BYTES { BATCH_BYTES_MAX } else { SNAPSHOT_CHUNK_BYTES }) * 4 / 3 + 64 * 1024;

/// Bound on one batch request body (entries are sent as base64 JSON).
pub const BATCH_BYTES_MAX: usize = 16 * 1024 * 1024;
