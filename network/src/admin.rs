//! The admin HTTP API (JSON under /v1/) and Prometheus /metrics, on the admin
//! port (Kafka port + 200 by default).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chronik::store::{ClusterView, PartitionStore};
use chronik::{StoreError, TopicPartition};
use prometheus_client::registry::Registry;
use serde_json::json;

pub struct AdminState<S> {
    pub store: Arc<S>,
    pub registry: Registry,
    /// Brings gauges up to date right before a scrape.
    pub refresh: Box<dyn Fn() + Send + Sync>,
}

pub fn router<S: PartitionStore>(state: Arc<AdminState<S>>) -> Router {
    Router::new()
        .route("/metrics", get(metrics::<S>))
        .route("/v1/health/live", get(|| async { Json(json!({"status": "live"})) }))
        .route("/v1/health/ready", get(ready::<S>))
        .route("/v1/cluster", get(cluster::<S>))
        .route("/v1/topics", get(topics::<S>))
        .route("/v1/replicas", get(replicas::<S>))
        .route("/v1/replicas/{topic}/{partition}/digest", get(digest::<S>))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint; see /v1/cluster, /v1/topics, /metrics") })
        .with_state(state)
}

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
            "configs": t.configs,
            "partitions": t.partitions.iter().map(|p| json!({
                "partition": p.partition,
                "leader": p.leader,
                "leader_epoch": p.leader_epoch,
                "replicas": p.replicas,
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
        "nodes": view.nodes.iter().map(|n| json!({"id": n.id, "host": n.host, "port": n.port})).collect::<Vec<_>>(),
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
        }))
        .collect::<Vec<_>>()))
    .into_response()
}

/// A fingerprint of one local replica's committed records.
async fn digest<S: PartitionStore>(State(s): State<Arc<AdminState<S>>>, Path((topic, partition)): Path<(String, i32)>) -> Response {
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
