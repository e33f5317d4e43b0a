//! Partition moves (AlterPartitionReassignments, `kafka-reassign-partitions`,
//! RF changes): a partition's Raft group changes its members while it keeps
//! serving.
//!
//! The controller holds each move's target (`metadata::Reassignment`); the
//! partition's `replicas` list the target's nodes first, then those still to
//! leave, so every node in either starts (or keeps) the group. The
//! partition's leader carries the move out through openraft's membership
//! changes, one step per look, each decided afresh from the group's
//! membership ([`plan`]): so a move survives a leader change (the next
//! leader looks at the same membership) and a controller change (the target
//! is replicated).
//!
//! 1. The nodes joining are added as learners; the leader replicates its
//!    log to them (a snapshot first when the log start has moved).
//! 2. Once each is within [`CAUGHT_UP_ENTRIES`] of the leader's log, the
//!    voters become the target by joint consensus (old and new majorities
//!    both needed meanwhile: never below quorum). A leader that leaves
//!    first makes the voters old ∪ target, then hands its leadership to
//!    a target replica, which finishes.
//! 3. Once the group's voters are the target, the leader tells the
//!    controller (`CompleteReassignment`); the nodes that left drop the group
//!    when they see it.
//!
//! Nodes joining never initialize the group (`groups`): they only ever get
//! it from its leader.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;
use openraft::async_runtime::WatchReceiver;
use openraft::ChangeMembers;
use serde::Serialize;
use tracing::{info, warn};

use crate::engine::{StorageEngine, Transport};
use crate::groups::{GroupManager, PartitionGroup};
use crate::metadata::{ControllerCommand, ControllerError};
use crate::store::StoreError;
use crate::types::{NodeId, TopicPartition};

/// A learner this close to the leader's last log entry may become a voter.
pub const CAUGHT_UP_ENTRIES: u64 = 100;

/// Moves one node steps at the same time (each step is one membership
/// change or one learner added; the data moves in the background).
const STEPS_AT_ONCE: usize = 32;

/// How often a leader steps the moves of the partitions it leads.
pub const LOOK_EVERY: Duration = Duration::from_millis(500);

/// How long one membership change may take to commit.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a request waits for this node to apply the moves it made.
const APPLIED_WAIT: Duration = Duration::from_secs(2);

/// Whether `md` has move `m` (or has finished it).
fn applied(md: &crate::metadata::ClusterMetadata, (tp, target): &(TopicPartition, Option<Vec<NodeId>>)) -> bool {
    let Some(a) = md.partition(tp) else { return true };
    match (target, &a.reassignment) {
        (Some(t), Some(r)) => r.target == *t,
        (Some(t), None) => a.replicas == *t,
        (None, Some(r)) => r.target == r.original,
        (None, None) => true,
    }
}

/// A group's membership as its leader sees it.
#[derive(Clone, Debug, Default)]
pub struct Members {
    /// One set of voters, or two during a joint change.
    pub configs: Vec<BTreeSet<NodeId>>,
    pub learners: BTreeSet<NodeId>,
    /// Each replica's last matched log index (learners too), once it has
    /// answered the leader at all.
    pub matched: BTreeMap<NodeId, u64>,
    pub last_index: u64,
    /// Replicas the node-level status exchange finds alive.
    pub alive: BTreeSet<NodeId>,
    /// The membership above is committed (not only appended here).
    pub committed: bool,
}

impl Members {
    /// A replica is caught up when it is alive, has answered the leader, and
    /// is within [`CAUGHT_UP_ENTRIES`] of its log. (A learner that never
    /// answered is not, however short the log: promoting a dead one would
    /// leave the joint majority unreachable.)
    pub fn caught_up(&self, n: NodeId) -> bool {
        self.alive.contains(&n) && self.matched.get(&n).is_some_and(|at| self.last_index.saturating_sub(*at) <= CAUGHT_UP_ENTRIES)
    }

    /// The live node of `among` furthest along (the first of them on a tie).
    pub fn furthest(&self, among: &[NodeId]) -> Option<NodeId> {
        among
            .iter()
            .filter(|n| self.alive.contains(n))
            .max_by_key(|n| (self.matched.get(n).copied().unwrap_or(0), std::cmp::Reverse(among.iter().position(|t| t == *n))))
            .copied()
    }
}

/// The leader's next step toward `target`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Finish a joint change left behind (a leader lost mid-change).
    Flatten(BTreeSet<NodeId>),
    /// Drop learners the target does not want (a target changed meanwhile).
    RemoveLearners(BTreeSet<NodeId>),
    AddLearners(Vec<NodeId>),
    /// Wait for these learners to catch up: (node, matched, leader's last).
    CatchUp(Vec<(NodeId, u64, u64)>),
    /// Make these the voters (joint consensus; the others leave).
    SetVoters(BTreeSet<NodeId>),
    /// The leader is not in the target: hand leadership to this node.
    HandOver(NodeId),
    /// The voters are the target, in an entry not committed yet: wait (a
    /// replica leaving may still be needed for the joint majority).
    AwaitCommit,
    /// The group's voters are the target, committed.
    Done,
}

/// What the leader `me` does next to move its group to `target` (a pure
/// function of the membership, so any leader resumes where the last left).
pub fn plan(me: NodeId, m: &Members, target: &[NodeId]) -> Step {
    let want: BTreeSet<NodeId> = target.iter().copied().collect();
    if m.configs.len() > 1 {
        return Step::Flatten(m.configs.last().cloned().unwrap_or_default());
    }
    let voters = m.configs.first().cloned().unwrap_or_default();
    let stray: BTreeSet<NodeId> = m.learners.iter().filter(|n| !want.contains(n)).copied().collect();
    if !stray.is_empty() {
        return Step::RemoveLearners(stray);
    }
    let missing: Vec<NodeId> = target.iter().filter(|n| !voters.contains(n) && !m.learners.contains(n)).copied().collect();
    if !missing.is_empty() {
        return Step::AddLearners(missing);
    }
    let behind: Vec<(NodeId, u64, u64)> =
        m.learners.iter().filter(|n| !m.caught_up(**n)).map(|n| (*n, m.matched.get(n).copied().unwrap_or(0), m.last_index)).collect();
    if !behind.is_empty() {
        return Step::CatchUp(behind);
    }
    if voters == want {
        return if m.committed { Step::Done } else { Step::AwaitCommit };
    }
    if want.contains(&me) {
        return Step::SetVoters(want);
    }
    if !want.is_subset(&voters) {
        // Promote the target first, keeping this leader a voter.
        return Step::SetVoters(voters.union(&want).copied().collect());
    }
    // The caught-up target replica furthest along takes over.
    Step::HandOver(m.furthest(target).unwrap_or(target[0]))
}

/// A move as its leader last saw it (the admin API's progress).
#[derive(Clone, Debug, Serialize)]
pub struct MoveProgress {
    pub topic: String,
    pub partition: i32,
    pub leader: NodeId,
    pub target: Vec<NodeId>,
    pub voters: Vec<BTreeSet<NodeId>>,
    pub learners: BTreeSet<NodeId>,
    /// Each replica's matched log index, and the leader's last.
    pub matched: BTreeMap<NodeId, u64>,
    pub last_index: u64,
    /// The step under way, in words.
    pub step: String,
}

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

    async fn change(&self, pg: &PartitionGroup<E>, change: ChangeMembers<NodeId, crate::types::NodeAddr>, what: &str) -> Result<(), String> {
        info!(node_id = self.node_id(), partition = %pg.tp, group = %pg.group, change = %change, "partition move: {what}");
        match tokio::time::timeout(STEP_TIMEOUT, pg.raft.change_membership(change, false)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("not committed within {STEP_TIMEOUT:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(voters: &[NodeId], learners: &[NodeId], matched: &[(NodeId, u64)], last: u64) -> Members {
        Members {
            configs: vec![voters.iter().copied().collect()],
            learners: learners.iter().copied().collect(),
            matched: matched.iter().copied().collect(),
            last_index: last,
            alive: (1..=6).collect(),
            committed: true,
        }
    }

    fn set(n: &[NodeId]) -> BTreeSet<NodeId> {
        n.iter().copied().collect()
    }

    #[test]
    fn a_move_adds_catches_up_then_changes_voters() {
        // {1,2,3} led by 1 to {1,2,4}.
        let t = [1, 2, 4];
        assert_eq!(plan(1, &members(&[1, 2, 3], &[], &[], 500), &t), Step::AddLearners(vec![4]));
        assert_eq!(plan(1, &members(&[1, 2, 3], &[4], &[(4, 10)], 500), &t), Step::CatchUp(vec![(4, 10, 500)]));
        assert_eq!(plan(1, &members(&[1, 2, 3], &[4], &[(4, 450)], 500), &t), Step::SetVoters(set(&t)));
        assert_eq!(plan(1, &members(&[1, 2, 4], &[], &[], 500), &t), Step::Done);
        let appended = Members { committed: false, ..members(&[1, 2, 4], &[], &[], 500) };
        assert_eq!(plan(1, &appended, &t), Step::AwaitCommit, "the move ends only once the target is committed");
    }

    #[test]
    fn a_leader_that_leaves_promotes_the_target_then_hands_over() {
        // {1,2,3} led by 1 to {4,5,6}.
        let t = [4, 5, 6];
        let m = members(&[1, 2, 3], &[4, 5, 6], &[(4, 500), (5, 499), (6, 500)], 500);
        assert_eq!(plan(1, &m, &t), Step::SetVoters(set(&[1, 2, 3, 4, 5, 6])));
        let m = members(&[1, 2, 3, 4, 5, 6], &[], &[(4, 499), (5, 500), (6, 500)], 500);
        assert_eq!(plan(1, &m, &t), Step::HandOver(5), "the furthest along, the first of those in the target");
        // The new leader finishes.
        assert_eq!(plan(5, &members(&[1, 2, 3, 4, 5, 6], &[], &[], 500), &t), Step::SetVoters(set(&t)));
        // RF 3 to 1 away from the leader: no learner, hand over, shrink.
        assert_eq!(plan(1, &members(&[1, 2, 3], &[], &[(3, 500)], 500), &[3]), Step::HandOver(3));
        assert_eq!(plan(3, &members(&[1, 2, 3], &[], &[], 500), &[3]), Step::SetVoters(set(&[3])));
    }

    #[test]
    fn a_learner_that_never_answered_or_is_dead_is_not_caught_up() {
        // A short log: lag alone would call node 3 caught up.
        let t = [1, 3];
        assert_eq!(plan(1, &members(&[1, 2], &[3], &[], 2), &t), Step::CatchUp(vec![(3, 0, 2)]));
        let mut m = members(&[1, 2], &[3], &[(3, 2)], 2);
        m.alive.remove(&3);
        assert_eq!(plan(1, &m, &t), Step::CatchUp(vec![(3, 2, 2)]));
        m.alive.insert(3);
        assert_eq!(plan(1, &m, &t), Step::SetVoters(set(&t)));
    }

    #[test]
    fn left_behind_state_is_cleaned_up_first() {
        let joint = Members { configs: vec![set(&[1, 2, 3]), set(&[1, 2, 4])], ..Default::default() };
        assert_eq!(plan(1, &joint, &[1, 2, 4]), Step::Flatten(set(&[1, 2, 4])));
        // The target changed from {1,2,4} to {1,2,5}: learner 4 goes.
        assert_eq!(plan(1, &members(&[1, 2, 3], &[4], &[], 5), &[1, 2, 5]), Step::RemoveLearners(set(&[4])));
        // RF 1 to 3.
        assert_eq!(plan(1, &members(&[1], &[], &[], 5), &[1, 2, 3]), Step::AddLearners(vec![2, 3]));
    }
}
