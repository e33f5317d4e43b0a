//! The node's timing loop and status exchanges (the rules they follow:
//! `crate::raft::liveness`): heartbeats of the groups this node leads,
//! campaigns of suspect groups, and one status exchange per peer.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::async_runtime::WatchReceiver;
use openraft::ServerState;
use tracing::{info, warn};

use crate::raft::engine::{StorageEngine, Transport};
use crate::raft::groups::{may_initialize, GroupManager, PartitionGroup};
use crate::raft::isr::IsrTracker;
use crate::raft::liveness::{campaign_due, NodeStatus, Suspects, ALIVE_WINDOW, PING_INTERVAL};
use crate::{GroupId, NodeId, TopicPartition};

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

impl<E: StorageEngine, T: Transport> GroupManager<E, T> {
    /// Every [`PING_INTERVAL`]: heartbeats for the groups this node leads (each
    /// heartbeat interval), campaigns for suspect groups, and the status that
    /// the ping loops tell the peers. See [`crate::raft::liveness`].
    pub(super) async fn timing_loop(self: Arc<Self>) {
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
    pub(super) async fn ping_peers_loop(self: Arc<Self>) {
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
    pub(super) async fn ping_loop(self: Arc<Self>, peer: NodeId) {
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
    pub(super) fn status_for(&self, peer_has: Option<u64>, have: Option<u64>) -> NodeStatus {
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
}
