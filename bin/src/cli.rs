//! chronik: a thin command-line client of a node's admin API.
//!
//!   chronik status
//!   chronik topics
//!   chronik topic describe NAME
//!   chronik topic create NAME [--partitions N] [--replication-factor R] [--config key=value ...]
//!   chronik topic delete NAME
//!   chronik topic replication-factor NAME N
//!   chronik groups
//!   chronik group describe GROUP
//!   chronik replicas
//!   chronik reassign TOPIC PARTITION --replicas 1,2,3 | --cancel
//!   chronik reassignments
//!   chronik nodes
//!   chronik decommission NODE [--cancel]
//!   chronik users | user set NAME --password P | user delete NAME
//!   chronik acls | acl add|remove --principal User:a --operation READ --topic T [--prefixed] [--deny]
//!
//! `--admin URL` (or CHRONIK_ADMIN) picks the node, `--token` (or
//! CHRONIK_ADMIN_TOKEN) authenticates, `--json` prints the API's JSON
//! instead of a table.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use clap::{Parser, Subcommand};
use serde_json::{json, Value};

mod cli_security;
use cli_security::{AclAction, UserAction};

#[derive(Parser)]
#[command(name = "chronik", version, about = "Chronik's command-line client (talks to a node's admin API)")]
struct Cli {
    /// The admin API of any node (its Kafka port + 200).
    #[arg(long, global = true, env = "CHRONIK_ADMIN", default_value = "http://localhost:9292")]
    admin: String,
    /// Print JSON as the API returns it.
    #[arg(long, global = true)]
    json: bool,
    /// The admin API's bearer token (when the node has admin_token_file).
    #[arg(long, global = true, env = "CHRONIK_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Nodes, controller leader and readiness.
    Status,
    /// Users with SCRAM credentials (SASL).
    Users,
    /// Set or delete a user's credentials.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Every ACL.
    Acls,
    /// Add or remove ACLs.
    Acl {
        #[command(subcommand)]
        action: AclAction,
    },
    /// Every topic: partitions, replication, leaders.
    Topics,
    /// One topic.
    Topic {
        #[command(subcommand)]
        action: TopicAction,
    },
    /// Every consumer group (whichever node coordinates it), with its lag.
    Groups,
    /// One consumer group (ask its coordinator).
    Group {
        #[command(subcommand)]
        action: GroupAction,
    },
    /// The partition replicas on this node.
    Replicas,
    /// Move a partition to other nodes, or change its replication factor
    /// (Kafka's AlterPartitionReassignments): the first replica is the
    /// preferred leader. The move runs in the background; see
    /// `chronik reassignments`.
    Reassign {
        topic: String,
        partition: i32,
        /// The target replicas, comma-separated node ids.
        #[arg(long, value_delimiter = ',', required_unless_present = "cancel")]
        replicas: Vec<u64>,
        /// Cancel the partition's move: it moves back to where it was.
        #[arg(long, conflicts_with = "replicas")]
        cancel: bool,
    },
    /// Partition moves in progress, with how far each joining replica has
    /// caught up.
    Reassignments,
    /// Every node: alive, controller role, replicas, leaders, draining.
    Nodes,
    /// Moves every replica off NODE, then removes it from the cluster
    /// (works for a dead node too: that is how one is replaced).
    Decommission {
        node: u64,
        /// Stop the decommission (replicas already moved stay where they went).
        #[arg(long)]
        cancel: bool,
    },
    /// Dynamic broker configs (topic defaults that change at runtime): show
    /// them, or change the cluster-wide ones (or one node's, with --node).
    BrokerConfigs {
        #[arg(long)]
        node: Option<u64>,
        /// A config to set, key=value (repeatable).
        #[arg(long = "set", value_parser = parse_config)]
        set: Vec<(String, String)>,
        /// A config to drop, back to its default (repeatable).
        #[arg(long)]
        delete: Vec<String>,
    },
}

#[derive(Subcommand)]
enum TopicAction {
    /// Leader, replicas and offsets per partition.
    Describe { name: String },
    Create {
        name: String,
        #[arg(long)]
        partitions: Option<i32>,
        #[arg(long)]
        replication_factor: Option<i16>,
        /// A topic config, key=value (repeatable).
        #[arg(long = "config", value_parser = parse_config)]
        configs: Vec<(String, String)>,
    },
    Delete { name: String },
    /// Grow a topic to COUNT partitions (Kafka's CreatePartitions).
    AddPartitions {
        name: String,
        #[arg(long)]
        count: i32,
    },
    /// Give every partition of a topic N replicas (partition moves; follow
    /// them with `chronik reassignments`).
    ReplicationFactor { name: String, replication_factor: usize },
    /// Change a topic's configs (applies at once, without a restart).
    AlterConfig {
        name: String,
        /// A config to set, key=value (repeatable).
        #[arg(long = "set", value_parser = parse_config)]
        set: Vec<(String, String)>,
        /// A config to drop, back to its default (repeatable).
        #[arg(long)]
        delete: Vec<String>,
    },
    /// Move a partition's log start (Kafka's DeleteRecords): records below
    /// the offset are no longer served.
    DeleteRecords {
        name: String,
        #[arg(long)]
        partition: i32,
        /// The new log start; -1 for the high watermark (everything).
        #[arg(long, allow_negative_numbers = true)]
        offset: i64,
    },
}

#[derive(Subcommand)]
enum GroupAction {
    /// Committed offsets and lag per partition.
    Describe { group: String },
}

fn parse_config(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).ok_or_else(|| format!("{s:?} is not key=value"))
}

/// One API call: the JSON body, or the API's error message.
async fn call(client: &reqwest::Client, method: reqwest::Method, url: String, body: Option<Value>) -> Result<Value> {
    let mut req = client.request(method, &url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.with_context(|| format!("cannot reach {url}"))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    let value: Value = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
    if !status.is_success() {
        let msg = value.get("error").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| value.to_string());
        bail!("{msg} (HTTP {})", status.as_u16());
    }
    Ok(value)
}

/// Prints rows as a table with aligned columns.
fn table(headers: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: Vec<String>| {
        let s: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", s.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    for r in rows {
        line(r);
    }
}

/// A JSON value as a table cell ("-" for null).
fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

fn items(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

async fn run(cli: Cli) -> Result<()> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(t) = &cli.token {
        let mut v = reqwest::header::HeaderValue::from_str(&format!("Bearer {t}")).context("the token is not printable text")?;
        v.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, v);
    }
    let client = reqwest::Client::builder().default_headers(headers).build()?;
    let base = cli.admin.trim_end_matches('/').to_string();
    let get = |path: String| call(&client, reqwest::Method::GET, format!("{base}{path}"), None);
    let out = match &cli.command {
        Command::Users => {
            let r = get("/v1/users".into()).await?;
            if !cli.json {
                cli_security::print_users(&r)?;
            }
            r
        }
        Command::User { action } => {
            let (method, path, body) = cli_security::user_request(action);
            let r = call(&client, method, format!("{base}{path}"), body).await?;
            if !cli.json {
                println!("{r}");
            }
            r
        }
        Command::Acls => {
            let r = get("/v1/acls".into()).await?;
            if !cli.json {
                cli_security::print_acls(&r, "acls");
            }
            r
        }
        Command::Acl { action } => {
            let (method, path, body) = cli_security::acl_request(action);
            let r = call(&client, method, format!("{base}{path}"), body).await?;
            if !cli.json {
                let key = if r.get("created").is_some() { "created" } else { "deleted" };
                println!("{key}:");
                cli_security::print_acls(&r, key);
            }
            r
        }
        Command::Status => {
            let cluster = get("/v1/cluster".into()).await?;
            let ready = get("/v1/health/ready".into()).await.is_ok();
            if !cli.json {
                let controller = cluster["controller"].as_u64();
                println!("cluster {}  (asked node {}; ready: {})", cell(&cluster["cluster_id"]), cell(&cluster["node_id"]), if ready { "yes" } else { "no" });
                table(
                    &["NODE", "HOST", "PORT", "CONTROLLER"],
                    items(&cluster["nodes"])
                        .iter()
                        .map(|n| {
                            vec![cell(&n["id"]), cell(&n["host"]), cell(&n["port"]), if n["id"].as_u64() == controller { "*".into() } else { String::new() }]
                        })
                        .collect(),
                );
            }
            cluster
        }
        Command::Topics => {
            let topics = get("/v1/topics".into()).await?;
            if !cli.json {
                table(
                    &["TOPIC", "PARTITIONS", "REPLICATION", "LEADERLESS"],
                    items(&topics)
                        .iter()
                        .map(|t| {
                            let parts = items(&t["partitions"]);
                            let rf = parts.first().map(|p| items(&p["replicas"]).len()).unwrap_or(0);
                            let leaderless = parts.iter().filter(|p| p["leader"].is_null()).count();
                            vec![cell(&t["name"]), parts.len().to_string(), rf.to_string(), leaderless.to_string()]
                        })
                        .collect(),
                );
            }
            topics
        }
        Command::Topic { action: TopicAction::Describe { name } } => {
            let t = get(format!("/v1/topics/{name}")).await?;
            if !cli.json {
                print_topic(&t);
            }
            t
        }
        Command::Topic { action: TopicAction::Create { name, partitions, replication_factor, configs } } => {
            let configs: BTreeMap<_, _> = configs.iter().cloned().collect();
            let body = json!({"name": name, "partitions": partitions, "replication_factor": replication_factor, "configs": configs});
            let t = call(&client, reqwest::Method::POST, format!("{base}/v1/topics"), Some(body)).await?;
            if !cli.json {
                println!("created topic {name}");
                print_topic(&t);
            }
            t
        }
        Command::Topic { action: TopicAction::Delete { name } } => {
            call(&client, reqwest::Method::DELETE, format!("{base}/v1/topics/{name}"), None).await?;
            if !cli.json {
                println!("deleted topic {name}");
            }
            json!({"deleted": name})
        }
        Command::Topic { action: TopicAction::DeleteRecords { name, partition, offset } } => {
            let url = format!("{base}/v1/topics/{name}/partitions/{partition}/delete-records");
            let r = call(&client, reqwest::Method::POST, url, Some(json!({"offset": offset}))).await?;
            if !cli.json {
                println!("{name}-{partition} now starts at offset {}", cell(&r["log_start_offset"]));
            }
            r
        }
        Command::Topic { action: TopicAction::AddPartitions { name, count } } => {
            let t = call(&client, reqwest::Method::POST, format!("{base}/v1/topics/{name}/partitions"), Some(json!({"count": count}))).await?;
            if !cli.json {
                print_topic(&t);
            }
            t
        }
        Command::Topic { action: TopicAction::ReplicationFactor { name, replication_factor } } => {
            let body = json!({"replication_factor": replication_factor});
            let r = call(&client, reqwest::Method::POST, format!("{base}/v1/topics/{name}/replication-factor"), Some(body)).await?;
            if !cli.json {
                println!("{name}: {} partitions moving to {replication_factor} replicas; follow them with `chronik reassignments`", items(&r["moves"]).len());
            }
            r
        }
        Command::Topic { action: TopicAction::AlterConfig { name, set, delete } } => {
            let body = json!({"set": set.iter().cloned().collect::<BTreeMap<_, _>>(), "delete": delete});
            let r = call(&client, reqwest::Method::PATCH, format!("{base}/v1/topics/{name}/configs"), Some(body)).await?;
            if !cli.json {
                println!("topic {name} configs:");
                print_configs(&r["configs"]);
            }
            r
        }
        Command::BrokerConfigs { node, set, delete } if set.is_empty() && delete.is_empty() => {
            let r = get("/v1/broker-configs".into()).await?;
            if !cli.json {
                let shown = match node {
                    Some(n) => &r["nodes"][n.to_string()],
                    None => &r["cluster"],
                };
                print_configs(shown);
            }
            r
        }
        Command::BrokerConfigs { node, set, delete } => {
            let body = json!({"set": set.iter().cloned().collect::<BTreeMap<_, _>>(), "delete": delete});
            let path = node.map(|n| format!("/v1/broker-configs/{n}")).unwrap_or_else(|| "/v1/broker-configs".into());
            let r = call(&client, reqwest::Method::PATCH, format!("{base}{path}"), Some(body)).await?;
            if !cli.json {
                print_configs(&r["configs"]);
            }
            r
        }
        Command::Groups => {
            let groups = get("/v1/groups".into()).await?;
            if !cli.json {
                table(
                    &["GROUP", "COORDINATOR", "PARTITIONS", "LAG"],
                    items(&groups)
                        .iter()
                        .map(|g| vec![cell(&g["group"]), cell(&g["coordinator"]), items(&g["partitions"]).len().to_string(), cell(&g["lag"])])
                        .collect(),
                );
            }
            groups
        }
        Command::Group { action: GroupAction::Describe { group } } => {
            let g = get(format!("/v1/groups/{group}")).await?;
            if !cli.json {
                println!("group {}  coordinator {}  lag {}", cell(&g["group"]), cell(&g["coordinator"]), cell(&g["lag"]));
                table(
                    &["TOPIC", "PARTITION", "COMMITTED", "HIGH-WATERMARK", "LAG"],
                    items(&g["partitions"])
                        .iter()
                        .map(|p| vec![cell(&p["topic"]), cell(&p["partition"]), cell(&p["committed_offset"]), cell(&p["high_watermark"]), cell(&p["lag"])])
                        .collect(),
                );
            }
            g
        }
        Command::Reassign { topic, partition, replicas, cancel } => {
            let target = if *cancel { Value::Null } else { json!(replicas) };
            let body = json!({"moves": [{"topic": topic, "partition": partition, "replicas": target}]});
            let r = call(&client, reqwest::Method::POST, format!("{base}/v1/reassignments"), Some(body)).await?;
            if !cli.json {
                match *cancel {
                    true => println!("{topic}-{partition}: move cancelled, moving back"),
                    false => println!("{topic}-{partition}: moving to {replicas:?}; follow it with `chronik reassignments`"),
                }
            }
            r
        }
        Command::Reassignments => {
            let moves = get("/v1/reassignments".into()).await?;
            if !cli.json {
                table(
                    &["PARTITION", "REPLICAS", "ADDING", "REMOVING", "LEADER", "STEP", "CAUGHT UP"],
                    items(&moves)
                        .iter()
                        .map(|m| {
                            let p = &m["progress"];
                            let last = p["last_index"].as_u64().unwrap_or(0);
                            let caught: Vec<String> = items(&m["adding"])
                                .iter()
                                .map(|n| {
                                    let at = p["matched"][n.to_string()].as_u64().unwrap_or(0);
                                    format!("{n}: {at}/{last}")
                                })
                                .collect();
                            let step = p["step"].as_str().or(p["error"].as_str()).unwrap_or("-").to_string();
                            vec![format!("{}-{}", cell(&m["topic"]), cell(&m["partition"])), cell(&m["replicas"]), cell(&m["adding"]), cell(&m["removing"]), cell(&m["leader"]), step, caught.join(" ")]
                        })
                        .collect(),
                );
            }
            moves
        }
        Command::Nodes => {
            let nodes = get("/v1/nodes".into()).await?;
            if !cli.json {
                table(
                    &["NODE", "HOST", "PORT", "ALIVE", "CONTROLLER", "REPLICAS", "LEADERS", "STATE"],
                    items(&nodes)
                        .iter()
                        .map(|n| {
                            let role = format!("{}{}", cell(&n["controller_role"]), if n["controller"] == true { " (leader)" } else { "" });
                            let state = if n["draining"] == true { "decommissioning" } else { "active" };
                            vec![cell(&n["id"]), cell(&n["host"]), cell(&n["port"]), cell(&n["alive"]), role, cell(&n["replicas"]), cell(&n["leaders"]), state.into()]
                        })
                        .collect(),
                );
            }
            nodes
        }
        Command::Decommission { node, cancel } => {
            let action = if *cancel { "recommission" } else { "decommission" };
            let r = call(&client, reqwest::Method::POST, format!("{base}/v1/nodes/{node}/{action}"), None).await?;
            if !cli.json {
                match *cancel {
                    true => println!("node {node}: decommission stopped"),
                    false => println!("node {node}: decommissioning; its replicas move away (`chronik reassignments`), then it leaves (`chronik nodes`)"),
                }
            }
            r
        }
        Command::Replicas => {
            let r = get("/v1/replicas".into()).await?;
            if !cli.json {
                table(
                    &["TOPIC", "PARTITION", "LEADER", "TERM", "SERVING", "LOG-START", "HIGH-WATERMARK"],
                    items(&r)
                        .iter()
                        .map(|x| {
                            ["topic", "partition", "leader", "term", "serving", "log_start_offset", "high_watermark"].iter().map(|k| cell(&x[*k])).collect()
                        })
                        .collect(),
                );
            }
            r
        }
    };
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(())
}

fn print_configs(configs: &Value) {
    let rows: Vec<Vec<String>> = configs.as_object().map(|m| m.iter().map(|(k, v)| vec![k.clone(), cell(v)]).collect()).unwrap_or_default();
    table(&["CONFIG", "VALUE"], rows);
}

fn print_topic(t: &Value) {
    println!("topic {}{}", cell(&t["name"]), if t["internal"].as_bool() == Some(true) { " (internal)" } else { "" });
    table(
        &["PARTITION", "LEADER", "EPOCH", "REPLICAS", "LOG-START", "HIGH-WATERMARK"],
        items(&t["partitions"])
            .iter()
            .map(|p| ["partition", "leader", "leader_epoch", "replicas", "log_start_offset", "high_watermark"].iter().map(|k| cell(&p[*k])).collect())
            .collect(),
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
