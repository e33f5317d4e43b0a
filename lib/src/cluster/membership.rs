//! Cluster membership: nodes join, are decommissioned and leave, and the
//! replicas follow.
//!
//! - **Join.** A node started with `join = <raft address of any node>` asks
//!   that node (`POST /cluster/join`) to register it
//!   (`ControllerCommand::RegisterNode`); it never initializes the controller
//!   group itself. The controller leader adds every registered node to the
//!   controller group as a learner, and promotes caught-up learners to voters
//!   up to `controller_voters_max`, keeping the count odd ([`controller_plan`]).
//! - **Decommission.** `Decommission` marks a node draining: no new replica is
//!   placed there, and the controller leader moves its replicas, a few at a
//!   time, to the least loaded live nodes ([`drain_moves`]) with the
//!   partition-move machinery (`crate::cluster::moves`). A dead node drains the
//!   same way (the survivors are the source): that is how a dead node is
//!   replaced. Once it hosts nothing, `RemoveNode`: it leaves the metadata
//!   and the controller group, and its id is never taken again.
//! - **Balance.** A node added to a running cluster is filled by moving
//!   replicas from the most loaded nodes until it holds its share
//!   ([`balance_moves`]; `partition_autobalancing = node_add`, the default).
//!
//! Every decision is a pure function of the metadata and the controller
//! group's membership, taken afresh by whichever node leads the controller,
//! so a new controller leader carries on where the last one stopped.

use std::collections::{BTreeMap, BTreeSet};

use crate::cluster::metadata::{ClusterMetadata, ControllerError};
use crate::cluster::moves::Members;
use crate::{NodeId, TopicPartition};

/// The controller leader's next change to the controller group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControllerStep {
    /// Finish a joint change left behind by a lost leader.
    Flatten(BTreeSet<NodeId>),
    /// Registered nodes not in the group yet.
    AddLearners(Vec<NodeId>),
    /// Make these the voters; voters left out stay learners.
    SetVoters(BTreeSet<NodeId>),
    /// This leader is no voter in what comes next: hand over first.
    HandOver(NodeId),
    /// Nodes removed from the cluster, no longer voters, leave the group.
    RemoveNodes(BTreeSet<NodeId>),
    Steady,
}

/// How many voters the controller group wants out of `eligible` nodes: all
/// of them up to `max`, odd from 3 up (a fourth voter adds no tolerance).
fn voters_wanted(eligible: usize, max: usize) -> usize {
    let n = eligible.min(max);
    if n > 2 && n % 2 == 0 { n - 1 } else { n }
}

/// What the controller leader `me` changes next, from the group's membership
/// `m`, the registered `nodes` and those `draining`. A draining or removed
/// voter is replaced by a caught-up learner when there is one; when the
/// voters change anyway, they go down to the odd count wanted (dead ones
/// first). Healthy voters are not demoted otherwise (an even seed list
/// stays as it is).
pub fn controller_plan(me: NodeId, m: &Members, nodes: &BTreeSet<NodeId>, draining: &BTreeSet<NodeId>, voters_max: usize) -> ControllerStep {
    if m.configs.len() > 1 {
        return ControllerStep::Flatten(m.configs.last().cloned().unwrap_or_default());
    }
    let voters = m.configs.first().cloned().unwrap_or_default();
    let in_group = |n: &NodeId| voters.contains(n) || m.learners.contains(n);
    let missing: Vec<NodeId> = nodes.iter().filter(|n| !in_group(n)).copied().collect();
    if !missing.is_empty() {
        return ControllerStep::AddLearners(missing);
    }
    let eligible: BTreeSet<NodeId> = nodes.difference(draining).copied().collect();
    let keep: BTreeSet<NodeId> = voters.intersection(&eligible).copied().collect();
    let wanted = voters_wanted(eligible.len(), voters_max);
    let mut want = keep.clone();
    for n in m.learners.iter().filter(|n| eligible.contains(n) && m.caught_up(**n)) {
        if want.len() >= wanted {
            break;
        }
        want.insert(*n);
    }
    if want.len() > keep.len() && want.len() > 2 && want.len() % 2 == 0 {
        let last_added = *want.difference(&keep).last().expect("more than kept");
        want.remove(&last_added);
    }
    // A change is due anyway (a voter leaves): down to the count wanted,
    // dead voters first, then the highest ids, never this leader.
    if want != voters && want.len() > wanted {
        let mut extra: Vec<NodeId> = want.iter().filter(|n| **n != me).copied().collect();
        extra.sort_by_key(|n| (m.alive.contains(n), std::cmp::Reverse(*n)));
        for n in extra.into_iter().take(want.len() - wanted) {
            want.remove(&n);
        }
    }
    if !want.is_empty() && want != voters {
        if !want.contains(&me) {
            let order: Vec<NodeId> = want.iter().copied().collect();
            if let Some(to) = m.furthest(&order).filter(|n| m.caught_up(*n)) {
                return ControllerStep::HandOver(to);
            }
        } else {
            return ControllerStep::SetVoters(want);
        }
    }
    let gone: BTreeSet<NodeId> = m.learners.iter().filter(|n| !nodes.contains(n)).copied().collect();
    if !gone.is_empty() {
        return ControllerStep::RemoveNodes(gone);
    }
    ControllerStep::Steady
}

/// Replicas each node holds, counting a move's target (where it is going).
fn loads(md: &ClusterMetadata) -> BTreeMap<NodeId, usize> {
    let mut out: BTreeMap<NodeId, usize> = md.placeable().into_iter().map(|n| (n, 0)).collect();
    for (_, a) in md.partitions() {
        for n in a.reassignment.as_ref().map_or(&a.replicas, |r| &r.target) {
            *out.entry(*n).or_default() += 1;
        }
    }
    out
}

/// Moves under way in the cluster.
pub fn moves_in_flight(md: &ClusterMetadata) -> usize {
    md.partitions().filter(|(_, a)| a.reassignment.is_some()).count()
}

/// Up to `budget` moves taking replicas off the draining nodes, each to the
/// least loaded live node not already a replica, in a rack the others are
/// not in when there is one (same position in the list, so a preferred
/// leader's replacement is preferred). Partitions
/// already moving wait for their move to end; a replica with nowhere to go
/// is reported.
pub fn drain_moves(md: &ClusterMetadata, alive: impl Fn(NodeId) -> bool, budget: usize) -> (Vec<(TopicPartition, Vec<NodeId>)>, Vec<TopicPartition>) {
    let mut load = loads(md);
    let (mut moves, mut stuck) = (Vec::new(), Vec::new());
    for (tp, a) in md.partitions() {
        if moves.len() >= budget {
            break;
        }
        let Some(pos) = a.replicas.iter().position(|n| md.draining.contains(n)) else { continue };
        if a.reassignment.is_some() {
            continue;
        }
        // A rack none of the other replicas is in comes first.
        let taken_racks: BTreeSet<&str> = a.replicas.iter().filter(|n| **n != a.replicas[pos]).map(|n| md.rack_of(*n)).filter(|r| !r.is_empty()).collect();
        let to = load
            .iter()
            .filter(|(n, _)| alive(**n) && !a.replicas.contains(n))
            .min_by_key(|(n, l)| (taken_racks.contains(md.rack_of(**n)), **l, **n))
            .map(|(n, _)| *n);
        let Some(to) = to else {
            stuck.push(tp);
            continue;
        };
        *load.get_mut(&to).expect("listed") += 1;
        let mut target = a.replicas.clone();
        target[pos] = to;
        moves.push((tp, target));
    }
    (moves, stuck)
}

/// Partitions with a replica on a draining node whose replicas (before any
/// move) have no live majority: Raft cannot change their membership, so
/// the drain waits for enough of them to come back.
pub fn stalled_drains(md: &ClusterMetadata, alive: impl Fn(NodeId) -> bool) -> Vec<TopicPartition> {
    md.partitions()
        .filter(|(_, a)| a.replicas.iter().any(|n| md.draining.contains(n)))
        .filter(|(_, a)| {
            let voters = a.reassignment.as_ref().map_or(&a.replicas, |r| &r.original);
            voters.iter().filter(|n| alive(**n)).count() * 2 <= voters.len()
        })
        .map(|(tp, _)| tp)
        .collect()
}

/// Up to `budget` moves filling the nodes added to the cluster
/// (`md.balance_onto`): while one holds fewer replicas than its share
/// (the average, rounded down) and the most loaded live node holds at least
/// two more, a replica of a partition whose replicas are all alive and which
/// is not moving goes from there to the new node. Returns also the added
/// nodes that hold their share (or as near as it gets).
pub fn balance_moves(md: &ClusterMetadata, alive: impl Fn(NodeId) -> bool, budget: usize) -> (Vec<(TopicPartition, Vec<NodeId>)>, Vec<NodeId>) {
    let mut load = loads(md);
    let (mut moves, mut done) = (Vec::new(), Vec::new());
    let total: usize = load.values().sum();
    let share = total / load.len().max(1);
    let mut taken: BTreeSet<TopicPartition> = BTreeSet::new();
    // Preferred leaders (first replicas) per node, and each node's share.
    let mut first_on: BTreeMap<NodeId, usize> = BTreeMap::new();
    for (_, a) in md.partitions() {
        if let Some(n) = a.reassignment.as_ref().map_or(&a.replicas, |r| &r.target).first() {
            *first_on.entry(*n).or_default() += 1;
        }
    }
    let leader_share = md.partitions().count() / load.len().max(1);
    let fillable: Vec<NodeId> = md.balance_onto.iter().filter(|n| load.contains_key(n) && alive(**n)).copied().collect();
    for new in fillable {
        // Replicas of each topic on the new node: a topic it holds least of
        // gives first, so each topic spreads over it.
        let mut on_new: BTreeMap<&str, usize> = BTreeMap::new();
        for (tp, a) in md.partitions() {
            let held = a.reassignment.as_ref().map_or(&a.replicas, |r| &r.target).contains(&new);
            *on_new.entry(md.topics.get_key_value(&*tp.topic).map_or("", |(k, _)| k.as_str())).or_default() += usize::from(held);
        }
        while moves.len() < budget {
            let from = load.iter().filter(|(n, _)| **n != new && alive(**n)).max_by_key(|(n, l)| (**l, std::cmp::Reverse(**n))).map(|(n, l)| (*n, *l));
            let balanced = load[&new] >= share || from.is_none_or(|(_, l)| l < load[&new] + 2);
            if balanced {
                done.push(new);
                break;
            }
            let from = from.expect("checked").0;
            // None when the replicas that could move are on dead nodes or
            // moving: a later look tries again.
            let Some((tp, a)) = md
                .partitions()
                .filter(|(tp, a)| {
                    a.reassignment.is_none() && a.replicas.contains(&from) && !a.replicas.contains(&new) && !taken.contains(tp) && a.replicas.iter().all(|n| alive(*n))
                    // Never into a rack another replica is in.
                    && (md.rack_of(new).is_empty() || !a.replicas.iter().any(|n| *n != from && md.rack_of(*n) == md.rack_of(new)))
                })
                .min_by_key(|(tp, a)| {
                    // A preferred leadership goes along while the new node
                    // has fewer than its share, and only then.
                    let wants_leader = first_on.get(&new).copied().unwrap_or(0) < leader_share;
                    (on_new.get(&*tp.topic).copied().unwrap_or(0), (a.replicas[0] == from) != wants_leader)
                })
            else {
                break;
            };
            let target: Vec<NodeId> = a.replicas.iter().map(|n| if *n == from { new } else { *n }).collect();
            if a.replicas[0] == from {
                *first_on.entry(new).or_default() += 1;
                *first_on.entry(from).or_default() -= 1;
            }
            *load.get_mut(&from).expect("listed") -= 1;
            *load.get_mut(&new).expect("listed") += 1;
            if let Some(c) = md.topics.get_key_value(&*tp.topic).and_then(|(k, _)| on_new.get_mut(k.as_str())) {
                *c += 1;
            }
            taken.insert(tp.clone());
            moves.push((tp, target));
        }
    }
    (moves, done)
}

/// The moves that give every partition of `topic` `rf` replicas: the
/// replicas kept in order (the first `rf` when shrinking), new ones on the
/// live nodes not being decommissioned, in a rack not used yet first, then
/// the least loaded. A partition on the move is judged by its target.
pub fn replication_factor_moves(md: &ClusterMetadata, topic: &str, rf: usize, alive: impl Fn(NodeId) -> bool) -> Result<Vec<(TopicPartition, Vec<NodeId>)>, ControllerError> {
    let t = md.topics.get(topic).ok_or_else(|| ControllerError::UnknownTopic(topic.to_string()))?;
    let candidates: Vec<NodeId> = md.placeable().into_iter().filter(|n| alive(*n)).collect();
    if rf == 0 || rf > candidates.len() {
        return Err(ControllerError::InvalidReplicationFactor(i16::try_from(rf).unwrap_or(i16::MAX), candidates.len()));
    }
    let mut load = loads(md);
    let mut out = Vec::new();
    for (i, a) in t.partitions.iter().enumerate() {
        let current = a.reassignment.as_ref().map_or(&a.replicas, |r| &r.target);
        let mut target: Vec<NodeId> = current.iter().take(rf).copied().collect();
        while target.len() < rf {
            let used: BTreeSet<&str> = target.iter().map(|n| md.rack_of(*n)).filter(|r| !r.is_empty()).collect();
            let next = candidates
                .iter()
                .filter(|n| !target.contains(n))
                .min_by_key(|n| (used.contains(md.rack_of(**n)), load.get(n).copied().unwrap_or(0), **n))
                .copied()
                .expect("enough candidates");
            *load.entry(next).or_default() += 1;
            target.push(next);
        }
        if target != *current {
            out.push((TopicPartition::new(topic, i as i32), target));
        }
    }
    Ok(out)
}

/// A node's place in the cluster, for the admin API.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct NodeMembership {
    /// "voter", "learner" or "none" in the controller group (as this node
    /// last saw it).
    pub controller: &'static str,
    pub draining: bool,
    /// Partitions that list it among their replicas.
    pub replicas: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::metadata::PartitionAssignment;
    use crate::NodeAddr;

    fn set(n: &[NodeId]) -> BTreeSet<NodeId> {
        n.iter().copied().collect()
    }

    fn members(voters: &[NodeId], learners: &[NodeId], caught_up: &[NodeId]) -> Members {
        Members {
            configs: vec![set(voters)],
            learners: set(learners),
            matched: voters.iter().chain(caught_up).map(|n| (*n, 100)).collect(),
            last_index: 100,
            alive: (1..=9).collect(),
            committed: true,
        }
    }

    #[test]
    fn joining_nodes_become_learners_then_voters_in_odd_counts() {
        let nodes = set(&[1, 2, 3, 4]);
        let none = BTreeSet::new();
        assert_eq!(controller_plan(1, &members(&[1, 2, 3], &[], &[]), &nodes, &none, 5), ControllerStep::AddLearners(vec![4]));
        // A fourth voter adds no tolerance: node 4 stays a learner.
        assert_eq!(controller_plan(1, &members(&[1, 2, 3], &[4], &[4]), &nodes, &none, 5), ControllerStep::Steady);
        let nodes = set(&[1, 2, 3, 4, 5]);
        // Not caught up: wait.
        assert_eq!(controller_plan(1, &members(&[1, 2, 3], &[4, 5], &[4]), &nodes, &none, 5), ControllerStep::Steady);
        assert_eq!(controller_plan(1, &members(&[1, 2, 3], &[4, 5], &[4, 5]), &nodes, &none, 5), ControllerStep::SetVoters(set(&[1, 2, 3, 4, 5])));
        // Beyond the most voters, learners.
        assert_eq!(controller_plan(1, &members(&[1, 2, 3], &[4, 5], &[4, 5]), &nodes, &none, 3), ControllerStep::Steady);
        // A standalone node grows: 1 voter, then 3.
        let nodes = set(&[1, 2, 3]);
        assert_eq!(controller_plan(1, &members(&[1], &[2], &[2]), &set(&[1, 2]), &none, 5), ControllerStep::SetVoters(set(&[1, 2])));
        assert_eq!(controller_plan(1, &members(&[1, 2], &[3], &[3]), &nodes, &none, 5), ControllerStep::SetVoters(set(&[1, 2, 3])));
    }

    #[test]
    fn a_draining_voter_is_replaced_then_removed() {
        let nodes = set(&[1, 2, 3, 4]);
        let draining = set(&[3]);
        assert_eq!(controller_plan(1, &members(&[1, 2, 3], &[4], &[4]), &nodes, &draining, 5), ControllerStep::SetVoters(set(&[1, 2, 4])));
        // Node 3 is removed from the metadata once it hosts nothing.
        let nodes = set(&[1, 2, 4]);
        assert_eq!(controller_plan(1, &members(&[1, 2, 4], &[3], &[]), &nodes, &BTreeSet::new(), 5), ControllerStep::RemoveNodes(set(&[3])));
        // 5 voters, one leaves: 3 remain (an even count adds no tolerance),
        // a dead one dropped first.
        let mut m = members(&[1, 2, 3, 4, 5], &[], &[]);
        assert_eq!(controller_plan(1, &m, &set(&[1, 2, 3, 4, 5]), &set(&[4]), 5), ControllerStep::SetVoters(set(&[1, 2, 3])));
        m.alive.remove(&2);
        assert_eq!(controller_plan(1, &m, &set(&[1, 2, 3, 4, 5]), &set(&[4]), 5), ControllerStep::SetVoters(set(&[1, 3, 5])));
        // A draining leader hands over first.
        assert_eq!(controller_plan(3, &members(&[1, 2, 3], &[4], &[4]), &set(&[1, 2, 3, 4]), &draining, 5), ControllerStep::HandOver(1));
        // A joint change left behind is finished first.
        let joint = Members { configs: vec![set(&[1, 2, 3]), set(&[1, 2, 4])], ..Default::default() };
        assert_eq!(controller_plan(1, &joint, &nodes, &BTreeSet::new(), 5), ControllerStep::Flatten(set(&[1, 2, 4])));
    }

    fn cluster(nodes: &[NodeId], parts: &[&[NodeId]]) -> ClusterMetadata {
        let mut md = ClusterMetadata::default();
        let mut tps = vec![];
        for n in nodes {
            md.nodes.insert(*n, NodeAddr::default());
        }
        for (i, r) in parts.iter().enumerate() {
            tps.push(PartitionAssignment::new(crate::GroupId(i as u64 + 1), r.to_vec()));
        }
        md.topics.insert("t".into(), crate::cluster::metadata::TopicMeta { name: "t".into(), id: 1, partitions: tps, configs: Default::default() });
        md
    }

    #[test]
    fn a_drain_moves_each_replica_to_the_least_loaded_live_node() {
        let mut md = cluster(&[1, 2, 3, 4], &[&[3, 1], &[1, 3], &[2, 3], &[1, 2]]);
        md.draining.insert(3);
        let (moves, stuck) = drain_moves(&md, |n| n != 2, 8);
        assert!(stuck.is_empty());
        // Node 4 holds nothing; then it and node 1 tie... node 2 is dead.
        assert_eq!(moves[0], (TopicPartition::new("t", 0), vec![4, 1]));
        assert_eq!(moves[1], (TopicPartition::new("t", 1), vec![1, 4]));
        assert_eq!(moves[2].1, vec![2, 4], "position kept, node 2 stays a replica");
        assert_eq!(drain_moves(&md, |_| true, 1).0.len(), 1, "within the budget");
        // RF 2 with node 3 dead and draining: no majority, stalled; RF 3 with
        // one dead is not.
        let mut md = cluster(&[1, 2, 3, 4], &[&[3, 1], &[1, 2, 3]]);
        md.draining.insert(3);
        assert_eq!(stalled_drains(&md, |n| n != 3), vec![TopicPartition::new("t", 0)]);
        // Nowhere to go.
        let mut md = cluster(&[1, 2], &[&[1, 2]]);
        md.draining.insert(2);
        assert_eq!(drain_moves(&md, |_| true, 8).1, vec![TopicPartition::new("t", 0)]);
    }

    #[test]
    fn moves_keep_replicas_in_distinct_racks() {
        // Racks: 1, 2 in a; 3, 4 in b. Partition [1, 3] loses node 3: node 4
        // (rack b) rather than the less loaded node 2 (rack a, like node 1).
        let mut md = cluster(&[1, 2, 3, 4], &[&[1, 3], &[4, 1]]);
        for (n, r) in [(1, "a"), (2, "a"), (3, "b"), (4, "b")] {
            md.racks.insert(n, r.into());
        }
        md.draining.insert(3);
        assert_eq!(drain_moves(&md, |_| true, 8).0, vec![(TopicPartition::new("t", 0), vec![1, 4])]);
        // The balancer never moves a replica into a rack another one is in.
        let mut md = cluster(&[1, 2, 3, 4, 5], &[&[1, 3], &[1, 3], &[1, 4], &[2, 4]]);
        for (n, r) in [(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "a")] {
            md.racks.insert(n, r.into());
        }
        md.balance_onto.insert(5);
        let (moves, _) = balance_moves(&md, |_| true, 8);
        assert!(!moves.is_empty());
        for (tp, t) in &moves {
            let racks: BTreeSet<&str> = t.iter().map(|n| md.rack_of(*n)).collect();
            assert_eq!(racks.len(), 2, "{tp}: {t:?}");
        }
    }

    #[test]
    fn a_topic_changes_its_replication_factor() {
        let mut md = cluster(&[1, 2, 3, 4], &[&[1], &[2], &[1]]);
        md.racks.insert(3, "x".into());
        md.racks.insert(1, "x".into());
        // RF 3: nodes kept first; a new rack before load (node 3 shares
        // node 1's rack), then the least loaded.
        let moves = replication_factor_moves(&md, "t", 3, |_| true).unwrap();
        assert_eq!(moves[0].1[0], 1, "the preferred leader stays first");
        assert!(moves.iter().all(|(_, t)| t.len() == 3 && t.iter().collect::<BTreeSet<_>>().len() == 3), "{moves:?}");
        assert!(!moves[0].1[..2].contains(&3), "node 1's rack partner comes last: {:?}", moves[0].1);
        // Back to 1: the first replica stays; refused beyond the live nodes.
        let md = cluster(&[1, 2, 3], &[&[2, 1, 3]]);
        assert_eq!(replication_factor_moves(&md, "t", 1, |_| true).unwrap(), vec![(TopicPartition::new("t", 0), vec![2])]);
        assert!(replication_factor_moves(&md, "t", 3, |n| n != 3).is_err());
        assert_eq!(replication_factor_moves(&md, "t", 3, |_| true).unwrap(), vec![], "nothing to do");
    }

    #[test]
    fn an_added_node_gets_its_share() {
        // 3 nodes, 6 partitions of RF 2: 4 replicas each; node 4 joins.
        let parts: Vec<Vec<NodeId>> = (0..6).map(|p| vec![p % 3 + 1, (p + 1) % 3 + 1]).collect();
        let parts: Vec<&[NodeId]> = parts.iter().map(|p| p.as_slice()).collect();
        let mut md = cluster(&[1, 2, 3, 4], &parts);
        md.balance_onto.insert(4);
        let (moves, done) = balance_moves(&md, |_| true, 8);
        assert_eq!(moves.len(), 3, "12 replicas over 4 nodes: 3 each");
        assert_eq!(done, vec![4]);
        let from: BTreeSet<NodeId> = moves.iter().map(|(tp, t)| *md.partition(tp).unwrap().replicas.iter().find(|n| !t.contains(n)).unwrap()).collect();
        assert_eq!(from, set(&[1, 2, 3]), "one from each node");
        let leads = moves.iter().filter(|(_, t)| t[0] == 4).count();
        assert_eq!(leads, 1, "6 preferred leaderships over 4 nodes: node 4 gets one (not all three)");
        // Not while a replica of the partition is dead; not beyond the budget.
        assert_eq!(balance_moves(&md, |n| n != 1 && n != 2, 8), (vec![], vec![]), "not done either: tried again later");
        assert_eq!(balance_moves(&md, |_| true, 2), (moves[..2].to_vec(), vec![]));
    }
}
