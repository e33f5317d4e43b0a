//! The partition store as this node serves it: Kafka-level operations mapped
//! onto the controller group and the partition groups.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use openraft::async_runtime::WatchReceiver;
use openraft::impls::ProgressResponder;
use tokio::sync::watch;
use tracing::{info, warn};
use crate::cluster::dynamic_config::{ConfigOp, ConfigResource};
use crate::cluster::metadata::{validate_topic_name, ControllerCommand, ControllerError, TOPIC_PARTITIONS_MAX};
use crate::cluster::topic_config;
use crate::config::split_host_port;
use crate::log::batch::{self};
use crate::offsets::{self, CommittedOffset, GroupCommand, GroupRecord, OFFSETS_TOPIC};
use crate::raft::engine::{StorageEngine, Transport};
use crate::raft::groups::{GroupManager, PartitionGroup};
use crate::store::*;
use crate::{Command, CommandResult, NodeId, Offset, TopicPartition};

/// How long a topic change waits for a controller leader.
const CONTROLLER_READY_WAIT: Duration = Duration::from_secs(10);

/// How long CreateTopics waits for the new partitions to elect leaders.
const CREATE_TOPIC_READY_WAIT: Duration = Duration::from_secs(10);

/// How long a leadership transfer may take to show.
const TRANSFER_LEADER_WAIT: Duration = Duration::from_secs(5);

/// How long a config change waits for this node to apply it once committed.
const CONFIG_APPLIED_WAIT: Duration = Duration::from_secs(5);

/// How long a new producer id block may take to reach this node's metadata.
const PRODUCER_ID_BLOCK_WAIT: Duration = Duration::from_secs(5);

/// How long a produce waits for a partition in an election, or for this node
/// just elected to apply its first entry, before answering "no leader yet".
/// Pipelined requests of one connection are submitted in order, so waiting
/// keeps them from straddling the moment the leader starts serving: a batch
/// refused before it and the next one judged after it would look like a
/// sequence gap to an idempotent producer, which then bumps its epoch and
/// resends what may already be stored (a duplicate).
const LEADER_READY_WAIT: Duration = Duration::from_secs(2);
const LEADER_READY_POLL: Duration = Duration::from_millis(5);
/// How long a leader with a lapsed lease (an idle group) tries to hear from
/// a quorum before it refuses.
const LEASE_RENEW_WAIT: Duration = Duration::from_millis(500);

impl<E: StorageEngine, T: Transport> GroupManager<E, T> {
    /// The running replica of `tp`, if the partition exists and is assigned here.
    fn replica(&self, tp: &TopicPartition) -> Result<Arc<PartitionGroup<E>>, StoreError> {
        let md = self.metadata();
        let a = md.partition(tp).ok_or_else(|| StoreError::UnknownTopicOrPartition(tp.clone()))?;
        match self.partition(a.group) {
            Some(pg) => Ok(pg),
            // Assigned elsewhere, or being started right now.
            None if a.replicas.contains(&self.node_id()) => Err(StoreError::LeaderNotAvailable(tp.clone())),
            None => Err(StoreError::NotLeader(tp.clone(), None)),
        }
    }

    /// The replica of `tp` if this node may serve it as leader.
    pub(crate) fn serving_leader(&self, tp: &TopicPartition) -> Result<Arc<PartitionGroup<E>>, StoreError> {
        let pg = self.replica(tp)?;
        let l = self.leadership_of(&pg);
        if l.leads && l.quorum_age.is_none_or(|age| age >= self.lease() / 2) {
            // Half the lease is gone: renew it at the next heartbeat tick
            // (groups nobody reads or writes are never heartbeated).
            pg.lease_wanted.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        if l.serving {
            Ok(pg)
        } else if l.leader == Some(self.node_id()) || l.leader.is_none() {
            Err(StoreError::LeaderNotAvailable(tp.clone()))
        } else {
            Err(StoreError::NotLeader(tp.clone(), l.leader))
        }
    }

    /// Waits, until `deadline` and at most [`LEADER_READY_WAIT`], while an
    /// election of `tp` can end on this node: the partition's group is still
    /// starting here, this node was elected but has not applied its first
    /// entry yet, or no replica leads and a majority of the replicas is not
    /// known down. A leader whose lease ran out while its group sat idle
    /// asks its followers at once and waits up to [`LEASE_RENEW_WAIT`] for
    /// a quorum (one cut off from its majority then refuses). Returns at
    /// once otherwise.
    pub(crate) async fn wait_leader_ready(&self, tp: &TopicPartition, deadline: tokio::time::Instant) {
        let start = tokio::time::Instant::now();
        let deadline = deadline.min(start + LEADER_READY_WAIT);
        let mut renew_sent: Option<tokio::time::Instant> = None;
        while tokio::time::Instant::now() < deadline {
            match self.serving_leader(tp) {
                Err(StoreError::LeaderNotAvailable(_)) if self.election_can_end(tp) => tokio::time::sleep(LEADER_READY_POLL).await,
                Err(StoreError::LeaderNotAvailable(_)) => {
                    let Some(pg) = self.replica(tp).ok().filter(|pg| self.leadership_of(pg).leads) else { return;
                    };
                    if start.elapsed() >= LEASE_RENEW_WAIT {
                        return;
                    }
                    if renew_sent.is_none_or(|t| t.elapsed() >= LEASE_RENEW_WAIT / 4) {
                        renew_sent = Some(tokio::time::Instant::now());
                        let _ = pg.raft.trigger().heartbeat().await;
                    }
                    tokio::time::sleep(LEADER_READY_POLL).await
                }
                _ => return,
            }
        }
    }

    /// Whether this node reaches a majority of `tp`'s replicas (itself
    /// included), as the node-level status exchange sees them.
    fn majority_reachable(&self, tp: &TopicPartition) -> bool {
        let md = self.metadata();
        let Some(a) = md.partition(tp) else { return false;
        };
        let reachable = a.replicas.iter().filter(|&&n| n == self.node_id() || self.peers.is_alive(n)).count();
        reachable * 2 > a.replicas.len()
    }

    fn election_can_end(&self, tp: &TopicPartition) -> bool {
        let pg = match self.replica(tp) {
            Ok(pg) => pg,
            // Assigned here and being started (this node just started).
            Err(StoreError::LeaderNotAvailable(_)) => return true,
            Err(_) => return false,
        };
        let l = self.leadership_of(&pg);
        if l.leader == Some(self.node_id()) {
            // Just elected: serves once it applies an entry of its term.
            // Elected long ago but without a fresh quorum: may never serve.
            return !l.applied_own_term;
        }
        let md = self.metadata();
        let Some(a) = md.partition(tp) else { return false;
        };
        // Right after a start, peers not heard from yet count as alive.
        let alive = a.replicas.iter().filter(|&&n| n == self.node_id() || !self.peers.is_known_down(n)).count();
        l.leader.is_none() && alive * 2 > a.replicas.len()
    }

    fn validate_spec(&self, spec: &TopicSpec) -> Result<(i32, i16), StoreError> {
        validate_topic_name(&spec.name)?;
        let md = self.metadata();
        if md.nodes.is_empty() {
            // The controller has not registered the nodes yet (a new cluster's
            // first moments): NOT_CONTROLLER makes the client retry.
            return Err(StoreError::NotController(None));
        }
        // Nodes being decommissioned take no new replica.
        let nodes = md.placeable().len();
        let (partitions, rf) = match &spec.assignment {
            Some(a) => self.validate_assignment(a)?,
            None => {
                (spec.partitions.unwrap_or(self.cfg.default_partitions), spec.replication_factor.unwrap_or_else(|| self.cfg.replication_factor_default(nodes)))
            }
        };
        if !(1..=TOPIC_PARTITIONS_MAX).contains(&partitions) {
            return Err(ControllerError::InvalidPartitions(partitions, format!("must be 1..={TOPIC_PARTITIONS_MAX}")).into());
        }
        if rf < 1 || rf as usize > nodes {
            return Err(ControllerError::InvalidReplicationFactor(rf, nodes).into());
        }
        topic_config::validate_all(&spec.configs).map_err(|(key, value, reason)| StoreError::InvalidConfig { key, value, reason })?;
        if self.metadata().topics.contains_key(&spec.name) {
            return Err(ControllerError::TopicExists(spec.name.clone()).into());
        }
        Ok((partitions, rf))
    }

    /// A manual replica assignment, checked as Kafka does: replicas of every
    /// partition distinct, as many for each, and each a live node.
    fn validate_assignment(&self, assignment: &[Vec<NodeId>]) -> Result<(i32, i16), StoreError> {
        let bad = |why: String| StoreError::Controller(ControllerError::InvalidReplicaAssignment(why));
        let rf = assignment.first().map(|r| r.len()).unwrap_or(0);
        let md = self.metadata();
        for (p, replicas) in assignment.iter().enumerate() {
            if replicas.is_empty() {
                return Err(bad(format!("partition {p} has no replicas")));
            }
            if replicas.len() != rf {
                return Err(bad(format!("partition {p} has {} replicas, partition 0 has {rf}: all must have as many", replicas.len())));
            }
            if let Some(dup) = replicas.iter().enumerate().find(|(i, r)| replicas[..*i].contains(r)).map(|(_, r)| r) {
                return Err(bad(format!("partition {p} names node {dup} twice")));
            }
            for r in replicas {
                if !md.nodes.contains_key(r) {
                    return Err(bad(format!("partition {p}: node {r} is not in the cluster")));
                }
                if *r != self.node_id() && !self.peers.is_alive(*r) {
                    return Err(bad(format!("partition {p}: node {r} is not alive")));
                }
            }
        }
        Ok((i32::try_from(assignment.len()).unwrap_or(i32::MAX), i16::try_from(rf).unwrap_or(i16::MAX)))
    }

    /// The leader of a partition group as far as this node knows, and its
    /// epoch (the Raft term): its own replica's view when it hosts one, the
    /// peers' claims otherwise, whichever has the higher term. A leader that
    /// is not known to be alive is not reported: clients then retry Metadata
    /// instead of knocking on a dead node.
    fn leader_view(&self, group: crate::GroupId) -> (Option<NodeId>, i32) {
        let me = self.node_id();
        let claim = self.peers.leader_claim(group);
        let local = self.partition(group).map(|pg| (self.leadership_of(&pg), pg));
        let local = local.map(|(l, pg)| (l, l.leads && (l.serving || self.majority_reachable(&pg.tp))));
        match (local.map(|(l, _)| l), claim) {
            // A leader of an idle group holds no fresh lease (it renews it
            // when asked): it is the leader while it can reach a majority.
            (Some(l), _) if local.is_some_and(|(_, claims)| claims) => (Some(me), l.term as i32),
            (Some(l), Some((node, term))) if term >= l.term => (Some(node), term as i32),
            (Some(l), _) => {
                let alive = l.leader.filter(|n| *n != me && self.peers.is_alive(*n));
                (alive, l.term as i32)
            }
            (None, Some((node, term))) => (Some(node), term as i32),
            (None, None) => (None, -1),
        }
    }

    /// Waits (bounded) until the controller has a leader and this node has
    /// the registered nodes: in a new cluster's first moments, or during a
    /// controller election. Clients do not all retry NOT_CONTROLLER.
    pub(crate) async fn wait_controller_ready(&self) {
        let deadline = Instant::now() + CONTROLLER_READY_WAIT;
        while Instant::now() < deadline {
            if !self.metadata().nodes.is_empty() && self.controller.metrics().borrow_watched().current_leader.is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The offsets partition of `group`, if this node may serve it.
    fn serving_offsets_partition(&self, group: &str) -> Result<Arc<PartitionGroup<E>>, StoreError> {
        let tp = self.coordinator(group)?.tp;
        self.serving_leader(&tp)
    }

    /// Waits (bounded) until this node's metadata has `name` with at least
    /// `partitions` partitions, each with a leader.
    async fn wait_topic_ready(&self, name: &str, partitions: usize) {
        let deadline = Instant::now() + CREATE_TOPIC_READY_WAIT;
        while Instant::now() < deadline {
            let view = self.cluster_view(Some(&[name.to_string()]));
            // The topic may not have reached this node's metadata yet when the
            // controller leader is elsewhere.
            let ready = view.topics.iter().any(|t| t.partitions.len() >= partitions.max(1))
                && view.topics.iter().all(|t| t.partitions.iter().all(|p| p.leader.is_some()));
            if ready {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl<E: StorageEngine, T: Transport> PartitionStore for GroupManager<E, T> {
    fn node_id(&self) -> NodeId {
        self.cfg.node_id
    }

    fn cluster_view(&self, topics: Option<&[String]>) -> ClusterView {
        let md = self.metadata();
        let me = self.node_id();
        // Until the controller has registered the nodes (first moments of a
        // new cluster), the config's list stands in: a Metadata answer with
        // no brokers leaves clients waiting for a controller they cannot reach.
        let nodes = if md.nodes.is_empty() { &self.cfg.nodes } else { &md.nodes };
        let nodes = nodes
            .iter()
            .map(|(id, addr)| {
                let (host, port) = split_host_port(&addr.kafka_addr).unwrap_or_else(|_| (addr.kafka_addr.clone(), 0));
                NodeView { id: *id, host, port: port as i32, rack: md.racks.get(id).cloned(), alive: *id == me || self.peers.is_alive(*id),
                    listeners: md.listeners.get(id).cloned().unwrap_or_default() }
            })
            .collect();
        let wanted = |name: &str| topics.is_none_or(|t| t.iter().any(|x| x == name));
        let topics = md
            .topics
            .values()
            .filter(|t| wanted(&t.name))
            .map(|t| TopicView {
                name: t.name.clone(),
                internal: t.name == OFFSETS_TOPIC,
                id: t.id,
                configs: t.configs.clone(),
                partitions: t
                    .partitions
                    .iter()
                    .enumerate()
                    .map(|(i, a)| {
                        let (leader, epoch) = self.leader_view(a.group);
                        let alive = a.replicas.iter().filter(|n| **n == me || self.peers.is_alive(**n)).count();
                        let adding = a.adding();
                        PartitionView {
                            partition: i as i32,
                            leader,
                            leader_epoch: epoch,
                            replicas: a.replicas.clone(),
                            // Replicas joining a move are in sync once it ends.
                            isr: match leader {
                                Some(l) => self.in_sync(a.group, l, &a.replicas),
                                None => a.replicas.iter().copied().filter(|n| *n == me || self.peers.is_alive(*n)).collect(),
                            }
                            .into_iter()
                            .filter(|n| !adding.contains(n))
                            .collect(),
                            electing: leader.is_none() && alive * 2 > a.replicas.len(),
                            reassigning: a.reassignment.is_some(),
                            removing: a.removing(),
                            adding,
                        }
                    })
                    .collect(),
            })
            .collect();
        ClusterView {
            cluster_id: md.cluster_id.map(crate::cluster::metadata::uuid_text).unwrap_or_default(),
            // No controller to talk to until it has registered the nodes
            // and named the cluster: clients retry, and /v1/health/ready
            // waits for this.
            controller: if md.nodes.is_empty() || md.cluster_id.is_none() { None } else { self.controller.metrics().borrow_watched().current_leader },
            nodes,
            topics,
            broker_configs: md.broker_configs.clone(),
        }
    }

    fn auto_create_topics(&self) -> bool {
        self.cfg.auto_create_topics
    }

    fn topic_name(&self, id: u128) -> Option<String> {
        self.metadata().topics.values().find(|t| t.id == id).map(|t| t.name.clone())
    }

    fn topic_id(&self, name: &str) -> Option<u128> {
        self.metadata().topics.get(name).map(|t| t.id)
    }

    async fn create_topic(&self, spec: TopicSpec, validate_only: bool) -> Result<(), StoreError> {
        self.wait_controller_ready().await;
        let (partitions, replication_factor) = self.validate_spec(&spec)?;
        if validate_only {
            return Ok(());
        }
        let name = spec.name.clone();
        topic_config::note_unenforced(&name, &spec.configs);
        let cmd = match spec.assignment {
            Some(assignment) => ControllerCommand::CreateTopicAssigned { name: spec.name, assignment, configs: spec.configs },
            None => ControllerCommand::CreateTopic { name: spec.name, partitions, replication_factor, configs: spec.configs },
        };
        self.propose(cmd).await?;
        self.reconcile_once().await;
        self.wait_topic_ready(&name, 1).await;
        Ok(())
    }

    async fn delete_topic(&self, name: String) -> Result<(), StoreError> {
        if name == OFFSETS_TOPIC {
            return Err(ControllerError::InvalidTopic(name, "the offsets topic holds every consumer group; it cannot be deleted".into()).into());
        }
        self.wait_controller_ready().await;
        self.propose(ControllerCommand::DeleteTopic { name }).await?;
        self.reconcile_once().await;
        Ok(())
    }

    async fn create_partitions(&self, name: String, count: i32, assignment: Option<Vec<Vec<NodeId>>>, validate_only: bool) -> Result<(), StoreError> {
        if name == OFFSETS_TOPIC {
            return Err(ControllerError::InvalidTopic(name, "the offsets topic's partition count places every group; it cannot change".into()).into());
        }
        self.wait_controller_ready().await;
        if let Some(a) = &assignment {
            self.validate_assignment(a)?;
        }
        // Checked here for a clear answer (on a copy: it takes group ids);
        // the controller checks again as it applies.
        let added = (*self.metadata()).clone().new_partitions(&name, count, assignment.as_deref())?;
        if validate_only {
            return Ok(());
        }
        self.propose(ControllerCommand::CreatePartitions { name: name.clone(), count, assignment }).await?;
        info!(node_id = self.node_id(), topic = %name, count, added = added.len(), "partitions added");
        self.reconcile_once().await;
        self.wait_topic_ready(&name, count as usize).await;
        Ok(())
    }

    async fn alter_configs(&self, resource: ConfigResource, ops: Vec<ConfigOp>, replace: bool, validate_only: bool) -> Result<(), StoreError> {
        self.wait_controller_ready().await;
        // Checked here for a clear answer; the controller checks again as it applies.
        let after = self.metadata().altered_configs(&resource, &ops, replace)?;
        if validate_only {
            return Ok(());
        }
        if let ConfigResource::Topic(name) = &resource {
            topic_config::note_unenforced(name, &after);
        }
        let cmd = ControllerCommand::AlterConfigs { resource: resource.clone(), ops, replace };
        self.propose(cmd).await?;
        info!(node_id = self.node_id(), %resource, configs = ?after, "configs changed");
        // The change is committed; wait (bounded) until this node applied it,
        // so that a DescribeConfigs here right after sees it.
        let deadline = Instant::now() + CONFIG_APPLIED_WAIT;
        while Instant::now() < deadline {
            let md = self.metadata();
            let now = match &resource {
                ConfigResource::Topic(t) => md.topics.get(t).map(|t| &t.configs),
                ConfigResource::Broker(n) => md.broker_configs.get(n),
            };
            if now.map_or(after.is_empty(), |c| *c == after) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    async fn leader_ready(&self, tp: &TopicPartition, deadline: tokio::time::Instant) {
        self.wait_leader_ready(tp, deadline).await
    }

    async fn append(&self, tp: TopicPartition, batch: Bytes, acks: Acks) -> Result<PendingAppend, StoreError> {
        if &*tp.topic == OFFSETS_TOPIC {
            return Err(StoreError::Controller(ControllerError::InvalidTopic(
                tp.topic.to_string(),
                "the offsets topic is written by group coordinators only".into(),
            )));
        }
        let pg = self.serving_leader(&tp)?;
        self.check_disk(batch.len() as u64)?;
        let md = self.metadata();
        let configs = md.effective_configs(&tp.topic, self.node_id());
        let policy = configs.as_ref().map(|c| topic_config::batch_policy(c, &self.cfg.limits)).unwrap_or_default();
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
        let header = batch::validate_produce(&batch, &policy, now_ms)
            .map_err(|e| {
                match e {
                    batch::BatchError::TooLarge { .. } => self.metrics.limit_hit("message_max_bytes"),
                    batch::BatchError::Inflates { .. } => self.metrics.limit_hit("batch_decompressed_bytes_max"),
                    _ => {}
                }
                if e.is_corruption() {
                    StoreError::CorruptBatch(tp.clone(), e)
                } else {
                    StoreError::InvalidBatch(tp.clone(), e)
                }
            })?
            .header;
        // LogAppendTime topics: the leader stamps the batch before it is
        // replicated, so every replica stores the same bytes.
        let stamped = configs.as_ref().is_some_and(crate::log::configs::log_append_time).then_some(now_ms);
        let batch = match stamped {
            Some(now) => batch::stamp_log_append_time(batch, now),
            None => batch,
        };
        let log_append_time_ms = stamped.unwrap_or(-1);
        let node = self.node_id();
        // acks=1: answered once the batch is durable in this node's log. Not
        // for an idempotent batch: only applying it tells whether it is a
        // duplicate, so it is answered on commit (clients send those with
        // acks=all anyway).
        let idempotent = header.producer_id >= 0 && header.base_sequence >= 0;
        let mut local = (acks == Acks::Leader && !idempotent).then(|| pg.log.local_append());
        let token = local.as_ref().map(|l| l.token).unwrap_or(0);
        let (responder, rx) = ProgressResponder::complete_only();
        pg.raft
            .client_write_ff(Command::Append { batch, token }, Some(responder))
            .await
            .map_err(|_| StoreError::ShuttingDown { node })?;
        let log = pg.log.clone();
        let local_log = pg.log.clone();
        let appended_local = move |base_offset| Appended { base_offset, log_append_time_ms, log_start_offset: local_log.log_start_offset() };
        let appended = move |base_offset, log_append_time_ms| Appended { base_offset, log_append_time_ms, log_start_offset: log.log_start_offset() };
        Ok(Box::pin(async move {
            let committed = async move {
                match rx.await {
                    Ok(Ok(resp)) => match resp.data {
                        CommandResult::Appended { base_offset } => {
                            if idempotent {
                                tracing::debug!(partition = %tp, base_offset, producer_id = header.producer_id, epoch = header.producer_epoch, sequence = header.base_sequence, records = header.record_count, "idempotent batch appended");
                            }
                            Ok(appended(base_offset, log_append_time_ms))
                        }
                        CommandResult::Duplicate { base_offset } => {
                            tracing::debug!(partition = %tp, base_offset, producer_id = header.producer_id, sequence = header.base_sequence, "duplicate batch of an idempotent producer: answered with its original offset");
                            // The stored copy has the first attempt's time, not known here.
                            Ok(appended(base_offset, -1))
                        }
                        CommandResult::ProducerRefused(why) => {
                            warn!(partition = %tp, error = %why, "idempotent batch refused");
                            Err(StoreError::ProducerRefused(tp, why))
                        }
                        other => Err(StoreError::Storage { node, detail: format!("append to {tp} answered {other:?}") }),
                    },
                    Ok(Err(openraft::errors::ClientWriteError::ForwardToLeader(f))) => Err(StoreError::NotLeader(tp, f.leader_id)),
                    Ok(Err(e)) => Err(StoreError::Storage { node, detail: format!("append to {tp}: {e}") }),
                    // The group stopped before the entry was applied: outcome unknown.
                    Err(_) => Err(StoreError::Timeout(tp)),
                }
            };
            let Some(local) = local.as_mut() else { return committed.await;
            };
            tokio::pin!(committed);
            tokio::select! {
                // If the log store cannot tell (sender dropped), wait for commit.
                Ok(offset) = &mut local.offset => Ok(appended_local(offset)),
                r = &mut committed => r,
            }
        }))
    }

    fn read(&self, tp: &TopicPartition, offset: Offset, max_bytes: usize, from: ReadFrom) -> Result<ReadResult, StoreError> {
        let (pg, leader) = match self.serving_leader(tp) {
            Ok(pg) => (pg, true),
            Err(StoreError::NotLeader(..) | StoreError::LeaderNotAvailable(_)) if from == ReadFrom::AnyReplica => (self.replica(tp)?, false),
            Err(e) => return Err(e),
        };
        // A follower's high watermark is what it has applied: committed.
        let (log_start, hwm) = (pg.log.log_start_offset(), pg.log.high_watermark());
        if offset < log_start || (leader && offset > hwm) {
            return Err(StoreError::OffsetOutOfRange { tp: tp.clone(), offset, log_start, high_watermark: hwm });
        }
        let batches = if max_bytes == 0 || offset >= hwm { vec![] } else { pg.log.read(offset, max_bytes)? };
        Ok(ReadResult { high_watermark: hwm, log_start_offset: log_start, batches })
    }

    fn preferred_read_replica(&self, tp: &TopicPartition, client_rack: &str) -> Option<NodeId> {
        let md = self.metadata();
        let me = self.node_id();
        if self.cfg.replica_selector != crate::config::ReplicaSelector::RackAware || client_rack.is_empty() || md.rack_of(me) == client_rack {
            return None;
        }
        let a = md.partition(tp)?;
        let isr = self.in_sync(a.group, me, &a.replicas);
        let adding = a.adding();
        isr.into_iter().find(|n| *n != me && !adding.contains(n) && md.rack_of(*n) == client_rack && self.peers.is_alive(*n))
    }

    async fn delete_records(&self, tp: &TopicPartition, offset: Offset) -> Result<Offset, StoreError> {
        self.delete_records_of(tp, offset).await
    }

    fn offsets(&self, tp: &TopicPartition) -> Result<(Offset, Offset), StoreError> {
        let pg = self.serving_leader(tp)?;
        Ok((pg.log.log_start_offset(), pg.log.high_watermark()))
    }

    fn batch_at_timestamp(&self, tp: &TopicPartition, timestamp: i64) -> Result<Option<Bytes>, StoreError> {
        self.serving_leader(tp)?.log.batch_at_timestamp(timestamp)
    }

    fn newest_timestamp(&self, tp: &TopicPartition) -> Result<Option<i64>, StoreError> {
        self.serving_leader(tp)?.log.newest_timestamp()
    }

    fn producers(&self, tp: &TopicPartition) -> Result<Vec<(i64, crate::log::producers::ProducerState)>, StoreError> {
        self.serving_leader(tp)?.log.producers()
    }

    fn cluster_addr(&self, node: NodeId) -> Option<String> {
        self.node_addr(node).map(|a| a.raft_addr)
    }

    fn replicas(&self) -> Vec<ReplicaView> {
        let mut out: Vec<ReplicaView> = self
            .partition_groups()
            .iter()
            .map(|pg| {
                let l = self.leadership_of(&pg);
                let (purged_index, snapshot_index) = {
                    let m = pg.metrics.borrow_watched();
                    (m.purged.map(|p| p.index), m.snapshot.map(|s| s.index))
                };
                ReplicaView {
                    topic: pg.tp.topic.to_string(),
                    partition: pg.tp.partition,
                    group: pg.group.0,
                    leader: l.leader,
                    term: l.term,
                    serving: l.serving,
                    log_start_offset: pg.log.log_start_offset(),
                    high_watermark: pg.log.high_watermark(),
                    last_log_index: l.last_log_index,
                    committed_index: l.committed_index,
                    applied_index: l.applied_index,
                    purged_index,
                    snapshot_index,
                    retained_bytes: pg.log.retained_bytes(),
                }
            })
            .collect();
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        out
    }

    fn replica_batches(&self, tp: &TopicPartition, from: Offset, limit: usize) -> Result<Vec<crate::store::BatchLocation>, StoreError> {
        self.replica(tp)?.log.batch_locations(from, limit)
    }

    fn replica_digest(&self, tp: &TopicPartition) -> Result<ReplicaDigest, StoreError> {
        let pg = self.replica(tp)?;
        let hwm = pg.log.high_watermark();
        let mut d = ReplicaDigest { high_watermark: hwm, batches: 0, bytes: 0, crc32c: 0 };
        let mut offset = pg.log.log_start_offset();
        while offset < hwm {
            let batches = pg.log.read(offset, 1 << 20)?;
            let Some(last) = batches.last() else { break };
            let header = batch::parse_header(last).map_err(|e| StoreError::CorruptBatch(tp.clone(), e))?;
            let next = i64::from_be_bytes(last[0..8].try_into().expect("8 bytes")) + header.last_offset_delta as i64 + 1;
            for b in &batches {
                d.batches += 1;
                d.bytes += b.len() as u64;
                d.crc32c = crc32c::crc32c_append(d.crc32c, b);
            }
            if next <= offset {
                break;
            }
            offset = next;
        }
        Ok(d)
    }

    fn watch_high_watermark(&self, tp: &TopicPartition) -> Result<watch::Receiver<Offset>, StoreError> {
        Ok(self.replica(tp)?.log.subscribe())
    }

    fn epoch_end_offset(&self, tp: &TopicPartition, epoch: i32) -> Result<Option<(i32, Offset)>, StoreError> {
        Ok(self.serving_leader(tp)?.log.epoch_end_offset(epoch))
    }

    async fn allocate_producer_id(&self) -> Result<i64, StoreError> {
        let me = self.node_id();
        let mut ids = self.producer_ids.lock().await;
        if ids.start >= ids.end {
            self.wait_controller_ready().await;
            let before = self.metadata().producer_id_blocks.get(&me).copied();
            self.propose(ControllerCommand::AllocateProducerIds { node: me }).await?;
            // The block is in the metadata once this node's controller
            // replica has applied the change (at once if it leads).
            let deadline = Instant::now() + PRODUCER_ID_BLOCK_WAIT;
            let start = loop {
                match self.metadata().producer_id_blocks.get(&me).copied() {
                    Some(start) if Some(start) != before => break start,
                    _ if Instant::now() >= deadline => return Err(StoreError::Timeout(TopicPartition::new("(controller)", 0))),
                    _ => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            };
            info!(node_id = me, first = start, count = crate::cluster::metadata::PRODUCER_ID_BLOCK, "allocated a block of producer ids");
            *ids = start..start + crate::cluster::metadata::PRODUCER_ID_BLOCK;
        }
        let id = ids.start;
        ids.start += 1;
        Ok(id)
    }

    async fn ensure_offsets_topic(&self) -> Result<(), StoreError> {
        if self.metadata().topics.contains_key(OFFSETS_TOPIC) {
            return Ok(());
        }
        let _once = self.offsets_topic_creation.lock().await;
        if self.metadata().topics.contains_key(OFFSETS_TOPIC) {
            return Ok(());
        }
        info!(node_id = self.node_id(), partitions = self.cfg.offsets_topic_partitions, "creating the offsets topic");
        let spec = TopicSpec {
            name: OFFSETS_TOPIC.into(),
            partitions: Some(self.cfg.offsets_topic_partitions),
            replication_factor: None,
            configs: [("cleanup.policy".to_string(), "compact".to_string())].into(),
            assignment: None,
        };
        match self.create_topic(spec, false).await {
            Ok(()) | Err(StoreError::Controller(ControllerError::TopicExists(_))) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn coordinator(&self, group: &str) -> Result<CoordinatorView, StoreError> {
        let md = self.metadata();
        let topic = md.topics.get(OFFSETS_TOPIC).ok_or_else(|| StoreError::UnknownTopicOrPartition(TopicPartition::new(OFFSETS_TOPIC, 0)))?;
        let p = offsets::partition_for(group, topic.partitions.len() as i32);
        let tp = TopicPartition::new(OFFSETS_TOPIC, p);
        let a = &topic.partitions[p as usize];
        let (leader, term) = self.leader_view(a.group);
        let serving = self.partition(a.group).is_some_and(|pg| self.leadership_of(&pg).serving);
        Ok(CoordinatorView { tp, leader, serving, term: term.max(0) as u64 })
    }

    async fn group_write(&self, cmd: GroupCommand) -> Result<(), StoreError> {
        self.group_submit(cmd).await?.await
    }

    async fn group_submit(&self, cmd: GroupCommand) -> Result<PendingGroupWrite, StoreError> {
        let pg = self.serving_offsets_partition(cmd.group())?;
        self.check_disk(4096)?;
        let node = self.node_id();
        let tp = pg.tp.clone();
        let (responder, rx) = ProgressResponder::complete_only();
        pg.raft.client_write_ff(Command::Group(cmd), Some(responder)).await.map_err(|_| StoreError::ShuttingDown { node })?;
        Ok(Box::pin(async move {
            match rx.await {
                Ok(Ok(resp)) => match resp.data {
                    CommandResult::None => Ok(()),
                    other => Err(StoreError::Storage { node, detail: format!("group write to {tp} answered {other:?}") }),
                },
                Ok(Err(openraft::errors::ClientWriteError::ForwardToLeader(f))) => Err(StoreError::NotLeader(tp, f.leader_id)),
                Ok(Err(e)) => Err(StoreError::Storage { node, detail: format!("group write to {tp}: {e}") }),
                // The group stopped before the entry was applied: outcome unknown.
                Err(_) => Err(StoreError::Timeout(tp)),
            }
        }))
    }

    fn committed_offsets(&self, group: &str) -> Result<Vec<(String, i32, CommittedOffset)>, StoreError> {
        self.serving_offsets_partition(group)?.log.committed_offsets(group)
    }

    fn group_record(&self, group: &str) -> Result<Option<GroupRecord>, StoreError> {
        self.serving_offsets_partition(group)?.log.group_record(group)
    }

    async fn elect_preferred_leader(&self, tp: &TopicPartition) -> Result<(), StoreError> {
        self.elect_preferred_of(tp).await
    }

    async fn reassign_partitions(&self, moves: Vec<(TopicPartition, Option<Vec<NodeId>>)>, allow_rf_change: bool) -> Vec<Result<(), StoreError>> {
        self.wait_controller_ready().await;
        self.reassign(moves, allow_rf_change).await
    }

    fn disk_free_bytes(&self) -> Option<u64> {
        self.engine_disk_free()
    }

    async fn decommission(&self, node: NodeId, cancel: bool) -> Result<(), StoreError> {
        self.wait_controller_ready().await;
        crate::raft::groups::GroupManager::decommission(self, node, cancel).await
    }

    async fn set_replication_factor(&self, topic: String, rf: usize) -> Result<Vec<(TopicPartition, Vec<NodeId>)>, StoreError> {
        self.wait_controller_ready().await;
        crate::raft::groups::GroupManager::set_replication_factor(self, &topic, rf).await
    }

    fn membership(&self) -> std::collections::BTreeMap<NodeId, crate::cluster::membership::NodeMembership> {
        self.membership_view()
    }

    fn controller_quorum(&self) -> crate::store::QuorumView {
        self.quorum_view()
    }

    fn security(&self) -> Arc<crate::security::SecurityState> {
        self.metadata().security.clone()
    }

    async fn alter_security(&self, cmd: crate::security::SecurityCommand) -> Result<(), StoreError> {
        self.change_security(cmd).await
    }

    fn move_progress(&self, tp: &TopicPartition) -> Result<Option<crate::cluster::moves::MoveProgress>, StoreError> {
        let l = self.leadership_of(&*self.replica(tp)?);
        match l.leads {
            true => Ok(self.move_progress_of(tp)),
            false => Err(StoreError::NotLeader(tp.clone(), l.leader.filter(|n| *n != self.node_id()))),
        }
    }

    async fn transfer_leadership(&self, tp: &TopicPartition, to: NodeId) -> Result<(), StoreError> {
        // An idle leader renews its lease on demand; a transfer is a demand.
        self.wait_leader_ready(tp, tokio::time::Instant::now() + LEADER_READY_WAIT).await;
        let pg = self.serving_leader(tp)?;
        if to == self.node_id() {
            return Ok(());
        }
        let replicas = self.metadata().partition(tp).map(|a| a.replicas.clone()).unwrap_or_default();
        if !replicas.contains(&to) {
            return Err(StoreError::InvalidConfig {
                key: "node".into(),
                value: to.to_string(),
                reason: format!("not a replica of {tp} (replicas {replicas:?})"),
            });
        }
        if !self.peers.is_alive(to) {
            return Err(StoreError::LeaderNotAvailable(tp.clone()));
        }
        info!(node_id = self.node_id(), partition = %tp, to, "transferring leadership");
        pg.raft.trigger().transfer_leader(to).await.map_err(|e| StoreError::Storage { node: self.node_id(), detail: e.to_string() })?;
        let deadline = Instant::now() + TRANSFER_LEADER_WAIT;
        while Instant::now() < deadline {
            if self.leadership_of(&pg).leader == Some(to) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(StoreError::Timeout(tp.clone()))
    }

    fn served_group_names(&self) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for pg in self.partition_groups().iter().filter(|pg| &*pg.tp.topic == OFFSETS_TOPIC) {
            if self.leadership_of(&pg).serving {
                out.extend(pg.log.group_names()?);
            }
        }
        out.sort();
        Ok(out)
    }
}
