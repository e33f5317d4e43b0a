//! The client side: one pooled reqwest client per node (so one connection set
//! per peer, shared by all groups), one lightweight handle per (group, peer).
//!
//! FIXME(cluster): coalesce the messages of all groups to one peer into one
//! request per tick, and keep heartbeats off connections busy with appends.

use std::future::Future;
use std::time::Duration;

use chronik::engine::Transport;
use chronik::{GroupId, NodeAddr, NodeId, SnapshotData, SnapshotMeta, TypeConfig};
use openraft::alias::{SnapshotOf, VoteOf};
use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use openraft::RaftNetworkV2;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Largest snapshot sent in one request.
pub const SNAPSHOT_BYTES_MAX: usize = 256 * 1024 * 1024;

#[derive(Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
}

impl HttpTransport {
    pub fn new() -> Self {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(8)
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_millis(500))
            .build()
            .expect("reqwest client");
        Self { client }
    }
}

impl Default for HttpTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl Transport for HttpTransport {
    type Factory = GroupNetwork;
    fn factory(&self, group: GroupId) -> GroupNetwork {
        GroupNetwork { client: self.client.clone(), group }
    }
}

pub struct GroupNetwork {
    client: reqwest::Client,
    group: GroupId,
}

impl RaftNetworkFactory<TypeConfig> for GroupNetwork {
    type Network = PeerClient;
    async fn new_client(&mut self, target: NodeId, node: &NodeAddr) -> PeerClient {
        PeerClient { client: self.client.clone(), group: self.group, target, base: format!("http://{}", node.raft_addr) }
    }
}

pub struct PeerClient {
    client: reqwest::Client,
    group: GroupId,
    target: NodeId,
    base: String,
}

/// The snapshot request body.
#[derive(Serialize, Deserialize)]
pub struct SnapshotRpc {
    pub vote: VoteOf<TypeConfig>,
    pub meta: SnapshotMeta,
    #[serde(with = "chronik::serde_b64")]
    pub data: bytes::Bytes,
}

impl PeerClient {
    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        path: &str,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<TypeConfig>> {
        let url = format!("{}/raft/{}/{}", self.base, self.group.0, path);
        let send = self.client.post(&url).json(req).timeout(option.hard_ttl()).send();
        let resp = send.await.map_err(|e| {
            // Unreachable makes openraft back off instead of retrying hot.
            RPCError::Unreachable(Unreachable::new(&e))
        })?;
        let body: Result<Resp, String> = resp.json().await.map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        body.map_err(|msg| {
            let err = std::io::Error::other(format!("node {} group {} {path}: {msg}", self.target, self.group));
            RPCError::Unreachable(Unreachable::new(&err))
        })
    }
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call("append", &rpc, &option).await
    }

    async fn vote(&mut self, rpc: VoteRequest<TypeConfig>, option: RPCOption) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call("vote", &rpc, &option).await
    }

    async fn pre_vote(&mut self, rpc: VoteRequest<TypeConfig>, option: RPCOption) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call("pre-vote", &rpc, &option).await
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<TypeConfig>,
        snapshot: SnapshotOf<TypeConfig, SnapshotData>,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let data = snapshot.snapshot.into_inner();
        if data.len() > SNAPSHOT_BYTES_MAX {
            let e = std::io::Error::other(format!("snapshot of group {} is {} bytes, over the bound", self.group, data.len()));
            return Err(StreamingError::Unreachable(Unreachable::new(&e)));
        }
        let rpc = SnapshotRpc { vote, meta: snapshot.meta, data: data.into() };
        tokio::select! {
            r = self.call::<_, SnapshotResponse<TypeConfig>>("snapshot", &rpc, &option) => r.map_err(|e| match e {
                RPCError::Unreachable(u) => StreamingError::Unreachable(u),
                RPCError::Network(n) => StreamingError::Network(n),
                other => StreamingError::Network(NetworkError::new(&std::io::Error::other(other.to_string()))),
            }),
            closed = cancel => Err(StreamingError::Closed(closed)),
        }
    }
}
