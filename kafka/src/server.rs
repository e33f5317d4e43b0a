//! Connections: frames in, responses out, in order. Requests of one
//! connection are prepared one after another (so produces enter their
//! partition logs in the order they were sent) and then complete concurrently;
//! a writer task sends the responses in request order. Each listener
//! (`listeners`) accepts its own connections: TLS and who the client is are
//! settled there, SASL in the read loop (`sasl`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use chronik::config::Limits;
use chronik::metrics::{ApiErrorLabels, LimitLabels, Metrics};
use chronik::PartitionStore;
use futures::future::BoxFuture;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::Encodable;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tracing::{debug, warn, Instrument};

use crate::apis;
use crate::coordinator::{Coordinator, GroupSettings};
use crate::decode::{self, Decoded, REQUEST_HEADER_LEN_MIN};
use crate::handlers;
use crate::sasl::{Session, Step};

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub limits: Limits,
    pub groups: GroupSettings,
    /// The broker's retention defaults, as DescribeConfigs reports them.
    pub retention: chronik::log::retention::RetentionDefaults,
    /// The node's broker configs under Kafka's names (DescribeConfigs).
    pub broker_configs: Vec<chronik::config::StaticBrokerConfig>,
    /// Listeners, TLS, SASL and the authorizer.
    pub security: chronik::security::settings::SecuritySettings,
}

pub struct Context<S> {
    pub store: Arc<S>,
    pub metrics: Arc<Metrics>,
    pub cfg: ServerConfig,
    pub groups: Arc<Coordinator<S>>,
    /// Bytes of requests in progress on this node (queued_max_request_bytes).
    queued: Arc<Semaphore>,
    /// Open connections per peer address (max_connections, max_connections_per_ip).
    connections: Mutex<HashMap<IpAddr, usize>>,
}

impl<S> Context<S> {
    /// Counts one bite of the bound `limit`.
    pub fn limit_hit(&self, limit: &'static str) {
        self.metrics.limit_hit(limit);
    }
}

/// Who sent a request: its connection's peer, listener and principal, and
/// the header's client id.
#[derive(Clone, Debug)]
pub struct Caller {
    pub peer: SocketAddr,
    pub client_id: String,
    /// "User:alice"; "User:ANONYMOUS" without authentication.
    pub principal: Arc<str>,
    /// The listener's name: Metadata tells each node's address on it.
    pub listener: Arc<str>,
    /// The request's API ("produce"), for logs and metrics.
    pub api: &'static str,
}

impl Caller {
    /// Kafka shows a member's host as "/ip".
    pub fn host(&self) -> String {
        format!("/{}", self.peer.ip())
    }
}

/// Serves the Kafka protocol on every listener (bound by the caller).
pub async fn serve<S: PartitionStore>(
    listeners: Vec<(TcpListener, chronik::security::listeners::Listener)>, store: Arc<S>, metrics: Arc<Metrics>, cfg: ServerConfig) {
    let groups = Coordinator::start(store.clone(), cfg.groups.clone(), metrics.clone());
    let queued = Arc::new(Semaphore::new(cfg.limits.queued_max_request_bytes.min(Semaphore::MAX_PERMITS)));
    for limit in ["max_connections", "max_connections_per_ip", "queued_max_request_bytes", "connection_requests_in_flight_max", "frame_bytes_max",
        "sasl_server_max_receive_size",
    ] {
        let _ = metrics.limit_hits.get_or_create(&LimitLabels { node_id: metrics.node_id.clone(), limit });
    }
    let ctx = Arc::new(Context { store, metrics, cfg, groups, queued, connections: Mutex::new(HashMap::new()) });
    let accepting: Vec<_> = listeners.into_iter().map(|(tcp, spec)| tokio::spawn(crate::listeners::accept_loop(tcp, spec, ctx.clone()))).collect();
    futures::future::join_all(accepting).await;
}

/// One open connection counted against max_connections and
/// max_connections_per_ip; released on drop.
pub(crate) struct ConnectionSlot<S> {
    ctx: Arc<Context<S>>,
    ip: IpAddr,
}

impl<S> ConnectionSlot<S> {
    /// None when a bound is reached: the connection is closed at once, as
    /// Kafka does, and the refusal logged and counted.
    pub(crate) fn take(ctx: &Arc<Context<S>>, peer: SocketAddr) -> Option<Self> {
        let limits = &ctx.cfg.limits;
        let mut open = ctx.connections.lock().unwrap();
        let total: usize = open.values().sum();
        let from_ip = open.get(&peer.ip()).copied().unwrap_or(0);
        let refused = if total >= limits.max_connections {
            Some(("max_connections", limits.max_connections))
        } else if from_ip >= limits.max_connections_per_ip {
            Some(("max_connections_per_ip", limits.max_connections_per_ip))
        } else {
            None
        };
        if let Some((limit, max)) = refused {
            drop(open);
            ctx.limit_hit(limit);
            warn!(%peer, limit, max, open = total, from_ip, "connection refused: too many connections");
            return None;
        }
        *open.entry(peer.ip()).or_default() += 1;
        Some(Self { ctx: ctx.clone(), ip: peer.ip() })
    }
}

impl<S> Drop for ConnectionSlot<S> {
    fn drop(&mut self) {
        let mut open = self.ctx.connections.lock().unwrap();
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// What became of one request frame.
enum Outcome {
    /// A response that will be ready later; sent in request order.
    Respond(BoxFuture<'static, BytesMut>),
    /// Work with no response (acks=0 produce).
    Silent(BoxFuture<'static, ()>),
    /// The peer broke the protocol: log and close.
    Close(String),
    /// Answer, then close (a failed authentication).
    RespondClose(BoxFuture<'static, BytesMut>, String),
}

fn sasl_outcome(step: Step) -> Outcome {
    match step {
        Step::Pass => Outcome::Close("not a SASL request".into()),
        Step::Respond(fut) => Outcome::Respond(fut),
        Step::RespondClose(fut, why) => Outcome::RespondClose(fut, why),
        Step::Close(why) => Outcome::Close(why),
    }
}

/// Admits `bytes` more of requests in progress on this node, waiting while
/// the node is at queued_max_request_bytes.
async fn admit<S>(ctx: &Context<S>, bytes: usize) -> Option<OwnedSemaphorePermit> {
    let n = bytes.clamp(1, ctx.cfg.limits.queued_max_request_bytes) as u32;
    match ctx.queued.clone().try_acquire_many_owned(n) {
        Ok(p) => Some(p),
        Err(_) => {
            ctx.limit_hit("queued_max_request_bytes");
            debug!(bytes, "waiting: queued_max_request_bytes reached");
            ctx.queued.clone().acquire_many_owned(n).await.ok()
        }
    }
}

/// One connection's life, from its read and write halves (plain TCP or
/// TLS) and who it is so far (`session`).
pub(crate) async fn connection<S, R, W>(
    rd: R,
    wr: W, peer: SocketAddr,
    listener: Arc<str>,
    mut session: Session, ctx: Arc<Context<S>>, _slot: ConnectionSlot<S>) where
    S: PartitionStore,
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let node = ctx.metrics.node();
    ctx.metrics.kafka_connections.get_or_create(&node).inc();
    debug!("connection opened");
    let in_flight_max = ctx.cfg.limits.connection_requests_in_flight_max;
    let (tx, rx) = mpsc::channel::<(JoinHandle<BytesMut>, OwnedSemaphorePermit)>(in_flight_max);
    let writer = tokio::spawn(write_loop(wr, rx));
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
    let frame_bytes_max = ctx.cfg.limits.frame_bytes_max;
    let sasl_max = ctx.cfg.limits.sasl_server_max_receive_size;
    let reason = loop {
        let len = match rd.read_i32().await {
            Ok(len) => len,
            Err(_) => break None,
        };
        // Before SASL authentication only small frames (Kafka's
        // sasl.server.max.receive.size): no one unauthenticated makes the
        // node buffer 100 MiB.
        let (max, limit) = if session.authenticated() { (frame_bytes_max, "frame_bytes_max") } else { (sasl_max, "sasl_server_max_receive_size") };
        if len < REQUEST_HEADER_LEN_MIN as i32 || len as usize > max {
            if len as usize > max {
                ctx.limit_hit(limit);
            }
            break Some(format!("frame of {len} bytes is outside 8..={max} ({limit}); closing"));
        }
        // The bytes are admitted before they are read: a node never holds
        // more than queued_max_request_bytes of requests in progress.
        let Some(permit) = admit(&ctx, len as usize).await else { break Some("shutting down".into());
        };
        let mut buf = BytesMut::zeroed(len as usize);
        if let Err(e) = rd.read_exact(&mut buf).await {
            break Some(format!("truncated frame: {e}"));
        }
        let frame = buf.freeze();
        let outcome = if session.wants_raw_token() {
            sasl_outcome(session.raw_token(frame, &ctx.store, &ctx.metrics))
        } else {
            match decode::peek(&frame).and_then(|(key, ..)| ApiKey::try_from(key).ok()) {
                Some(ApiKey::SaslHandshake | ApiKey::SaslAuthenticate) => match decode::decode_frame(&frame) {
                    Ok(Decoded::Request { key, version, header, request }) => {
                        sasl_outcome(session.handle(key, version, header.correlation_id, request, &ctx.store, &ctx.metrics))
                    }
                    Ok(Decoded::ApiVersionsTooNew { .. }) => Outcome::Close("unexpected ApiVersions".into()),
                    Err(refusal) => Outcome::Close(refusal.to_string()),
                },
                key => match key.map_or(Ok(()), |k| session.admits(k)) {
                    Ok(()) => {
                        handle(frame, &ctx, Caller { peer, client_id: String::new(), principal: session.principal(), listener: listener.clone(), api: "" }).await
                    }
                    Err(why) => Outcome::Close(why),
                },
            }
        };
        match outcome {
            Outcome::Respond(fut) => {
                let item = (tokio::spawn(fut), permit);
                let item = match tx.try_send(item) {
                    Ok(()) => continue,
                    Err(mpsc::error::TrySendError::Full(item)) => item,
                    Err(mpsc::error::TrySendError::Closed(_)) => break Some("writer stopped".into()),
                };
                ctx.limit_hit("connection_requests_in_flight_max");
                if tx.send(item).await.is_err() {
                    break Some("writer stopped".into());
                }
            }
            Outcome::Silent(fut) => {
                tokio::spawn(async move {
                    fut.await;
                    drop(permit);
                });
            }
            Outcome::Close(why) => break Some(why),
            Outcome::RespondClose(fut, why) => {
                let _ = tx.send((tokio::spawn(fut), permit)).await;
                break Some(why);
            }
        }
    };
    if let Some(why) = reason {
        warn!(%peer, reason = %why, "closing connection");
    }
    drop(tx);
    let _ = writer.await;
    ctx.metrics.kafka_connections.get_or_create(&node).dec();
    debug!("connection closed");
}

async fn write_loop<W: AsyncWrite + Unpin>(wr: W, mut rx: mpsc::Receiver<(JoinHandle<BytesMut>, OwnedSemaphorePermit)>) {
    let mut wr = BufWriter::with_capacity(64 * 1024, wr);
    // The permit of each request is held until its response is written.
    // Responses that are ready leave together in one write; a response is
    // never held back while the writer waits for a later one. (It used to be
    // flushed only when no request was queued behind it: under a steady
    // stream of pipelined produces, answers sat in this buffer until 64 KiB
    // had piled up, seconds at 200 requests/s.)
    while let Some((handle, _permit)) = rx.recv().await {
        if !handle.is_finished() && wr.flush().await.is_err() {
            return;
        }
        let frame = match handle.await {
            Ok(f) => f,
            Err(e) => {
                warn!(error = %e, "request task failed; closing connection");
                return;
            }
        };
        if wr.write_all(&frame).await.is_err() {
            return;
        }
        if rx.is_empty() && wr.flush().await.is_err() {
            return;
        }
    }
    let _ = wr.flush().await;
}

/// Encodes a response frame: length, header (at the version the API key
/// prescribes; always v0 for ApiVersions), body.
pub fn encode_response(key: ApiKey, version: i16, correlation_id: i32, body: &ResponseKind) -> BytesMut {
    let mut buf = BytesMut::with_capacity(256);
    buf.extend_from_slice(&[0, 0, 0, 0]);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header.encode(&mut buf, key.response_header_version(version)).expect("response header encodes");
    if let Err(e) = body.encode(&mut buf, version) {
        // A bug in building the response: fail loudly in the logs, and give
        // the client a header-only frame rather than garbage.
        warn!(api = ?key, version, correlation_id, error = %e, "response does not encode");
        buf.truncate(4);
        header.encode(&mut buf, key.response_header_version(version)).expect("response header encodes");
    }
    let len = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&len.to_be_bytes());
    buf
}

async fn handle<S: PartitionStore>(frame: Bytes, ctx: &Arc<Context<S>>, mut caller: Caller) -> Outcome {
    let started = Instant::now();
    let (key, version, header, request) = match decode::decode_frame(&frame) {
        Ok(Decoded::Request { key, version, header, request }) => (key, version, header, request),
        Ok(Decoded::ApiVersionsTooNew { correlation_id }) => {
            // KIP-511: answer a too-new ApiVersions with a v0 body carrying
            // UNSUPPORTED_VERSION and our versions, so the client can retry.
            let body = handlers::api_versions::unsupported();
            return Outcome::Respond(Box::pin(async move { encode_response(ApiKey::ApiVersions, 0, correlation_id, &body) }));
        }
        Err(refusal) => return Outcome::Close(refusal.to_string()),
    };
    drop(frame);
    let correlation_id = header.correlation_id;
    let client_id = header.client_id.as_ref().map(|c| c.to_string()).unwrap_or_default();
    let span = tracing::debug_span!("request", api = ?key, version, correlation_id, client_id = %client_id);

    let metrics = ctx.metrics.clone();
    let api = apis::name(key);
    metrics.kafka_requests.get_or_create(&metrics.api(api)).inc();
    let finish = move |resp: ResponseKind| {
        for code in handlers::error_codes(&resp) {
            metrics
                .kafka_request_errors
                .get_or_create(&ApiErrorLabels { node_id: metrics.node_id.clone(), api, error_code: code })
                .inc();
        }
        metrics.kafka_request_latency.get_or_create(&metrics.api(api)).observe(started.elapsed().as_secs_f64());
        encode_response(key, version, correlation_id, &resp)
    };
    let ctx = ctx.clone();
    caller.client_id = client_id;
    caller.api = api;
    // Produce and OffsetCommit take effect in the order a connection sent
    // them: their first stage (validate, queue into the Raft log) runs here,
    // before the next frame is read; only the waiting is concurrent.
    match request {
        RequestKind::Produce(req) => match handlers::produce::submit(ctx, req, version, &caller).instrument(span.clone()).await {
            Some(fut) => Outcome::Respond(Box::pin(async move { finish(fut.await) }.instrument(span))),
            None => Outcome::Silent(Box::pin(async {})),
        },
        RequestKind::OffsetCommit(req) => {
            let fut = handlers::offset_commit::submit(ctx, req, version, &caller).instrument(span.clone()).await;
            Outcome::Respond(Box::pin(async move { finish(fut.await) }.instrument(span)))
        }
        other => Outcome::Respond(Box::pin(
            async move {
                let resp = handlers::dispatch(ctx, other, version, caller).await;
                finish(resp)
            }
            .instrument(span),
        )),
    }
}
