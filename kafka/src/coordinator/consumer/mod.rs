//! One consumer group of KIP-848's protocol (ConsumerGroupHeartbeat): the
//! coordinator assigns, members only report what they own. Pure: the
//! caller passes the time and the subscribed topics' partition counts.
//!
//! Epochs, as Kafka's: the *group epoch* moves on every change of members,
//! subscriptions or partition counts; the *assignment epoch* is the group
//! epoch the targets were computed at; a member's epoch reaches the
//! assignment epoch once it has revoked what its target drops. A partition
//! is given to its new owner only once the old owner has confirmed (in a
//! heartbeat's owned partitions) that it let go: no partition is ever
//! owned by two members.

pub mod assignors;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

pub use assignors::Assignment;

use crate::errors::*;

/// Member epochs with a meaning of their own (ConsumerGroupHeartbeat).
pub const JOIN: i32 = 0;
pub const LEAVE: i32 = -1;
pub const LEAVE_STATIC: i32 = -2;

/// Kafka's largest member id, instance id, rack and client id.
const ID_LEN_MAX: usize = 255;

#[derive(Clone, Debug)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub topics: BTreeSet<String>,
    pub regex: Option<String>,
    pub rebalance_timeout: Duration,
    pub epoch: i32,
    pub previous_epoch: i32,
    /// What the member was last told it owns.
    pub assigned: Assignment,
    /// Partitions it was told to give up and has not confirmed yet.
    pub revoking: Assignment,
    pub revoking_since: Option<Instant>,
    pub last_seen: Instant,
}

/// One heartbeat, decoded (topic ids already resolved to names).
#[derive(Clone, Debug, Default)]
pub struct Beat {
    pub member_id: String,
    pub epoch: i32,
    pub instance_id: Option<String>,
    pub rack: Option<String>,
    pub rebalance_timeout_ms: i32,
    /// None: unchanged since the last heartbeat.
    pub topics: Option<Vec<String>>,
    pub regex: Option<String>,
    pub assignor: Option<String>,
    /// None: unchanged since the last heartbeat.
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
}

/// The answer to a heartbeat: the member's id and epoch and what it owns now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub member_id: String,
    pub epoch: i32,
    pub assignment: Assignment,
}

/// Kafka's consumer group states (ConsumerGroupDescribe, ListGroups).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    Assigning,
    Reconciling,
    Stable,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::Assigning => "Assigning",
            GroupState::Reconciling => "Reconciling",
            GroupState::Stable => "Stable",
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct ConsumerGroup {
    pub epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: BTreeMap<String, Member>,
    pub targets: BTreeMap<String, Assignment>,
    /// Partition counts of the subscribed topics the targets were made from.
    pub partitions: BTreeMap<String, i32>,
}

type Refusal = (i16, String);

impl ConsumerGroup {
    pub fn state(&self) -> GroupState {
        if self.members.is_empty() {
            GroupState::Empty
        } else if self.assignment_epoch < self.epoch {
            GroupState::Assigning
        } else if self.members.values().any(|m| m.epoch != self.assignment_epoch || !m.revoking.is_empty() || Some(&m.assigned) != self.targets.get(&m.id)) {
            GroupState::Reconciling
        } else {
            GroupState::Stable
        }
    }

    /// Every topic a member subscribes to by name.
    pub fn subscribed(&self) -> BTreeSet<String> {
        self.members.values().flat_map(|m| m.topics.iter().cloned()).collect()
    }

    /// The members' subscription regexes (RE2/J syntax, matched against
    /// whole topic names).
    pub fn regexes(&self) -> Vec<regex::Regex> {
        self.members.values().filter_map(|m| full_match(m.regex.as_deref()?).ok()).collect()
    }

    /// A heartbeat at `now`. `partitions` gives the partition counts of the
    /// topics the group then subscribes to (see [`Self::subscribed`]), read
    /// after the membership part is applied; `max_members` bounds the group.
    pub fn heartbeat(
        &mut self,
        beat: Beat,
        new_member_id: impl FnOnce() -> String,
        partitions: impl FnOnce(&Self) -> BTreeMap<String, i32>,
        max_members: usize,
        now: Instant,
    ) -> Result<Reply, Refusal> {
        for (what, v) in [("member id", Some(&beat.member_id)), ("instance id", beat.instance_id.as_ref()), ("rack", beat.rack.as_ref()), ("client id", Some(&beat.client_id))] {
            if v.is_some_and(|v| v.len() > ID_LEN_MAX) {
                return Err((INVALID_REQUEST, format!("{what} longer than {ID_LEN_MAX} bytes")));
            }
        }
        if let Some(Err(e)) = beat.regex.as_deref().filter(|r| !r.is_empty()).map(full_match) {
            return Err((INVALID_REGULAR_EXPRESSION, format!("subscription regex: {e}")));
        }
        if let Some(a) = beat.assignor.as_deref().filter(|a| !assignors::ASSIGNORS.contains(a)) {
            return Err((UNSUPPORTED_ASSIGNOR, format!("assignor {a:?} is not one of {:?}", assignors::ASSIGNORS)));
        }
        let id = match beat.epoch {
            LEAVE | LEAVE_STATIC => {
                if self.members.remove(&beat.member_id).is_some() {
                    self.epoch += 1;
                }
                return Ok(Reply { member_id: beat.member_id, epoch: beat.epoch, assignment: Assignment::new() });
            }
            JOIN => self.join(&beat, new_member_id, max_members, now)?,
            e if e > 0 => {
                self.check_epoch(&beat)?;
                beat.member_id.clone()
            }
            e => return Err((INVALID_REQUEST, format!("member epoch {e} is not a valid epoch"))),
        };
        let m = self.members.get_mut(&id).expect("joined or checked above");
        m.last_seen = now;
        m.client_id = beat.client_id;
        m.client_host = beat.client_host;
        if beat.rack.is_some() {
            m.rack = beat.rack;
        }
        if beat.rebalance_timeout_ms > 0 {
            m.rebalance_timeout = Duration::from_millis(beat.rebalance_timeout_ms as u64);
        }
        let mut changed = false;
        if let Some(topics) = beat.topics {
            let topics: BTreeSet<String> = topics.into_iter().collect();
            changed |= topics != m.topics;
            m.topics = topics;
        }
        if beat.regex.is_some() && beat.regex != m.regex {
            m.regex = beat.regex.filter(|r| !r.is_empty());
            changed = true;
        }
        if let Some(owned) = &beat.owned {
            // What it no longer owns, it has let go.
            for (t, ps) in m.revoking.iter_mut() {
                ps.retain(|p| owned.get(t).is_some_and(|o| o.contains(p)));
            }
            m.revoking.retain(|_, ps| !ps.is_empty());
            if m.revoking.is_empty() {
                m.revoking_since = None;
            }
        }
        if let Some(a) = beat.assignor {
            if a != self.assignor {
                self.assignor = a;
                changed = true;
            }
        }
        if changed {
            self.epoch += 1;
        }
        let counts = partitions(self);
        if counts != self.partitions {
            self.partitions = counts;
            self.epoch += 1;
        }
        if self.assignment_epoch < self.epoch {
            self.reassign();
        }
        Ok(self.reconcile(&id, now))
    }

    /// Adds (or resets) the member; returns its id (the server's choice
    /// when the client gave none, as v0 clients do).
    fn join(&mut self, beat: &Beat, new_member_id: impl FnOnce() -> String, max_members: usize, now: Instant) -> Result<String, Refusal> {
        if beat.topics.is_none() && beat.regex.is_none() {
            return Err((INVALID_REQUEST, "a member joining must give its subscription".into()));
        }
        let id = if beat.member_id.is_empty() { new_member_id() } else { beat.member_id.clone() };
        // A static member coming back takes over its instance's place.
        if let Some(instance) = &beat.instance_id {
            let before: Vec<String> = self.members.values().filter(|m| m.instance_id.as_ref() == Some(instance) && m.id != id).map(|m| m.id.clone()).collect();
            for old in before {
                self.members.remove(&old);
            }
        }
        if !self.members.contains_key(&id) && self.members.len() >= max_members {
            return Err((GROUP_MAX_SIZE_REACHED, format!("the group has {} members, the most allowed", self.members.len())));
        }
        self.members.insert(
            id.clone(),
            Member {
                id: id.clone(),
                instance_id: beat.instance_id.clone(),
                rack: None,
                client_id: String::new(),
                client_host: String::new(),
                topics: BTreeSet::new(),
                regex: None,
                rebalance_timeout: Duration::from_millis(beat.rebalance_timeout_ms.max(0) as u64),
                epoch: 0,
                previous_epoch: 0,
                assigned: Assignment::new(),
                revoking: Assignment::new(),
                revoking_since: None,
                last_seen: now,
            },
        );
        self.epoch += 1;
        Ok(id)
    }

    fn check_epoch(&self, beat: &Beat) -> Result<(), Refusal> {
        let Some(m) = self.members.get(&beat.member_id) else {
            return Err((UNKNOWN_MEMBER_ID, format!("member {} is not in the group", beat.member_id)));
        };
        // The member missed our last answer: it may carry on from the epoch
        // before if it owns nothing it was not given.
        let lost_reply = beat.epoch == m.previous_epoch && beat.owned.as_ref().is_some_and(|o| within(o, &m.assigned, &m.revoking));
        if beat.epoch != m.epoch && !lost_reply {
            return Err((FENCED_MEMBER_EPOCH, format!("member {} is at epoch {}, not {}", m.id, m.epoch, beat.epoch)));
        }
        Ok(())
    }

    /// New targets for every member from the current subscriptions.
    fn reassign(&mut self) {
        let assignor = if self.assignor.is_empty() { assignors::UNIFORM } else { self.assignor.as_str() };
        let empty = Assignment::new();
        // A member's topics: those it names, and those its regex matches.
        let topics: BTreeMap<&String, BTreeSet<String>> = self
            .members
            .iter()
            .map(|(id, m)| {
                let re = m.regex.as_deref().and_then(|r| full_match(r).ok());
                let matched = self.partitions.keys().filter(|t| re.as_ref().is_some_and(|re| re.is_match(t)));
                (id, m.topics.iter().chain(matched).cloned().collect())
            })
            .collect();
        let subs: BTreeMap<String, assignors::Subscriber> = self
            .members
            .keys()
            .map(|id| (id.clone(), assignors::Subscriber { topics: &topics[id], current: self.targets.get(id).unwrap_or(&empty) }))
            .collect();
        self.targets = assignors::assign(assignor, &subs, &self.partitions);
        self.assignment_epoch = self.epoch;
    }

    /// Moves member `id` toward its target: first it gives up what the
    /// target drops; then it gets what the target adds that no other member
    /// holds any more, at the assignment epoch.
    fn reconcile(&mut self, id: &str, now: Instant) -> Reply {
        let target = self.targets.get(id).cloned().unwrap_or_default();
        let held_by_others: BTreeSet<(String, i32)> = self
            .members
            .values()
            .filter(|m| m.id != id)
            .flat_map(|m| pairs(&m.assigned).chain(pairs(&m.revoking)))
            .collect();
        let m = self.members.get_mut(id).expect("a member");
        if m.revoking.is_empty() {
            let drop = minus(&m.assigned, &target);
            if !drop.is_empty() {
                m.assigned = minus(&m.assigned, &drop);
                m.revoking = drop;
                m.revoking_since = Some(now);
            } else {
                for (t, p) in pairs(&target) {
                    if !held_by_others.contains(&(t.clone(), p)) {
                        m.assigned.entry(t).or_default().insert(p);
                    }
                }
                if m.epoch != self.assignment_epoch {
                    m.previous_epoch = m.epoch;
                    m.epoch = self.assignment_epoch;
                }
            }
        }
        Reply { member_id: m.id.clone(), epoch: m.epoch, assignment: m.assigned.clone() }
    }

    /// Removes members not heard from within `session` and members that
    /// kept partitions to revoke past their rebalance timeout. Returns the
    /// ids removed.
    pub fn expire(&mut self, session: Duration, now: Instant) -> Vec<String> {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| now.duration_since(m.last_seen) > session || m.revoking_since.is_some_and(|s| now.duration_since(s) > m.rebalance_timeout))
            .map(|m| m.id.clone())
            .collect();
        for id in &gone {
            self.members.remove(id);
        }
        if !gone.is_empty() {
            self.epoch += 1;
        }
        gone
    }

    /// Whether `member_id` at `epoch` may commit offsets (OffsetCommit v9+).
    pub fn check_commit(&self, member_id: &str, epoch: i32) -> Result<(), i16> {
        match self.members.get(member_id) {
            None if member_id.is_empty() && epoch < 0 && self.members.is_empty() => Ok(()),
            None => Err(UNKNOWN_MEMBER_ID),
            Some(m) if m.epoch != epoch => Err(STALE_MEMBER_EPOCH),
            Some(_) => Ok(()),
        }
    }
}

/// A subscription regex, anchored: Kafka matches it against the whole name.
fn full_match(re: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(&format!("^(?:{re})$")).size_limit(1 << 20).build()
}

fn pairs(a: &Assignment) -> impl Iterator<Item = (String, i32)> + '_ {
    a.iter().flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
}

fn minus(a: &Assignment, b: &Assignment) -> Assignment {
    let mut out = Assignment::new();
    for (t, p) in pairs(a) {
        if !b.get(&t).is_some_and(|ps| ps.contains(&p)) {
            out.entry(t).or_default().insert(p);
        }
    }
    out
}

/// Whether `owned` holds only partitions of `assigned` or `revoking`.
fn within(owned: &Assignment, assigned: &Assignment, revoking: &Assignment) -> bool {
    pairs(owned).all(|(t, p)| [assigned, revoking].iter().any(|a| a.get(&t).is_some_and(|ps| ps.contains(&p))))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 100;

    fn counts(topics: &[(&str, i32)]) -> BTreeMap<String, i32> {
        topics.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    fn beat(member: &str, epoch: i32, topics: Option<&[&str]>, owned: Option<&Assignment>) -> Beat {
        Beat {
            member_id: member.into(),
            epoch,
            topics: topics.map(|t| t.iter().map(|s| s.to_string()).collect()),
            owned: owned.cloned(),
            rebalance_timeout_ms: 30_000,
            ..Default::default()
        }
    }

    /// A client as Kafka's behaves: it owns what it was last told, reports
    /// it, and heartbeats at the epoch it was given.
    struct Client {
        id: String,
        epoch: i32,
        owns: Assignment,
    }

    impl Client {
        fn new(id: &str) -> Self {
            Client { id: id.into(), epoch: JOIN, owns: Assignment::new() }
        }

        fn beat(&mut self, g: &mut ConsumerGroup, topics: &BTreeMap<String, i32>, now: Instant) -> Result<Reply, Refusal> {
            let b = beat(&self.id, self.epoch, if self.epoch == JOIN { Some(&["t"]) } else { None }, Some(&self.owns));
            let r = g.heartbeat(b, || unreachable!("clients name themselves (v1)"), |_| topics.clone(), MAX, now)?;
            self.epoch = r.epoch;
            self.owns = r.assignment.clone();
            Ok(r)
        }
    }

    fn owned_once(g: &ConsumerGroup) {
        let mut seen = BTreeSet::new();
        for m in g.members.values() {
            for p in pairs(&m.assigned).chain(pairs(&m.revoking)) {
                assert!(seen.insert(p.clone()), "{p:?} held by two members: {:?}", g.members);
            }
        }
    }

    #[test]
    fn members_converge_without_ever_sharing_a_partition() {
        let topics = counts(&[("t", 6)]);
        let now = Instant::now();
        let mut g = ConsumerGroup::default();
        let mut clients: Vec<Client> = (1..=3).map(|i| Client::new(&format!("m{i}"))).collect();
        // The first alone gets everything.
        clients[0].beat(&mut g, &topics, now).unwrap();
        assert_eq!(clients[0].owns["t"].len(), 6);
        // Two more join; all heartbeat in turn until nothing changes.
        for round in 0..10 {
            for c in clients.iter_mut() {
                c.beat(&mut g, &topics, now).unwrap();
                owned_once(&g);
            }
            if g.state() == GroupState::Stable {
                assert!(round >= 1, "the first member had to revoke first");
                break;
            }
        }
        assert_eq!(g.state(), GroupState::Stable);
        let sizes: Vec<usize> = clients.iter().map(|c| c.owns["t"].len()).collect();
        assert_eq!(sizes, vec![2, 2, 2]);
        assert!(clients.iter().all(|c| c.epoch == g.assignment_epoch));
        // One leaves: the others take its partitions.
        g.heartbeat(beat("m2", LEAVE, None, None), String::new, |_| topics.clone(), MAX, now).unwrap();
        clients.remove(1);
        for _ in 0..3 {
            for c in clients.iter_mut() {
                c.beat(&mut g, &topics, now).unwrap();
                owned_once(&g);
            }
        }
        assert_eq!(clients.iter().map(|c| c.owns["t"].len()).sum::<usize>(), 6);
        assert_eq!(g.state(), GroupState::Stable);
    }

    #[test]
    fn a_partition_moves_only_after_its_owner_confirms_it_let_go() {
        let topics = counts(&[("t", 2)]);
        let now = Instant::now();
        let mut g = ConsumerGroup::default();
        let mut a = Client::new("a");
        let mut b = Client::new("b");
        a.beat(&mut g, &topics, now).unwrap();
        let r = b.beat(&mut g, &topics, now).unwrap();
        assert!(r.assignment.is_empty(), "a still owns both");
        // a is told to give one up, at its old epoch.
        let epoch_before = a.epoch;
        let told = g.heartbeat(beat("a", a.epoch, None, Some(&a.owns.clone())), String::new, |_| topics.clone(), MAX, now).unwrap();
        assert_eq!((told.epoch, told.assignment["t"].len()), (epoch_before, 1));
        // b gets nothing until a confirms.
        assert!(b.beat(&mut g, &topics, now).unwrap().assignment.is_empty());
        a.owns = told.assignment;
        a.beat(&mut g, &topics, now).unwrap();
        assert_eq!(b.beat(&mut g, &topics, now).unwrap().assignment["t"].len(), 1);
        owned_once(&g);
    }

    #[test]
    fn wrong_epochs_are_fenced_and_unknown_members_refused() {
        let topics = counts(&[("t", 1)]);
        let now = Instant::now();
        let mut g = ConsumerGroup::default();
        let mut a = Client::new("a");
        a.beat(&mut g, &topics, now).unwrap();
        let err = g.heartbeat(beat("a", a.epoch + 5, None, None), String::new, |_| topics.clone(), MAX, now).unwrap_err();
        assert_eq!(err.0, FENCED_MEMBER_EPOCH);
        let err = g.heartbeat(beat("ghost", 3, None, None), String::new, |_| topics.clone(), MAX, now).unwrap_err();
        assert_eq!(err.0, UNKNOWN_MEMBER_ID);
        assert_eq!(g.check_commit("a", a.epoch), Ok(()));
        assert_eq!(g.check_commit("a", a.epoch - 1), Err(STALE_MEMBER_EPOCH));
        // A v0 client lets the coordinator name it.
        let r = g.heartbeat(beat("", JOIN, Some(&["t"]), None), || "chosen".into(), |_| topics.clone(), MAX, now).unwrap();
        assert_eq!(r.member_id, "chosen");
        // A join without a subscription, a bad assignor: refused.
        assert_eq!(g.heartbeat(beat("x", JOIN, None, None), String::new, |_| topics.clone(), MAX, now).unwrap_err().0, INVALID_REQUEST);
        let mut bad = beat("x", JOIN, Some(&["t"]), None);
        bad.assignor = Some("sticky".into());
        assert_eq!(g.heartbeat(bad, String::new, |_| topics.clone(), MAX, now).unwrap_err().0, UNSUPPORTED_ASSIGNOR);
        assert_eq!(g.heartbeat(beat("y", JOIN, Some(&["t"]), None), String::new, |_| topics.clone(), 2, now).unwrap_err().0, GROUP_MAX_SIZE_REACHED);
    }

    #[test]
    fn silent_members_expire_and_their_partitions_go_to_others() {
        let topics = counts(&[("t", 4)]);
        let start = Instant::now();
        let mut g = ConsumerGroup::default();
        let mut a = Client::new("a");
        let mut b = Client::new("b");
        for _ in 0..4 {
            a.beat(&mut g, &topics, start).unwrap();
            b.beat(&mut g, &topics, start).unwrap();
        }
        assert_eq!((a.owns["t"].len(), b.owns["t"].len()), (2, 2));
        let later = start + Duration::from_secs(50);
        a.beat(&mut g, &topics, later).unwrap();
        assert_eq!(g.expire(Duration::from_secs(45), later), vec!["b".to_string()]);
        a.beat(&mut g, &topics, later).unwrap();
        assert_eq!(a.owns["t"].len(), 4);
    }

    #[test]
    fn a_regex_subscription_matches_whole_topic_names() {
        let now = Instant::now();
        let mut g = ConsumerGroup::default();
        let mut b = beat("a", JOIN, None, None);
        b.regex = Some("orders-.*".into());
        // The caller gives the counts of every topic some regex matches.
        let all = counts(&[("orders-eu", 2), ("orders-us", 1), ("returns-orders-x", 5)]);
        let r = g
            .heartbeat(b, String::new, |g| all.iter().filter(|(t, _)| g.regexes().iter().any(|re| re.is_match(t))).map(|(t, n)| (t.clone(), *n)).collect(), MAX, now)
            .unwrap();
        assert_eq!(r.assignment.keys().collect::<Vec<_>>(), vec!["orders-eu", "orders-us"]);
        let mut bad = beat("c", JOIN, None, None);
        bad.regex = Some("(unclosed".into());
        assert_eq!(g.heartbeat(bad, String::new, |_| BTreeMap::new(), MAX, now).unwrap_err().0, INVALID_REGULAR_EXPRESSION);
        assert!(!g.members.contains_key("c"), "refused before it joined");
    }

    #[test]
    fn a_new_partition_count_reassigns() {
        let now = Instant::now();
        let mut g = ConsumerGroup::default();
        let mut a = Client::new("a");
        a.beat(&mut g, &counts(&[("t", 2)]), now).unwrap();
        let before = g.epoch;
        a.beat(&mut g, &counts(&[("t", 3)]), now).unwrap();
        assert!(g.epoch > before);
        assert_eq!(a.owns["t"].len(), 3);
    }
}
