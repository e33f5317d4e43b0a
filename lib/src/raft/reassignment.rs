//! The partition-move driver: each partition's leader steps its move (the
//! plan and its rules: `crate::cluster::moves`).

use std::time::Duration;

use futures::StreamExt;
use openraft::async_runtime::WatchReceiver;
use openraft::ChangeMembers;
use tracing::{info, warn};

use crate::cluster::metadata::{ControllerCommand, ControllerError};
use crate::cluster::moves::{applied, plan, Members, MoveProgress, Step};
use crate::raft::engine::{StorageEngine, Transport};
use crate::raft::groups::{GroupManager, PartitionGroup};
use crate::store::StoreError;
use crate::{NodeId, TopicPartition};

/// Moves one node steps at the same time (each step is one membership
/// change or one learner added; the data moves in the background).
const STEPS_AT_ONCE: usize = 32;

/// How often a leader steps the moves of the partitions it leads.
pub const LOOK_EVERY: Duration = Duration::from_millis(500);

/// How long one membership change may take to commit.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a request waits for this node to apply the moves it made.
const APPLIED_WAIT: Duration = Duration::from_secs(2);

impl<E: StorageEngine, T: Transport> GroupManager<E, T> {
    /// One look: each partition on the move that this node leads takes its
    /// next step.
    pub async fn drive_reassignments(&self) {
        let md = self.metadata();
        let moving: Vec<_> = self
            .partition_groups()
            .into_iter()
            .filter_map(|pg| {
                let target = md.partition(&pg.tp).filter(|a| a.group == pg.group)?.reassignment.as_ref()?.target.clone();
                // Leads (an idle leader's lease may have lapsed: the
                // membership change renews it, or finds it lost).
                self.leadership_of(&pg).leads.then_some((pg, target))
            })
            .collect();
        let led: std::collections::HashSet<TopicPartition> = moving.iter().map(|(pg, _)| pg.tp.clone()).collect();
        self.move_progress.write().unwrap().retain(|tp, _| led.contains(tp));
        self.metrics.reassignments_in_progress.get_or_create(&self.metrics.node()).set(led.len() as i64);
        let steps = futures::stream::iter(moving).map(|(pg, target)| async move { self.move_step(&pg, &target).await }).buffer_unordered(STEPS_AT_ONCE);
        steps.collect::<Vec<()>>().await;
    }

    /// AlterPartitionReassignments: each move checked on its own (a clear
    /// answer per partition), the good ones proposed in one controller
    /// entry, which checks them again as it applies.
    pub(crate) async fn reassign(&self, moves: Vec<(TopicPartition, Option<Vec<NodeId>>)>, allow_rf_change: bool) -> Vec<Result<(), StoreError>> {
        let md = self.metadata();
        let mut results: Vec<Result<(), StoreError>> = moves
            .iter()
            .map(|m| {
                let changed = md.reassigned(std::slice::from_ref(m))?;
                let (tp, a) = &changed[0];
                let had = md.partition(tp).map_or(0, |a| a.reassignment.as_ref().map_or(a.replicas.len(), |r| r.original.len()));
                let will = a.reassignment.as_ref().map_or(a.replicas.len(), |r| r.target.len());
                if !allow_rf_change && had != will {
                    return Err(ControllerError::ReplicationFactorChange(tp.clone(), had, will).into());
                }
                Ok(())
            })
            .collect();
        let good: Vec<_> = moves.iter().zip(&results).filter(|(_, r)| r.is_ok()).map(|(m, _)| m.clone()).collect();
        if good.is_empty() {
            return results;
        }
        let me = self.node_id();
        match self.propose(ControllerCommand::Reassign { moves: good.clone() }).await {
            Ok(()) => {
                for (tp, target) in &good {
                    info!(node_id = me, partition = %tp, target = ?target, "partition move requested");
                }
                // Committed; wait (bounded) until this node applied it, so
                // that a ListPartitionReassignments here right after sees it.
                let deadline = std::time::Instant::now() + APPLIED_WAIT;
                while std::time::Instant::now() < deadline && !good.iter().all(|m| applied(&self.metadata(), m)) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                self.reconcile_once().await;
            }
            Err(e) => {
                warn!(node_id = me, moves = good.len(), error = %e, "partition moves not accepted by the controller");
                for r in results.iter_mut().filter(|r| r.is_ok()) {
                    *r = Err(e.clone());
                }
            }
        }
        results
    }

    /// The move of `tp`, as this node (its leader) last stepped it.
    pub fn move_progress_of(&self, tp: &TopicPartition) -> Option<MoveProgress> {
        self.move_progress.read().unwrap().get(tp).cloned()
    }

    fn members_of(&self, pg: &PartitionGroup<E>) -> Members {
        self.members_in(&pg.metrics.borrow_watched())
    }

    /// A group's membership from its metrics (on its leader: with each
    /// replica's progress).
    pub(crate) fn members_in(&self, m: &openraft::RaftMetrics<crate::TypeConfig>) -> Members {
        let membership = m.membership_config.membership();
        Members {
            configs: membership.get_joint_config().clone(),
            learners: membership.learner_ids().collect(),
            matched: m.replication.iter().flatten().filter_map(|(n, at)| Some((*n, at.as_ref()?.index))).collect(),
            last_index: m.last_log_index.unwrap_or(0),
            alive: membership.nodes().map(|(n, _)| *n).filter(|n| *n == self.node_id() || self.peers.is_alive(*n)).collect(),
            committed: m.membership_config.log_id().as_ref().map(|l| l.index) <= m.local_committed.as_ref().map(|c| c.index),
        }
    }

    async fn move_step(&self, pg: &PartitionGroup<E>, target: &[NodeId]) {
        let me = self.node_id();
        let members = self.members_of(pg);
        let step = plan(me, &members, target);
        let progress = MoveProgress {
            topic: pg.tp.topic.to_string(),
            partition: pg.tp.partition,
            leader: me,
            target: target.to_vec(),
            voters: members.configs.clone(),
            learners: members.learners.clone(),
            matched: members.matched.clone(),
            last_index: members.last_index,
            step: format!("{step:?}"),
        };
        self.move_progress.write().unwrap().insert(pg.tp.clone(), progress);
        if !matches!(step, Step::CatchUp(_) | Step::AwaitCommit | Step::Done) {
            // An idle leader's lease may have lapsed: renew it (bounded)
            // before proposing, as a write would.
            self.wait_leader_ready(&pg.tp, tokio::time::Instant::now() + STEP_TIMEOUT).await;
        }
        let raft = &pg.raft;
        let result: Result<(), String> = match &step {
            Step::AwaitCommit => Ok(()),
            Step::CatchUp(behind) => {
                let (node, at, last) = behind[0];
                info!(node_id = me, partition = %pg.tp, replica = node, at, of = last, "partition move: replica catching up");
                Ok(())
            }
            Step::AddLearners(nodes) => {
                let md = self.metadata();
                let mut r = Ok(());
                for n in nodes {
                    let addr = md.nodes.get(n).cloned().unwrap_or_default();
                    info!(node_id = me, partition = %pg.tp, replica = n, "partition move: adding a learner");
                    if let Err(e) = tokio::time::timeout(STEP_TIMEOUT, raft.add_learner(*n, addr, false)).await.map_err(|_| "timed out".to_string()).and_then(|r| r.map_err(|e| e.to_string())) {
                        r = Err(e);
                        break;
                    }
                }
                r
            }
            Step::RemoveLearners(nodes) => self.change(pg, ChangeMembers::RemoveNodes(nodes.clone()), "removing learners").await,
            Step::Flatten(voters) => self.change(pg, ChangeMembers::ReplaceAllVoters(voters.clone()), "finishing a joint change").await,
            Step::SetVoters(voters) => self.change(pg, ChangeMembers::ReplaceAllVoters(voters.clone()), "changing voters").await,
            Step::HandOver(to) => {
                info!(node_id = me, partition = %pg.tp, to, "partition move: handing leadership to a target replica");
                crate::store::PartitionStore::transfer_leadership(self, &pg.tp, *to).await.map_err(|e| e.to_string())
            }
            Step::Done => {
                let cmd = ControllerCommand::CompleteReassignment { tp: pg.tp.clone(), group: pg.group, replicas: target.to_vec() };
                match self.propose(cmd).await {
                    Ok(()) => {
                        info!(node_id = me, partition = %pg.tp, replicas = ?target, "partition move complete");
                        self.metrics.reassignments_completed.get_or_create(&self.metrics.node()).inc();
                        Ok(())
                    }
                    // The target changed meanwhile: the next look goes on.
                    Err(StoreError::Controller(e)) => Err(e.to_string()),
                    Err(e) => Err(e.to_string()),
                }
            }
        };
        if let Err(e) = result {
            warn!(node_id = me, partition = %pg.tp, group = %pg.group, step = ?step, error = %e, "partition move step failed; retrying");
        }
    }

    async fn change(&self, pg: &PartitionGroup<E>, change: ChangeMembers<NodeId, crate::NodeAddr>, what: &str) -> Result<(), String> {
        info!(node_id = self.node_id(), partition = %pg.tp, group = %pg.group, change = %change, "partition move: {what}");
        match tokio::time::timeout(STEP_TIMEOUT, pg.raft.change_membership(change, false)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("not committed within {STEP_TIMEOUT:?}")),
        }
    }
}

