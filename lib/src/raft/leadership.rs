//! Where partition leaders are: preferred leader elections (ElectLeaders,
//! `kafka-leader-election.sh`) and the automatic balancer.
//!
//! A partition's preferred leader is its first replica; round-robin
//! placement spreads those evenly, so leaders are balanced when every
//! partition is led by its preferred replica. After failures heal they
//! are not: every `leader_imbalance_check_interval_ms`, each node hands the
//! partitions it leads back to their preferred replica (alive and in sync)
//! when that replica's share of partitions it prefers but does not lead is
//! above `leader_imbalance_per_broker_percentage` (Kafka's
//! auto.leader.rebalance.enable and its two settings). No controller is
//! involved: each node decides for the partitions it leads, from the
//! leaders its peers gossip.

use std::collections::HashMap;

use tracing::{info, warn};

use crate::raft::engine::{StorageEngine, Transport};
use crate::raft::groups::GroupManager;
use crate::store::{PartitionStore, StoreError};
use crate::{GroupId, NodeId, TopicPartition};

/// Partitions one node hands over per look (a bound on leadership churn).
const BALANCE_MOVES_MAX: usize = 64;

impl<E: StorageEngine, T: Transport> GroupManager<E, T> {
    /// ElectLeaders (preferred): moves `tp`'s leadership to its first
    /// replica, through whichever node leads it now.
    pub(crate) async fn elect_preferred_of(&self, tp: &TopicPartition) -> Result<(), StoreError> {
        let md = self.metadata();
        let a = md.partition(tp).ok_or_else(|| StoreError::UnknownTopicOrPartition(tp.clone()))?;
        let preferred = a.replicas[0];
        if a.reassignment.is_some() {
            return Err(StoreError::PreferredLeaderNotAvailable(tp.clone(), preferred));
        }
        let leader = self.cluster_view(Some(&[tp.topic.to_string()])).topics.first().and_then(|t| t.partitions.get(tp.partition as usize)).and_then(|p| p.leader);
        let Some(leader) = leader else { return Err(StoreError::LeaderNotAvailable(tp.clone())) };
        if leader == preferred {
            return Err(StoreError::ElectionNotNeeded(tp.clone()));
        }
        let me = self.node_id();
        if (preferred != me && !self.peers.is_alive(preferred)) || !self.in_sync(a.group, leader, &a.replicas).contains(&preferred) {
            return Err(StoreError::PreferredLeaderNotAvailable(tp.clone(), preferred));
        }
        if leader == me {
            return self.transfer_leadership(tp, preferred).await;
        }
        let addr = self.node_addr(leader).ok_or_else(|| StoreError::LeaderNotAvailable(tp.clone()))?;
        self.transport.move_leader(leader, &addr, a.group, preferred).await.map_err(|e| StoreError::Storage { node: me, detail: format!("asking node {leader} to hand {tp} to {preferred}: {e}") })
    }

    /// A peer's request to hand a group this node leads to `to`.
    pub(crate) async fn move_leader_of(&self, group: GroupId, to: NodeId) -> Result<(), String> {
        let pg = self.partition(group).ok_or_else(|| format!("group {group} is not on node {}", self.node_id()))?;
        self.transfer_leadership(&pg.tp, to).await.map_err(|e| e.to_string())
    }

    /// One look: hands partitions led here back to their preferred replicas
    /// whose imbalance is over the threshold.
    pub async fn balance_leaders(&self) {
        let view = self.cluster_view(None);
        let me = self.node_id();
        // For each node: partitions it prefers, and those it prefers but does not lead.
        let mut preferred: HashMap<NodeId, (usize, usize)> = HashMap::new();
        for t in &view.topics {
            for p in &t.partitions {
                let e = preferred.entry(p.replicas[0]).or_default();
                e.0 += 1;
                e.1 += (p.leader != Some(p.replicas[0])) as usize;
            }
        }
        let threshold = self.cfg.leader_imbalance_per_broker_percentage as usize;
        let mut moved = 0;
        for t in &view.topics {
            // A partition on the move gets its leader from the move.
            for p in t.partitions.iter().filter(|p| p.leader == Some(me) && p.replicas[0] != me && !p.reassigning) {
                let target = p.replicas[0];
                let (prefers, not_led) = preferred.get(&target).copied().unwrap_or_default();
                if not_led * 100 <= threshold * prefers || !p.isr.contains(&target) || !self.peers.is_alive(target) {
                    continue;
                }
                if moved == BALANCE_MOVES_MAX {
                    return;
                }
                let tp = TopicPartition::new(t.name.as_str(), p.partition);
                match self.transfer_leadership(&tp, target).await {
                    Ok(()) => {
                        moved += 1;
                        self.metrics.leader_balance_moves.get_or_create(&self.metrics.node()).inc();
                        info!(node_id = me, partition = %tp, to = target, imbalance_pct = not_led * 100 / prefers.max(1), "leadership handed back to the preferred replica");
                    }
                    Err(e) => warn!(node_id = me, partition = %tp, to = target, error = %e, "could not hand leadership back to the preferred replica"),
                }
            }
        }
    }
}
