//! The consumer group coordinator: Kafka's classic group protocol (JoinGroup,
//! SyncGroup, Heartbeat, LeaveGroup) and offset commits.
//!
//! A group is coordinated by the leader of its offsets partition (see
//! `chronik::offsets`). Membership in flight lives here, in memory: members,
//! pending joins and syncs, session deadlines. What must survive a
//! coordinator change goes through the partition's Raft group before it is
//! answered: committed offsets, and each completed generation (members and
//! assignments), so a new coordinator carries on with the same generation.
//!
//! States follow Kafka's: Empty -> PreparingRebalance (members (re)join) ->
//! CompletingRebalance (the leader computes assignments) -> Stable. A join,
//! a leave or an expired session starts a new rebalance. A new group waits
//! `initial_rebalance_delay` for more members before its first generation.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex as StdMutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chronik::offsets::{CommittedOffset, GroupCommand, GroupRecord, MemberRecord};
use chronik::{PartitionStore, StoreError};
use tokio::sync::{oneshot, Mutex, OwnedMutexGuard};
use tracing::{info, warn};

use crate::errors::*;

/// How often sessions and rebalance deadlines are checked.
const TICK: Duration = Duration::from_millis(100);

/// Term of a group not loaded from its offsets partition yet.
const UNLOADED: u64 = u64::MAX;

#[derive(Clone, Debug)]
pub struct GroupSettings {
    pub initial_rebalance_delay: Duration,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
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
}

impl JoinOutcome {
    fn error(error: i16, member_id: &str) -> Self {
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
    fn error(error: i16) -> Self {
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

struct Member {
    id: String,
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    last_seen: Instant,
    /// Order of first join: the first member still present leads.
    joined_at: u64,
    /// A JoinGroup waiting for the rebalance to complete.
    join: Option<oneshot::Sender<JoinOutcome>>,
    /// A SyncGroup waiting for the leader's assignment.
    sync: Option<oneshot::Sender<SyncOutcome>>,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols.iter().find(|(n, _)| n == protocol).map(|(_, m)| m.clone()).unwrap_or_default()
    }

    /// Alive: waiting in a join or sync, or heard from within its session.
    fn alive(&self, now: Instant) -> bool {
        self.join.is_some() || self.sync.is_some() || now.duration_since(self.last_seen) < self.session_timeout
    }
}

struct Group {
    name: String,
    state: State,
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// The offsets partition's term this state was loaded in.
    term: u64,
    /// PreparingRebalance: members that have not rejoined by then are dropped.
    rebalance_deadline: Option<Instant>,
    /// A new group's first rebalance waits until then for more members.
    initial_delay_until: Option<Instant>,
    /// When the current initial delay started (it extends up to a bound).
    initial_delay_started: Option<Instant>,
    next_join_order: u64,
    /// The group has a stored record or has had members (DescribeGroups
    /// answers Dead for a group that never existed).
    known: bool,
    /// Dropped from the coordinator's memory (idle, or no longer coordinated
    /// here): whoever locked this handle meanwhile must look the group up again.
    retired: bool,
}

impl Group {
    fn new(name: &str) -> Self {
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
        }
    }

    fn from_record(name: &str, rec: Option<GroupRecord>, term: u64) -> Self {
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

    fn record(&self) -> GroupRecord {
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
    fn member_for(&mut self, member_id: &str, instance_id: Option<&str>, generation: i32) -> Result<&mut Member, i16> {
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

    fn member_of_instance(&self, instance: &str) -> Option<String> {
        self.members.values().find(|m| m.instance_id.as_deref() == Some(instance)).map(|m| m.id.clone())
    }

    /// Answers every pending join and sync with `error` (the group moved on
    /// or this node stopped coordinating it).
    fn fail_waiters(&mut self, error: i16) {
        for m in self.members.values_mut() {
            if let Some(tx) = m.join.take() {
                let _ = tx.send(JoinOutcome::error(error, &m.id));
            }
            if let Some(tx) = m.sync.take() {
                let _ = tx.send(SyncOutcome::error(error));
            }
        }
    }

    fn remove_member(&mut self, id: &str, error: i16) -> bool {
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
    fn prepare_rebalance(&mut self, settings: &GroupSettings, now: Instant) {
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

    /// Completes the join phase once every member has rejoined (and a new
    /// group's delay is over), or at the deadline without the stragglers.
    /// Returns true if the group became Empty (to be stored).
    fn maybe_complete_join(&mut self, now: Instant) -> bool {
        if self.state != State::PreparingRebalance {
            return false;
        }
        let all_joined = self.members.values().all(|m| m.join.is_some());
        let delay_over = self.initial_delay_until.is_none_or(|t| now >= t);
        let timed_out = self.rebalance_deadline.is_some_and(|t| now >= t);
        if !(all_joined && delay_over) && !timed_out {
            return false;
        }
        let stragglers: Vec<String> = self.members.values().filter(|m| m.join.is_none()).map(|m| m.id.clone()).collect();
        for id in &stragglers {
            info!(group = %self.name, member = %id, "member did not rejoin in time; removed");
            self.remove_member(id, UNKNOWN_MEMBER_ID);
        }
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
        if self.leader.as_ref().is_none_or(|l| !self.members.contains_key(l)) {
            self.leader = self.members.values().min_by_key(|m| m.joined_at).map(|m| m.id.clone());
        }
        self.state = State::CompletingRebalance;
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let everyone: Vec<(String, Option<String>, Bytes)> =
            self.members.values().map(|m| (m.id.clone(), m.instance_id.clone(), m.metadata_for(&protocol))).collect();
        info!(group = %self.name, generation = self.generation, members = self.members.len(), leader = %leader, protocol = %protocol, "rebalance: join phase complete");
        for m in self.members.values_mut() {
            m.last_seen = now;
            if let Some(tx) = m.join.take() {
                let _ = tx.send(JoinOutcome {
                    error: NONE,
                    generation: self.generation,
                    protocol_type: self.protocol_type.clone(),
                    protocol: Some(protocol.clone()),
                    leader: leader.clone(),
                    member_id: m.id.clone(),
                    members: if m.id == leader { everyone.clone() } else { vec![] },
                });
            }
        }
        false
    }

    /// The protocol every member supports that most members prefer.
    fn select_protocol(&self) -> String {
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

pub struct Coordinator<S> {
    store: Arc<S>,
    settings: GroupSettings,
    metrics: Arc<chronik::metrics::Metrics>,
    groups: StdMutex<HashMap<String, Arc<Mutex<Group>>>>,
}

impl<S: PartitionStore> Coordinator<S> {
    pub fn start(store: Arc<S>, settings: GroupSettings, metrics: Arc<chronik::metrics::Metrics>) -> Arc<Self> {
        let c = Arc::new(Self { store, settings, metrics, groups: StdMutex::new(HashMap::new()) });
        tokio::spawn(tick_loop(Arc::downgrade(&c)));
        c
    }

    /// The offsets partition's term if this node coordinates `group`, else
    /// the error a client should get (it then looks for the coordinator again).
    fn check(&self, group: &str) -> Result<u64, i16> {
        match self.store.coordinator(group) {
            Ok(c) if c.serving => Ok(c.term),
            Ok(c) if c.leader.is_some_and(|l| l != self.store.node_id()) => Err(NOT_COORDINATOR),
            Ok(_) => Err(COORDINATOR_NOT_AVAILABLE),
            Err(_) => Err(COORDINATOR_NOT_AVAILABLE),
        }
    }

    fn store_error(e: &StoreError) -> i16 {
        match e {
            StoreError::NotLeader(..) => NOT_COORDINATOR,
            StoreError::UnknownTopicOrPartition(_) | StoreError::LeaderNotAvailable(_) | StoreError::ShuttingDown { .. } => {
                COORDINATOR_NOT_AVAILABLE
            }
            StoreError::Timeout(_) => REQUEST_TIMED_OUT,
            StoreError::DiskFull { .. } => KAFKA_STORAGE_ERROR,
            _ => UNKNOWN_SERVER_ERROR,
        }
    }

    /// The group, locked, loaded from its offsets partition if this node
    /// (re)gained it since it last looked.
    async fn group(&self, name: &str) -> Result<OwnedMutexGuard<Group>, i16> {
        let term = self.check(name)?;
        let mut g = loop {
            let handle = self.groups.lock().unwrap().entry(name.to_string()).or_insert_with(|| Arc::new(Mutex::new(Group::new(name)))).clone();
            let g = handle.lock_owned().await;
            if !g.retired {
                break g;
            }
        };
        if g.term != term {
            g.fail_waiters(NOT_COORDINATOR);
            let rec = self.store.group_record(name).map_err(|e| Self::store_error(&e))?;
            if rec.is_some() {
                info!(group = %name, term, "loaded group from its offsets partition");
            }
            *g = Group::from_record(name, rec, term);
        }
        Ok(g)
    }

    async fn persist(&self, g: &Group) -> Result<(), i16> {
        let cmd = GroupCommand::Store { group: g.name.clone(), record: g.record() };
        self.store.group_write(cmd).await.map_err(|e| {
            warn!(group = %g.name, generation = g.generation, error = %e, "storing the group failed");
            Self::store_error(&e)
        })
    }

    pub async fn join(&self, req: Join) -> JoinOutcome {
        if req.group.is_empty() {
            return JoinOutcome::error(INVALID_GROUP_ID, &req.member_id);
        }
        if req.session_timeout_ms < self.settings.min_session_timeout_ms || req.session_timeout_ms > self.settings.max_session_timeout_ms {
            return JoinOutcome::error(INVALID_SESSION_TIMEOUT, &req.member_id);
        }
        if req.protocol_type.is_empty() || req.protocols.is_empty() {
            return JoinOutcome::error(INCONSISTENT_GROUP_PROTOCOL, &req.member_id);
        }
        let mut g = match self.group(&req.group).await {
            Ok(g) => g,
            Err(code) => return JoinOutcome::error(code, &req.member_id),
        };
        let now = Instant::now();
        if !g.members.is_empty() {
            let same_type = g.protocol_type.as_deref() == Some(req.protocol_type.as_str());
            let shared = req.protocols.iter().any(|(n, _)| g.members.values().all(|m| m.protocols.iter().any(|(p, _)| p == n)));
            if !same_type || !shared {
                return JoinOutcome::error(INCONSISTENT_GROUP_PROTOCOL, &req.member_id);
            }
        }
        let static_owner = req.instance_id.as_deref().and_then(|i| g.member_of_instance(i));
        let member_id = if req.member_id.is_empty() {
            if let Some(old) = &static_owner {
                // A static member came back under a new member id: it
                // replaces its old self, which is fenced.
                info!(group = %req.group, instance = ?req.instance_id, old_member = %old, "static member rejoined; replacing its old member id");
                g.remove_member(old, FENCED_INSTANCE_ID);
            }
            format!("{}-{}", if req.client_id.is_empty() { "member" } else { &req.client_id }, uuid::Uuid::new_v4())
        } else if static_owner.is_some_and(|o| o != req.member_id) {
            return JoinOutcome::error(FENCED_INSTANCE_ID, &req.member_id);
        } else if !g.members.contains_key(&req.member_id) {
            return JoinOutcome::error(UNKNOWN_MEMBER_ID, &req.member_id);
        } else {
            req.member_id.clone()
        };
        let (tx, rx) = oneshot::channel();
        let order = g.next_join_order;
        let new_member = !g.members.contains_key(&member_id);
        let m = g.members.entry(member_id.clone()).or_insert_with(|| Member {
            id: member_id.clone(),
            instance_id: None,
            client_id: String::new(),
            client_host: String::new(),
            session_timeout: Duration::ZERO,
            rebalance_timeout: Duration::ZERO,
            protocols: vec![],
            assignment: Bytes::new(),
            last_seen: now,
            joined_at: order,
            join: None,
            sync: None,
        });
        m.instance_id = req.instance_id.clone();
        m.client_id = req.client_id.clone();
        m.client_host = req.client_host.clone();
        m.session_timeout = Duration::from_millis(req.session_timeout_ms as u64);
        // Kafka clients before v1 send no rebalance timeout: the session's stands in.
        m.rebalance_timeout = Duration::from_millis(req.rebalance_timeout_ms.max(req.session_timeout_ms) as u64);
        m.protocols = req.protocols.clone();
        m.last_seen = now;
        if let Some(old) = m.join.replace(tx) {
            let _ = old.send(JoinOutcome::error(REBALANCE_IN_PROGRESS, &member_id));
        }
        if new_member {
            g.next_join_order += 1;
            info!(group = %req.group, member = %member_id, client_id = %req.client_id, members = g.members.len(), "member joined");
        }
        g.known = true;
        g.protocol_type = Some(req.protocol_type.clone());
        match g.state {
            State::PreparingRebalance => {
                // A new member during a new group's delay extends it, up to
                // the rebalance timeout.
                if let (Some(started), Some(_)) = (g.initial_delay_started, g.initial_delay_until) {
                    let longest = g.members.values().map(|m| m.rebalance_timeout).max().unwrap_or_default();
                    g.initial_delay_until = Some((now + self.settings.initial_rebalance_delay).min(started + longest));
                }
            }
            _ => g.prepare_rebalance(&self.settings, now),
        }
        let emptied = g.maybe_complete_join(now);
        if emptied {
            let _ = self.persist(&g).await;
        }
        drop(g);
        rx.await.unwrap_or_else(|_| JoinOutcome::error(REBALANCE_IN_PROGRESS, &member_id))
    }

    pub async fn sync(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        protocol_type: Option<&str>,
        protocol: Option<&str>,
        assignments: Vec<(String, Bytes)>,
    ) -> SyncOutcome {
        let mut g = match self.group(group).await {
            Ok(g) => g,
            Err(code) => return SyncOutcome::error(code),
        };
        if !g.members.contains_key(member_id) {
            return SyncOutcome::error(UNKNOWN_MEMBER_ID);
        }
        if generation != g.generation {
            return SyncOutcome::error(ILLEGAL_GENERATION);
        }
        if protocol_type.is_some_and(|p| Some(p) != g.protocol_type.as_deref()) || protocol.is_some_and(|p| Some(p) != g.protocol.as_deref()) {
            return SyncOutcome::error(INCONSISTENT_GROUP_PROTOCOL);
        }
        let ok = |g: &Group, assignment: Bytes| SyncOutcome {
            error: NONE,
            protocol_type: g.protocol_type.clone(),
            protocol: g.protocol.clone(),
            assignment,
        };
        match g.state {
            State::Empty | State::Dead => return SyncOutcome::error(UNKNOWN_MEMBER_ID),
            State::PreparingRebalance => return SyncOutcome::error(REBALANCE_IN_PROGRESS),
            State::Stable => {
                let a = g.members[member_id].assignment.clone();
                return ok(&g, a);
            }
            State::CompletingRebalance => {}
        }
        let (tx, rx) = oneshot::channel();
        {
            let m = g.members.get_mut(member_id).expect("checked above");
            m.last_seen = Instant::now();
            if let Some(old) = m.sync.replace(tx) {
                let _ = old.send(SyncOutcome::error(REBALANCE_IN_PROGRESS));
            }
        }
        if g.leader.as_deref() == Some(member_id) {
            let mut given: HashMap<String, Bytes> = assignments.into_iter().collect();
            for m in g.members.values_mut() {
                m.assignment = given.remove(&m.id).unwrap_or_default();
            }
            // The generation is stored before anyone learns its assignment,
            // so that a new coordinator knows it.
            match self.persist(&g).await {
                Ok(()) => {
                    g.state = State::Stable;
                    info!(group = %group, generation = g.generation, members = g.members.len(), "rebalance complete; group stable");
                    let (pt, p) = (g.protocol_type.clone(), g.protocol.clone());
                    for m in g.members.values_mut() {
                        if let Some(tx) = m.sync.take() {
                            let _ = tx.send(SyncOutcome { error: NONE, protocol_type: pt.clone(), protocol: p.clone(), assignment: m.assignment.clone() });
                        }
                    }
                }
                Err(code) => {
                    for m in g.members.values_mut() {
                        m.assignment = Bytes::new();
                        if let Some(tx) = m.sync.take() {
                            let _ = tx.send(SyncOutcome::error(code));
                        }
                    }
                    g.prepare_rebalance(&self.settings, Instant::now());
                }
            }
        }
        drop(g);
        rx.await.unwrap_or_else(|_| SyncOutcome::error(REBALANCE_IN_PROGRESS))
    }

    pub async fn heartbeat(&self, group: &str, generation: i32, member_id: &str, instance_id: Option<&str>) -> i16 {
        let mut g = match self.group(group).await {
            Ok(g) => g,
            Err(code) => return code,
        };
        let state = g.state;
        match g.member_for(member_id, instance_id, generation) {
            Ok(m) => m.last_seen = Instant::now(),
            Err(code) => return code,
        }
        match state {
            State::PreparingRebalance => REBALANCE_IN_PROGRESS,
            State::CompletingRebalance | State::Stable => NONE,
            State::Empty | State::Dead => UNKNOWN_MEMBER_ID,
        }
    }

    /// Removes members (by member id, or by instance id when the member id
    /// is empty). Returns the group's error and one error per member.
    pub async fn leave(&self, group: &str, members: Vec<(String, Option<String>)>) -> (i16, Vec<i16>) {
        let mut g = match self.group(group).await {
            Ok(g) => g,
            Err(code) => return (code, vec![code; members.len()]),
        };
        let mut errors = Vec::with_capacity(members.len());
        let mut removed = 0;
        for (member_id, instance_id) in members {
            let id = match (&member_id, &instance_id) {
                (m, Some(i)) if m.is_empty() => g.member_of_instance(i),
                (m, Some(i)) => match g.member_of_instance(i) {
                    Some(owner) if owner != *m => {
                        errors.push(FENCED_INSTANCE_ID);
                        continue;
                    }
                    _ => Some(m.clone()),
                },
                (m, None) => Some(m.clone()),
            };
            match id {
                Some(id) if g.remove_member(&id, UNKNOWN_MEMBER_ID) => {
                    info!(group = %group, member = %id, members = g.members.len(), "member left");
                    removed += 1;
                    errors.push(NONE);
                }
                _ => errors.push(UNKNOWN_MEMBER_ID),
            }
        }
        if removed > 0 {
            self.after_removal(&mut g).await;
        }
        (NONE, errors)
    }

    /// After members left or expired: rebalance the rest, or store the
    /// group as Empty.
    async fn after_removal(&self, g: &mut Group) {
        let now = Instant::now();
        if g.members.is_empty() {
            g.fail_waiters(REBALANCE_IN_PROGRESS);
            g.state = State::Empty;
            g.generation += 1;
            g.protocol = None;
            g.leader = None;
            g.rebalance_deadline = None;
            g.initial_delay_until = None;
            let _ = self.persist(g).await;
            return;
        }
        match g.state {
            State::Stable | State::CompletingRebalance => g.prepare_rebalance(&self.settings, now),
            _ => {}
        }
        if g.maybe_complete_join(now) {
            let _ = self.persist(g).await;
        }
    }

    /// Validates an offset commit and replicates it. Per-partition checks
    /// (unknown topics, metadata size) are the caller's.
    pub async fn commit(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        offsets: Vec<(String, i32, CommittedOffset)>,
    ) -> i16 {
        let mut g = match self.group(group).await {
            Ok(g) => g,
            Err(code) => return code,
        };
        if generation < 0 && member_id.is_empty() {
            // A commit from outside the group protocol (assign() consumers,
            // tools): only while no member holds the group.
            if !g.members.is_empty() {
                return UNKNOWN_MEMBER_ID;
            }
        } else {
            let state = g.state;
            let m = match g.member_for(member_id, instance_id, generation) {
                Ok(m) => m,
                Err(code) => return code,
            };
            if state == State::CompletingRebalance {
                return REBALANCE_IN_PROGRESS;
            }
            m.last_seen = Instant::now();
        }
        g.known = true;
        match self.store.group_write(GroupCommand::Commit { group: group.to_string(), offsets }).await {
            Ok(()) => NONE,
            Err(e) => {
                warn!(group = %group, error = %e, "offset commit failed");
                Self::store_error(&e)
            }
        }
    }

    pub fn committed(&self, group: &str) -> Result<Vec<(String, i32, CommittedOffset)>, i16> {
        self.check(group)?;
        self.store.committed_offsets(group).map_err(|e| Self::store_error(&e))
    }

    pub async fn describe(&self, group: &str) -> Result<Description, i16> {
        let g = self.group(group).await?;
        let known = g.known || !self.committed(group)?.is_empty();
        let state = if !known { State::Dead } else { g.state };
        let rec = g.record();
        Ok(Description {
            state,
            protocol_type: rec.protocol_type.clone(),
            protocol: if g.state == State::Stable || g.state == State::CompletingRebalance { rec.protocol.clone().unwrap_or_default() } else { String::new() },
            members: rec.members,
        })
    }

    /// Groups this node coordinates: (name, protocol type, state).
    pub async fn list(&self) -> Result<Vec<(String, String, State)>, i16> {
        let mut names: Vec<String> = self.store.served_group_names().map_err(|e| Self::store_error(&e))?;
        names.extend(self.groups.lock().unwrap().keys().cloned());
        names.sort();
        names.dedup();
        let mut out = Vec::new();
        for name in names {
            if let Ok(d) = self.describe(&name).await {
                if d.state != State::Dead {
                    out.push((name, d.protocol_type, d.state));
                }
            }
        }
        Ok(out)
    }

    pub async fn delete(&self, group: &str) -> i16 {
        let mut g = match self.group(group).await {
            Ok(g) => g,
            Err(code) => return code,
        };
        if !g.members.is_empty() {
            return NON_EMPTY_GROUP;
        }
        let known = g.known || self.committed(group).is_ok_and(|o| !o.is_empty());
        if !known {
            return GROUP_ID_NOT_FOUND;
        }
        if let Err(e) = self.store.group_write(GroupCommand::Delete { group: group.to_string() }).await {
            return Self::store_error(&e);
        }
        *g = Group::new(group);
        g.retired = true;
        self.groups.lock().unwrap().remove(group);
        info!(group = %group, "group deleted");
        NONE
    }

    /// Expires members whose session ran out and completes rebalances whose
    /// deadline passed. Groups with nothing in memory worth keeping (no
    /// members: empty, or only ever named by a lookup) and groups no longer
    /// coordinated here are dropped from memory, so the coordinator holds
    /// and scans only live groups, whatever names clients send; a dropped
    /// group is loaded again from its offsets partition when next used.
    async fn tick(&self) {
        let groups: Vec<(String, Arc<Mutex<Group>>)> = self.groups.lock().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let now = Instant::now();
        for (name, handle) in groups {
            // A group busy with a request is looked at next tick.
            let Ok(mut g) = handle.try_lock() else { continue };
            match self.check(&name) {
                Ok(term) if term == g.term => {}
                Ok(_) if g.term == UNLOADED => {
                    self.retire(&name, &handle, &mut g);
                    continue;
                }
                Ok(_) => continue,
                Err(_) => {
                    if g.term != UNLOADED {
                        info!(group = %name, "no longer coordinating this group");
                        g.fail_waiters(NOT_COORDINATOR);
                    }
                    self.retire(&name, &handle, &mut g);
                    continue;
                }
            }
            let expired: Vec<String> = g.members.values().filter(|m| !m.alive(now)).map(|m| m.id.clone()).collect();
            for id in &expired {
                info!(group = %name, member = %id, "member session expired; removed");
                g.remove_member(id, UNKNOWN_MEMBER_ID);
            }
            if !expired.is_empty() {
                self.after_removal(&mut g).await;
            } else if g.maybe_complete_join(now) {
                let _ = self.persist(&g).await;
            }
            if g.members.is_empty() && matches!(g.state, State::Empty | State::Dead) {
                self.retire(&name, &handle, &mut g);
            }
        }
        self.metrics.coordinator_groups.get_or_create(&self.metrics.node()).set(self.groups_in_memory() as i64);
    }

    /// Drops a group (locked by the caller) from memory.
    fn retire(&self, name: &str, handle: &Arc<Mutex<Group>>, g: &mut Group) {
        g.retired = true;
        let mut groups = self.groups.lock().unwrap();
        if groups.get(name).is_some_and(|h| Arc::ptr_eq(h, handle)) {
            groups.remove(name);
        }
    }

    /// Groups held in memory (for tests and metrics).
    pub fn groups_in_memory(&self) -> usize {
        self.groups.lock().unwrap().len()
    }
}

async fn tick_loop<S: PartitionStore>(c: Weak<Coordinator<S>>) {
    loop {
        tokio::time::sleep(TICK).await;
        let Some(c) = c.upgrade() else { return };
        c.tick().await;
    }
}
