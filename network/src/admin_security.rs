//! The admin API's users (SCRAM credentials) and ACLs:
//!
//! - `GET /v1/users`: each user and the mechanisms it has credentials for.
//! - `PUT /v1/users/{name}` `{"password", "mechanisms": ["SCRAM-SHA-512"],
//!   "iterations": 4096}`: sets the user's credentials (salted and hashed
//!   here; the password is not kept). Mechanisms default to both.
//! - `DELETE /v1/users/{name}`: removes all of the user's credentials.
//! - `GET /v1/acls`, `POST /v1/acls` (a binding, or `{"acls": [...]}`),
//!   `DELETE /v1/acls` (a filter: fields left out match anything).
//!
//! A binding in JSON: `{"resource_type": "TOPIC", "name": "orders",
//! "pattern": "LITERAL", "principal": "User:alice", "host": "*",
//! "operation": "READ", "permission": "ALLOW"}`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chronik::security::acl::{AclBinding, AclFilter, Operation, PatternType, Permission, ResourceType};
use chronik::security::scram::{self, Credential, Mechanism};
use chronik::security::SecurityCommand;
use chronik::store::PartitionStore;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::admin::{error, store_status, AdminState};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetUser {
    password: String,
    #[serde(default)]
    mechanisms: Option<Vec<String>>,
    #[serde(default)]
    iterations: Option<i32>,
}

pub(crate) async fn list_users<S: PartitionStore>(State(s): State<Arc<AdminState<S>>>) -> Response {
    let state = s.store.security();
    let users: Vec<Value> = state
        .users
        .iter()
        .map(|(name, creds)| json!({"name": name, "mechanisms": creds.iter().map(|(m, c)| json!({"mechanism": m.sasl_name(), "iterations": c.iterations})).collect::<Vec<_>>()}))
        .collect();
    Json(json!({"users": users})).into_response()
}

pub(crate) async fn set_user<S: PartitionStore>(State(s): State<Arc<AdminState<S>>>, Path(name): Path<String>, body: Bytes) -> Response {
    let req: SetUser = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid JSON, expected {{\"password\", \"mechanisms\"?, \"iterations\"?}}: {e}")),
    };
    if name.is_empty() || req.password.is_empty() {
        return error(StatusCode::BAD_REQUEST, "user name and password must not be empty");
    }
    let iterations = match scram::check_iterations(req.iterations.unwrap_or(scram::ITERATIONS_MIN as i32)) {
        Ok(i) => i,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    let mut mechs = vec![];
    for m in req.mechanisms.unwrap_or_else(|| Mechanism::ALL.iter().map(|m| m.sasl_name().to_string()).collect()) {
        match Mechanism::from_sasl_name(&m) {
            Some(m) => mechs.push(m),
            None => return error(StatusCode::BAD_REQUEST, &format!("unknown mechanism {m:?}: SCRAM-SHA-256 or SCRAM-SHA-512")),
        }
    }
    let password = req.password;
    let upsert = tokio::task::spawn_blocking(move || {
        mechs.into_iter().map(|m| (name.clone(), m, Credential::from_password(m, &password, iterations))).collect::<Vec<_>>()
    })
    .await
    .expect("deriving credentials");
    let names: Vec<&str> = upsert.iter().map(|(_, m, _)| m.sasl_name()).collect();
    let answer = json!({"name": upsert.first().map(|(n, ..)| n.clone()), "mechanisms": names});
    match s.store.alter_security(SecurityCommand::AlterScram { upsert, delete: vec![] }).await {
        Ok(()) => Json(answer).into_response(),
        Err(e) => error(store_status(&e), &e.to_string()),
    }
}

pub(crate) async fn delete_user<S: PartitionStore>(State(s): State<Arc<AdminState<S>>>, Path(name): Path<String>) -> Response {
    let state = s.store.security();
    let Some(creds) = state.users.get(&name) else {
        return error(StatusCode::NOT_FOUND, &format!("no user {name:?}"));
    };
    let delete = creds.keys().map(|m| (name.clone(), *m)).collect();
    match s.store.alter_security(SecurityCommand::AlterScram { upsert: vec![], delete }).await {
        Ok(()) => Json(json!({"deleted": name})).into_response(),
        Err(e) => error(store_status(&e), &e.to_string()),
    }
}

fn binding_json(b: &AclBinding) -> Value {
    json!({"resource_type": b.resource_type.text(), "name": b.name, "pattern": b.pattern.text(), "principal": b.principal,
        "host": b.host, "operation": b.operation.text(), "permission": b.permission.text()})
}

/// A binding or filter from JSON; for a binding every field but `host`
/// (default "*"), `pattern` (default LITERAL) and `permission` (default
/// ALLOW) is needed.
fn parse_acl(v: &Value, filter: bool) -> Result<AclFilter, String> {
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(String::from);
    let known = ["resource_type", "name", "pattern", "principal", "host", "operation", "permission"];
    if let Some(k) = v.as_object().and_then(|o| o.keys().find(|k| !known.contains(&k.as_str()))) {
        return Err(format!("unknown field {k:?} (known: {})", known.join(", ")));
    }
    fn parsed<T>(v: Option<String>, what: &str, f: fn(&str) -> Option<T>) -> Result<Option<T>, String> {
        v.map(|s| f(&s).ok_or_else(|| format!("{what} {s:?} is not one of Kafka's"))).transpose()
    }
    let mut f = AclFilter {
        resource_type: parsed(text("resource_type"), "resource_type", ResourceType::from_text)?,
        name: text("name"),
        pattern: parsed(text("pattern"), "pattern", PatternType::from_text)?,
        principal: text("principal"),
        host: text("host"),
        operation: parsed(text("operation"), "operation", Operation::from_text)?,
        permission: parsed(text("permission"), "permission", Permission::from_text)?,
    };
    if !filter {
        f.host.get_or_insert_with(|| "*".into());
        f.pattern.get_or_insert(PatternType::Literal);
        f.permission.get_or_insert(Permission::Allow);
    }
    Ok(f)
}

fn to_binding(f: AclFilter) -> Result<AclBinding, String> {
    let need = |what: &str| format!("an ACL needs {what}");
    let b = AclBinding {
        resource_type: f.resource_type.ok_or_else(|| need("resource_type"))?,
        name: f.name.ok_or_else(|| need("name"))?,
        pattern: f.pattern.ok_or_else(|| need("pattern"))?,
        principal: f.principal.ok_or_else(|| need("principal"))?,
        host: f.host.ok_or_else(|| need("host"))?,
        operation: f.operation.ok_or_else(|| need("operation"))?,
        permission: f.permission.ok_or_else(|| need("permission"))?,
    };
    b.validate()?;
    Ok(b)
}

pub(crate) async fn list_acls<S: PartitionStore>(State(s): State<Arc<AdminState<S>>>) -> Response {
    let state = s.store.security();
    Json(json!({"acls": state.acls.bindings.iter().map(binding_json).collect::<Vec<_>>()})).into_response()
}

pub(crate) async fn create_acls<S: PartitionStore>(State(s): State<Arc<AdminState<S>>>, body: Bytes) -> Response {
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid JSON: {e}")),
    };
    let items: Vec<Value> = match v.get("acls") {
        Some(Value::Array(a)) => a.clone(),
        _ => vec![v],
    };
    let bindings: Result<Vec<AclBinding>, String> = items.iter().map(|i| parse_acl(i, false).and_then(to_binding)).collect();
    let bindings = match bindings {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    let answer = json!({"created": bindings.iter().map(binding_json).collect::<Vec<_>>()});
    match s.store.alter_security(SecurityCommand::CreateAcls(bindings)).await {
        Ok(()) => Json(answer).into_response(),
        Err(e) => error(store_status(&e), &e.to_string()),
    }
}

pub(crate) async fn delete_acls<S: PartitionStore>(State(s): State<Arc<AdminState<S>>>, body: Bytes) -> Response {
    let v: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid JSON: {e}")),
        }
    };
    let filter = match parse_acl(&v, true) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    let state = s.store.security();
    let deleted: Vec<Value> = state.acls.matching(&filter).map(binding_json).collect();
    if deleted.is_empty() {
        return Json(json!({"deleted": deleted})).into_response();
    }
    match s.store.alter_security(SecurityCommand::DeleteAcls(vec![filter])).await {
        Ok(()) => Json(json!({"deleted": deleted})).into_response(),
        Err(e) => error(store_status(&e), &e.to_string()),
    }
}
