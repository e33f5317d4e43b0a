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
//! Nodes joining never initialize the group (`crate::raft::groups`): they only ever get
//! it from its leader.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::cluster::metadata::ClusterMetadata;
use crate::{NodeId, TopicPartition};

/// A learner this close to the leader's last log entry may become a voter.
pub const CAUGHT_UP_ENTRIES: u64 = 100;

/// Whether `md` has move `m` (or has finished it).
pub fn applied(md: &ClusterMetadata, (tp, target): &(TopicPartition, Option<Vec<NodeId>>)) -> bool {
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
