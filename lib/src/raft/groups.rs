//! The group manager owns every Raft group of this node: the controller group
//! and the partition groups assigned here. It reconciles the running groups to
//! the controller's metadata: start what is assigned, stop and drop what was
//! deleted or moved away. Nothing else creates or drops groups.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use openraft::async_runtime::WatchReceiver;
use openraft::{Config, ServerState, SnapshotPolicy};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::NodeConfig;
use crate::raft::engine::{PartitionLog, StorageEngine, Transport};
use crate::raft::isr::IsrTracker;
use crate::raft::liveness::{campaign_due, NodeStatus, PeerTable, Suspects, ALIVE_WINDOW, PING_INTERVAL};
use crate::cluster::metadata::{ClusterMetadata, ControllerCommand, ControllerError};
use crate::metrics::{Metrics, VoteLabels};
use crate::store::StoreError;
use crate::{Command, CommandResult, GroupId, NodeAddr, NodeId, Raft, TopicPartition, CONTROLLER_GROUP};

/// One partition replica running on this node.
pub struct PartitionGroup<E: StorageEngine> {
    pub tp: TopicPartition,
    pub group: GroupId,
    pub raft: Raft<E::Sm>,
    pub log: Arc<dyn PartitionLog>,
    /// Set when someone needed this leader's lease (a read, an append) and
    /// it is getting old: the timing loop heartbeats the group at its next
    /// heartbeat tick. Idle groups nobody touches are not heartbeated at all.
    pub lease_wanted: std::sync::atomic::AtomicBool,
    /// The group's metrics, held once (cloning openraft's receiver per look
    /// costs more than the look when a node hosts thousands of groups).
    pub metrics: openraft::alias::WatchReceiverOf<crate::TypeConfig, openraft::RaftMetrics<crate::TypeConfig>>,
}

/// Leadership as the Kafka front door needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leadership {
    pub leader: Option<NodeId>,
    pub term: u64,
    /// Raft log positions: last written, committed, applied.
    pub last_log_index: Option<u64>,
    pub committed_index: Option<u64>,
    pub applied_index: Option<u64>,
    /// This node leads and has applied an entry of its own term, so its state
    /// machine holds everything ever committed: safe to serve.
    pub serving: bool,
    /// Has applied an entry of the current term (for a leader: it has
    /// finished taking over).
    pub applied_own_term: bool,
    /// This node leads and has applied an entry of its own term; `serving`
    /// adds that a quorum acknowledged it within the lease.
    pub leads: bool,
    /// How long ago a quorum last acknowledged this leader (None: never, or
    /// not the leader).
    pub quorum_age: Option<Duration>,
}

pub fn leadership<SM: openraft::storage::RaftStateMachine<crate::TypeConfig>>(raft: &Raft<SM>, me: NodeId, lease: Duration) -> Leadership {
    leadership_in(&raft.metrics().borrow_watched(), me, lease)
}

pub fn leadership_in(m: &openraft::RaftMetrics<crate::TypeConfig>, me: NodeId, lease: Duration) -> Leadership {
    let applied_term = m.last_applied.as_ref().map(|l| l.leader_id.term);
    // A leader cut off from its majority keeps believing it leads until it
    // hears a higher term; it stops serving once no quorum has acknowledged it
    // within the lease, so a client goes looking for the new leader.
    let voters = m.membership_config.membership().voter_ids().count();
    let quorum_age = m.last_quorum_acked.as_ref().map(|t| openraft::Instant::elapsed(&**t));
    let quorum_fresh = voters <= 1 || quorum_age.is_some_and(|age| age < lease);
    let leads = m.current_leader == Some(me) && applied_term == Some(m.current_term);
    Leadership {
        leader: m.current_leader,
        term: m.current_term,
        last_log_index: m.last_log_index,
        committed_index: m.local_committed.as_ref().map(|l| l.index),
        applied_index: m.last_applied.as_ref().map(|l| l.index),
        serving: leads && quorum_fresh,
        applied_own_term: applied_term == Some(m.current_term),
        leads,
        quorum_age: if voters <= 1 { Some(Duration::ZERO) } else { quorum_age },
    }
}

/// A per-process start for status versions (see [`NodeStatus::version`]).
fn status_version_base() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
    // Leave room to count up without wrapping.
    (nanos >> 20) << 20
}

/// How long one metadata change may wait to be committed.
const CONTROLLER_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The least time a metadata change keeps trying while the controller has no
/// live leader (three election timeouts when that is longer).
const PROPOSE_RETRY_WAIT: Duration = Duration::from_secs(5);

/// How long a reading of the free disk space is trusted.
const DISK_CHECK_EVERY: Duration = Duration::from_millis(20);

/// A replica this many entries behind its leader is reported as catching up.
const CATCH_UP_LOG_ENTRIES: u64 = 1000;

/// Most groups one node starts a campaign for in one tick (the rest wait for
/// the next): a node that comes back to thousands of leaderless groups, or
/// loses a peer that led thousands, elects them at a steady pace instead
/// of sending every vote at once and timing out its own status exchanges.
const CAMPAIGNS_PER_TICK: usize = 256;

/// The longest the timing loop goes without looking at every group.
const FULL_SCAN_EVERY: Duration = Duration::from_secs(1);

/// How often a streak of campaigns is logged.
const CAMPAIGN_LOG_EVERY: Duration = Duration::from_secs(5);

pub struct GroupManager<E: StorageEngine, T: Transport> {
    pub cfg: NodeConfig,
    engine: Arc<E>,
    pub(crate) transport: T,
    partition_raft_config: Arc<Config>,
    pub controller: Raft<E::Sm>,
    pub(crate) metadata: watch::Receiver<Arc<ClusterMetadata>>,
    partitions: RwLock<HashMap<GroupId, Arc<PartitionGroup<E>>>>,
    /// Bumped whenever a group starts or stops here (the timing loop keeps
    /// its list of groups until then).
    pub(crate) partitions_version: std::sync::atomic::AtomicU64,
    reconcile: tokio::sync::Mutex<()>,
    /// Liveness and leader claims of the peers.
    pub peers: PeerTable,
    /// What this node tells its peers; refreshed by the timing loop.
    status: RwLock<Arc<NodeStatus>>,
    /// Followers out of sync in the groups this node leads (see `crate::raft::isr`);
    /// refreshed by the timing loop.
    lagging: RwLock<HashMap<GroupId, Vec<NodeId>>>,
    pub(crate) stopping: AtomicBool,
    /// This node's unused producer ids (see `allocate_producer_id`).
    pub(crate) producer_ids: tokio::sync::Mutex<std::ops::Range<i64>>,
    /// Serializes the creation of the offsets topic on this node.
    pub(crate) offsets_topic_creation: tokio::sync::Mutex<()>,
    /// The moves of partitions led here, as last stepped (`crate::cluster::moves`).
    pub(crate) move_progress: RwLock<HashMap<TopicPartition, crate::cluster::moves::MoveProgress>>,
    /// The last reading of the data disk's free bytes, and when it was taken.
    disk_free: std::sync::Mutex<(Instant, Option<u64>)>,
    pub metrics: Arc<Metrics>,
}

impl<E: StorageEngine, T: Transport> GroupManager<E, T> {
    /// Opens the controller group, initializes it on first start, and starts
    /// the background tasks that keep node registration and partition groups
    /// in step with the metadata.
    pub async fn start(cfg: NodeConfig, engine: Arc<E>, transport: T, metrics: Arc<Metrics>) -> Result<Arc<Self>, StoreError> {
        let node = cfg.node_id;
        let fatal = |e: openraft::errors::Fatal<crate::TypeConfig>| StoreError::Storage { node, detail: e.to_string() };
        let base = Config {
            cluster_name: "chronik".into(),
            heartbeat_interval: cfg.heartbeat_interval_ms,
            election_timeout_min: cfg.election_timeout_min_ms,
            election_timeout_max: cfg.election_timeout_max_ms,
            // A leader that restarts must win a new election, as in standard
            // Raft. Restoring its leadership in the old term lets it reuse
            // log ids: after a power loss it may have lost the unflushed
            // tail of its own log, which followers already hold, and would
            // then write different entries under the same (term, index), so
            // replicas diverge (found by chaos power-loss, seed 117841540).
            enable_leader_restore: Some(false),
            // A follower that comes back without entries it had acknowledged
            // (a disk that lost writes it claimed durable) is caught up again
            // from the start of the disagreement instead of being stalled
            // forever; openraft logs "follower log is reverted" when it does.
            allow_log_reversion: Some(true),
            ..Default::default()
        };
        let controller_config = Arc::new(
            Config { snapshot_policy: SnapshotPolicy::LogsSinceLast(1000), ..base.clone() }
                .validate()
                .map_err(|e| StoreError::Storage { node, detail: e.to_string() })?,
        );
        // The partition log *is* the partition's data: Openraft must never
        // snapshot-and-purge it behind our back. Snapshots are asked for
        // (crate::raft::segments) once retention has passed a checkpoint, and
        // the log is then purged up to it, keeping nothing more.
        // Partition groups have no ticks of their own: the node's timing loop
        // (crate::raft::liveness) drives their heartbeats and elections.
        let partition_raft_config = Arc::new(
            Config { snapshot_policy: SnapshotPolicy::Never, enable_tick: false, max_in_snapshot_log_to_keep: 0, ..base }
                .validate()
                .map_err(|e| StoreError::Storage { node, detail: e.to_string() })?,
        );
        let (opened, metadata) = engine.open_controller()?;
        let controller = Raft::new(node, controller_config, transport.factory(CONTROLLER_GROUP), opened.log, opened.sm)
            .await
            .map_err(fatal)?;
        // A node that joins a running cluster gets the controller group from
        // its leader; only the nodes a new cluster starts with initialize it.
        if cfg.join.is_none() && !controller.is_initialized().await.map_err(fatal)? {
            info!(node_id = node, nodes = ?cfg.nodes.keys().collect::<Vec<_>>(), "initializing controller group");
            if let Err(e) = controller.initialize(cfg.nodes.clone()).await {
                // Another node may have initialized it first: that is fine.
                warn!(node_id = node, error = %e, "controller initialize");
            }
        }
        let mgr = Arc::new(Self {
            cfg,
            engine,
            transport,
            partition_raft_config,
            controller,
            metadata,
            partitions: RwLock::new(HashMap::new()),
            partitions_version: Default::default(),
            reconcile: tokio::sync::Mutex::new(()),
            peers: PeerTable::default(),
            status: RwLock::new(Arc::new(NodeStatus { node, version: status_version_base(), leading: Some(vec![]), lagging: None, have: None })),
            lagging: RwLock::new(HashMap::new()),
            stopping: AtomicBool::new(false),
            producer_ids: tokio::sync::Mutex::new(0..0),
            offsets_topic_creation: tokio::sync::Mutex::new(()),
            disk_free: std::sync::Mutex::new((Instant::now() - DISK_CHECK_EVERY, None)),
            move_progress: Default::default(),
            metrics,
        });
        // Every counter exists from the start, at 0 (a standalone node never
        // receives a vote, but dashboards and alerts should find the series).
        let m = &mgr.metrics;
        for c in [&m.raft_leader_elections, &m.raft_append_entries, &m.raft_heartbeats, &m.log_snapshots, &m.reassignments_completed] {
            let _ = c.get_or_create(&m.node());
        }
        for kind in ["pre_vote", "vote"] {
            let _ = m.raft_vote_requests.get_or_create(&VoteLabels { node_id: m.node_id.clone(), kind });
        }
        tokio::spawn(mgr.clone().register_loop());
        tokio::spawn(mgr.clone().ping_peers_loop());
        tokio::spawn(mgr.clone().reconcile_loop());
        tokio::spawn(mgr.clone().timing_loop());
        let ms = Duration::from_millis;
        let r = &mgr.cfg.retention;
        tokio::spawn(mgr.clone().every(ms(r.check_interval_ms), |m| async move { m.apply_retention().await }));
        tokio::spawn(mgr.clone().every(ms(r.cleaner_backoff_ms), |m| async move { m.compact_due().await }));
        tokio::spawn(mgr.clone().every(ms(r.offsets_retention_check_interval_ms), |m| async move { m.expire_offsets().await }));
        tokio::spawn(mgr.clone().every(crate::raft::reassignment::LOOK_EVERY, |m| async move { m.drive_reassignments().await }));
        tokio::spawn(mgr.clone().every(crate::raft::membership::LOOK_EVERY, |m| async move { m.drive_membership().await }));
        if mgr.cfg.auto_leader_rebalance_enable {
            tokio::spawn(mgr.clone().every(ms(mgr.cfg.leader_imbalance_check_interval_ms), |m| async move { m.balance_leaders().await }));
        }
        tokio::spawn(mgr.clone().segment_loop());
        tokio::spawn(mgr.clone().topic_cleanup_loop());
        Ok(mgr)
    }

    pub fn node_id(&self) -> NodeId {
        self.cfg.node_id
    }

    pub fn metadata(&self) -> Arc<ClusterMetadata> {
        self.metadata.borrow().clone()
    }

    /// Runs `look` every `period` (first one period after the start) until
    /// the node stops: retention, compaction, offset expiry, the balancer.
    pub(crate) async fn every<F, Fut>(self: Arc<Self>, period: Duration, look: F)
    where
        F: Fn(Arc<Self>) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        while !self.stopping.load(Ordering::Relaxed) {
            tick.tick().await;
            look(self.clone()).await;
        }
    }

    pub fn partition(&self, group: GroupId) -> Option<Arc<PartitionGroup<E>>> {
        self.partitions.read().unwrap().get(&group).cloned()
    }

    pub fn partition_groups(&self) -> Vec<Arc<PartitionGroup<E>>> {
        self.partitions.read().unwrap().values().cloned().collect()
    }

    /// The leader lease: how long a leader may go without a quorum's
    /// acknowledgement and still serve.
    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.cfg.election_timeout_max_ms)
    }

    pub fn leadership_of(&self, pg: &PartitionGroup<E>) -> Leadership {
        leadership_in(&pg.metrics.borrow_watched(), self.node_id(), self.lease())
    }

    /// Whether `bytes` more may be written without eating into the disk
    /// reserve (`min_free_disk_bytes`). Checked before a produce, a group
    /// write and a replicated append, so the disk never fills up under sled
    /// (which cannot recover from ENOSPC without a restart).
    pub fn check_disk(&self, bytes: u64) -> Result<(), StoreError> {
        let free = {
            let mut d = self.disk_free.lock().unwrap();
            if d.0.elapsed() >= DISK_CHECK_EVERY {
                *d = (Instant::now(), self.engine.disk_free_bytes());
            }
            d.1
        };
        let reserve = self.cfg.min_free_disk_bytes;
        match free {
            Some(free) if free < reserve.saturating_add(bytes) => {
                Err(StoreError::DiskFull { node: self.node_id(), free_bytes: free, reserve_bytes: reserve })
            }
            _ => Ok(()),
        }
    }

    pub(crate) fn engine_disk_free(&self) -> Option<u64> {
        self.engine.disk_free_bytes()
    }

    /// Brings the Raft gauges and partition health up to date (before a scrape).
    pub fn refresh_metrics(&self) {
        let m = &self.metrics;
        let node = m.node();
        let raft_numbers = |raft: &Raft<E::Sm>| {
            let r = raft.metrics();
            let r = r.borrow_watched();
            let first = r.purged.map(|p| p.index + 1).unwrap_or(0);
            let entries = r.last_log_index.map(|last| (last + 1).saturating_sub(first)).unwrap_or(0);
            (r.current_term, r.local_committed.map(|c| c.index).unwrap_or(0), entries)
        };
        let (term, commit, entries) = raft_numbers(&self.controller);
        m.raft_current_term.get_or_create(&m.kind("controller")).set(term as i64);
        m.raft_commit_index.get_or_create(&m.kind("controller")).set(commit as i64);
        m.raft_log_entries.get_or_create(&m.kind("controller")).set(entries as i64);
        let groups = self.partition_groups();
        let (mut max_term, mut commits, mut all_entries, mut under) = (0u64, 0u64, 0u64, 0i64);
        let md = self.metadata();
        for pg in &groups {
            let (term, commit, entries) = raft_numbers(&pg.raft);
            max_term = max_term.max(term);
            commits += commit;
            all_entries += entries;
            if self.leadership_of(&pg).leads {
                let replicas = md.partition(&pg.tp).map(|a| a.replicas.clone()).unwrap_or_default();
                if self.in_sync(pg.group, self.node_id(), &replicas).len() < replicas.len() {
                    under += 1;
                }
            }
        }
        m.raft_current_term.get_or_create(&m.kind("partitions")).set(max_term as i64);
        m.raft_commit_index.get_or_create(&m.kind("partitions")).set(commits as i64);
        m.raft_log_entries.get_or_create(&m.kind("partitions")).set(all_entries as i64);
        m.partitions_under_replicated.get_or_create(&node).set(under);
        if let Some(free) = self.engine.disk_free_bytes() {
            m.storage_disk_free_bytes.get_or_create(&node).set(free as i64);
        }
        m.cluster_nodes.get_or_create(&node).set(md.nodes.len() as i64);
        m.cluster_nodes_draining.get_or_create(&node).set(md.draining.len() as i64);
        let voters = self.controller.metrics().borrow_watched().membership_config.membership().voter_ids().count();
        m.controller_voters.get_or_create(&node).set(voters as i64);
    }

    /// The in-sync replicas of `group` led by `leader`, in replica order: the
    /// leader, and every follower that is alive and that the leader does
    /// not report out of sync (replica_lag_time_max_ms).
    pub fn in_sync(&self, group: GroupId, leader: NodeId, replicas: &[NodeId]) -> Vec<NodeId> {
        let me = self.node_id();
        let lagging = if leader == me { self.lagging.read().unwrap().get(&group).cloned().unwrap_or_default() } else { self.peers.lagging(leader, group) };
        replicas
            .iter()
            .copied()
            .filter(|n| *n == leader || ((*n == me || self.peers.is_alive(*n)) && !lagging.contains(n)))
            .collect()
    }

    /// Where a node is reached, from the replicated metadata or the config.
    pub(crate) fn node_addr(&self, node: NodeId) -> Option<NodeAddr> {
        self.metadata().nodes.get(&node).cloned().or_else(|| self.cfg.nodes.get(&node).cloned())
    }

    /// Writes a metadata change through the controller group, forwarding it to
    /// the controller leader when that is another node.
    pub async fn propose(&self, cmd: ControllerCommand) -> Result<(), StoreError> {
        // An election of the controller may be under way: try again for a
        // few election timeouts (clients such as librdkafka's admin client
        // do not retry NOT_CONTROLLER themselves).
        let wait = PROPOSE_RETRY_WAIT.max(Duration::from_millis(3 * self.cfg.election_timeout_max_ms));
        let deadline = Instant::now() + wait;
        loop {
            match self.propose_once(cmd.clone()).await {
                Err(StoreError::NotController(_)) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => return other,
            }
        }
    }

    async fn propose_once(&self, cmd: ControllerCommand) -> Result<(), StoreError> {
        let me = self.node_id();
        match self.propose_local(cmd.clone()).await {
            Err(StoreError::NotController(Some(leader))) if leader != me => {
                if !self.peers.is_alive(leader) {
                    // Its followers have not elected another yet.
                    return Err(StoreError::NotController(None));
                }
                let Some(addr) = self.node_addr(leader) else {
                    return Err(StoreError::NotController(Some(leader)));
                };
                match self.transport.forward_controller(leader, &addr, cmd).await {
                    Ok(r) => r.map_err(StoreError::from),
                    Err(e) => {
                        warn!(node_id = me, controller = leader, error = %e, "forwarding a metadata change to the controller failed");
                        Err(StoreError::NotController(Some(leader)))
                    }
                }
            }
            other => other,
        }
    }

    /// Writes a metadata change through the local controller replica (which
    /// must lead the controller group).
    async fn propose_local(&self, cmd: ControllerCommand) -> Result<(), StoreError> {
        let node = self.node_id();
        // Bounded: a controller that cannot commit (no quorum, a broken
        // disk) must not hold a client's request forever.
        let write = tokio::time::timeout(CONTROLLER_WRITE_TIMEOUT, self.controller.client_write(Command::Controller(cmd)));
        let Ok(result) = write.await else {
            warn!(node_id = node, timeout_s = CONTROLLER_WRITE_TIMEOUT.as_secs(), "metadata change not committed in time");
            return Err(StoreError::Timeout(TopicPartition::new("(controller)", 0)));
        };
        match result {
            Ok(resp) => match resp.data {
                CommandResult::Controller(r) => r.map_err(StoreError::from),
                other => Err(StoreError::Storage { node, detail: format!("controller answered {other:?}") }),
            },
            Err(openraft::errors::RaftError::APIError(openraft::errors::ClientWriteError::ForwardToLeader(f))) => {
                Err(StoreError::NotController(f.leader_id))
            }
            Err(e) => Err(StoreError::Storage { node, detail: format!("controller write failed: {e}") }),
        }
    }

    async fn reconcile_loop(self: Arc<Self>) {
        let mut md = self.metadata.clone();
        let mut orphans_collected = false;
        loop {
            self.reconcile_once().await;
            if !orphans_collected && leadership_known_and_caught_up(&self.controller) {
                orphans_collected = true;
                self.collect_orphans().await;
            }
            tokio::select! {
                r = md.changed() => if r.is_err() { return },
                _ = tokio::time::sleep(Duration::from_millis(500)), if !orphans_collected => {}
            }
        }
    }

    /// Starts the groups assigned here and not running; stops and drops the
    /// running ones no longer assigned here.
    pub async fn reconcile_once(&self) {
        let _guard = self.reconcile.lock().await;
        let me = self.node_id();
        let md = self.metadata();
        let wanted: HashMap<GroupId, (TopicPartition, Vec<NodeId>)> = md
            .partitions()
            .filter(|(_, a)| a.replicas.contains(&me))
            .map(|(tp, a)| (a.group, (tp, a.replicas.clone())))
            .collect();
        let running: std::collections::HashSet<GroupId> = self.partitions.read().unwrap().keys().copied().collect();
        for group in running.iter().filter(|g| !wanted.contains_key(g)) {
            let removed = self.partitions.write().unwrap().remove(group);
            self.partitions_version.fetch_add(1, Ordering::Relaxed);
            if let Some(pg) = removed {
                info!(node_id = me, group = %group, partition = %pg.tp, "stopping partition group");
                let _ = pg.raft.shutdown().await;
                if let Err(e) = self.engine.drop_group(*group) {
                    warn!(node_id = me, group = %group, error = %e, "dropping partition data failed");
                }
            }
        }
        let to_start: Vec<_> = wanted.into_iter().filter(|(g, _)| !running.contains(g)).collect();
        if to_start.is_empty() {
            return;
        }
        info!(node_id = me, count = to_start.len(), "starting partition groups");
        let started = futures::future::join_all(
            to_start.into_iter().map(|(group, (tp, replicas))| self.start_partition(group, tp, replicas, &md)),
        )
        .await;
        let mut map = self.partitions.write().unwrap();
        for pg in started.into_iter().flatten() {
            map.insert(pg.group, pg);
        }
        self.partitions_version.fetch_add(1, Ordering::Relaxed);
    }

    async fn start_partition(
        &self,
        group: GroupId,
        tp: TopicPartition,
        replicas: Vec<NodeId>,
        md: &ClusterMetadata,
    ) -> Option<Arc<PartitionGroup<E>>> {
        let me = self.node_id();
        let result: Result<_, String> = async {
            let (opened, log) = self.engine.open_partition(group).map_err(|e| e.to_string())?;
            if let Some(rule) = self.segment_rule_of(&tp, md) {
                log.set_segment_rule(rule);
            }
            let raft = Raft::new(me, self.partition_raft_config.clone(), self.transport.factory(group), opened.log, opened.sm)
                .await
                .map_err(|e| e.to_string())?;
            // Only the preferred replica (the first) initializes a new group:
            // initializing campaigns at once, and the preferred leaders spread
            // leadership evenly. If it is down, the timing loop lets the next
            // replica initialize instead.
            if replicas.first() == Some(&me) && may_initialize(md, &tp) && !raft.is_initialized().await.map_err(|e| e.to_string())? {
                self.initialize_partition(&raft, &tp, &replicas, md).await;
            }
            Ok(Arc::new(PartitionGroup { tp: tp.clone(), group, metrics: raft.metrics(), raft, log, lease_wanted: Default::default() }))
        }
        .await;
        match result {
            Ok(pg) => Some(pg),
            Err(e) => {
                warn!(node_id = me, group = %group, partition = %tp, error = %e, "could not start partition group");
                None
            }
        }
    }

    async fn initialize_partition(&self, raft: &Raft<E::Sm>, tp: &TopicPartition, replicas: &[NodeId], md: &ClusterMetadata) {
        let members: BTreeMap<NodeId, NodeAddr> =
            replicas.iter().map(|n| (*n, md.nodes.get(n).cloned().unwrap_or_default())).collect();
        info!(node_id = self.node_id(), partition = %tp, ?replicas, "initializing partition group");
        if let Err(e) = raft.initialize(members).await {
            warn!(node_id = self.node_id(), partition = %tp, error = %e, "initializing partition group failed");
        }
    }

    /// Drops local groups that the (caught-up) metadata no longer knows: a topic
    /// deleted while this node was down.
    async fn collect_orphans(&self) {
        let _guard = self.reconcile.lock().await;
        let md = self.metadata();
        let known: std::collections::HashSet<GroupId> = md.partitions().map(|(_, a)| a.group).collect();
        let running: Vec<GroupId> = self.partitions.read().unwrap().keys().copied().collect();
        match self.engine.local_groups() {
            Ok(groups) => {
                for g in groups.into_iter().filter(|g| !known.contains(g) && !running.contains(g)) {
                    info!(node_id = self.node_id(), group = %g, "dropping orphaned partition data");
                    if let Err(e) = self.engine.drop_group(g) {
                        warn!(node_id = self.node_id(), group = %g, error = %e, "dropping orphan failed");
                    }
                }
            }
            Err(e) => warn!(node_id = self.node_id(), error = %e, "listing local groups failed"),
        }
    }

    /// Every [`PING_INTERVAL`]: heartbeats for the groups this node leads (each
    /// heartbeat interval), campaigns for suspect groups, and the status that
    /// the ping loops tell the peers. See [`crate::raft::liveness`].
    async fn timing_loop(self: Arc<Self>) {
        let me = self.node_id();
        let heartbeat_every = Duration::from_millis(self.cfg.heartbeat_interval_ms);
        let grace = Duration::from_millis(self.cfg.election_timeout_min_ms);
        let step = Duration::from_millis(self.cfg.election_timeout_max_ms);
        let mut suspects = Suspects::default();
        let mut tick = tokio::time::interval(PING_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_heartbeat = Instant::now();
        let mut last_logged = (0usize, Instant::now());
        let mut led: std::collections::HashSet<GroupId> = Default::default();
        let mut was_full = false;
        let mut catch_up_logged = Instant::now() - CAMPAIGN_LOG_EVERY;
        let mut isr = IsrTracker::default();
        // Per led group, the commit index its last heartbeat carried.
        let mut heartbeat_commit: HashMap<GroupId, Option<u64>> = HashMap::new();
        let mut matched_by = Vec::new();
        let mut lagging_list: Vec<(u64, Vec<NodeId>)> = Vec::new();
        let (mut rescan, mut last_full_scan, mut last_view) = (true, Instant::now(), (0u64, Vec::new()));
        let mut led_groups: Vec<Arc<PartitionGroup<E>>> = Vec::new();
        let mut groups_version = self.partitions_version.load(Ordering::Relaxed);
        let mut groups = self.partition_groups();
        let lag_max = Duration::from_millis(self.cfg.limits.replica_lag_time_max_ms);
        while !self.stopping.load(Ordering::Relaxed) {
            tick.tick().await;
            let now = Instant::now();
            // With its disk full, a node gives up leading: no heartbeats and
            // no claims, so the other replicas elect a leader that can write;
            // and it campaigns for nothing until space returns.
            let disk = self.check_disk(0);
            if disk.is_err() != was_full {
                was_full = disk.is_err();
                match &disk {
                    Err(e) => warn!(node_id = me, leading = led.len(), error = %e, "disk full: refusing writes and giving up leaderships"),
                    Ok(()) => info!(node_id = me, "disk space is back above the reserve: taking writes again"),
                }
            }
            let heartbeat_due = now.duration_since(last_heartbeat) >= heartbeat_every;
            if heartbeat_due {
                last_heartbeat = now;
            }
            let md = self.metadata();
            let version = self.partitions_version.load(Ordering::Relaxed);
            let mut full_scan = std::mem::take(&mut rescan);
            if version != groups_version {
                groups = self.partition_groups();
                groups_version = version;
                full_scan = true;
            }
            // Every group is looked at only when something may need doing:
            // a peer came or went or changed its claims, a group is suspect,
            // or once a second regardless. Between, heartbeat ticks look at
            // the groups led here and other ticks at nothing: a node with
            // thousands of quiet followers does no work per follower.
            let view = (self.peers.generation(), md.nodes.keys().filter(|n| **n != me && self.peers.is_alive(**n)).copied().collect::<Vec<_>>());
            if view != last_view || !suspects.is_empty() || last_full_scan.elapsed() >= FULL_SCAN_EVERY {
                full_scan = true;
            }
            last_view = view;
            if !full_scan && !heartbeat_due {
                continue;
            }
            if full_scan {
                last_full_scan = Instant::now();
            }
            let scan = if full_scan { &groups } else { &led_groups };
            let mut still_led = Vec::new();
            let mut leading = Vec::new();
            let mut newly_led = Vec::new();
            let mut campaigns = Vec::new();
            let mut heartbeats = Vec::new();
            // Replicas of groups led here that are far behind (a node back
            // from a long outage): logged as progress every few seconds.
            let mut behind: Vec<(TopicPartition, NodeId, u64, u64)> = Vec::new();
            for pg in scan {
                if was_full {
                    continue;
                }
                // Read under the metrics lock, which must not live across an await.
                let (state, leader, term, initialized, last, committed) = {
                    let m = pg.metrics.borrow_watched();
                    if m.state == ServerState::Leader && heartbeat_due {
                        matched_by.clear();
                        matched_by.extend(m.replication.iter().flatten().filter(|(n, _)| **n != me).map(|(n, at)| (*n, at.as_ref().map(|l| l.index))));
                    }
                    // An initialized group has at least its membership entry.
                    (m.state, m.current_leader, m.current_term, m.last_log_index.is_some(), m.last_log_index, m.local_committed.as_ref().map(|l| l.index))
                };
                if state == ServerState::Leader {
                    still_led.push(pg.clone());
                }
                if state == ServerState::Leader && !heartbeat_due {
                    // Between heartbeat ticks a leader only renews its claim.
                    leading.push((pg.group.0, term));
                    suspects.clear(pg.group);
                    continue;
                }
                if !full_scan && state != ServerState::Leader {
                    // Led here until lately: every group gets a look next tick.
                    rescan = true;
                    continue;
                }
                if state == ServerState::Leader {
                    for (node, at) in &matched_by {
                        let (at, last) = (at.unwrap_or(0), last.unwrap_or(0));
                        if self.peers.is_alive(*node) && last.saturating_sub(at) > CATCH_UP_LOG_ENTRIES {
                            behind.push((pg.tp.clone(), *node, at, last));
                        }
                    }
                    isr.observe(pg.group, last, &matched_by, now);
                    if !led.contains(&pg.group) {
                        newly_led.push((pg.tp.clone(), term));
                    }
                    leading.push((pg.group.0, term));
                    suspects.clear(pg.group);
                    // Heartbeats only where they carry something: a lease
                    // someone needs (a read or write of this partition), a
                    // commit index the followers have not heard of yet, or a
                    // coordinator's partition. An idle group costs nothing.
                    if heartbeat_due {
                        let wanted = pg.lease_wanted.swap(false, Ordering::Relaxed);
                        let unheard = heartbeat_commit.get(&pg.group) != Some(&committed);
                        if wanted || unheard || &*pg.tp.topic == crate::offsets::OFFSETS_TOPIC {
                            heartbeat_commit.insert(pg.group, committed);
                            heartbeats.push(pg.clone());
                        }
                    }
                    continue;
                }
                if matches!(leader, Some(l) if l != me && self.peers.claims(l, pg.group)) {
                    suspects.clear(pg.group);
                    continue;
                }
                let suspect_for = suspects.suspect(pg.group, leader, now);
                let mut replicas = md.partition(&pg.tp).map(|a| a.replicas.clone()).unwrap_or_default();
                if initialized {
                    // Only voters campaign, ranked among voters (a group on
                    // the move has learners, and replicas that left).
                    let m = pg.metrics.borrow_watched();
                    let voters: Vec<NodeId> = m.membership_config.membership().voter_ids().collect();
                    replicas.retain(|n| voters.contains(n));
                    let missing: Vec<NodeId> = voters.iter().filter(|v| !replicas.contains(v)).copied().collect();
                    replicas.extend(missing);
                }
                let rank = replicas
                    .iter()
                    .filter(|n| Some(**n) != leader && (**n == me || self.peers.is_alive(**n)))
                    .position(|n| *n == me);
                let Some(rank) = rank else { continue };
                // A dead leader needs no grace: pre-vote is refused (locally
                // and by the other replicas) until the leader's lease has run
                // out, so trying every tick elects right when it expires.
                let leader_dead = leader.is_some_and(|l| l != me && !self.peers.is_alive(l));
                let at_once = term == 0 || replicas.len() <= 1 || leader_dead;
                if !initialized {
                    if !may_initialize(&md, &pg.tp) {
                        continue;
                    }
                    // The preferred replica initializes new groups; if nothing
                    // came from it, the next ones do, one election timeout apart.
                    let position = replicas.iter().position(|n| *n == me).unwrap_or(0);
                    if suspect_for >= step / 2 + step * position as u32 && suspects.may_campaign(pg.group, now, step, step) {
                        self.initialize_partition(&pg.raft, &pg.tp, &replicas, &md).await;
                    }
                    continue;
                }
                if campaigns.len() < CAMPAIGNS_PER_TICK
                    && campaign_due(suspect_for, at_once, rank, grace, step)
                    && suspects.may_campaign(pg.group, now, PING_INTERVAL / 2, grace / 2)
                {
                    campaigns.push((pg.clone(), leader, term));
                }
            }
            // While a lease runs out, campaigns repeat every tick: log the
            // first round of a streak, then every few seconds.
            let log_now = campaigns.len() != last_logged.0 || last_logged.1.elapsed() >= CAMPAIGN_LOG_EVERY;
            if !campaigns.is_empty() && log_now {
                last_logged = (campaigns.len(), Instant::now());
                let (pg, leader, term) = &campaigns[0];
                info!(node_id = me, count = campaigns.len(), first = %pg.tp, group = %pg.group, old_leader = ?leader, term, "campaigning (pre-vote) for leaderless partitions");
            }
            if campaigns.is_empty() {
                last_logged.0 = 0;
            }
            if !behind.is_empty() && catch_up_logged.elapsed() >= CAMPAIGN_LOG_EVERY {
                catch_up_logged = Instant::now();
                let entries: u64 = behind.iter().map(|(_, _, at, last)| last - at).sum();
                let (tp, node, at, last) = &behind[0];
                info!(node_id = me, replicas = behind.len(), entries_behind = entries, first = %tp, replica = node, at, of = last, "replicas catching up");
            }
            for (pg, _, _) in &campaigns {
                let _ = pg.raft.trigger().elect(true).await;
            }
            for pg in &heartbeats {
                let _ = pg.raft.trigger().heartbeat().await;
            }
            if !heartbeats.is_empty() {
                self.metrics.raft_heartbeats.get_or_create(&self.metrics.node()).inc_by(heartbeats.len() as u64);
            }
            self.metrics.raft_leader_elections.get_or_create(&self.metrics.node()).inc_by(newly_led.len() as u64);
            if let Some((tp, term)) = newly_led.first() {
                info!(node_id = me, count = newly_led.len(), first = %tp, term, "now leading partitions");
            }
            if led.len() != leading.len() {
                rescan = true;
            }
            led = leading.iter().map(|(g, _)| GroupId(*g)).collect();
            led_groups = still_led;
            if heartbeat_due {
                suspects.retain(&groups.iter().map(|g| g.group).collect());
                heartbeat_commit.retain(|g, _| led.contains(g));
            }
            if heartbeat_due {
                // Replication lag moves slowly: judged on heartbeat ticks only.
                isr.retain(&led);
                let lagging: HashMap<GroupId, Vec<NodeId>> =
                    led.iter().map(|g| (*g, isr.lagging(*g, now, lag_max))).filter(|(_, l)| !l.is_empty()).collect();
                lagging_list = lagging.iter().map(|(g, l)| (g.0, l.clone())).collect();
                lagging_list.sort_unstable();
                *self.lagging.write().unwrap() = lagging;
            }
            leading.sort_unstable();
            let mut status = self.status.write().unwrap();
            if status.leading.as_ref() != Some(&leading) || status.lagging.as_deref().unwrap_or_default() != lagging_list.as_slice() {
                let lagging = (!lagging_list.is_empty()).then(|| lagging_list.clone());
                *status = Arc::new(NodeStatus { node: me, version: status.version + 1, leading: Some(leading), lagging, have: None });
            }
        }
    }

    /// Keeps one status exchange going with each other node the metadata
    /// (or, before it has any, the config) lists: a node that joins gets
    /// one, a node removed loses its own.
    async fn ping_peers_loop(self: Arc<Self>) {
        let me = self.node_id();
        let mut md_rx = self.metadata.clone();
        let mut running: HashMap<NodeId, tokio::task::AbortHandle> = HashMap::new();
        while !self.stopping.load(Ordering::Relaxed) {
            let md = self.metadata();
            let peers: std::collections::BTreeSet<NodeId> =
                if md.nodes.is_empty() { self.cfg.nodes.keys().copied().collect() } else { md.nodes.keys().copied().collect() };
            running.retain(|peer, task| {
                let keep = peers.contains(peer);
                if !keep {
                    info!(node_id = me, peer, "no longer a node of the cluster: status exchange stopped");
                    task.abort();
                }
                keep
            });
            for peer in peers.into_iter().filter(|p| *p != me) {
                running.entry(peer).or_insert_with(|| tokio::spawn(self.clone().ping_loop(peer)).abort_handle());
            }
            if md_rx.changed().await.is_err() {
                break;
            }
        }
        running.values().for_each(|t| t.abort());
    }

    /// Exchanges status with one peer every [`PING_INTERVAL`].
    async fn ping_loop(self: Arc<Self>, peer: NodeId) {
        let me = self.node_id();
        let mut tick = tokio::time::interval(PING_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The version of our status the peer holds, as it last told us.
        let mut peer_has: Option<u64> = None;
        while !self.stopping.load(Ordering::Relaxed) {
            tick.tick().await;
            let Some(addr) = self.node_addr(peer) else { continue };
            let status = self.status_for(peer_has, self.peers.version_of(peer));
            match tokio::time::timeout(ALIVE_WINDOW, self.transport.ping(peer, &addr, status)).await {
                Ok(Ok(s)) if s.node == peer => {
                    peer_has = s.have;
                    self.peers.record(me, &s);
                }
                Ok(Ok(s)) => self.peers.record_failure(me, peer, &format!("{} answered as node {}", addr.raft_addr, s.node)),
                Ok(Err(e)) => self.peers.record_failure(me, peer, &e),
                Err(_) => self.peers.record_failure(me, peer, "status exchange timed out"),
            }
        }
    }

    /// Our status for a peer that holds version `peer_has` of it, carrying
    /// `have` (the version of the peer's status we hold).
    fn status_for(&self, peer_has: Option<u64>, have: Option<u64>) -> NodeStatus {
        let s = self.status.read().unwrap();
        let current = peer_has == Some(s.version);
        NodeStatus {
            node: s.node,
            version: s.version,
            leading: if current { None } else { s.leading.clone() },
            lagging: if current { None } else { s.lagging.clone() },
            have,
        }
    }

    pub async fn shutdown(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        let groups: Vec<_> = self.partitions.write().unwrap().drain().map(|(_, g)| g).collect();
        futures::future::join_all(groups.iter().map(|g| g.raft.shutdown())).await;
        let _ = self.controller.shutdown().await;
    }
}

/// Whether a replica may initialize `tp`'s group: only a new group, never
/// one on the move (its joining replicas get it from its leader).
fn may_initialize(md: &ClusterMetadata, tp: &TopicPartition) -> bool {
    md.partition(tp).is_some_and(|a| a.reassignment.is_none())
}

/// The controller has a leader and this node has applied an entry of the
/// current term, so its metadata includes everything committed before.
fn leadership_known_and_caught_up<SM: openraft::storage::RaftStateMachine<crate::TypeConfig>>(raft: &Raft<SM>) -> bool {
    let m = raft.metrics();
    let m = m.borrow_watched();
    m.current_leader.is_some() && m.last_applied.as_ref().map(|l| l.leader_id.term) == Some(m.current_term)
}

impl<E: StorageEngine, T: Transport> GroupManager<E, T> {
    fn raft_of(&self, group: GroupId) -> Result<Raft<E::Sm>, String> {
        if group == CONTROLLER_GROUP {
            return Ok(self.controller.clone());
        }
        self.partition(group)
            .map(|pg| pg.raft.clone())
            .ok_or_else(|| format!("group {group} is not running on node {}", self.node_id()))
    }
}

impl<E: StorageEngine, T: Transport> crate::raft::engine::RaftRpcHandler for GroupManager<E, T> {
    fn node_id(&self) -> NodeId {
        self.cfg.node_id
    }

    fn ping(&self, status: NodeStatus) -> NodeStatus {
        self.peers.record(self.node_id(), &status);
        self.status_for(status.have, self.peers.version_of(status.node))
    }

    async fn move_leader(&self, group: GroupId, to: NodeId) -> Result<(), String> {
        self.move_leader_of(group, to).await
    }

    async fn controller_write(&self, cmd: ControllerCommand) -> Result<Result<(), ControllerError>, String> {
        match self.propose_local(cmd).await {
            Ok(()) => Ok(Ok(())),
            Err(StoreError::Controller(e)) => Ok(Err(e)),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn join(&self, node: NodeId, addr: NodeAddr, rack: Option<String>) -> Result<(), ControllerError> {
        GroupManager::join(self, node, addr, rack).await
    }

    async fn append_entries(
        &self,
        group: GroupId,
        req: openraft::raft::AppendEntriesRequest<crate::TypeConfig>,
    ) -> Result<openraft::raft::AppendEntriesResponse<crate::TypeConfig>, String> {
        // Partition data is refused while the disk is nearly full (the leader
        // backs off and goes on with the other replicas); heartbeats and the
        // small controller entries are not.
        self.metrics.raft_append_entries.get_or_create(&self.metrics.node()).inc();
        if group != CONTROLLER_GROUP && !req.entries.is_empty() {
            let bytes: u64 = req
                .entries
                .iter()
                .map(|e| match &e.payload {
                    openraft::EntryPayload::Normal(Command::Append { batch, .. }) => batch.len() as u64,
                    _ => 256,
                })
                .sum();
            self.check_disk(bytes).map_err(|e| e.to_string())?;
        }
        self.raft_of(group)?.append_entries(req).await.map_err(|e| e.to_string())
    }

    async fn vote(
        &self,
        group: GroupId,
        req: openraft::raft::VoteRequest<crate::TypeConfig>,
        pre_vote: bool,
    ) -> Result<openraft::raft::VoteResponse<crate::TypeConfig>, String> {
        let kind = if pre_vote { "pre_vote" } else { "vote" };
        self.metrics.raft_vote_requests.get_or_create(&VoteLabels { node_id: self.metrics.node_id.clone(), kind }).inc();
        let raft = self.raft_of(group)?;
        if pre_vote { raft.pre_vote(req).await } else { raft.vote(req).await }.map_err(|e| e.to_string())
    }

    async fn transfer_leader(
        &self,
        group: GroupId,
        req: openraft::raft::TransferLeaderRequest<crate::TypeConfig>,
    ) -> Result<openraft::raft::TransferLeaderResponse<crate::TypeConfig>, String> {
        self.raft_of(group)?.handle_transfer_leader(req).await.map_err(|e| e.to_string())
    }

    async fn install_snapshot(
        &self,
        group: GroupId,
        vote: openraft::alias::VoteOf<crate::TypeConfig>,
        meta: crate::SnapshotMeta,
        data: Vec<u8>,
    ) -> Result<openraft::raft::SnapshotResponse<crate::TypeConfig>, String> {
        let snapshot = openraft::alias::SnapshotOf::<crate::TypeConfig, crate::SnapshotData> { meta, snapshot: std::io::Cursor::new(data) };
        self.raft_of(group)?.install_full_snapshot(vote, snapshot).await.map_err(|e| e.to_string())
    }
}
