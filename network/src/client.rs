//! The client side of the Raft transport.
//!
//! One reqwest client per node (one connection pool per peer, shared by all
//! groups). Per peer there are two lanes, each a queue drained by one task:
//! - the control lane carries votes and heartbeats (appends without entries);
//! - the data lane carries appends with entries.
//!
//! A lane sends whatever is queued as one `POST /raft/batch` (bounded in items
//! and bytes), with at most [`LANE_IN_FLIGHT`] requests outstanding; while
//! they are, new messages queue up and leave together in the next request. So
//! the heartbeats of a thousand groups to one peer are one request, and they
//! never wait behind a large append (each lane uses its own connections).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chronik::cluster::metadata::{ControllerCommand, ControllerError};
use chronik::raft::engine::Transport;
use chronik::raft::liveness::NodeStatus;
use chronik::{Command, GroupId, NodeAddr, NodeId, SnapshotData, TypeConfig};
use openraft::alias::{SnapshotOf, VoteOf};
use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest, TransferLeaderResponse, VoteRequest, VoteResponse};
use openraft::{EntryPayload, RaftNetworkV2};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::wire::*;

/// Requests a lane may have outstanding to one peer.
pub const LANE_IN_FLIGHT: usize = 2;
/// Most messages in one batch request.
pub const BATCH_ITEMS_MAX: usize = 4096;
/// How long a batch request may take before all its messages fail.
const DATA_TIMEOUT: Duration = Duration::from_secs(10);
const CONTROL_TIMEOUT: Duration = Duration::from_secs(2);
/// Shortest wait for the answer to an append with entries, and to a vote or heartbeat.
const DATA_DEADLINE_FLOOR: Duration = Duration::from_secs(3);
const CONTROL_DEADLINE_FLOOR: Duration = Duration::from_secs(1);
/// A serialized entry's size when it is not record data (a guess; only
/// used to bound batches).
const SMALL_ENTRY_BYTES: usize = 128;

#[derive(Clone)]
pub struct HttpTransport {
    inner: Arc<Inner>,
}

struct Inner {
    me: NodeId,
    client: reqwest::Client,
    /// replication_append_bytes_max: record bytes in one AppendEntries.
    append_bytes_max: usize,
    metrics: Arc<chronik::metrics::Metrics>,
    /// "http", or "https" with cluster TLS.
    scheme: &'static str,
    /// Keyed by id and address: a node that moves gets fresh lanes.
    peers: Mutex<HashMap<(NodeId, String), Arc<Peer>>>,
}

struct Peer {
    id: NodeId,
    base: String,
    control: mpsc::UnboundedSender<Pending>,
    data: mpsc::UnboundedSender<Pending>,
}

struct Pending {
    group: u64,
    rpc: RaftRpc,
    bytes: usize,
    reply: oneshot::Sender<Result<RaftReply, String>>,
}

impl HttpTransport {
    /// `local_ip`: the address outgoing connections leave from (the node's
    /// own, when it listens on a specific one), so that peers and firewall
    /// rules see which node is talking.
    /// `peer_http`: the cluster secret and TLS towards peers (`crate::peers`).
    pub fn new(me: NodeId, local_ip: Option<std::net::IpAddr>, append_bytes_max: usize, metrics: Arc<chronik::metrics::Metrics>,
        peer_http: &crate::peers::PeerHttp,
    ) -> Self {
        let client = peer_http
            .client_builder()
            .pool_max_idle_per_host(16)
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_millis(500))
            .local_address(local_ip)
            .build()
            .expect("reqwest client");
        let scheme = peer_http.scheme();
        Self { inner: Arc::new(Inner { me, client, append_bytes_max, metrics, scheme, peers: Mutex::new(HashMap::new()) }) }
    }

    fn peer(&self, id: NodeId, addr: &NodeAddr) -> Arc<Peer> {
        let mut peers = self.inner.peers.lock().unwrap();
        peers
            .entry((id, addr.raft_addr.clone()))
            .or_insert_with(|| {
                let base = format!("{}://{}", self.inner.scheme, addr.raft_addr);
                let (control, control_rx) = mpsc::unbounded_channel();
                let (data, data_rx) = mpsc::unbounded_channel();
                let peer = Arc::new(Peer { id, base, control, data });
                tokio::spawn(lane(self.inner.clone(), peer.id, peer.base.clone(), control_rx, CONTROL_TIMEOUT));
                tokio::spawn(lane(self.inner.clone(), peer.id, peer.base.clone(), data_rx, DATA_TIMEOUT));
                peer
            })
            .clone()
    }

    async fn post<Req: Serialize, Resp: DeserializeOwned>(&self, url: String, req: &Req, timeout: Duration) -> Result<Resp, String> {
        let resp = self.inner.client.post(&url).json(req).timeout(timeout).send().await.map_err(|e| e.to_string())?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            return Err(format!("{url}: HTTP {status}: {body}"));
        }
        resp.json().await.map_err(|e| format!("{url}: bad answer: {e}"))
    }
}

/// Drains one lane of one peer into batch requests.
async fn lane(inner: Arc<Inner>, peer: NodeId, base: String, mut rx: mpsc::UnboundedReceiver<Pending>, timeout: Duration) {
    let in_flight = Arc::new(Semaphore::new(LANE_IN_FLIGHT));
    let url = format!("{base}/raft/batch");
    while let Some(first) = rx.recv().await {
        let Ok(permit) = in_flight.clone().acquire_owned().await else { return;
        };
        let mut bytes = first.bytes;
        let mut batch = vec![first];
        while batch.len() < BATCH_ITEMS_MAX && bytes < BATCH_BYTES_MAX {
            match rx.try_recv() {
                Ok(p) => {
                    bytes += p.bytes;
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        // Callers that gave up (deadline passed) need no answer.
        batch.retain(|p| !p.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let (inner, url) = (inner.clone(), url.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let mut replies = Vec::with_capacity(batch.len());
            let items = batch
                .into_iter()
                .map(|p| {
                    replies.push(p.reply);
                    BatchItem { group: p.group, rpc: p.rpc }
                })
                .collect();
            let req = BatchRequest { from: inner.me, to: peer, items };
            let transport = HttpTransport { inner };
            let result: Result<BatchResponse, String> = transport.post(url, &req, timeout).await;
            match result {
                Ok(resp) if resp.items.len() == replies.len() => {
                    for (reply, item) in replies.into_iter().zip(resp.items) {
                        let _ = reply.send(item);
                    }
                }
                Ok(resp) => {
                    let e = format!("node {peer} answered {} of {} messages", resp.items.len(), replies.len());
                    replies.into_iter().for_each(|r| drop(r.send(Err(e.clone()))));
                }
                Err(e) => replies.into_iter().for_each(|r| drop(r.send(Err(format!("node {peer}: {e}"))))),
            }
        });
    }
}

impl Transport for HttpTransport {
    type Factory = GroupNetwork;

    fn factory(&self, group: GroupId) -> GroupNetwork {
        GroupNetwork { transport: self.clone(), group }
    }

    fn ping(&self, peer: NodeId, addr: &NodeAddr, status: NodeStatus) -> impl Future<Output = Result<NodeStatus, String>> + Send {
        let url = format!("{}://{}/cluster/ping/{peer}", self.inner.scheme, addr.raft_addr);
        async move { self.post(url, &status, Duration::from_secs(1)).await }
    }

    fn move_leader(&self, peer: NodeId, addr: &NodeAddr, group: GroupId, to: NodeId) -> impl Future<Output = Result<(), String>> + Send {
        let url = format!("{}://{}/cluster/move-leader", self.inner.scheme, addr.raft_addr);
        async move {
            let r: Result<(), String> = self.post(url, &MoveLeader { to: peer, group, leader: to }, Duration::from_secs(10)).await?;
            r
        }
    }

    fn forward_controller(
        &self,
        peer: NodeId,
        addr: &NodeAddr,
        cmd: ControllerCommand,
    ) -> impl Future<Output = Result<Result<(), ControllerError>, String>> + Send {
        let url = format!("{}://{}/cluster/controller", self.inner.scheme, addr.raft_addr);
        async move {
            let r: Result<Result<(), ControllerError>, String> =
                self.post(url, &ControllerForward { to: peer, cmd }, Duration::from_secs(15)).await?;
            r
        }
    }

    fn join(&self, addr: &str, node: NodeId, node_addr: NodeAddr, rack: Option<String>) -> impl Future<Output = Result<Result<(), ControllerError>, String>> + Send {
        let url = format!("{}://{addr}/cluster/join", self.inner.scheme);
        async move { self.post(url, &JoinRequest { node, addr: node_addr, rack }, Duration::from_secs(15)).await }
    }
}

pub struct GroupNetwork {
    transport: HttpTransport,
    group: GroupId,
}

impl RaftNetworkFactory<TypeConfig> for GroupNetwork {
    type Network = PeerClient;
    async fn new_client(&mut self, target: NodeId, node: &NodeAddr) -> PeerClient {
        let peer = self.transport.peer(target, node);
        PeerClient { transport: self.transport.clone(), peer, group: self.group }
    }
}

/// One group's view of one peer: its messages go into the peer's lanes.
pub struct PeerClient {
    transport: HttpTransport,
    peer: Arc<Peer>,
    group: GroupId,
}

fn unreachable(msg: String) -> RPCError<TypeConfig> {
    // Unreachable makes openraft back off instead of retrying hot.
    RPCError::Unreachable(Unreachable::new(&std::io::Error::other(msg)))
}

impl PeerClient {
    async fn call(&self, rpc: RaftRpc, option: &RPCOption) -> Result<RaftReply, RPCError<TypeConfig>> {
        // Openraft sets an append's deadline to the heartbeat interval. On a
        // loaded node a batch of appends can take longer than that, and a
        // timed-out append is resent after a backoff, which only adds load:
        // give each lane a floor.
        let (lane, bytes, floor) = match &rpc {
            RaftRpc::Append(req) if !req.entries.is_empty() => (&self.peer.data, entries_bytes(req), DATA_DEADLINE_FLOOR),
            _ => (&self.peer.control, SMALL_ENTRY_BYTES, CONTROL_DEADLINE_FLOOR),
        };
        let deadline = option.hard_ttl().max(floor);
        let (reply, rx) = oneshot::channel();
        let what = rpc_name(&rpc);
        lane.send(Pending { group: self.group.0, rpc, bytes, reply })
            .map_err(|_| unreachable(format!("transport to node {} is closed", self.peer.id)))?;
        match tokio::time::timeout(deadline, rx).await {
            Ok(Ok(Ok(r))) => Ok(r),
            Ok(Ok(Err(e))) => Err(unreachable(format!("{what} for group {} to node {}: {e}", self.group, self.peer.id))),
            Ok(Err(_)) => Err(unreachable(format!("{what} for group {} to node {}: dropped", self.group, self.peer.id))),
            Err(_) => Err(unreachable(format!("{what} for group {} to node {}: no answer within {deadline:?}", self.group, self.peer.id))),
        }
    }
}

fn rpc_name(rpc: &RaftRpc) -> &'static str {
    match rpc {
        RaftRpc::Append(r) if r.entries.is_empty() => "heartbeat",
        RaftRpc::Append(_) => "append",
        RaftRpc::Vote(_) => "vote",
        RaftRpc::PreVote(_) => "pre-vote",
        RaftRpc::TransferLeader(_) => "transfer-leader",
    }
}

/// Record bytes of an entry (what bounds a request; other entries are small).
fn record_bytes(e: &chronik::Entry) -> usize {
    match &e.payload {
        EntryPayload::Normal(Command::Append { batch, .. }) => batch.len(),
        _ => 0,
    }
}

/// How many of `entries` to send: those within `bytes_max` of record data,
/// and always at least one.
fn prefix_within(entries: &[chronik::Entry], bytes_max: usize) -> usize {
    let mut total = 0usize;
    for (i, e) in entries.iter().enumerate() {
        total += record_bytes(e);
        if total > bytes_max {
            return i.max(1);
        }
    }
    entries.len()
}

fn entries_bytes(req: &AppendEntriesRequest<TypeConfig>) -> usize {
    req.entries
        .iter()
        .map(|e| match &e.payload {
            EntryPayload::Normal(Command::Append { batch, .. }) => batch.len() * 4 / 3 + SMALL_ENTRY_BYTES,
            _ => SMALL_ENTRY_BYTES,
        })
        .sum()
}

fn mismatch(what: &str) -> RPCError<TypeConfig> {
    RPCError::Network(NetworkError::new(&std::io::Error::other(format!("peer answered a {what} with the wrong kind of reply"))))
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = SnapshotData;

    /// Sends at most `append_bytes_max` of record data: a longer run of
    /// entries (a follower catching up) is cut after the entry that reaches
    /// the bound, and a success then reports how far it got
    /// (`PartialSuccess`), so openraft sends the rest next.
    async fn append_entries(
        &mut self,
        mut rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let cut = prefix_within(&rpc.entries, self.transport.inner.append_bytes_max);
        let partial = (cut < rpc.entries.len()).then(|| {
            self.transport.inner.metrics.limit_hit("replication_append_bytes_max");
            rpc.entries.truncate(cut);
            rpc.entries.last().map(|e| e.log_id)
        });
        match self.call(RaftRpc::Append(rpc), &option).await? {
            RaftReply::Append(AppendEntriesResponse::Success) if partial.is_some() => Ok(AppendEntriesResponse::PartialSuccess(partial.flatten())),
            RaftReply::Append(r) => Ok(r),
            _ => Err(mismatch("append")),
        }
    }

    async fn vote(&mut self, rpc: VoteRequest<TypeConfig>, option: RPCOption) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(RaftRpc::Vote(rpc), &option).await? {
            RaftReply::Vote(r) => Ok(r),
            _ => Err(mismatch("vote")),
        }
    }

    async fn pre_vote(&mut self, rpc: VoteRequest<TypeConfig>, option: RPCOption) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(RaftRpc::PreVote(rpc), &option).await? {
            RaftReply::Vote(r) => Ok(r),
            _ => Err(mismatch("pre-vote")),
        }
    }

    async fn transfer_leader(
        &mut self,
        rpc: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(RaftRpc::TransferLeader(rpc), &option).await? {
            RaftReply::TransferLeader(r) => Ok(r),
            _ => Err(mismatch("transfer-leader")),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<TypeConfig>,
        snapshot: SnapshotOf<TypeConfig, SnapshotData>,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let data = bytes::Bytes::from(snapshot.snapshot.into_inner());
        let (group, peer) = (self.group, self.peer.id);
        let unreachable = |e: String| StreamingError::Unreachable(Unreachable::new(&std::io::Error::other(format!("snapshot of group {group} to node {peer}: {e}"))));
        if data.len() > SNAPSHOT_BYTES_MAX {
            self.transport.inner.metrics.limit_hit("snapshot_bytes_max");
            return Err(unreachable(format!("{} bytes, over the bound of {SNAPSHOT_BYTES_MAX}", data.len())));
        }
        let chunks = data.len().div_ceil(SNAPSHOT_CHUNK_BYTES).max(1);
        tracing::info!(group = %group, peer, bytes = data.len(), chunks, last = ?snapshot.meta.last_log_id, "sending snapshot");
        let url = format!("{}/raft/{}/snapshot", self.peer.base, group.0);
        let send = async {
            let mut offset = 0usize;
            loop {
                let end = (offset + SNAPSHOT_CHUNK_BYTES).min(data.len());
                let chunk = SnapshotChunk {
                    to: peer,
                    vote: vote.clone(),
                    meta: snapshot.meta.clone(),
                    offset: offset as u64,
                    total: data.len() as u64,
                    data: data.slice(offset..end),
                };
                match self.transport.post::<_, SnapshotChunkReply>(url.clone(), &chunk, option.hard_ttl()).await {
                    Ok(Ok(Some(resp))) if end == data.len() => return Ok(resp),
                    Ok(Ok(None)) if end < data.len() => offset = end,
                    Ok(Ok(_)) => return Err(unreachable(format!("the receiver lost track at byte {offset} of {}", data.len()))),
                    Ok(Err(e)) | Err(e) => return Err(unreachable(e)),
                }
            }
        };
        tokio::select! {
            r = send => r,
            closed = cancel => Err(StreamingError::Closed(closed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, bytes: usize) -> chronik::Entry {
        use openraft::entry::RaftEntry;
        chronik::Entry::new_normal(openraft::testing::log_id::<TypeConfig>(1, 1, index), Command::Append { batch: vec![0u8; bytes].into(), token: 0 })
    }

    #[test]
    fn appends_are_cut_at_the_byte_bound_but_carry_one_entry_at_least() {
        let es: Vec<_> = (1..=10).map(|i| entry(i, 1 << 20)).collect();
        assert_eq!(prefix_within(&es, 8 << 20), 8);
        assert_eq!(prefix_within(&es, 100 << 20), 10);
        assert_eq!(prefix_within(&es, 1000), 1, "one entry over the bound still goes alone");
        assert_eq!(prefix_within(&[], 1000), 0);
    }
}
