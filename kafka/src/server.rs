//! Connections: frames in, responses out, in order. Requests of one
//! connection are prepared one after another (so produces enter their
//! partition logs in the order they were sent) and then complete concurrently;
//! a writer task sends the responses in request order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use chronik::metrics::{ApiErrorLabels, Metrics};
use chronik::PartitionStore;
use futures::future::BoxFuture;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn, Instrument};

use crate::apis;
use crate::coordinator::{Coordinator, GroupSettings};
use crate::handlers;

/// Requests of one connection in flight at once; the reader waits beyond this.
pub const CONNECTION_IN_FLIGHT_MAX: usize = 128;
/// The shortest valid request: api key, api version, correlation id.
const REQUEST_HEADER_LEN_MIN: usize = 8;

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub frame_bytes_max: usize,
    pub groups: GroupSettings,
}

pub struct Context<S> {
    pub store: Arc<S>,
    pub metrics: Arc<Metrics>,
    pub cfg: ServerConfig,
    pub groups: Arc<Coordinator<S>>,
}

/// Who sent a request: its connection's peer and the header's client id.
#[derive(Clone, Debug)]
pub struct Caller {
    pub peer: SocketAddr,
    pub client_id: String,
}

impl Caller {
    /// Kafka shows a member's host as "/ip".
    pub fn host(&self) -> String {
        format!("/{}", self.peer.ip())
    }
}

pub async fn serve<S: PartitionStore>(listener: TcpListener, store: Arc<S>, metrics: Arc<Metrics>, cfg: ServerConfig) {
    let groups = Coordinator::start(store.clone(), cfg.groups.clone());
    let ctx = Arc::new(Context { store, metrics, cfg, groups });
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let ctx = ctx.clone();
                let span = tracing::info_span!("connection", %peer);
                tokio::spawn(connection(stream, peer, ctx).instrument(span));
            }
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
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
}

async fn connection<S: PartitionStore>(stream: TcpStream, peer: SocketAddr, ctx: Arc<Context<S>>) {
    let _ = stream.set_nodelay(true);
    let node = ctx.metrics.node();
    ctx.metrics.kafka_connections.get_or_create(&node).inc();
    debug!("connection opened");
    let (rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::channel::<JoinHandle<BytesMut>>(CONNECTION_IN_FLIGHT_MAX);
    let writer = tokio::spawn(write_loop(wr, rx));
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
    let reason = loop {
        let len = match rd.read_i32().await {
            Ok(len) => len,
            Err(_) => break None,
        };
        if len < REQUEST_HEADER_LEN_MIN as i32 || len as usize > ctx.cfg.frame_bytes_max {
            break Some(format!(
                "frame of {len} bytes is outside 8..={} (frame_bytes_max); closing",
                ctx.cfg.frame_bytes_max
            ));
        }
        let mut buf = BytesMut::zeroed(len as usize);
        if let Err(e) = rd.read_exact(&mut buf).await {
            break Some(format!("truncated frame: {e}"));
        }
        match handle(buf.freeze(), &ctx, peer).await {
            Outcome::Respond(fut) => {
                if tx.send(tokio::spawn(fut)).await.is_err() {
                    break Some("writer stopped".into());
                }
            }
            Outcome::Silent(fut) => {
                tokio::spawn(fut);
            }
            Outcome::Close(why) => break Some(why),
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

async fn write_loop(wr: tokio::net::tcp::OwnedWriteHalf, mut rx: mpsc::Receiver<JoinHandle<BytesMut>>) {
    let mut wr = BufWriter::with_capacity(64 * 1024, wr);
    while let Some(handle) = rx.recv().await {
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

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
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

async fn handle<S: PartitionStore>(frame: Bytes, ctx: &Arc<Context<S>>, peer: SocketAddr) -> Outcome {
    let started = Instant::now();
    let raw_key = i16_at(&frame, 0);
    let version = i16_at(&frame, 2);
    let correlation_id = i32::from_be_bytes(frame[4..8].try_into().unwrap());
    let Ok(key) = ApiKey::try_from(raw_key) else {
        return Outcome::Close(format!("unknown api key {raw_key} (correlation id {correlation_id})"));
    };
    if !apis::decodable(key, version) {
        if key == ApiKey::ApiVersions {
            // KIP-511: answer a too-new ApiVersions with a v0 body carrying
            // UNSUPPORTED_VERSION and our versions, so the client can retry.
            let body = handlers::api_versions::unsupported();
            return Outcome::Respond(Box::pin(async move { encode_response(key, 0, correlation_id, &body) }));
        }
        return Outcome::Close(format!(
            "{key:?} v{version} is not supported (correlation id {correlation_id}); see ApiVersions"
        ));
    }
    let mut hbuf = frame.clone();
    let header = match RequestHeader::decode(&mut hbuf, key.request_header_version(version)) {
        Ok(h) => h,
        Err(e) => return Outcome::Close(format!("malformed {key:?} v{version} header: {e}")),
    };
    let request = match RequestKind::decode(key, &mut hbuf, version) {
        Ok(r) => r,
        Err(e) => return Outcome::Close(format!("malformed {key:?} v{version} request (correlation id {correlation_id}): {e}")),
    };
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
    let caller = Caller { peer, client_id };
    match request {
        RequestKind::Produce(req) => match handlers::produce::submit(ctx, req, version).instrument(span.clone()).await {
            Some(fut) => Outcome::Respond(Box::pin(async move { finish(fut.await) }.instrument(span))),
            None => Outcome::Silent(Box::pin(async {})),
        },
        other => Outcome::Respond(Box::pin(
            async move {
                let resp = handlers::dispatch(ctx, other, version, caller).await;
                finish(resp)
            }
            .instrument(span),
        )),
    }
}

pub fn log_startup(addr: &SocketAddr) {
    info!(%addr, "kafka listener ready");
}
