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


pub mod consumer;
mod group;
mod heartbeats;
mod offset_delete;

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chronik::offsets::{CommittedOffset, GroupCommand};
use chronik::{PartitionStore, StoreError};
use tokio::sync::{oneshot, Mutex, OwnedMutexGuard};
use tracing::{info, warn};

use crate::errors::*;
use group::{Group, Member, UNLOADED};
pub use group::{Description, GroupSettings, Join, JoinOutcome, State, SyncOutcome};

/// How often sessions and rebalance deadlines are checked.
const TICK: Duration = Duration::from_millis(100);

pub struct Coordinator<S> {
    store: Arc<S>,
    settings: GroupSettings,
    metrics: Arc<chronik::metrics::Metrics>,
    groups: StdMutex<HashMap<String, Arc<Mutex<Group>>>>,
    /// KIP-848 groups (`heartbeats.rs`).
    consumer_groups: heartbeats::ConsumerGroups,
}

impl<S: PartitionStore> Coordinator<S> {
    pub fn start(store: Arc<S>, settings: GroupSettings, metrics: Arc<chronik::metrics::Metrics>) -> Arc<Self> {
        let c = Arc::new(Self { store, settings, metrics, groups: StdMutex::new(HashMap::new()), consumer_groups: Default::default() });
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
        let at_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
        let cmd = GroupCommand::StoreAt { group: g.name.clone(), record: g.record(), at_ms };
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
        if req.protocol_type.is_empty() || req.protocols.is_empty() || self.consumer_members(&req.group).await > 0 {
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
        g.known = true;
        if req.member_id.is_empty() {
            if let (Some(instance), Some(old)) = (&req.instance_id, &static_owner) {
                return self.rejoin_static(g, &req, instance, old).await;
            }
            let new_id = format!("{}-{}", req.instance_id.as_deref().unwrap_or(if req.client_id.is_empty() { "member" } else { &req.client_id }), uuid::Uuid::new_v4());
            if req.instance_id.is_none() && req.api_version >= 4 {
                // KIP-394: a new dynamic member first gets an id to join
                // with; until it comes back, a rebalance waits for it.
                g.pending.insert(new_id.clone(), now + Duration::from_millis(req.session_timeout_ms.max(0) as u64));
                return JoinOutcome::error(MEMBER_ID_REQUIRED, &new_id);
            }
            return self.join_and_wait(g, &req, new_id).await;
        }
        if g.pending.remove(&req.member_id).is_some() {
            return self.join_and_wait(g, &req, req.member_id.clone()).await;
        }
        if static_owner.is_some_and(|o| o != req.member_id) {
            return JoinOutcome::error(FENCED_INSTANCE_ID, &req.member_id);
        }
        let Some(m) = g.members.get(&req.member_id) else { return JoinOutcome::error(UNKNOWN_MEMBER_ID, &req.member_id) };
        // A known member rejoining: as Kafka, without a rebalance when
        // nothing it says has changed (a follower of a stable group, or a
        // member that missed its JoinGroup answer).
        let same = m.matches(&req.protocols);
        let is_leader = g.leader.as_deref() == Some(req.member_id.as_str());
        match g.state {
            State::CompletingRebalance if same => return g.current_join(&req.member_id, is_leader, false),
            State::Stable if same && !is_leader => {
                if let Some(m) = g.members.get_mut(&req.member_id) {
                    m.last_seen = now;
                }
                return g.current_join(&req.member_id, false, false);
            }
            State::Empty | State::Dead => return JoinOutcome::error(UNKNOWN_MEMBER_ID, &req.member_id),
            _ => {}
        }
        self.join_and_wait(g, &req, req.member_id.clone()).await
    }

    /// Kafka's static member replacement (KIP-345): a restarted instance
    /// (same group.instance.id, no member id) takes its old self's place
    /// under a new id. In a stable group whose protocol stays, nothing
    /// rebalances: the group is stored with the new id and the member gets
    /// the current generation at once (a returning leader, at JoinGroup v9+,
    /// is told to keep the current assignment). Otherwise it rebalances.
    async fn rejoin_static(&self, mut g: OwnedMutexGuard<Group>, req: &Join, instance: &str, old: &str) -> JoinOutcome {
        let new_id = format!("{instance}-{}", uuid::Uuid::new_v4());
        info!(group = %req.group, instance, old_member = %old, new_member = %new_id, state = g.state.name(), "static member rejoined; replacing its old member id");
        let leader_before = g.leader.clone();
        g.replace_static_member(old, &new_id);
        let previous = g.members.get(&new_id).map(|m| (m.protocols.clone(), m.session_timeout, m.rebalance_timeout));
        Self::update_member(&mut g, req, &new_id);
        if g.state == State::Stable && g.protocol.as_deref() == Some(g.select_protocol().as_str()) {
            if let Err(code) = self.persist(&g).await {
                // Not stored: the old member id stays the one of record.
                if let Some((protocols, session, rebalance)) = previous {
                    if let Some(m) = g.members.get_mut(&new_id) {
                        (m.protocols, m.session_timeout, m.rebalance_timeout) = (protocols, session, rebalance);
                    }
                }
                g.replace_static_member(&new_id, old);
                return JoinOutcome::error(code, "");
            }
            let is_leader = g.leader.as_deref() == Some(new_id.as_str());
            return if req.api_version >= 9 {
                g.current_join(&new_id, is_leader, is_leader)
            } else {
                // Before v9 a leader cannot be told to keep the assignment:
                // it is answered as a follower (Kafka names the old leader id).
                JoinOutcome { leader: leader_before.unwrap_or_default(), ..g.current_join(&new_id, false, false) }
            };
        }
        self.join_and_wait(g, req, new_id).await
    }

    /// Takes what a JoinGroup says about a member.
    fn update_member(g: &mut Group, req: &Join, member_id: &str) {
        let now = Instant::now();
        let order = g.next_join_order;
        let new_member = !g.members.contains_key(member_id);
        let m = g.members.entry(member_id.to_string()).or_insert_with(|| Member {
            id: member_id.to_string(),
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
        if new_member {
            g.next_join_order += 1;
            info!(group = %req.group, member = %member_id, client_id = %req.client_id, members = g.members.len(), "member joined");
        }
        g.protocol_type = Some(req.protocol_type.clone());
    }

    /// The member joins the next generation: a rebalance starts (or goes
    /// on), and the answer comes when its join phase completes.
    async fn join_and_wait(&self, mut g: OwnedMutexGuard<Group>, req: &Join, member_id: String) -> JoinOutcome {
        let now = Instant::now();
        Self::update_member(&mut g, req, &member_id);
        let (tx, rx) = oneshot::channel();
        if let Some(old) = g.members.get_mut(&member_id).and_then(|m| m.join.replace(tx)) {
            let _ = old.send(JoinOutcome::error(REBALANCE_IN_PROGRESS, &member_id));
        }
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

    /// Validates an offset commit and queues it into the group's offsets
    /// partition, then returns what awaits its replication. Commits queued
    /// one after another (a connection's pipelined OffsetCommits, submitted
    /// in the order received) are applied in that order, so no acknowledged
    /// commit is overwritten by one acknowledged before it. Per-partition
    /// checks (unknown topics, metadata size) are the caller's.
    pub async fn commit(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        offsets: Vec<(String, i32, CommittedOffset)>,
    ) -> futures::future::BoxFuture<'static, i16> {
        let refuse = |code: i16| -> futures::future::BoxFuture<'static, i16> { Box::pin(async move { code }) };
        // A consumer-protocol group checks the member epoch (OffsetCommit v9+).
        let consumer = self.consumer_commit(group, member_id, generation).await;
        if let Some(Err(code)) = consumer {
            return refuse(code);
        }
        let mut g = match self.group(group).await {
            Ok(g) => g,
            Err(code) => return refuse(code),
        };
        if consumer.is_some() {
        } else if generation < 0 && member_id.is_empty() {
            // A commit from outside the group protocol (assign() consumers,
            // tools): only while no member holds the group.
            if !g.members.is_empty() {
                return refuse(UNKNOWN_MEMBER_ID);
            }
        } else {
            let state = g.state;
            let m = match g.member_for(member_id, instance_id, generation) {
                Ok(m) => m,
                Err(code) => return refuse(code),
            };
            if state == State::CompletingRebalance {
                return refuse(REBALANCE_IN_PROGRESS);
            }
            m.last_seen = Instant::now();
        }
        g.known = true;
        let submitted = self.store.group_submit(GroupCommand::Commit { group: group.to_string(), offsets }).await;
        drop(g);
        let group = group.to_string();
        Box::pin(async move {
            match async { submitted?.await }.await {
                Ok(()) => NONE,
                Err(e) => {
                    warn!(group = %group, error = %e, "offset commit failed");
                    Self::store_error(&e)
                }
            }
        })
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
        if self.consumer_members(group).await > 0 {
            return NON_EMPTY_GROUP;
        }
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
            if g.expire_pending(now) && g.maybe_complete_join(now) {
                let _ = self.persist(&g).await;
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
            if g.members.is_empty() && g.pending.is_empty() && matches!(g.state, State::Empty | State::Dead) {
                self.retire(&name, &handle, &mut g);
            }
        }
        self.tick_consumer_groups();
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
