//! `chronik users`, `chronik user set|delete`, `chronik acls`,
//! `chronik acl add|remove`: the admin API's users and ACLs.

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

#[derive(Subcommand)]
pub enum UserAction {
    /// Set a user's SCRAM credentials (both mechanisms unless --mechanism).
    Set {
        name: String,
        #[arg(long, env = "CHRONIK_USER_PASSWORD", hide_env_values = true)]
        password: String,
        /// SCRAM-SHA-256 or SCRAM-SHA-512 (repeatable).
        #[arg(long = "mechanism")]
        mechanisms: Vec<String>,
        #[arg(long)]
        iterations: Option<i32>,
    },
    /// Delete all of a user's credentials.
    Delete { name: String },
}

/// Which ACLs: a binding to add, or a filter to remove.
#[derive(Args)]
pub struct AclSpec {
    /// "User:alice" or "User:*".
    #[arg(long)]
    principal: Option<String>,
    /// READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE, ALL, ...
    #[arg(long)]
    operation: Option<String>,
    #[arg(long, conflicts_with_all = ["group", "cluster"])]
    topic: Option<String>,
    #[arg(long, conflicts_with_all = ["topic", "cluster"])]
    group: Option<String>,
    #[arg(long, conflicts_with_all = ["topic", "group"])]
    cluster: bool,
    /// The name is a prefix (PREFIXED pattern).
    #[arg(long)]
    prefixed: bool,
    /// A DENY entry (default ALLOW).
    #[arg(long)]
    deny: bool,
    /// The client's IP address (default any).
    #[arg(long)]
    host: Option<String>,
}

#[derive(Subcommand)]
pub enum AclAction {
    /// Add an ACL.
    Add(AclSpec),
    /// Remove every ACL matching the given fields.
    Remove(AclSpec),
}

impl AclSpec {
    fn json(&self, filter: bool) -> Value {
        let mut m = Map::new();
        let (rt, name) = match (&self.topic, &self.group, self.cluster) {
            (Some(t), _, _) => (Some("TOPIC"), Some(t.clone())),
            (_, Some(g), _) => (Some("GROUP"), Some(g.clone())),
            (_, _, true) => (Some("CLUSTER"), Some("kafka-cluster".to_string())),
            _ => (None, None),
        };
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                m.insert(k.into(), Value::String(v));
            }
        };
        put("resource_type", rt.map(String::from));
        put("name", name);
        put("principal", self.principal.clone());
        put("operation", self.operation.clone());
        put("host", self.host.clone());
        if self.prefixed || !filter {
            put("pattern", Some(if self.prefixed { "PREFIXED" } else { "LITERAL" }.into()));
        }
        if self.deny || !filter {
            put("permission", Some(if self.deny { "DENY" } else { "ALLOW" }.into()));
        }
        Value::Object(m)
    }
}

pub fn user_request(action: &UserAction) -> (reqwest::Method, String, Option<Value>) {
    match action {
        UserAction::Set { name, password, mechanisms, iterations } => {
            let mut body = json!({"password": password});
            if !mechanisms.is_empty() {
                body["mechanisms"] = json!(mechanisms);
            }
            if let Some(i) = iterations {
                body["iterations"] = json!(i);
            }
            (reqwest::Method::PUT, format!("/v1/users/{name}"), Some(body))
        }
        UserAction::Delete { name } => (reqwest::Method::DELETE, format!("/v1/users/{name}"), None),
    }
}

pub fn acl_request(action: &AclAction) -> (reqwest::Method, String, Option<Value>) {
    match action {
        AclAction::Add(spec) => (reqwest::Method::POST, "/v1/acls".into(), Some(spec.json(false))),
        AclAction::Remove(spec) => (reqwest::Method::DELETE, "/v1/acls".into(), Some(spec.json(true))),
    }
}

pub fn print_users(v: &Value) -> Result<()> {
    let rows = super::items(&v["users"])
        .iter()
        .map(|u| {
            let mechs: Vec<String> =
                super::items(&u["mechanisms"]).iter().map(|m| format!("{}({})", super::cell(&m["mechanism"]), super::cell(&m["iterations"]))).collect();
            vec![super::cell(&u["name"]), mechs.join(",")]
        })
        .collect();
    super::table(&["USER", "MECHANISMS(ITERATIONS)"], rows);
    Ok(())
}

pub fn print_acls(v: &Value, key: &str) {
    let cols = ["principal", "host", "operation", "permission", "resource_type", "name", "pattern"];
    let rows = super::items(&v[key]).iter().map(|a| cols.iter().map(|k| super::cell(&a[*k])).collect()).collect();
    super::table(&["PRINCIPAL", "HOST", "OPERATION", "PERMISSION", "RESOURCE", "NAME", "PATTERN"], rows);
}
