//! The group manager owns every Raft group of this node: the controller group
//! and the partition groups assigned here. It reconciles the running groups to
//! the controller's metadata: start what is assigned, stop and drop what was
//! deleted or moved away. Nothing else creates or drops groups.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use openraft::async_runtime::WatchReceiver;
use openraft::{Config, SnapshotPolicy};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::NodeConfig;
use crate::raft::engine::{PartitionLog, StorageEngine, Transport};
use crate::raft::liveness::{NodeStatus, PeerTable};
use crate::cluster::metadata::{ClusterMetadata, ControllerCommand};
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

pub struct GroupManager<E: StorageEngine, T: Transport> {
    pub cfg: NodeConfig,
    pub(super) engine: Arc<E>,
    pub(crate) transport: T,
    pub(super) partition_raft_config: Arc<Config>,
    pub controller: Raft<E::Sm>,
    pub(crate) metadata: watch::Receiver<Arc<ClusterMetadata>>,
    pub(super) partitions: RwLock<HashMap<GroupId, Arc<PartitionGroup<E>>>>,
    /// Bumped whenever a group starts or stops here (the timing loop keeps
    /// its list of groups until then).
    pub(crate) partitions_version: std::sync::atomic::AtomicU64,
    pub(super) reconcile: tokio::sync::Mutex<()>,
    /// Liveness and leader claims of the peers.
    pub peers: PeerTable,
    /// What this node tells its peers; refreshed by the timing loop.
    pub(super) status: RwLock<Arc<NodeStatus>>,
    /// Followers out of sync in the groups this node leads (see `crate::raft::isr`);
    /// refreshed by the timing loop.
    pub(super) lagging: RwLock<HashMap<GroupId, Vec<NodeId>>>,
    pub(crate) stopping: AtomicBool,
    /// This node's unused producer ids (see `allocate_producer_id`).
    pub(crate) producer_ids: tokio::sync::Mutex<std::ops::Range<i64>>,
    /// Serializes the creation of the offsets topic on this node.
    pub(crate) offsets_topic_creation: tokio::sync::Mutex<()>,
    /// The moves of partitions led here, as last stepped (`crate::cluster::moves`).
    pub(crate) move_progress: RwLock<HashMap<TopicPartition, crate::cluster::moves::MoveProgress>>,
    /// When a waiting decommission was last logged (`crate::raft::membership`).
    pub(super) membership_warned: std::sync::Mutex<Option<Instant>>,
    /// The last reading of the data disk's free bytes, and when it was taken.
    pub(super) disk_free: std::sync::Mutex<(Instant, Option<u64>)>,
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
            membership_warned: Default::default(),
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
    pub(super) async fn propose_local(&self, cmd: ControllerCommand) -> Result<(), StoreError> {
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

    pub(super) async fn initialize_partition(&self, raft: &Raft<E::Sm>, tp: &TopicPartition, replicas: &[NodeId], md: &ClusterMetadata) {
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

    pub async fn shutdown(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        let groups: Vec<_> = self.partitions.write().unwrap().drain().map(|(_, g)| g).collect();
        futures::future::join_all(groups.iter().map(|g| g.raft.shutdown())).await;
        let _ = self.controller.shutdown().await;
    }
}

/// Whether a replica may initialize `tp`'s group: only a new group, never
/// one on the move (its joining replicas get it from its leader).
pub(super) fn may_initialize(md: &ClusterMetadata, tp: &TopicPartition) -> bool {
    md.partition(tp).is_some_and(|a| a.reassignment.is_none())
}

/// The controller has a leader and this node has applied an entry of the
/// current term, so its metadata includes everything committed before.
fn leadership_known_and_caught_up<SM: openraft::storage::RaftStateMachine<crate::TypeConfig>>(raft: &Raft<SM>) -> bool {
    let m = raft.metrics();
    let m = m.borrow_watched();
    m.current_leader.is_some() && m.last_applied.as_ref().map(|l| l.leader_id.term) == Some(m.current_term)
}
