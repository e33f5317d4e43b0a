//! The admin API's partition moves (`chronik::reassignment`):
//!
//! - `GET /v1/reassignments`: every move in progress, each with its
//!   progress as the partition's leader last saw it (asked of the leader).
//! - `POST /v1/reassignments` `{"moves": [{"topic", "partition", "replicas":
//!   [ids] | null}], "allow_replication_factor_change": true}`: start,
//!   change or cancel (null) moves; an answer per move.
//! - `GET /v1/topics/{name}/partitions/{p}/reassignment`: one move's
//!   progress, from its leader.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chronik::store::PartitionStore;
use chronik::{NodeId, StoreError, TopicPartition};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::admin::{ask, error, forwarded, percent_encode, store_status, AdminState};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Move {
    topic: String,
    partition: i32,
    replicas: Option<Vec<NodeId>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Moves {
    moves: Vec<Move>,
    #[serde(default = "yes")]
    allow_replication_factor_change: bool,
}

fn yes() -> bool {
    true
}

pub(crate) async fn start<S: PartitionStore>(State(s): State<Arc<AdminState<S>>>, body: Bytes) -> Response {
    let req: Moves = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid JSON, expected {{\"moves\": [{{\"topic\", \"partition\", \"replicas\"}}]}}: {e}")),
    };
    let moves: Vec<(TopicPartition, Option<Vec<NodeId>>)> = req.moves.into_iter().map(|m| (TopicPartition::new(m.topic.as_str(), m.partition), m.replicas)).collect();
    let results = s.store.reassign_partitions(moves.clone(), req.allow_replication_factor_change).await;
    let failed = results.iter().any(|r| r.is_err());
    let answers: Vec<Value> = moves
        .iter()
        .zip(&results)
        .map(|((tp, replicas), r)| json!({"topic": &*tp.topic, "partition": tp.partition, "replicas": replicas, "error": r.as_ref().err().map(|e| e.to_string())}))
        .collect();
    if failed {
        let why: Vec<String> = results.iter().filter_map(|r| r.as_ref().err().map(|e| e.to_string())).collect();
        return (StatusCode::BAD_REQUEST, Json(json!({"error": why.join("; "), "moves": answers}))).into_response();
    }
    Json(json!({"moves": answers})).into_response()
}

/// One move's progress: here if this node leads the partition, else from
/// its leader (once).
async fn progress_json<S: PartitionStore>(s: &AdminState<S>, tp: &TopicPartition, headers: &HeaderMap) -> Result<Value, (StatusCode, String)> {
    // A node without a replica knows the leader from the cluster view.
    let view_leader = || {
        let view = s.store.cluster_view(Some(&[tp.topic.to_string()]));
        view.topics.first().and_then(|t| t.partitions.get(usize::try_from(tp.partition).ok()?)).and_then(|p| p.leader)
    };
    match s.store.move_progress(tp).map_err(|e| match e {
        StoreError::NotLeader(tp, None) => StoreError::NotLeader(tp, view_leader()),
        e => e,
    }) {
        Ok(p) => Ok(json!(p)),
        Err(StoreError::NotLeader(_, Some(leader))) if !forwarded(headers) && leader != s.store.node_id() => {
            let path = format!("/v1/topics/{}/partitions/{}/reassignment", percent_encode(&tp.topic), tp.partition);
            let (status, body) = ask(s, leader, Method::GET, &path, Bytes::new()).await.map_err(|e| (StatusCode::BAD_GATEWAY, e))?;
            let v: Value = serde_json::from_slice(&body).map_err(|e| (StatusCode::BAD_GATEWAY, format!("node {leader} answered {status}: {e}")))?;
            if status.is_success() { Ok(v) } else { Err((status, v["error"].as_str().unwrap_or_default().to_string())) }
        }
        Err(e) => Err((store_status(&e), e.to_string())),
    }
}

pub(crate) async fn progress<S: PartitionStore>(
    State(s): State<Arc<AdminState<S>>>,
    Path((name, partition)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Ok(partition) = partition.parse::<i32>() else {
        return error(StatusCode::BAD_REQUEST, &format!("partition {partition:?} is not a number"));
    };
    match progress_json(&s, &TopicPartition::new(name.as_str(), partition), &headers).await {
        Ok(v) => Json(v).into_response(),
        Err((status, e)) => error(status, &e),
    }
}

pub(crate) async fn list<S: PartitionStore>(State(s): State<Arc<AdminState<S>>>, headers: HeaderMap) -> Response {
    let view = s.store.cluster_view(None);
    let moving: Vec<_> = view.topics.iter().flat_map(|t| t.partitions.iter().filter(|p| p.reassigning).map(move |p| (t, p))).collect();
    let mut out = Vec::new();
    for (t, p) in moving {
        let tp = TopicPartition::new(t.name.as_str(), p.partition);
        let progress = progress_json(&s, &tp, &headers).await.unwrap_or_else(|(_, e)| json!({"error": e}));
        out.push(json!({
            "topic": t.name,
            "partition": p.partition,
            "replicas": p.replicas,
            "adding": p.adding,
            "removing": p.removing,
            "leader": p.leader,
            "progress": progress,
        }));
    }
    Json(json!(out)).into_response()
}

