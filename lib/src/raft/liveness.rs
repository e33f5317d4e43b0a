//! Node-level liveness, leader gossip and Raft timing for partition groups.
//!
//! Partition groups run with openraft's per-group tick off: with a thousand
//! groups, per-group timers and heartbeats dominate idle CPU. One loop per node
//! does their timing instead:
//! - every `heartbeat_interval_ms` it asks each group this node leads for a
//!   heartbeat (the transport coalesces them into one request per peer);
//! - every [`PING_INTERVAL`] it exchanges a [`NodeStatus`] with each peer:
//!   "I am alive, and I lead these groups at these terms". This is the failure
//!   detector, and it gives every node the leaders of partitions it does not
//!   host (for Metadata);
//! - a follower group whose leader is not alive, or alive but no longer
//!   claiming the group, becomes a suspect; its replicas campaign with
//!   pre-vote in the order of the group's replica list (the placement's
//!   preferred leader first), one election timeout apart, so that one replica
//!   normally wins without a split vote.
//!
//! Safety never depends on this module: it only decides *when* to campaign;
//! pre-vote and openraft's leader lease (votes are refused while a follower has
//! heard from a live leader within `election_timeout_max_ms`) decide *whether*.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::{GroupId, NodeId};

/// How often a node exchanges its status with each peer.
pub const PING_INTERVAL: Duration = Duration::from_millis(100);

/// A peer whose last successful exchange is older than this is not alive.
pub const ALIVE_WINDOW: Duration = Duration::from_millis(400);

/// What a node tells a peer about itself in one status exchange.
///
/// The list of leaderships only travels when the receiver does not have its
/// current version: in a steady cluster an exchange is a few bytes, whatever
/// the number of partitions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub node: NodeId,
    /// Changes whenever `leading` does; starts at a per-process random value
    /// so that a restarted node never repeats a version with other content.
    pub version: u64,
    /// (group, term) of every partition group the sender leads; None when the
    /// receiver already holds `version`.
    pub leading: Option<Vec<(u64, u64)>>,
    /// Of those groups, the ones with followers out of sync (see
    /// `crate::raft::isr`), with those followers; sent with `leading`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lagging: Option<Vec<(u64, Vec<NodeId>)>>,
    /// The version of the receiver's status that the sender holds.
    pub have: Option<u64>,
}

#[derive(Default)]
struct PeerState {
    last_ok: Option<Instant>,
    /// The version of `leading`.
    version: Option<u64>,
    leading: HashMap<GroupId, u64>,
    /// Followers out of sync in groups the peer leads.
    lagging: HashMap<GroupId, Vec<NodeId>>,
    /// Whether the peer is currently believed down (for logging transitions once).
    down: bool,
}

/// What this node knows about its peers, from status exchanges in both directions.
#[derive(Default)]
pub struct PeerTable {
    peers: RwLock<HashMap<NodeId, PeerState>>,
    /// Bumped whenever a peer's list of leaderships changes.
    generation: std::sync::atomic::AtomicU64,
}

impl PeerTable {
    /// Records a status received from (or returned by) a peer.
    pub fn record(&self, me: NodeId, status: &NodeStatus) {
        let mut peers = self.peers.write().unwrap();
        let p = peers.entry(status.node).or_default();
        if p.down {
            info!(node_id = me, peer = status.node, "peer node is reachable again");
        }
        p.down = false;
        p.last_ok = Some(Instant::now());
        if let Some(leading) = &status.leading {
            p.leading = leading.iter().map(|(g, t)| (GroupId(*g), *t)).collect();
            p.lagging = status.lagging.iter().flatten().map(|(g, nodes)| (GroupId(*g), nodes.clone())).collect();
            p.version = Some(status.version);
            self.generation.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        // Otherwise the sender believed we hold its version; if we do not,
        // our next `have` tells it to send the list.
    }

    /// Changes whenever a peer's claims change (liveness changes with time:
    /// ask `is_alive`).
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The version of `peer`'s status held here.
    pub fn version_of(&self, peer: NodeId) -> Option<u64> {
        self.peers.read().unwrap().get(&peer).and_then(|p| p.version)
    }

    /// Records a failed exchange; logs only the first failure of a streak.
    pub fn record_failure(&self, me: NodeId, peer: NodeId, error: &str) {
        let mut peers = self.peers.write().unwrap();
        let p = peers.entry(peer).or_default();
        let stale = p.last_ok.is_none_or(|t| t.elapsed() > ALIVE_WINDOW);
        if stale && !p.down {
            p.down = true;
            warn!(node_id = me, peer, error, "peer node unreachable; its partitions will fail over after the election timeout");
        }
    }

    /// Whether `peer` has been found unreachable (and not heard from since).
    /// Unlike `!is_alive`, a peer not yet heard from is not down.
    pub fn is_known_down(&self, peer: NodeId) -> bool {
        self.peers.read().unwrap().get(&peer).is_some_and(|p| p.down)
    }

    pub fn is_alive(&self, peer: NodeId) -> bool {
        let peers = self.peers.read().unwrap();
        peers.get(&peer).and_then(|p| p.last_ok).is_some_and(|t| t.elapsed() <= ALIVE_WINDOW)
    }

    /// Whether `peer` is alive and says it leads `group`.
    pub fn claims(&self, peer: NodeId, group: GroupId) -> bool {
        let peers = self.peers.read().unwrap();
        peers
            .get(&peer)
            .is_some_and(|p| p.last_ok.is_some_and(|t| t.elapsed() <= ALIVE_WINDOW) && p.leading.contains_key(&group))
    }

    /// The followers that `leader` (a peer) reports out of sync in `group`.
    pub fn lagging(&self, leader: NodeId, group: GroupId) -> Vec<NodeId> {
        let peers = self.peers.read().unwrap();
        peers.get(&leader).and_then(|p| p.lagging.get(&group)).cloned().unwrap_or_default()
    }

    /// The alive peer claiming `group` at the highest term.
    pub fn leader_claim(&self, group: GroupId) -> Option<(NodeId, u64)> {
        let peers = self.peers.read().unwrap();
        peers
            .iter()
            .filter(|(_, p)| p.last_ok.is_some_and(|t| t.elapsed() <= ALIVE_WINDOW))
            .filter_map(|(id, p)| p.leading.get(&group).map(|term| (*id, *term)))
            .max_by_key(|(_, term)| *term)
    }
}

/// When a suspect group's replica should campaign.
///
/// `rank` is this node's place among the replicas that may campaign (alive,
/// and not the suspected leader), in replica-list order. A group that never had
/// a leader campaigns at once (rank 0); otherwise rank 0 waits `grace`, and each
/// further rank one more `step`, so the others step in only if it fails.
pub fn campaign_due(suspect_for: Duration, never_led: bool, rank: usize, grace: Duration, step: Duration) -> bool {
    let first = if never_led { Duration::ZERO } else { grace };
    suspect_for >= first + step * rank as u32
}

/// Per-group suspicion state kept by the timing loop.
#[derive(Default)]
pub struct Suspects {
    /// When the group became suspect, and which leader it then had.
    since: HashMap<GroupId, (Instant, Option<NodeId>)>,
    /// The last campaign and how many came before it in this streak.
    last_campaign: HashMap<GroupId, (Instant, u32)>,
}

impl Suspects {
    /// No group is suspect.
    pub fn is_empty(&self) -> bool {
        self.since.is_empty()
    }

    /// Marks `group` healthy (forgets any suspicion).
    pub fn clear(&mut self, group: GroupId) {
        self.since.remove(&group);
        self.last_campaign.remove(&group);
    }

    /// Marks `group` (whose leader is `leader`) suspect and returns for how
    /// long it has been suspect with that same leader.
    pub fn suspect(&mut self, group: GroupId, leader: Option<NodeId>, now: Instant) -> Duration {
        let entry = self.since.entry(group).or_insert((now, leader));
        if entry.1 != leader {
            *entry = (now, leader);
        }
        now.saturating_duration_since(entry.0)
    }

    /// Whether a campaign may start now. The first retry comes `every`
    /// after the first try, each further one twice as late, up to `max`:
    /// a failover is tried often while the old leader's lease runs out, and
    /// thousands of leaderless groups do not vote in a storm.
    pub fn may_campaign(&mut self, group: GroupId, now: Instant, every: Duration, max: Duration) -> bool {
        match self.last_campaign.get(&group).copied() {
            Some((t, n)) if now.saturating_duration_since(t) < every.saturating_mul(1 << n.min(16)).min(max) => false,
            prev => {
                self.last_campaign.insert(group, (now, prev.map_or(0, |(_, n)| n.saturating_add(1))));
                true
            }
        }
    }

    /// Forgets groups that are no longer running here.
    pub fn retain(&mut self, running: &std::collections::HashSet<GroupId>) {
        self.since.retain(|g, _| running.contains(g));
        self.last_campaign.retain(|g, _| running.contains(g));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn campaigns_back_off_to_the_cap() {
        let mut s = Suspects::default();
        let (g, t0) = (GroupId(1), Instant::now());
        let ms = |n| t0 + Duration::from_millis(n);
        let (every, max) = (Duration::from_millis(50), Duration::from_millis(250));
        let tries: Vec<u64> = (0..1200).step_by(10).filter(|&t| s.may_campaign(g, ms(t), every, max)).collect();
        assert_eq!(tries, vec![0, 50, 150, 350, 600, 850, 1100]);
        s.clear(g);
        assert!(s.may_campaign(g, ms(1110), every, max), "a new streak starts over");
    }

    #[test]
    fn campaign_order_follows_rank() {
        let (grace, step) = (Duration::from_millis(500), Duration::from_millis(1000));
        assert!(campaign_due(Duration::ZERO, true, 0, grace, step));
        assert!(!campaign_due(Duration::ZERO, true, 1, grace, step));
        assert!(!campaign_due(Duration::from_millis(499), false, 0, grace, step));
        assert!(campaign_due(Duration::from_millis(500), false, 0, grace, step));
        assert!(!campaign_due(Duration::from_millis(1499), false, 1, grace, step));
        assert!(campaign_due(Duration::from_millis(1500), false, 1, grace, step));
    }

    #[test]
    fn peer_table_claims_expire() {
        let t = PeerTable::default();
        t.record(1, &NodeStatus { node: 2, version: 10, leading: Some(vec![(7, 3)]), lagging: None, have: None });
        t.record(1, &NodeStatus { node: 3, version: 20, leading: Some(vec![(7, 5)]), lagging: Some(vec![(7, vec![1])]), have: None });
        // A status without the list keeps what was known.
        t.record(1, &NodeStatus { node: 3, version: 21, leading: None, lagging: None, have: None });
        assert_eq!(t.lagging(3, GroupId(7)), vec![1]);
        assert!(t.lagging(2, GroupId(7)).is_empty());
        assert_eq!(t.version_of(3), Some(20));
        assert!(t.claims(2, GroupId(7)));
        assert!(!t.claims(2, GroupId(8)));
        assert_eq!(t.leader_claim(GroupId(7)), Some((3, 5)));
        t.peers.write().unwrap().get_mut(&3).unwrap().last_ok = Some(Instant::now() - ALIVE_WINDOW * 2);
        assert_eq!(t.leader_claim(GroupId(7)), Some((2, 3)));
        assert!(!t.is_alive(3));
    }

    #[test]
    fn suspects_rate_limit_campaigns() {
        let mut s = Suspects::default();
        let now = Instant::now();
        let g = GroupId(4);
        assert_eq!(s.suspect(g, Some(1), now), Duration::ZERO);
        let every = Duration::from_millis(300);
        assert!(s.may_campaign(g, now, every, every));
        assert!(!s.may_campaign(g, now + Duration::from_millis(100), every, every));
        assert!(s.may_campaign(g, now + Duration::from_millis(300), every, every));
        assert!(!s.may_campaign(g, now + Duration::from_millis(599), every, every), "capped at `max`, never sooner");
        assert!(s.may_campaign(g, now + Duration::from_millis(600), every, every));
        assert_eq!(s.suspect(g, Some(1), now + Duration::from_millis(50)), Duration::from_millis(50));
        // A new leader starts a new suspicion.
        assert_eq!(s.suspect(g, Some(2), now + Duration::from_millis(55)), Duration::ZERO);
        s.clear(g);
        assert_eq!(s.suspect(g, Some(2), now + Duration::from_millis(60)), Duration::ZERO);
    }
}
