//! One consumer group's state machine (Kafka's classic protocol): members,
//! pending joins and syncs, session and rebalance deadlines, and the moves
//! between Empty, PreparingRebalance, CompletingRebalance and Stable. Pure
//! state: the coordinator (`super`) locks a group, calls these, and
//! replicates what must survive a coordinator change.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chronik::offsets::{GroupRecord, MemberRecord};
use tokio::sync::oneshot;
use tracing::info;

use crate::errors::*;

/// Term of a group not loaded from its offsets partition yet.
pub(super) const UNLOADED: u64 = u64::MAX;

#[derive(Clone, Debug)]
pub struct GroupSettings {
    pub initial_rebalance_delay: Duration,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    /// KIP-848 groups: how often members heartbeat, how long a silent one
    /// stays, how many one group may have (Kafka's
    /// group.consumer.heartbeat.interval.ms, .session.timeout.ms, .max.size).
    pub consumer_heartbeat_interval: Duration,
    pub consumer_session_timeout: Duration,
    pub consumer_max_size: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl State {
    /// The names Kafka uses in DescribeGroups and ListGroups.
    pub fn name(self) -> &'static str {
        match self {
            State::Empty => "Empty",
            State::PreparingRebalance => "PreparingRebalance",
            State::CompletingRebalance => "CompletingRebalance",
            State::Stable => "Stable",
            State::Dead => "Dead",
        }
    }
}

/// A JoinGroup as the coordinator needs it.
#[derive(Clone, Debug)]
pub struct Join {
    pub group: String,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// The JoinGroup version: v4+ must join with a member id (KIP-394), v9+
    /// may be told to skip the assignment.
    pub api_version: i16,
}

#[derive(Clone, Debug, Default)]
pub struct JoinOutcome {
    pub error: i16,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Only for the leader: (member id, instance id, metadata).
    pub members: Vec<(String, Option<String>, Bytes)>,
    /// A static leader that came back to a stable group: it keeps the
    /// current assignment instead of computing one (JoinGroup v9+).
    pub skip_assignment: bool,
}

impl JoinOutcome {
    pub(super) fn error(error: i16, member_id: &str) -> Self {
        Self { error, generation: -1, member_id: member_id.to_string(), ..Default::default() }
    }
}

#[derive(Clone, Debug, Default)]
pub struct SyncOutcome {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub assignment: Bytes,
}

impl SyncOutcome {
    pub(super) fn error(error: i16) -> Self {
        Self { error, ..Default::default() }
    }
}

/// A group as DescribeGroups shows it.
#[derive(Clone, Debug)]
pub struct Description {
    pub state: State,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberRecord>,
}

pub(super) struct Member {
    pub(super) id: String,
    pub(super) instance_id: Option<String>,
    pub(super) client_id: String,
    pub(super) client_host: String,
    pub(super) session_timeout: Duration,
    pub(super) rebalance_timeout: Duration,
    pub(super) protocols: Vec<(String, Bytes)>,
    pub(super) assignment: Bytes,
    pub(super) last_seen: Instant,
    /// Order of first join: the first member still present leads.
    pub(super) joined_at: u64,
    /// A JoinGroup waiting for the rebalance to complete.
    pub(super) join: Option<oneshot::Sender<JoinOutcome>>,
    /// A SyncGroup waiting for the leader's assignment.
    pub(super) sync: Option<oneshot::Sender<SyncOutcome>>,
}

impl Member {
    /// Whether a join brings the same protocols and metadata as before.
    pub(super) fn matches(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    pub(super) fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols.iter().find(|(n, _)| n == protocol).map(|(_, m)| m.clone()).unwrap_or_default()
    }

    /// Alive: waiting in a join or sync, or heard from within its session.
    pub(super) fn alive(&self, now: Instant) -> bool {
        self.join.is_some() || self.sync.is_some() || now.duration_since(self.last_seen) < self.session_timeout
    }
}

pub(super) struct Group {
    pub(super) name: String,
    pub(super) state: State,
    pub(super) generation: i32,
    pub(super) protocol_type: Option<String>,
    pub(super) protocol: Option<String>,
    pub(super) leader: Option<String>,
    pub(super) members: BTreeMap<String, Member>,
    /// The offsets partition's term this state was loaded in.
    pub(super) term: u64,
    /// PreparingRebalance: members that have not rejoined by then are dropped.
    pub(super) rebalance_deadline: Option<Instant>,
    /// A new group's first rebalance waits until then for more members.
    pub(super) initial_delay_until: Option<Instant>,
    /// When the current initial delay started (it extends up to a bound).
    pub(super) initial_delay_started: Option<Instant>,
    pub(super) next_join_order: u64,
    /// The group has a stored record or has had members (DescribeGroups
    /// answers Dead for a group that never existed).
    pub(super) known: bool,
    /// Dropped from the coordinator's memory (idle, or no longer coordinated
    /// here): whoever locked this handle meanwhile must look the group up again.
    pub(super) retired: bool,
    /// Members given an id by MEMBER_ID_REQUIRED and not back yet (KIP-394),
    /// with when they expire: a rebalance waits for them, so members that
    /// start together end up in one generation.
    pub(super) pending: BTreeMap<String, Instant>,
}

impl Group {
    pub(super) fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            state: State::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            term: UNLOADED,
            rebalance_deadline: None,
            initial_delay_until: None,
            initial_delay_started: None,
            next_join_order: 0,
            known: false,
            retired: false,
            pending: BTreeMap::new(),
        }
    }

    pub(super) fn from_record(name: &str, rec: Option<GroupRecord>, term: u64) -> Self {
        let mut g = Group::new(name);
        g.term = term;
        let Some(rec) = rec else { return g };
        let now = Instant::now();
        g.known = true;
        g.generation = rec.generation;
        g.protocol_type = Some(rec.protocol_type).filter(|p| !p.is_empty());
        g.protocol = rec.protocol.clone();
        g.leader = rec.leader;
        for (i, m) in rec.members.into_iter().enumerate() {
            let protocol = rec.protocol.clone().unwrap_or_default();
            g.members.insert(
                m.member_id.clone(),
                Member {
                    id: m.member_id,
                    instance_id: m.instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout: Duration::from_millis(m.session_timeout_ms.max(0) as u64),
                    rebalance_timeout: Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64),
                    protocols: vec![(protocol, m.metadata)],
                    assignment: m.assignment,
                    last_seen: now,
                    joined_at: i as u64,
                    join: None,
                    sync: None,
                },
            );
        }
        g.next_join_order = g.members.len() as u64;
        g.state = if g.members.is_empty() { State::Empty } else { State::Stable };
        g
    }

    pub(super) fn record(&self) -> GroupRecord {
        let protocol = self.protocol.clone().unwrap_or_default();
        GroupRecord {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            members: self
                .members
                .values()
                .map(|m| MemberRecord {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout_ms: m.session_timeout.as_millis() as i32,
                    rebalance_timeout_ms: m.rebalance_timeout.as_millis() as i32,
                    metadata: m.metadata_for(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// The member a heartbeat or commit names, checked as Kafka does: a
    /// static instance owned by another member id is fenced, an unknown
    /// member and a wrong generation are refused.
    pub(super) fn member_for(&mut self, member_id: &str, instance_id: Option<&str>, generation: i32) -> Result<&mut Member, i16> {
        if instance_id.and_then(|i| self.member_of_instance(i)).is_some_and(|owner| owner != member_id) {
            return Err(FENCED_INSTANCE_ID);
        }
        let current = self.generation;
        let m = self.members.get_mut(member_id).ok_or(UNKNOWN_MEMBER_ID)?;
        if generation != current {
            return Err(ILLEGAL_GENERATION);
        }
        Ok(m)
    }

    pub(super) fn member_of_instance(&self, instance: &str) -> Option<String> {
        self.members.values().find(|m| m.instance_id.as_deref() == Some(instance)).map(|m| m.id.clone())
    }

    /// Answers every pending join and sync with `error` (the group moved on
    /// or this node stopped coordinating it).
    pub(super) fn fail_waiters(&mut self, error: i16) {
        for m in self.members.values_mut() {
            if let Some(tx) = m.join.take() {
                let _ = tx.send(JoinOutcome::error(error, &m.id));
            }
            if let Some(tx) = m.sync.take() {
                let _ = tx.send(SyncOutcome::error(error));
            }
        }
    }

    pub(super) fn remove_member(&mut self, id: &str, error: i16) -> bool {
        let Some(mut m) = self.members.remove(id) else { return false };
        if let Some(tx) = m.join.take() {
            let _ = tx.send(JoinOutcome::error(error, id));
        }
        if let Some(tx) = m.sync.take() {
            let _ = tx.send(SyncOutcome::error(error));
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = None;
        }
        true
    }

    /// Starts a rebalance: every member must join again.
    pub(super) fn prepare_rebalance(&mut self, settings: &GroupSettings, now: Instant) {
        for m in self.members.values_mut() {
            if let Some(tx) = m.sync.take() {
                let _ = tx.send(SyncOutcome::error(REBALANCE_IN_PROGRESS));
            }
        }
        let longest = self.members.values().map(|m| m.rebalance_timeout).max().unwrap_or_default();
        if self.state == State::Empty {
            // A new (or emptied) group: wait for more members to arrive.
            self.initial_delay_started = Some(now);
            self.initial_delay_until = Some(now + settings.initial_rebalance_delay.min(longest));
        }
        self.rebalance_deadline = Some(now + longest);
        self.state = State::PreparingRebalance;
    }

    /// Completes the join phase once every member has rejoined and no
    /// pending member is awaited (and a new group's delay is over), or at the
    /// deadline: dynamic members that did not rejoin are removed, static
    /// ones keep their place (KIP-345: they may come back within their
    /// session). Returns true if the group became Empty (to be stored).
    pub(super) fn maybe_complete_join(&mut self, now: Instant) -> bool {
        if self.state != State::PreparingRebalance {
            return false;
        }
        let all_joined = self.members.values().all(|m| m.join.is_some()) && self.pending.is_empty();
        let delay_over = self.initial_delay_until.is_none_or(|t| now >= t);
        let timed_out = self.rebalance_deadline.is_some_and(|t| now >= t);
        if !(all_joined && delay_over) && !timed_out {
            return false;
        }
        let stragglers: Vec<String> = self.members.values().filter(|m| m.join.is_none() && m.instance_id.is_none()).map(|m| m.id.clone()).collect();
        for id in &stragglers {
            info!(group = %self.name, member = %id, "member did not rejoin in time; removed");
            self.remove_member(id, UNKNOWN_MEMBER_ID);
        }
        if !self.members.is_empty() && self.members.values().all(|m| m.join.is_none()) {
            // Only static members that have not rejoined: wait for them (or
            // for their sessions to end) another rebalance timeout.
            let longest = self.members.values().map(|m| m.rebalance_timeout).max().unwrap_or_default();
            self.rebalance_deadline = Some(now + longest);
            return false;
        }
        self.pending.clear();
        self.rebalance_deadline = None;
        self.initial_delay_until = None;
        self.initial_delay_started = None;
        self.generation += 1;
        if self.members.is_empty() {
            self.state = State::Empty;
            self.protocol = None;
            self.leader = None;
            return true;
        }
        self.protocol = Some(self.select_protocol());
        if self.leader.as_ref().is_none_or(|l| self.members.get(l).is_none_or(|m| m.join.is_none())) {
            self.leader = self.members.values().filter(|m| m.join.is_some()).min_by_key(|m| m.joined_at).map(|m| m.id.clone());
        }
        self.state = State::CompletingRebalance;
        let leader = self.leader.clone().unwrap_or_default();
        info!(group = %self.name, generation = self.generation, members = self.members.len(), leader = %leader, protocol = ?self.protocol, "rebalance: join phase complete");
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let outcome = self.current_join(&id, id == leader, false);
            let m = self.members.get_mut(&id).expect("a member");
            m.last_seen = now;
            if let Some(tx) = m.join.take() {
                let _ = tx.send(outcome);
            }
        }
        false
    }

    /// The current generation as a JoinGroup answer for `member_id`; the
    /// member list only if `with_members` (the leader's answer).
    pub(super) fn current_join(&self, member_id: &str, with_members: bool, skip_assignment: bool) -> JoinOutcome {
        let protocol = self.protocol.clone().unwrap_or_default();
        JoinOutcome {
            error: NONE,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members: if with_members {
                self.members.values().map(|m| (m.id.clone(), m.instance_id.clone(), m.metadata_for(&protocol))).collect()
            } else {
                vec![]
            },
            skip_assignment,
        }
    }

    /// A static member back under a new member id takes its old self's
    /// place: assignment, join order and leadership; the old id is fenced.
    pub(super) fn replace_static_member(&mut self, old_id: &str, new_id: &str) {
        let Some(mut m) = self.members.remove(old_id) else { return };
        if let Some(tx) = m.join.take() {
            let _ = tx.send(JoinOutcome::error(FENCED_INSTANCE_ID, old_id));
        }
        if let Some(tx) = m.sync.take() {
            let _ = tx.send(SyncOutcome::error(FENCED_INSTANCE_ID));
        }
        m.id = new_id.to_string();
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.to_string());
        }
        self.members.insert(new_id.to_string(), m);
    }

    /// Forgets pending members whose time ran out; true if any did.
    pub(super) fn expire_pending(&mut self, now: Instant) -> bool {
        let before = self.pending.len();
        self.pending.retain(|_, until| *until > now);
        self.pending.len() != before
    }

    /// The protocol every member supports that most members prefer.
    pub(super) fn select_protocol(&self) -> String {
        let supported_by_all = |name: &str| self.members.values().all(|m| m.protocols.iter().any(|(n, _)| n == name));
        let mut votes: Vec<(String, usize)> = Vec::new();
        let mut members: Vec<&Member> = self.members.values().collect();
        members.sort_by_key(|m| m.joined_at);
        for m in members {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| supported_by_all(n)) {
                match votes.iter_mut().find(|(n, _)| n == name) {
                    Some(v) => v.1 += 1,
                    None => votes.push((name.clone(), 1)),
                }
            }
        }
        // Ties go to the protocol voted for first.
        let best = votes.iter().map(|(_, c)| *c).max().unwrap_or(0);
        votes.into_iter().find(|(_, c)| *c == best).map(|(n, _)| n).unwrap_or_default()
    }
}
