//! In-sync replicas, as Kafka defines them: a follower is in sync while it
//! has caught up with its leader's log within `replica_lag_time_max_ms`.
//!
//! The timing loop shows the tracker, every tick, each led group's last log
//! index and what each follower has matched. A follower has caught up at a
//! tick when it matched what the leader had at the previous tick (under a
//! steady stream of appends it can never match the very latest index). A
//! leader's lagging followers travel to the peers in its status, so every
//! node's Metadata reports the same ISR.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::{GroupId, NodeId};

#[derive(Default)]
struct GroupIsr {
    /// The leader's last log index at the previous tick.
    prev_last: Option<u64>,
    /// When each follower last caught up (first seen counts as caught up:
    /// a new leader gives its followers the lag time to show themselves).
    caught_up: HashMap<NodeId, Instant>,
}

#[derive(Default)]
pub struct IsrTracker {
    groups: HashMap<GroupId, GroupIsr>,
}

impl IsrTracker {
    /// One tick's view of a group this node leads.
    pub fn observe(&mut self, group: GroupId, last_log_index: Option<u64>, matched: &[(NodeId, Option<u64>)], now: Instant) {
        let g = self.groups.entry(group).or_default();
        for (node, at) in matched {
            let caught_up = match (g.prev_last, at) {
                (None, _) => true,
                (Some(prev), Some(at)) => *at >= prev,
                (Some(_), None) => false,
            };
            let seen = g.caught_up.entry(*node).or_insert(now);
            if caught_up {
                *seen = now;
            }
        }
        g.caught_up.retain(|n, _| matched.iter().any(|(m, _)| m == n));
        g.prev_last = last_log_index;
    }

    /// Followers of `group` that have not caught up within `lag_max`.
    pub fn lagging(&self, group: GroupId, now: Instant, lag_max: Duration) -> Vec<NodeId> {
        let Some(g) = self.groups.get(&group) else { return vec![] };
        let mut out: Vec<NodeId> = g.caught_up.iter().filter(|(_, t)| now.saturating_duration_since(**t) > lag_max).map(|(n, _)| *n).collect();
        out.sort_unstable();
        out
    }

    /// Forgets groups this node no longer leads.
    pub fn retain(&mut self, leading: &std::collections::HashSet<GroupId>) {
        self.groups.retain(|g, _| leading.contains(g));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_follower_that_stops_matching_leaves_the_isr_after_the_lag_time() {
        let mut t = IsrTracker::default();
        let g = GroupId(3);
        let lag = Duration::from_secs(1);
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        // Leader appends 10 entries a tick; node 2 keeps up one tick behind, node 3 stops at 5.
        for tick in 0..30u64 {
            let last = tick * 10;
            t.observe(g, Some(last), &[(2, Some(last.saturating_sub(10))), (3, Some(5))], at(tick * 100));
        }
        assert_eq!(t.lagging(g, at(2900), lag), vec![3]);
        // Node 3 catches up: back in at once.
        t.observe(g, Some(300), &[(2, Some(290)), (3, Some(300))], at(3000));
        assert!(t.lagging(g, at(3000), lag).is_empty());
    }

    #[test]
    fn a_new_leader_gives_followers_the_lag_time() {
        let mut t = IsrTracker::default();
        let g = GroupId(1);
        let t0 = Instant::now();
        t.observe(g, Some(100), &[(2, None)], t0);
        assert!(t.lagging(g, t0 + Duration::from_millis(500), Duration::from_secs(1)).is_empty());
        t.observe(g, Some(100), &[(2, None)], t0 + Duration::from_millis(600));
        assert_eq!(t.lagging(g, t0 + Duration::from_millis(1100), Duration::from_secs(1)), vec![2]);
    }
}
