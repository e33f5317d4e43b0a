//! chronik-server: one Chronik node.
//!
//!   chronik-server standalone [--advertised-addr localhost:9092] [--data-dir ./data]
//!   chronik-server start --config cluster.toml --node-id 2
//!   chronik-server start --node-id 4 --advertised-addr host4:9092 --join host1:9192

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use chronik::config::{FileConfig, NodeConfig};
use chronik::metrics::{ConsumerGroupLabels, LimitLabels, Metrics, SegmentLabels};
use chronik::raft::groups::GroupManager;
use chronik::PartitionStore;
use chronik_network::admin::{self, AdminState};
use chronik_network::HttpTransport;
use chronik_storage::SledEngine;
use clap::{Args, Parser, Subcommand};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tracing::{error, info};

#[derive(Parser)]
#[command(name = "chronik-server", version, about = "A Kafka-compatible streaming store: one Raft group per partition")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
    /// Log as JSON lines instead of text.
    #[arg(long, global = true, env = "CHRONIK_LOG_JSON")]
    log_json: bool,
}

#[derive(Subcommand)]
enum Mode {
    /// A single node: a one-node cluster (same code path as a cluster).
    Standalone(Flags),
    /// A cluster node: `--config` lists the nodes a new cluster starts with
    /// and `--node-id` says which one this is; or `--join` a running cluster.
    Start(Flags),
}

#[derive(Args)]
struct Flags {
    /// TOML config file (see README); flags override it.
    #[arg(long, env = "CHRONIK_CONFIG")]
    config: Option<PathBuf>,
    #[arg(long, env = "CHRONIK_NODE_ID")]
    node_id: Option<u64>,
    #[arg(long, env = "CHRONIK_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// host:port that clients are told to connect to (default localhost:9092).
    #[arg(long, env = "CHRONIK_ADVERTISED_ADDR")]
    advertised_addr: Option<String>,
    /// Kafka listen address (default 0.0.0.0:<advertised port>).
    #[arg(long)]
    kafka_listen: Option<String>,
    /// Raft/cluster HTTP listen address (default: Kafka port + 100).
    #[arg(long)]
    raft_listen: Option<String>,
    /// Admin HTTP and /metrics listen address (default: Kafka port + 200).
    #[arg(long)]
    admin_listen: Option<String>,
    /// Create topics on first Metadata/produce (default true).
    #[arg(long)]
    auto_create_topics: Option<bool>,
    #[arg(long)]
    default_partitions: Option<i32>,
    /// Largest Kafka request frame accepted, in bytes (default 100 MiB, as
    /// Kafka's socket.request.max.bytes).
    #[arg(long)]
    frame_bytes_max: Option<usize>,
    /// Largest record batch a topic takes unless its max.message.bytes says
    /// otherwise (default 1048588, as Kafka's message.max.bytes).
    #[arg(long)]
    message_max_bytes: Option<usize>,
    /// Most bytes a compressed batch may inflate to when validated (default 64 MiB).
    #[arg(long)]
    batch_decompressed_bytes_max: Option<usize>,
    /// Most record bytes in one Fetch response, whatever the client asks
    /// (default 55 MiB, as Kafka's fetch.max.bytes).
    #[arg(long)]
    fetch_max_bytes: Option<usize>,
    /// Most bytes of requests in progress on this node at once (default 512
    /// MiB; Kafka's queued.max.request.bytes).
    #[arg(long)]
    queued_max_request_bytes: Option<usize>,
    /// Requests of one connection in flight at once (default 128).
    #[arg(long)]
    connection_requests_in_flight_max: Option<usize>,
    /// Open Kafka connections on this node (default 10000; Kafka's max.connections).
    #[arg(long)]
    max_connections: Option<usize>,
    /// Open Kafka connections from one IP address (default 1000; Kafka's max.connections.per.ip).
    #[arg(long)]
    max_connections_per_ip: Option<usize>,
    /// Most record bytes in one AppendEntries to a follower (default 8 MiB).
    #[arg(long)]
    replication_append_bytes_max: Option<usize>,
    /// A follower not caught up within this long is out of the ISR (default
    /// 30000, as Kafka's replica.lag.time.max.ms).
    #[arg(long)]
    replica_lag_time_max_ms: Option<u64>,
    /// Memory for the keys one compaction holds at once (default 128 MiB, as
    /// Kafka's log.cleaner.dedupe.buffer.size; about 40 bytes a key).
    #[arg(long)]
    log_cleaner_dedupe_buffer_bytes: Option<usize>,
    /// Largest frame before SASL authentication (default 524288, as Kafka's
    /// sasl.server.max.receive.size).
    #[arg(long)]
    sasl_server_max_receive_size: Option<usize>,
    /// Kafka listeners ("PLAINTEXT://:9092,SASL_SSL://:9093"); see README, Security.
    #[arg(long, env = "CHRONIK_LISTENERS")]
    listeners: Option<String>,
    /// What clients are told per listener ("SASL_SSL://host1:9093").
    #[arg(long, env = "CHRONIK_ADVERTISED_LISTENERS")]
    advertised_listeners: Option<String>,
    /// Listener name -> protocol ("INTERNAL:SASL_SSL,EXTERNAL:SSL").
    #[arg(long)]
    listener_security_protocol_map: Option<String>,
    /// TLS: this node's certificate chain, key and the CAs of clients (PEM).
    #[arg(long)]
    ssl_cert_file: Option<PathBuf>,
    #[arg(long)]
    ssl_key_file: Option<PathBuf>,
    #[arg(long)]
    ssl_ca_file: Option<PathBuf>,
    /// none, requested or required (Kafka's ssl.client.auth).
    #[arg(long)]
    ssl_client_auth: Option<chronik::security::tls::ClientAuth>,
    #[arg(long)]
    ssl_principal_mapping_rules: Option<String>,
    /// Default SCRAM-SHA-256,SCRAM-SHA-512 (add PLAIN to allow it).
    #[arg(long)]
    sasl_enabled_mechanisms: Option<String>,
    /// A SASL session's lifetime; clients re-authenticate (KIP-368). 0: forever.
    #[arg(long)]
    connections_max_reauth_ms: Option<u64>,
    /// acl: Kafka's ACL authorizer; none (default): everything allowed.
    #[arg(long)]
    authorizer: Option<String>,
    /// Principals allowed everything, ";"-separated ("User:admin").
    #[arg(long)]
    super_users: Option<String>,
    #[arg(long)]
    allow_everyone_if_no_acl_found: Option<bool>,
    /// File with the secret nodes present to each other's cluster port.
    #[arg(long, env = "CHRONIK_CLUSTER_SECRET_FILE")]
    cluster_secret_file: Option<PathBuf>,
    /// mTLS between nodes on the cluster port (ssl_cert_file, ssl_key_file,
    /// ssl_ca_file; every node alike).
    #[arg(long)]
    cluster_tls: Option<bool>,
    /// Files of admin API bearer tokens (one per line): full and read-only.
    #[arg(long)]
    admin_token_file: Option<PathBuf>,
    #[arg(long)]
    admin_read_token_file: Option<PathBuf>,
    /// Whether /metrics needs an admin API token (default false).
    #[arg(long)]
    metrics_require_auth: Option<bool>,
    /// How long a new consumer group waits for more members before its first
    /// rebalance (default 3000, as Kafka).
    #[arg(long)]
    group_initial_rebalance_delay_ms: Option<u64>,
    /// Smallest session timeout a consumer may ask for (default 6000, as Kafka).
    #[arg(long)]
    group_min_session_timeout_ms: Option<i32>,
    /// Heartbeat interval of consumer-protocol (KIP-848) members (default 5000, as Kafka).
    #[arg(long)]
    group_consumer_heartbeat_interval_ms: Option<u64>,
    /// How long a silent consumer-protocol member stays in its group (default 45000, as Kafka).
    #[arg(long)]
    group_consumer_session_timeout_ms: Option<u64>,
    /// Most members of one consumer-protocol group (default 10000).
    #[arg(long)]
    group_consumer_max_size: Option<usize>,
    /// Free bytes the data disk must keep: below that, writes are refused
    /// and leaderships given up (default 64 MiB).
    #[arg(long)]
    min_free_disk_bytes: Option<u64>,
    /// Memory for the storage engine's page cache (default 256 MiB).
    #[arg(long)]
    cache_bytes: Option<u64>,
    /// How long topics keep records unless their retention.ms says otherwise
    /// (default 604800000, 7 days, as Kafka's log.retention.ms; -1 forever).
    #[arg(long)]
    log_retention_ms: Option<i64>,
    /// log_retention_ms in hours (Kafka's log.retention.hours), if that is not set.
    #[arg(long)]
    log_retention_hours: Option<i64>,
    /// Bytes a partition keeps unless its topic's retention.bytes says
    /// otherwise (default -1, unbounded, as Kafka's log.retention.bytes).
    #[arg(long)]
    log_retention_bytes: Option<i64>,
    /// How often leaders apply retention (default 300000, as Kafka's
    /// log.retention.check.interval.ms).
    #[arg(long)]
    log_retention_check_interval_ms: Option<u64>,
    /// How often leaders look for partitions to compact (default 15000, as
    /// Kafka's log.cleaner.backoff.ms).
    #[arg(long)]
    log_cleaner_backoff_ms: Option<u64>,
    /// Bytes after which a partition's replica closes a segment of its Raft
    /// log, which retention then frees whole (default 1073741824, as Kafka's
    /// log.segment.bytes; at least 1048576).
    #[arg(long)]
    log_segment_bytes: Option<u64>,
    /// Age after which a segment with records is closed (default 604800000,
    /// 7 days, as Kafka's log.roll.ms).
    #[arg(long)]
    log_roll_ms: Option<i64>,
    /// log_roll_ms in hours (Kafka's log.roll.hours), if that is not set.
    #[arg(long)]
    log_roll_hours: Option<i64>,
    /// Segment bytes of __consumer_offsets, whose partitions are snapshotted
    /// and purged after each (default 104857600, as Kafka's
    /// offsets.topic.segment.bytes).
    #[arg(long)]
    offsets_topic_segment_bytes: Option<u64>,
    /// Hand leaders back to their preferred replicas once failures heal
    /// (default true, as Kafka's auto.leader.rebalance.enable).
    #[arg(long)]
    auto_leader_rebalance_enable: Option<bool>,
    /// How often each node looks for leaders to hand back (default 30000;
    /// Kafka's leader.imbalance.check.interval.seconds is 300 s).
    #[arg(long)]
    leader_imbalance_check_interval_ms: Option<u64>,
    /// The share (%) of a node's preferred partitions it may not lead before
    /// they are handed back (default 10, as Kafka's).
    #[arg(long)]
    leader_imbalance_per_broker_percentage: Option<u32>,
    /// How long the committed offsets of a group without members (or of a
    /// consumer that never joined one) are kept (default 10080, 7 days, as
    /// Kafka's offsets.retention.minutes).
    #[arg(long)]
    offsets_retention_minutes: Option<i64>,
    /// offsets_retention_minutes in milliseconds, which wins if set (finer
    /// than Kafka allows: for tests).
    #[arg(long)]
    offsets_retention_ms: Option<i64>,
    /// How often offsets partitions' leaders look for expired offsets
    /// (default 600000, as Kafka's offsets.retention.check.interval.ms).
    #[arg(long)]
    offsets_retention_check_interval_ms: Option<u64>,
    /// How long a partition remembers an idempotent producer after its last
    /// batch (default 86400000, one day, as Kafka's producer.id.expiration.ms).
    #[arg(long)]
    producer_id_expiration_ms: Option<i64>,
    /// The Raft address (host:port) of any node of a running cluster: this
    /// node joins it (see README, "Growing and shrinking a cluster").
    #[arg(long, env = "CHRONIK_JOIN")]
    join: Option<String>,
    /// host:port where peers reach this node's Raft port, for a node not
    /// listed in [cluster] nodes (default: the advertised host, the
    /// --raft-listen port).
    #[arg(long)]
    advertised_raft_addr: Option<String>,
    /// Most voters of the controller group (default 5); other nodes are its
    /// learners.
    #[arg(long)]
    controller_voters_max: Option<usize>,
    /// This node's rack (Kafka's broker.rack): replicas of a partition go to
    /// distinct racks; a consumer with client.rack reads from its own.
    #[arg(long, env = "CHRONIK_BROKER_RACK")]
    broker_rack: Option<String>,
    /// rack_aware (default): a consumer that gives its rack is sent to a
    /// replica there (KIP-392); leader: consumers read from leaders.
    #[arg(long)]
    replica_selector: Option<chronik::config::ReplicaSelector>,
    /// node_add (default): replicas move onto a node added to the cluster;
    /// off: they stay where they are.
    #[arg(long)]
    partition_autobalancing: Option<chronik::config::Autobalancing>,
    /// Most partition moves balancing and decommissions keep under way at
    /// once (default 8).
    #[arg(long)]
    partition_moves_max: Option<usize>,
}

impl Flags {
    fn resolve(self, standalone: bool) -> Result<NodeConfig> {
        let mut file: FileConfig = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        if standalone && !file.cluster.nodes.is_empty() {
            anyhow::bail!("standalone mode takes no [cluster] nodes; use `start` for a cluster");
        }
        if self.join.is_some() {
            file.join = self.join.clone();
        }
        if standalone && file.join.is_some() {
            anyhow::bail!("standalone mode joins no cluster; use `start --join` for a node that joins one");
        }
        if !standalone && file.cluster.nodes.is_empty() && file.join.is_none() {
            anyhow::bail!("`start` needs a --config with [cluster] nodes, or --join with a node of a running cluster; use `standalone` for one node");
        }
        macro_rules! set { ($($f:ident),*) => { $( if self.$f.is_some() { file.$f = self.$f; } )* } }
        set!(node_id, data_dir, advertised_addr, kafka_listen, raft_listen, admin_listen, auto_create_topics, default_partitions, frame_bytes_max, group_initial_rebalance_delay_ms, group_min_session_timeout_ms,
            group_consumer_heartbeat_interval_ms, group_consumer_session_timeout_ms, group_consumer_max_size, min_free_disk_bytes, cache_bytes,
            message_max_bytes, batch_decompressed_bytes_max, fetch_max_bytes, queued_max_request_bytes, connection_requests_in_flight_max,
            max_connections, max_connections_per_ip, replication_append_bytes_max, replica_lag_time_max_ms,
            log_cleaner_dedupe_buffer_bytes,
            sasl_server_max_receive_size,
            log_retention_ms, log_retention_hours, log_retention_bytes, log_retention_check_interval_ms, log_cleaner_backoff_ms,
            log_segment_bytes, log_roll_ms, log_roll_hours, offsets_topic_segment_bytes, producer_id_expiration_ms,
            offsets_retention_minutes, offsets_retention_ms, offsets_retention_check_interval_ms,
            auto_leader_rebalance_enable, leader_imbalance_check_interval_ms, leader_imbalance_per_broker_percentage,
            controller_voters_max, partition_autobalancing, partition_moves_max, broker_rack, replica_selector, advertised_raft_addr
        );
        macro_rules! set_security { ($($f:ident),*) => { $( if self.$f.is_some() { file.security.$f = self.$f; } )* } }
        set_security!(
            listeners,
            advertised_listeners,
            listener_security_protocol_map,
            ssl_cert_file,
            ssl_key_file,
            ssl_ca_file,
            ssl_client_auth,
            ssl_principal_mapping_rules,
            sasl_enabled_mechanisms,
            connections_max_reauth_ms,
            authorizer,
            super_users,
            allow_everyone_if_no_acl_found,
            cluster_secret_file,
            cluster_tls,
            admin_token_file,
            admin_read_token_file,
            metrics_require_auth
        );
        Ok(file.resolve()?)
    }
}

/// Lag of the consumer groups this node coordinates: for each committed
/// partition with a replica here, its high watermark minus the commit.
fn consumer_lag(store: &impl PartitionStore, metrics: &Metrics) {
    let hwm = chronik::offsets::local_high_watermarks(store);
    for group in store.served_group_names().unwrap_or_default() {
        let Ok(parts) = chronik::offsets::group_lag(store, &group, &hwm) else { continue;
        };
        let lag: i64 = parts.iter().filter_map(|p| p.4).sum();
        let labels = ConsumerGroupLabels { node_id: metrics.node_id.clone(), group };
        metrics.consumer_group_lag.get_or_create(&labels).set(lag);
    }
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // openraft warns once per group per failed RPC: with a peer down that
        // is thousands of lines a second. Peer failures are logged once per
        // transition by the liveness loop instead; RUST_LOG brings them back.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=error,sled=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_json);
    let cfg = match cli.mode {
        Mode::Standalone(f) => f.resolve(true)?,
        Mode::Start(f) => f.resolve(false)?,
    };
    run(cfg).await
}

async fn run(cfg: NodeConfig) -> Result<()> {
    let node = cfg.node_id;
    info!(node_id = node, data_dir = %cfg.data_dir.display(), kafka = %cfg.kafka_listen, raft = %cfg.raft_listen, admin = %cfg.admin_listen, nodes = cfg.nodes.len(), "starting chronik");
    // Bind everything first: a port conflict should fail before any state changes.
    let mut kafka_listeners = vec![];
    for l in &cfg.security.listeners {
        let tcp = TcpListener::bind(&l.listen).await.with_context(|| format!("binding Kafka listener {} ({})", l.name, l.listen))?;
        kafka_listeners.push((tcp, l.clone()));
    }
    for w in cfg.security.warnings() {
        tracing::warn!(node_id = node, "security: {w}");
    }
    let raft_listener = TcpListener::bind(&cfg.raft_listen).await.with_context(|| format!("binding Raft listener {}", cfg.raft_listen))?;
    let admin_listener = TcpListener::bind(&cfg.admin_listen).await.with_context(|| format!("binding admin listener {}", cfg.admin_listen))?;

    let engine = Arc::new(SledEngine::open(&cfg.data_dir, node, cfg.cache_bytes).with_context(|| format!("opening storage in {}", cfg.data_dir.display()))?);
    let limits = cfg.limits.clone();
    let retention = cfg.retention;
    let broker_configs = cfg.broker_configs();
    let security = cfg.security.clone();
    let group_settings = chronik_kafka::GroupSettings {
        initial_rebalance_delay: std::time::Duration::from_millis(cfg.group_initial_rebalance_delay_ms),
        min_session_timeout_ms: cfg.group_min_session_timeout_ms,
        max_session_timeout_ms: cfg.group_max_session_timeout_ms,
        consumer_heartbeat_interval: std::time::Duration::from_millis(cfg.group_consumer_heartbeat_interval_ms),
        consumer_session_timeout: std::time::Duration::from_millis(cfg.group_consumer_session_timeout_ms),
        consumer_max_size: cfg.group_consumer_max_size,
    };
    let metrics = Arc::new(Metrics::new(node));
    let (peer_http, cluster_tls) = chronik_network::peers::PeerHttp::from_settings(&cfg.security).map_err(anyhow::Error::msg).context("cluster TLS")?;
    let transport = HttpTransport::new(node, local_ip(&cfg.raft_listen), cfg.limits.replication_append_bytes_max, metrics.clone(), &peer_http);
    let http_auth = Arc::new(chronik_network::auth::HttpAuth::new(&cfg.security));
    let groups = GroupManager::start(cfg, engine.clone(), transport, metrics.clone()).await.context("starting Raft groups")?;

    {
        let labels = metrics.node();
        let duration = metrics.storage_flush_duration.get_or_create(&labels).clone();
        let writers = metrics.storage_flush_writers.get_or_create(&labels).clone();
        engine.observe_flushes(Box::new(move |took, served| {
            duration.observe(took.as_secs_f64());
            writers.observe(served as f64);
        }));
    }
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let refresh = {
        let (groups, engine, metrics) = (groups.clone(), engine.clone(), metrics.clone());
        Box::new(move || {
            let labels = metrics.node();
            let parts = groups.partition_groups();
            let leaders = parts.iter().filter(|p| groups.leadership_of(p).leads).count();
            metrics.partitions.get_or_create(&labels).set(parts.len() as i64);
            metrics.partition_leaders.get_or_create(&labels).set(leaders as i64);
            metrics.storage_disk_bytes.get_or_create(&labels).set(engine.size_on_disk() as i64);
            let ss = engine.segment_stats();
            for (state, n) in [("free", ss.free), ("active", ss.active), ("inactive", ss.inactive), ("draining", ss.draining), ("pending_free", ss.pending_free)] {
                metrics.storage_segments.get_or_create(&SegmentLabels { node_id: labels.node_id.clone(), state }).set(n as i64);
            }
            metrics.storage_live_bytes.get_or_create(&labels).set(ss.live_bytes as i64);
            metrics.storage_relocation_queue.get_or_create(&labels).set(ss.cleaner_queue as i64);
            groups.refresh_metrics();
            let view = groups.cluster_view(None);
            let leaderless = view.topics.iter().flat_map(|t| &t.partitions).filter(|p| p.leader.is_none()).count();
            metrics.partitions_leaderless.get_or_create(&labels).set(leaderless as i64);
            consumer_lag(&*groups, &metrics);
            // Counters kept by the storage engine, brought up to date.
            let cs = engine.compaction_stats();
            let catch_up = |c: &prometheus_client::metrics::counter::Counter, total: &std::sync::atomic::AtomicU64| {
                c.inc_by(total.load(std::sync::atomic::Ordering::Relaxed).saturating_sub(c.get()));
            };
            catch_up(&metrics.compactions.get_or_create(&labels), &cs.jobs);
            catch_up(&metrics.compaction_batches_rewritten.get_or_create(&labels), &cs.batches_rewritten);
            catch_up(&metrics.compaction_bytes_removed.get_or_create(&labels), &cs.bytes_removed);
            let full = metrics.limit_hits.get_or_create(&LimitLabels { node_id: labels.node_id.clone(), limit: "log_cleaner_dedupe_buffer_bytes" });
            catch_up(&full, &cs.key_map_full);
            let fs = engine.flush_stats();
            let flushes = metrics.storage_flushes.get_or_create(&labels);
            flushes.inc_by(fs.flushes.saturating_sub(flushes.get()));
            let secs = metrics.storage_flush_seconds.get_or_create(&labels);
            secs.inc_by((fs.flush_nanos_total as f64 / 1e9 - secs.get()).max(0.0));
        }) as Box<dyn Fn() + Send + Sync>
    };
    let admin_routes = admin::router(Arc::new(AdminState::new(groups.clone(), registry, refresh, &peer_http)));
    // Nodes ask each other's admin API at the cluster address, which every
    // node knows, under /admin.
    let raft_app = chronik_network::server::router(groups.clone()).nest("/admin", admin_routes.clone())
        .layer(axum::middleware::from_fn_with_state(http_auth.clone(), chronik_network::auth::cluster_port));
    let admin_app = admin_routes.layer(axum::middleware::from_fn_with_state(http_auth, chronik_network::auth::admin_port));
    tokio::spawn(async move {
        let served = match cluster_tls {
            Some(tls) => match chronik_network::peers::TlsListener::new(raft_listener, tls) {
                Ok(l) => axum::serve(l, raft_app).await,
                Err(e) => Err(e),
            },
            None => axum::serve(raft_listener, raft_app).await,
        };
        if let Err(e) = served {
            error!(error = %e, "raft listener stopped");
        }
    });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(admin_listener, admin_app).await {
            error!(error = %e, "admin listener stopped");
        }
    });

    let kafka_cfg = chronik_kafka::ServerConfig { limits, groups: group_settings, retention, broker_configs, security };
    tokio::spawn(chronik_kafka::serve(kafka_listeners, groups.clone(), metrics.clone(), kafka_cfg));
    info!(node_id = node, "chronik is ready");

    shutdown_signal().await;
    info!(node_id = node, "shutting down: stopping Raft groups");
    groups.shutdown().await;
    info!(node_id = node, "stopped");
    Ok(())
}

/// The address Raft traffic leaves from: the Raft listener's, unless it
/// listens on every address.
fn local_ip(raft_listen: &str) -> Option<std::net::IpAddr> {
    let ip: std::net::IpAddr = chronik::config::split_host_port(raft_listen).ok()?.0.parse().ok()?;
    (!ip.is_unspecified()).then_some(ip)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}
