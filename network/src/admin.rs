//! The admin HTTP API (JSON under /v1/) and Prometheus /metrics, on the admin
//! port (Kafka port + 200 by default).

use std::sync::Arc;
use std::time::Duration;

use std::collections::{BTreeMap, HashMap};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chronik::cluster::dynamic_config::{ConfigOp, ConfigResource};
use chronik::cluster::metadata::ControllerError;
use chronik::store::{ClusterView, PartitionStore, TopicSpec};
use chronik::{StoreError, TopicPartition};
use prometheus_client::registry::Registry;
use serde::Deserialize;
use serde_json::json;

pub struct AdminState<S> {
    pub store: Arc<S>,
    pub registry: Registry,
    /// Brings gauges up to date right before a scrape.
    pub refresh: Box<dyn Fn() + Send + Sync>,
    /// Asks other nodes' admin APIs (see [`forward`]).
    peers: reqwest::Client,
    /// "http", or "https" with cluster TLS.
    scheme: &'static str,
}

impl<S> AdminState<S> {
    /// `peer_http`: how a request is passed to another node (secret, TLS).
    pub fn new(store: Arc<S>, registry: Registry, refresh: Box<dyn Fn() + Send + Sync>, peer_http: &crate::peers::PeerHttp) -> Self {
        let peers = peer_http.client_builder().connect_timeout(Duration::from_secs(1)).build().expect("reqwest client");
        Self { store, registry, refresh, peers, scheme: peer_http.scheme() }
    }
}

/// Marks a request one node makes of another on a client's behalf; such a
/// request is answered where it lands, never sent on again.
pub const FORWARDED_BY: &str = "x-chronik-forwarded-by";

/// How long a node waits for another's admin answer.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(15);

pub(crate) fn forwarded(headers: &HeaderMap) -> bool {
    headers.contains_key(FORWARDED_BY)
}

/// Asks node `node`'s admin API (at its cluster address, under /admin) and
/// returns its answer as is: a request any node can take, whichever node
/// must carry it out.
async fn forward<S: PartitionStore>(s: &AdminState<S>, node: chronik::NodeId, method: Method, path: &str, body: Bytes) -> Response {
    match ask(s, node, method, path, body).await {
        Ok((status, body)) => (status, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => error(StatusCode::BAD_GATEWAY, &e),
    }
}

pub(crate) async fn ask<S: PartitionStore>(
    s: &AdminState<S>,
    node: chronik::NodeId,
    method: Method,
    path: &str,
    body: Bytes,
) -> Result<(StatusCode, Bytes), String> {
    let me = s.store.node_id();
    let addr = s.store.cluster_addr(node).ok_or_else(|| format!("node {node} has no known address (asked on node {me})"))?;
    let url = format!("{}://{addr}/admin{path}", s.scheme);
    let sent = s
        .peers
        .request(method.clone(), &url)
        .header(FORWARDED_BY, me.to_string())
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .timeout(FORWARD_TIMEOUT)
        .send()
        .await;
    let failed = |e: reqwest::Error| {
        tracing::warn!(node_id = me, peer = node, %method, path, error = %e, "admin request to a peer failed");
        format!("node {me} could not ask node {node} ({method} {url}): {e}")
    };
    let resp = sent.map_err(failed)?;
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    Ok((status, resp.bytes().await.map_err(failed)?))
}

pub fn router<S: PartitionStore>(state: Arc<AdminState<S>>) -> Router {
    Router::new()
        .route("/metrics", get(metrics::<S>))
        .route("/v1/health/live", get(|| async { Json(json!({"status": "live"})) }))
        .route("/v1/health/ready", get(ready::<S>))
        .route("/v1/cluster", get(cluster::<S>))
        .route("/v1/topics", get(topics::<S>).post(create_topic::<S>))
        .route("/v1/topics/{name}", get(describe_topic::<S>).delete(delete_topic::<S>))
        .route("/v1/topics/{name}/configs", axum::routing::patch(alter_topic_configs::<S>))
        .route("/v1/topics/{name}/partitions", axum::routing::post(create_partitions::<S>))
        .route("/v1/topics/{name}/replication-factor", axum::routing::post(set_replication_factor::<S>))
        .route("/v1/broker-configs", get(broker_configs::<S>).patch(alter_cluster_configs::<S>))
        .route("/v1/broker-configs/{node}", axum::routing::patch(alter_node_configs::<S>))
        .route("/v1/topics/{name}/partitions/{partition}/leader", axum::routing::post(transfer_leader::<S>))
        .route("/v1/topics/{name}/partitions/{partition}/delete-records", axum::routing::post(delete_records::<S>))
        .route("/v1/reassignments", get(crate::admin_moves::list::<S>).post(crate::admin_moves::start::<S>))
        .route("/v1/topics/{name}/partitions/{partition}/reassignment", get(crate::admin_moves::progress::<S>))
        .route("/v1/users", get(crate::admin_security::list_users::<S>))
        .route("/v1/users/{name}", axum::routing::put(crate::admin_security::set_user::<S>).delete(crate::admin_security::delete_user::<S>))
        .route(
            "/v1/acls",
            get(crate::admin_security::list_acls::<S>).post(crate::admin_security::create_acls::<S>).delete(crate::admin_security::delete_acls::<S>))
        .route("/v1/nodes", get(nodes::<S>))
        .route("/v1/nodes/{id}", get(node::<S>))
        .route("/v1/nodes/{id}/decommission", axum::routing::post(decommission::<S>))
        .route("/v1/nodes/{id}/recommission", axum::routing::post(recommission::<S>))
        .route("/v1/groups", get(groups::<S>))
        .route("/v1/groups/{group}", get(describe_group::<S>))
        .route("/v1/openapi.json", get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }))
        .route("/v1/replicas", get(replicas::<S>))
        .route("/v1/replicas/{topic}/{partition}/digest", get(digest::<S>))
        .route("/v1/replicas/{topic}/{partition}/batches", get(batches::<S>))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint; see /v1/openapi.json") })
        .method_not_allowed_fallback(|| async { error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here; see /v1/openapi.json") })
        .with_state(state)
}

/// The OpenAPI document of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

pub fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

async fn metrics<S: PartitionStore>(State(s): State<Arc<AdminState<S>>>) -> Response {
    (s.refresh)();
    let mut out = String::new();
    match prometheus_client::encoding::text::encode(&mut out, &s.registry) {
        Ok(()) => ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], out).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &format!("encoding metrics: {e}")),
    }
}

async fn ready<S: PartitionStore>(State(s): State<Arc<AdminState<S>>>) -> Response {
    let view = s.store.cluster_view(Some(&[]));
    match view.controller {
        Some(c) => Json(json!({"status": "ready", "controller": c})).into_response(),
        None => error(StatusCode::SERVICE_UNAVAILABLE, "no controller leader yet"),
    }
}

fn topics_json(view: &ClusterView) -> serde_json::Value {
    json!(view
        .topics
        .iter()
        .map(|t| json!({
            "name": t.name,
            "id": chronik::cluster::metadata::uuid_text(t.id),
            "configs": t.configs,
            "partitions": t.partitions.iter().map(|p| json!({
                "partition": p.partition,
                "leader": p.leader,
                "leader_epoch": p.leader_epoch,
                "replicas": p.replicas,
                "isr": p.isr,
                "adding": p.adding,
                "removing": p.removing,
            })).collect::<Vec<_>>(),
        }))
        .collect::<Vec<_>>())
}

async fn cluster<S: PartitionStore>(State(s): State<Arc<AdminState<S>>>) -> Response {
    let view = s.store.cluster_view(Some(&[]));
    Json(json!({
        "cluster_id": view.cluster_id,
        "node_id": s.store.node_id(),
        "controller": view.controller,
        "nodes": view.nodes.iter().map(|n| json!({"id": n.id, "host": n.host, "port": n.port, "alive": n.alive})).collect::<Vec<_>>(),
    }))
    .into_response()
}

async fn topics<S: PartitionStore>(State(s): State<Arc<AdminState<S>>>) -> Response {
    Json(topics_json(&s.store.cluster_view(None))).into_response()
}

/// The partition replicas on this node, with each one's own view.
async fn replicas<S: PartitionStore>(State(s): State<Arc<AdminState<S>>>) -> Response {
    Json(json!(s
        .store
        .replicas()
        .iter()
        .map(|r| json!({
            "topic": r.topic,
            "partition": r.partition,
            "group": r.group,
            "leader": r.leader,
            "term": r.term,
            "serving": r.serving,
            "log_start_offset": r.log_start_offset,
            "high_watermark": r.high_watermark,
            "last_log_index": r.last_log_index,
            "committed_index": r.committed_index,
            "applied_index": r.applied_index,
            "purged_index": r.purged_index,
            "snapshot_index": r.snapshot_index,
            "retained_bytes": r.retained_bytes,
        }))
        .collect::<Vec<_>>()))
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchesQuery {
    #[serde(default)]
    from: i64,
    limit: Option<usize>,
}

/// Where one local replica's batches are: offsets and Raft log index, a
/// page at a time (to find where two replicas part).
async fn batches<S: PartitionStore>(
    State(s): State<Arc<AdminState<S>>>,
    Path((topic, partition)): Path<(String, String)>,
    query: Result<axum::extract::Query<BatchesQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(partition) = partition.parse::<i32>() else {
        return error(StatusCode::BAD_REQUEST, &format!("partition {partition:?} is not a number"));
    };
    let q = match query {
        Ok(q) => q.0,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("bad query, expected from=<offset>&limit=<1..10000>: {e}")),
    };
    let limit = q.limit.unwrap_or(1000);
    if q.from < 0 || !(1..=10_000).contains(&limit) {
        return error(StatusCode::BAD_REQUEST, "from must be >= 0 and limit within 1..=10000");
    }
    let tp = TopicPartition::new(topic.as_str(), partition);
    match s.store.replica_batches(&tp, q.from, limit) {
        Ok(b) => Json(json!({
            "topic": topic,
            "partition": partition,
            "node_id": s.store.node_id(),
            "batches": b.iter().map(|b| json!({
                "base_offset": b.base_offset, "last_offset": b.last_offset, "log_index": b.log_index, "bytes": b.bytes,
                "leader_epoch": b.leader_epoch, "producer_id": b.producer_id, "producer_epoch": b.producer_epoch,
                "base_sequence": b.base_sequence,
            })).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(e) => store_error(&e),
    }
}

/// A fingerprint of one local replica's committed records.
async fn digest<S: PartitionStore>(State(s): State<Arc<AdminState<S>>>, Path((topic, partition)): Path<(String, String)>) -> Response {
    let Ok(partition) = partition.parse::<i32>() else {
        return error(StatusCode::BAD_REQUEST, &format!("partition {partition:?} is not a number"));
    };
    let tp = TopicPartition::new(topic.as_str(), partition);
    match s.store.replica_digest(&tp) {
        Ok(d) => Json(json!({
            "topic": topic,
            "partition": partition,
            "node_id": s.store.node_id(),
            "high_watermark": d.high_watermark,
            "batches": d.batches,
            "bytes": d.bytes,
            "crc32c": d.crc32c,
        }))
        .into_response(),
        Err(e @ (StoreError::UnknownTopicOrPartition(_) | StoreError::NotLeader(..))) => {
            error(StatusCode::NOT_FOUND, &format!("no replica of {tp} on node {}: {e}", s.store.node_id()))
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

/// The one place where store errors become HTTP statuses.
pub(crate) fn store_error(e: &StoreError) -> Response {
    error(store_status(e), &e.to_string())
}

/// The HTTP status of a store error.
pub(crate) fn store_status(e: &StoreError) -> StatusCode {
    match e {
        StoreError::Controller(ControllerError::TopicExists(_) | ControllerError::CannotDecommission(..) | ControllerError::NodeRemoved(_)) => {
            StatusCode::CONFLICT
        }
        StoreError::Controller(ControllerError::UnknownTopic(_) | ControllerError::UnknownPartition(_) | ControllerError::UnknownNode(_))
        | StoreError::UnknownTopicOrPartition(_) => StatusCode::NOT_FOUND,
        StoreError::Controller(_) | StoreError::InvalidConfig { .. } | StoreError::OffsetOutOfRange { .. } => StatusCode::BAD_REQUEST,
        StoreError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        StoreError::DiskFull { .. } => StatusCode::INSUFFICIENT_STORAGE,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTopic {
    name: String,
    partitions: Option<i32>,
    replication_factor: Option<i16>,
    #[serde(default)]
    configs: BTreeMap<String, String>,
}

/// POST /v1/topics {"name", "partitions"?, "replication_factor"?, "configs"?}
async fn create_topic<S: PartitionStore>(State(s): State<Arc<AdminState<S>>>, body: Bytes) -> Response {
    let t: NewTopic = match serde_json::from_slice(&body) {
        Ok(t) => t,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid topic JSON: {e}")),
    };
    let spec = TopicSpec { name: t.name.clone(), partitions: t.partitions, replication_factor: t.replication_factor, configs: t.configs, assignment: None };
    match s.store.create_topic(spec, false).await {
        Ok(()) => (StatusCode::CREATED, Json(topic_detail(&*s.store, &t.name).unwrap_or(json!({"name": t.name})))).into_response(),
        Err(e) => store_error(&e),
    }
}

/// One topic with every partition's leader, replicas and, where this node
/// hosts a replica, its log start and high watermark (the log end a
/// consumer can read to).
fn topic_detail<S: PartitionStore>(store: &S, name: &str) -> Option<serde_json::Value> {
    let view = store.cluster_view(Some(&[name.to_string()]));
    let t = view.topics.first()?;
    let local: HashMap<i32, (i64, i64, bool)> = store
        .replicas()
        .into_iter()
        .filter(|r| r.topic == name)
        .map(|r| (r.partition, (r.log_start_offset, r.high_watermark, r.serving)))
        .collect();
    Some(json!({
        "name": t.name,
        "id": chronik::cluster::metadata::uuid_text(t.id),
        "internal": t.internal,
        "configs": t.configs,
        "partitions": t.partitions.iter().map(|p| {
            let here = local.get(&p.partition);
            json!({
                "partition": p.partition,
                "leader": p.leader,
                "leader_epoch": p.leader_epoch,
                "replicas": p.replicas,
                "isr": p.isr,
                "adding": p.adding,
                "removing": p.removing,
                "log_start_offset": here.map(|h| h.0),
                "high_watermark": here.map(|h| h.1),
                "log_end_offset": here.map(|h| h.1),
                "offsets_from_leader": here.map(|h| h.2),
            })
        }).collect::<Vec<_>>(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPartitions {
    count: i32,
}

/// POST /v1/topics/{name}/partitions {"count": N}: grows the topic to N partitions.
async fn create_partitions<S: PartitionStore>(State(s): State<Arc<AdminState<S>>>, Path(name): Path<String>, body: Bytes) -> Response {
    let req: NewPartitions = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid partitions JSON: {e}")),
    };
    match s.store.create_partitions(name.clone(), req.count, None, false).await {
        Ok(()) => Json(topic_detail(&*s.store, &name).unwrap_or(json!({"name": name}))).into_response(),
        Err(e) => store_error(&e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewReplicationFactor {
    replication_factor: usize,
}

/// POST /v1/topics/{name}/replication-factor {"replication_factor": N}:
/// moves every partition to N replicas (partition moves, followed with
/// GET /v1/reassignments).
async fn set_replication_factor<S: PartitionStore>(State(s): State<Arc<AdminState<S>>>, Path(name): Path<String>, body: Bytes) -> Response {
    let req: NewReplicationFactor = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid replication factor JSON: {e}")),
    };
    match s.store.set_replication_factor(name.clone(), req.replication_factor).await {
        Ok(moves) => {
            let moves: Vec<_> = moves.iter().map(|(tp, t)| json!({"topic": &*tp.topic, "partition": tp.partition, "replicas": t})).collect();
            Json(json!({"topic": name, "replication_factor": req.replication_factor, "moves": moves})).into_response()
        }
        Err(e) => store_error(&e),
    }
}

/// A change to a topic's or broker's configs: keys to set, keys to drop
/// (back to their defaults).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigChange {
    #[serde(default)]
    set: BTreeMap<String, String>,
    #[serde(default)]
    delete: Vec<String>,
}

async fn alter_configs<S: PartitionStore>(s: &AdminState<S>, resource: ConfigResource, body: &[u8]) -> Response {
    let change: ConfigChange = match serde_json::from_slice(body) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid config change JSON: {e}")),
    };
    let ops = change.set.into_iter().map(|(k, v)| ConfigOp::Set(k, v)).chain(change.delete.into_iter().map(ConfigOp::Delete)).collect();
    match s.store.alter_configs(resource.clone(), ops, false, false).await {
        Ok(()) => {
            let view = s.store.cluster_view(None);
            let configs = match &resource {
                ConfigResource::Topic(t) => view.topics.iter().find(|x| x.name == *t).map(|x| x.configs.clone()),
                ConfigResource::Broker(n) => view.broker_configs.get(n).cloned(),
            };
            Json(json!({"configs": configs.unwrap_or_default()})).into_response()
        }
        Err(e) => store_error(&e),
    }
}

/// PATCH /v1/topics/{name}/configs {"set": {k: v}, "delete": [k]}
async fn alter_topic_configs<S: PartitionStore>(State(s): State<Arc<AdminState<S>>>, Path(name): Path<String>, body: Bytes) -> Response {
    alter_configs(&s, ConfigResource::Topic(name), &body).await
}

/// PATCH /v1/broker-configs: the cluster-wide dynamic broker configs.
async fn alter_cluster_configs<S: PartitionStore>(State(s): State<Arc<AdminState<S>>>, body: Bytes) -> Response {
    alter_configs(&s, ConfigResource::Broker(None), &body).await
}

/// PATCH /v1/broker-configs/{node}: one node's dynamic broker configs.
async fn alter_node_configs<S: PartitionStore>(State(s): State<Arc<AdminState<S>>>, Path(node): Path<String>, body: Bytes) -> Response {
    let Ok(node) = node.parse::<u64>() else {
        return error(StatusCode::BAD_REQUEST, &format!("node id {node:?} is not a number"));
    };
    alter_configs(&s, ConfigResource::Broker(Some(node)), &body).await
}

/// GET /v1/broker-configs: the dynamic broker configs, cluster-wide and per node.
async fn broker_configs<S: PartitionStore>(State(s): State<Arc<AdminState<S>>>) -> Response {
    let view = s.store.cluster_view(Some(&[]));
    let nodes: BTreeMap<String, &BTreeMap<String, String>> = view.broker_configs.iter().filter_map(|(n, c)| n.map(|n| (n.to_string(), c))).collect();
    Json(json!({"cluster": view.broker_configs.get(&None).cloned().unwrap_or_default(), "nodes": nodes})).into_response()
}

async fn describe_topic<S: PartitionStore>(State(s): State<Arc<AdminState<S>>>, Path(name): Path<String>) -> Response {
    match topic_detail(&*s.store, &name) {
        Some(t) => Json(t).into_response(),
        None => error(StatusCode::NOT_FOUND, &format!("topic {name} does not exist")),
    }
}

async fn delete_topic<S: PartitionStore>(State(s): State<Arc<AdminState<S>>>, Path(name): Path<String>) -> Response {
    match s.store.delete_topic(name).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => store_error(&e),
    }
}

/// A group's committed offsets with their lag where this node hosts the partition.
fn group_offsets<S: PartitionStore>(store: &S, group: &str, hwm: &HashMap<(String, i32), i64>) -> Result<serde_json::Value, StoreError> {
    let parts = chronik::offsets::group_lag(store, group, hwm)?;
    let total: i64 = parts.iter().filter_map(|p| p.4).sum();
    let partitions: Vec<_> = parts
        .iter()
        .map(|(t, p, o, end, lag)| json!({"topic": t, "partition": p, "committed_offset": o.offset, "metadata": o.metadata, "high_watermark": end, "lag": lag}))
        .collect();
    Ok(json!({"group": group, "coordinator": store.node_id(), "lag": total, "partitions": partitions}))
}

/// GET /v1/groups: every consumer group, from the node coordinating it.
/// Each node lists the groups it coordinates and asks every other node for
/// theirs; a node that cannot be asked is named in `x-chronik-incomplete`.
async fn groups<S: PartitionStore>(State(s): State<Arc<AdminState<S>>>, headers: HeaderMap) -> Response {
    let mut out: Vec<serde_json::Value> = match s.store.served_group_names() {
        Ok(names) => {
            let hwm = chronik::offsets::local_high_watermarks(&*s.store);
            names.iter().filter_map(|g| group_offsets(&*s.store, g, &hwm).ok()).collect()
        }
        Err(e) => return store_error(&e),
    };
    if forwarded(&headers) {
        return Json(json!(out)).into_response();
    }
    let me = s.store.node_id();
    let others: Vec<_> = s.store.cluster_view(Some(&[])).nodes.iter().map(|n| n.id).filter(|&id| id != me).collect();
    let answers = futures::future::join_all(others.iter().map(|&n| ask(&*s, n, Method::GET, "/v1/groups", Bytes::new()))).await;
    let mut missing = Vec::new();
    for (n, answer) in others.iter().zip(answers) {
        match answer.map(|(status, body)| (status, serde_json::from_slice::<Vec<serde_json::Value>>(&body))) {
            Ok((StatusCode::OK, Ok(groups))) => out.extend(groups),
            _ => missing.push(n.to_string()),
        }
    }
    // A group changing coordinator while we ask may be listed twice.
    out.sort_by(|a, b| a["group"].as_str().cmp(&b["group"].as_str()));
    out.dedup_by(|a, b| a["group"] == b["group"]);
    let mut resp = Json(json!(out)).into_response();
    if !missing.is_empty() {
        if let Ok(v) = format!("nodes {} did not answer", missing.join(",")).parse() {
            resp.headers_mut().insert("x-chronik-incomplete", v);
        }
    }
    resp
}

async fn describe_group<S: PartitionStore>(State(s): State<Arc<AdminState<S>>>, Path(group): Path<String>, headers: HeaderMap) -> Response {
    match s.store.coordinator(&group) {
        Ok(c) if c.serving => {}
        Ok(c) if !forwarded(&headers) && c.leader.is_some_and(|l| l != s.store.node_id()) => {
            let path = format!("/v1/groups/{}", percent_encode(&group));
            return forward(&s, c.leader.expect("checked"), Method::GET, &path, Bytes::new()).await;
        }
        Ok(c) => {
            return error(
                StatusCode::MISDIRECTED_REQUEST,
                &format!("group {group} is coordinated by node {:?}, not node {}; ask that node's admin API", c.leader, s.store.node_id()),
            )
        }
        Err(_) => return error(StatusCode::NOT_FOUND, &format!("group {group} does not exist (no consumer group yet)")),
    }
    match group_offsets(&*s.store, &group, &chronik::offsets::local_high_watermarks(&*s.store)) {
        Ok(v) if v["partitions"].as_array().is_some_and(|p| !p.is_empty()) => Json(v).into_response(),
        Ok(_) => error(StatusCode::NOT_FOUND, &format!("group {group} has no committed offsets")),
        Err(e) => store_error(&e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewLeader {
    node: chronik::NodeId,
}

/// POST /v1/topics/{name}/partitions/{partition}/leader {"node": id}: ask
/// the partition's leader (this node) to hand leadership to a replica.
async fn transfer_leader<S: PartitionStore>(
    State(s): State<Arc<AdminState<S>>>,
    Path((name, partition)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (tp, want) = match partition_request::<NewLeader>(&name, &partition, &body, "{\"node\": id}") {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let result = s.store.transfer_leadership(&tp, want.node).await.map(|()| json!({"topic": name, "partition": tp.partition, "leader": want.node}));
    at_leader(&s, &tp, "leader", &headers, body, result).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteRecords {
    offset: chronik::Offset,
}

/// POST /v1/topics/{name}/partitions/{partition}/delete-records {"offset":
/// n}: move the partition's log start to n (-1: the high watermark), as
/// Kafka's DeleteRecords does.
async fn delete_records<S: PartitionStore>(
    State(s): State<Arc<AdminState<S>>>,
    Path((name, partition)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (tp, want) = match partition_request::<DeleteRecords>(&name, &partition, &body, "{\"offset\": n}") {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let result = s.store.delete_records(&tp, want.offset).await.map(|low| json!({"topic": name, "partition": tp.partition, "log_start_offset": low}));
    at_leader(&s, &tp, "delete-records", &headers, body, result).await
}

/// The partition and JSON body of a POST to one partition.
fn partition_request<B: serde::de::DeserializeOwned>(name: &str, partition: &str, body: &[u8], shape: &str) -> Result<(TopicPartition, B), Response> {
    let Ok(partition) = partition.parse::<i32>() else {
        return Err(error(StatusCode::BAD_REQUEST, &format!("partition {partition:?} is not a number")));
    };
    match serde_json::from_slice(body) {
        Ok(b) => Ok((TopicPartition::new(name, partition), b)),
        Err(e) => Err(error(StatusCode::BAD_REQUEST, &format!("invalid JSON, expected {shape}: {e}"))),
    }
}

/// The answer of an operation only the partition's leader can do: passed to
/// the leader (once) when this node does not lead it.
async fn at_leader<S: PartitionStore>(
    s: &AdminState<S>,
    tp: &TopicPartition,
    action: &str,
    headers: &HeaderMap,
    body: Bytes,
    result: Result<serde_json::Value, StoreError>,
) -> Response {
    match result {
        Ok(v) => Json(v).into_response(),
        Err(StoreError::NotLeader(_, Some(leader))) if !forwarded(headers) && leader != s.store.node_id() => {
            let path = format!("/v1/topics/{}/partitions/{}/{action}", percent_encode(&tp.topic), tp.partition);
            forward(s, leader, Method::POST, &path, body).await
        }
        Err(StoreError::NotLeader(_, leader)) => {
            error(
            StatusCode::MISDIRECTED_REQUEST,
            &format!("{tp} is led by node {leader:?}, not node {}; ask the leader's admin API", s.store.node_id())
        )
        }
        Err(e) => store_error(&e),
    }
}

/// Every node as this one sees it: address, liveness, controller, and the
/// partition replicas and leaderships it holds.
fn nodes_json<S: PartitionStore>(store: &S) -> Vec<serde_json::Value> {
    let view = store.cluster_view(None);
    let membership = store.membership();
    view.nodes
        .iter()
        .map(|n| {
            let parts = view.topics.iter().flat_map(|t| &t.partitions);
            let replicas = parts.clone().filter(|p| p.replicas.contains(&n.id)).count();
            let leaders = parts.filter(|p| p.leader == Some(n.id)).count();
            let m = membership.get(&n.id).cloned().unwrap_or_default();
            json!({
                "id": n.id, "host": n.host, "port": n.port, "alive": n.alive,
                "controller": view.controller == Some(n.id), "replicas": replicas, "leaders": leaders,
                "controller_role": m.controller, "draining": m.draining, "rack": n.rack,
            })
        })
        .collect()
}

async fn nodes<S: PartitionStore>(State(s): State<Arc<AdminState<S>>>) -> Response {
    Json(json!(nodes_json(&*s.store))).into_response()
}

/// Starts (or with `recommission`, stops) moving every replica off a node;
/// once it hosts nothing it leaves the cluster.
async fn change_decommission<S: PartitionStore>(s: &AdminState<S>, id: &str, cancel: bool) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return error(StatusCode::BAD_REQUEST, &format!("node id {id:?} is not a number"));
    };
    match s.store.decommission(id, cancel).await {
        Ok(()) => (StatusCode::ACCEPTED, Json(json!({"node": id, "draining": !cancel}))).into_response(),
        Err(e) => store_error(&e),
    }
}

async fn decommission<S: PartitionStore>(State(s): State<Arc<AdminState<S>>>, Path(id): Path<String>) -> Response {
    change_decommission(&s, &id, false).await
}

async fn recommission<S: PartitionStore>(State(s): State<Arc<AdminState<S>>>, Path(id): Path<String>) -> Response {
    change_decommission(&s, &id, true).await
}

async fn node<S: PartitionStore>(State(s): State<Arc<AdminState<S>>>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return error(StatusCode::BAD_REQUEST, &format!("node id {id:?} is not a number"));
    };
    match nodes_json(&*s.store).into_iter().find(|n| n["id"] == id) {
        Some(n) => Json(n).into_response(),
        None => error(StatusCode::NOT_FOUND, &format!("node {id} is not in the cluster")),
    }
}

/// `s` as one URL path segment.
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
