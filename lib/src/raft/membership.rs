//! The membership driver: the controller leader carries out the plans of
//! `crate::cluster::membership`; nodes register themselves.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::ChangeMembers;
use tracing::{info, warn};

use crate::cluster::membership::{balance_moves, controller_plan, drain_moves, moves_in_flight, replication_factor_moves, stalled_drains, ControllerStep, NodeMembership};
use crate::cluster::metadata::{ClusterMetadata, ControllerCommand, ControllerError};
use crate::config::Autobalancing;
use crate::raft::engine::{StorageEngine, Transport};
use crate::raft::groups::{leadership, GroupManager};
use crate::store::StoreError;
use crate::{NodeAddr, NodeId, TopicPartition};

/// How often the controller leader looks at membership, drains and balance.
pub const LOOK_EVERY: Duration = Duration::from_millis(500);

/// How often a decommission that waits is logged.
const WARN_EVERY: Duration = Duration::from_secs(30);

/// How long one change of the controller group's membership may take.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(10);

impl<E: StorageEngine, T: Transport> GroupManager<E, T> {
    /// One look by the controller leader: the controller group follows the
    /// registered nodes; drains, removals and balancing move on.
    pub async fn drive_membership(&self) {
        let me = self.node_id();
        if !leadership(&self.controller, me, self.lease()).serving {
            return;
        }
        let md = self.metadata();
        if md.nodes.is_empty() {
            return;
        }
        let members = self.members_in(&self.controller.metrics().borrow_watched());
        let nodes: BTreeSet<NodeId> = md.nodes.keys().copied().collect();
        let step = controller_plan(me, &members, &nodes, &md.draining, self.cfg.controller_voters_max);
        if let Err(e) = self.controller_step(&step, &md).await {
            warn!(node_id = me, step = ?step, error = %e, "controller membership change failed; retrying");
        }
        if matches!(step, ControllerStep::HandOver(_)) {
            // The next leader carries on.
            return;
        }
        let alive = |n: NodeId| n == me || self.peers.is_alive(n);
        let mut budget = self.cfg.partition_moves_max.saturating_sub(moves_in_flight(&md));
        for node in md.draining.iter().filter(|n| md.hosted_by(**n) == 0) {
            match self.propose(ControllerCommand::RemoveNode { node: *node }).await {
                Ok(()) => info!(node_id = me, node, "decommission complete: node removed from the cluster"),
                Err(e) => {
                    warn!(node_id = me, node, error = %e, "removing a drained node failed; retrying")
                }
            }
        }
        let (drains, stuck) = drain_moves(&md, alive, budget);
        if !md.draining.is_empty() && self.membership_warning_due() {
            let names = |tps: &[TopicPartition]| tps.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ");
            if !stuck.is_empty() {
                warn!(node_id = me, partitions = %names(&stuck), "decommission waits: no live node can take these replicas yet");
            }
            let stalled = stalled_drains(&md, alive);
            if !stalled.is_empty() {
                warn!(node_id = me, partitions = %names(&stalled), draining = ?md.draining, "decommission waits: these partitions have no live majority of replicas, so Raft cannot move them until enough replicas come back");
            }
        }
        budget -= drains.len();
        self.start_moves(drains, "decommission").await;
        if self.cfg.partition_autobalancing == Autobalancing::NodeAdd && md.draining.is_empty() {
            let (fills, done) = balance_moves(&md, alive, budget);
            self.start_moves(fills, "balancing onto an added node").await;
            for node in done {
                info!(node_id = me, node, "replica balancing onto an added node complete");
                let _ = self.propose(ControllerCommand::BalancedOnto { node }).await;
            }
        } else if !md.balance_onto.is_empty() && self.cfg.partition_autobalancing == Autobalancing::Off {
            for node in md.balance_onto.iter().copied() {
                let _ = self.propose(ControllerCommand::BalancedOnto { node }).await;
            }
        }
    }

    /// Whether a waiting decommission should be logged again (every
    /// [`WARN_EVERY`], not every look).
    fn membership_warning_due(&self) -> bool {
        let mut last = self.membership_warned.lock().unwrap();
        let due = last.is_none_or(|t| t.elapsed() >= WARN_EVERY);
        if due {
            *last = Some(std::time::Instant::now());
        }
        due
    }

    async fn start_moves(&self, moves: Vec<(TopicPartition, Vec<NodeId>)>, why: &str) {
        if moves.is_empty() {
            return;
        }
        info!(node_id = self.node_id(), count = moves.len(), why, "starting partition moves");
        let moves = moves.into_iter().map(|(tp, t)| (tp, Some(t))).collect();
        for r in self.reassign(moves, true).await {
            if let Err(e) = r {
                warn!(node_id = self.node_id(), why, error = %e, "partition move not started");
            }
        }
    }

    async fn controller_step(&self, step: &ControllerStep, md: &ClusterMetadata) -> Result<(), String> {
        let me = self.node_id();
        let raft = &self.controller;
        let change = |c: ChangeMembers<NodeId, NodeAddr>, what: &'static str| async move {
            info!(node_id = me, change = %c, "controller group: {what}");
            match tokio::time::timeout(CHANGE_TIMEOUT, raft.change_membership(c, true)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("not committed within {CHANGE_TIMEOUT:?}")),
            }
        };
        match step {
            ControllerStep::Steady => Ok(()),
            ControllerStep::Flatten(voters) => change(ChangeMembers::ReplaceAllVoters(voters.clone()), "finishing a joint change").await,
            ControllerStep::SetVoters(voters) => change(ChangeMembers::ReplaceAllVoters(voters.clone()), "changing voters").await,
            ControllerStep::RemoveNodes(nodes) => change(ChangeMembers::RemoveNodes(nodes.clone()), "removing nodes that left").await,
            ControllerStep::AddLearners(nodes) => {
                for n in nodes {
                    let addr = md.nodes.get(n).cloned().unwrap_or_default();
                    info!(node_id = me, node = n, addr = %addr, "controller group: adding a learner");
                    match tokio::time::timeout(CHANGE_TIMEOUT, raft.add_learner(*n, addr, false)).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return Err(e.to_string()),
                        Err(_) => return Err(format!("not committed within {CHANGE_TIMEOUT:?}")),
                    }
                }
                Ok(())
            }
            ControllerStep::HandOver(to) => {
                info!(node_id = me, to, "controller group: this node leaves the voters; handing leadership over");
                raft.trigger().transfer_leader(*to).await.map_err(|e| e.to_string())
            }
        }
    }

    /// Moves every partition of `topic` to `rf` replicas (see
    /// [`replication_factor_moves`]); returns the moves started.
    pub(crate) async fn set_replication_factor(&self, topic: &str, rf: usize) -> Result<Vec<(TopicPartition, Vec<NodeId>)>, StoreError> {
        let me = self.node_id();
        let moves = replication_factor_moves(&self.metadata(), topic, rf, |n| n == me || self.peers.is_alive(n))?;
        info!(node_id = me, topic, rf, moves = moves.len(), "replication factor change requested");
        let asked = moves.iter().map(|(tp, t)| (tp.clone(), Some(t.clone()))).collect();
        for r in self.reassign(asked, true).await {
            r?;
        }
        Ok(moves)
    }

    /// Asks the cluster to decommission `node` (or, with `cancel`, to stop).
    pub(crate) async fn decommission(&self, node: NodeId, cancel: bool) -> Result<(), StoreError> {
        let cmd = if cancel { ControllerCommand::Recommission { node } } else { ControllerCommand::Decommission { node } };
        self.propose(cmd).await?;
        info!(node_id = self.node_id(), node, cancel, "decommission requested");
        Ok(())
    }

    /// A node asks to join (`POST /cluster/join`, on any node): registered
    /// unless its id is taken by another live node or was removed.
    pub(crate) async fn join(&self, node: NodeId, addr: NodeAddr, rack: Option<String>) -> Result<(), ControllerError> {
        let md = self.metadata();
        if let Some(have) = md.nodes.get(&node).filter(|a| **a != addr) {
            if node == self.node_id() || self.peers.is_alive(node) {
                return Err(ControllerError::InvalidReplicaAssignment(format!("node id {node} is taken by a live node at {have}")));
            }
        }
        info!(node_id = self.node_id(), node, addr = %addr, "a node asks to join the cluster");
        match self.propose(ControllerCommand::RegisterNode { node, addr, rack }).await {
            Ok(()) => Ok(()),
            Err(StoreError::Controller(e)) => Err(e),
            Err(e) => Err(ControllerError::InvalidReplicaAssignment(format!("not registered yet: {e}"))),
        }
    }

    /// Keeps this node's entry in the metadata: a new cluster's controller
    /// leader registers the seed nodes of the config; a joining node asks
    /// the node it was given (then any node it knows) until it is
    /// registered; a node whose address changed registers the new one.
    pub(crate) async fn register_loop(self: std::sync::Arc<Self>) {
        let me = self.node_id();
        let mine = self.cfg.nodes.get(&me).cloned().unwrap_or_default();
        let my_listeners: std::collections::BTreeMap<String, String> =
            self.cfg.security.listeners.iter().map(|l| (l.name.clone(), l.advertised.clone())).collect();
        let mut md_rx = self.metadata.clone();
        let mut warned_removed = false;
        while !self.stopping.load(std::sync::atomic::Ordering::Relaxed) {
            let md = self.metadata();
            let leads = leadership(&self.controller, me, self.lease()).serving;
            if md.removed.contains(&me) {
                if !warned_removed {
                    warn!(node_id = me, "this node was removed from the cluster (decommissioned): it hosts nothing and can be stopped; its id cannot join again");
                    warned_removed = true;
                }
            } else if md.nodes.is_empty() && self.cfg.join.is_none() {
                if leads {
                    info!(node_id = me, nodes = ?self.cfg.nodes.keys().collect::<Vec<_>>(), "registering the cluster's first nodes in the controller");
                    if let Err(e) = self.propose(ControllerCommand::SetNodes(self.cfg.nodes.clone())).await {
                        warn!(node_id = me, error = %e, "registering nodes failed; will retry");
                    }
                }
            } else if md.cluster_id.is_none() && leads {
                let id = uuid::Uuid::new_v4().as_u128();
                info!(node_id = me, cluster_id = %crate::cluster::metadata::uuid_text(id), "naming the cluster");
                if let Err(e) = self.propose(ControllerCommand::SetClusterId(id)).await {
                    warn!(node_id = me, error = %e, "naming the cluster failed; will retry");
                }
            } else if md.nodes.get(&me) != Some(&mine) || md.racks.get(&me) != self.cfg.rack.as_ref() {
                let result = if md.nodes.is_empty() || !md.nodes.contains_key(&me) {
                    self.ask_to_join(&mine, &md).await
                } else {
                    let cmd = ControllerCommand::RegisterNode { node: me, addr: mine.clone(), rack: self.cfg.rack.clone() };
                    self.propose(cmd).await.map_err(|e| e.to_string())
                };
                match result {
                    Ok(()) => info!(node_id = me, addr = %mine, "registered in the cluster"),
                    Err(e) => {
                        warn!(node_id = me, error = %e, "registering this node failed; will retry")
                    }
                }
            } else if md.listeners.get(&me) != Some(&my_listeners) {
                let cmd = ControllerCommand::SetListeners { node: me, listeners: my_listeners.clone() };
                match self.propose(cmd).await {
                    Ok(()) => {
                        info!(node_id = me, listeners = ?my_listeners, "registered this node's Kafka listeners")
                    }
                    Err(e) => {
                        warn!(node_id = me, error = %e, "registering this node's Kafka listeners failed; will retry")
                    }
                }
            }
            tokio::select! {
                r = md_rx.changed() => if r.is_err() { return },
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// Asks a node of the cluster to register this one: the `join` address
    /// first, then the nodes the metadata names.
    async fn ask_to_join(&self, mine: &NodeAddr, md: &ClusterMetadata) -> Result<(), String> {
        let me = self.node_id();
        let mut addrs: Vec<String> = self.cfg.join.iter().cloned().collect();
        addrs.extend(md.nodes.iter().filter(|(n, _)| **n != me).map(|(_, a)| a.raft_addr.clone()));
        let mut last = "no node of the cluster is known (set join)".to_string();
        for addr in addrs {
            match self.transport.join(&addr, me, mine.clone(), self.cfg.rack.clone()).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e @ ControllerError::NodeRemoved(_))) => return Err(e.to_string()),
                Ok(Err(e)) => last = format!("{addr}: {e}"),
                Err(e) => last = format!("{addr}: {e}"),
            }
        }
        Err(last)
    }

    /// Each node's place in the cluster as this node sees it.
    pub fn membership_view(&self) -> BTreeMap<NodeId, NodeMembership> {
        let md = self.metadata();
        let m = self.controller.metrics().borrow_watched().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let learners: BTreeSet<NodeId> = membership.learner_ids().collect();
        let mut out: BTreeMap<NodeId, NodeMembership> = BTreeMap::new();
        for n in md.nodes.keys() {
            out.insert(
                *n,
                NodeMembership {
                    controller: if voters.contains(n) { "voter" } else if learners.contains(n) { "learner" } else { "none" },
                    draining: md.draining.contains(n),
                    replicas: md.partitions().filter(|(_, a)| a.replicas.contains(n)).count(),
                },
            );
        }
        out
    }

    /// The controller group's Raft state as this node sees it (Kafka's
    /// DescribeQuorum): on the leader, every replica's progress; elsewhere,
    /// only this node's own.
    pub fn quorum_view(&self) -> crate::store::QuorumView {
        use crate::store::QuorumReplica;
        let me = self.node_id();
        let m = self.controller.metrics().borrow_watched().clone();
        let membership = m.membership_config.membership();
        let wall_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
        let replica = |n: NodeId| {
            let (log_end, ago) = if n == me {
                (m.last_log_index.map(|i| i + 1), Some(Duration::ZERO))
            } else {
                let matched = m.replication.as_ref().and_then(|r| r.get(&n)).map(|at| at.as_ref().map_or(0, |l| l.index + 1));
                (matched, m.heartbeat.as_ref().and_then(|h| h.get(&n).cloned().flatten()).map(|i| openraft::Instant::elapsed(&*i)))
            };
            let last_ack_ms = ago.map(|d| wall_ms - d.as_millis() as i64);
            QuorumReplica { node: n, log_end, last_ack_ms }
        };
        crate::store::QuorumView {
            leader: m.current_leader,
            term: m.current_term,
            high_watermark: m.local_committed.map_or(0, |c| c.index + 1),
            voters: membership.voter_ids().map(replica).collect(),
            observers: membership.learner_ids().map(replica).collect(),
        }
    }
}

