//! One Kafka listener: accepts connections (bounded by max_connections),
//! completes TLS on SSL and SASL_SSL listeners (with a deadline), takes the
//! principal from a client certificate (ssl.principal.mapping.rules) and
//! hands the connection to the read loop with its [`Session`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chronik::metrics::AuthLabels;
use chronik::security::listeners::Listener;
use chronik::security::principal;
use chronik::security::tls::subject_dn;
use chronik::PartitionStore;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn, Instrument};

use crate::sasl::{SaslSettings, Session};
use crate::server::{connection, ConnectionSlot, Context};

/// How long a client has to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) async fn accept_loop<S: PartitionStore>(tcp: TcpListener, spec: Listener, ctx: Arc<Context<S>>) {
    let sec = &ctx.cfg.security;
    let tls = match (spec.protocol.tls(), &sec.tls) {
        (false, _) => None,
        (true, Some(files)) => match files.server_config() {
            Ok(c) => Some(TlsAcceptor::from(c)),
            Err(e) => {
                // Checked when the config was read; a file changed since.
                warn!(listener = %spec.name, error = %e, "TLS settings do not load: this listener accepts nothing");
                return;
            }
        },
        (true, None) => unreachable!("a TLS listener without TLS files is refused by the config"),
    };
    let sasl = spec.protocol.sasl().then(|| SaslSettings { mechanisms: sec.sasl_mechanisms.clone(), reauth_ms: sec.connections_max_reauth_ms });
    let name: Arc<str> = spec.name.clone().into();
    info!(listener = %spec.name, protocol = spec.protocol.name(), addr = %spec.listen, advertised = %spec.advertised, "kafka listener ready");
    loop {
        let (stream, peer) = match tcp.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!(listener = %name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = ConnectionSlot::take(&ctx, peer) else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let span = tracing::info_span!("connection", %peer, listener = %name);
        let (ctx, tls, sasl, name) = (ctx.clone(), tls.clone(), sasl.clone(), name.clone());
        tokio::spawn(
            async move {
                match tls {
                    None => {
                        let session = sasl.map_or_else(|| Session::fixed(principal::ANONYMOUS.into()), Session::sasl);
                        let (rd, wr) = stream.into_split();
                        connection(rd, wr, peer, name, session, ctx, slot).await;
                    }
                    Some(acceptor) => {
                        let Some((tls, who)) = handshake(&acceptor, stream, peer, &ctx).await else {
                            return;
                        };
                        let session = sasl.map_or_else(|| Session::fixed(who), Session::sasl);
                        let (rd, wr) = tokio::io::split(tls);
                        connection(rd, wr, peer, name, session, ctx, slot).await;
                    }
                }
            }
            .instrument(span),
        );
    }
}

/// TLS, then the principal: from the client's certificate if it gave one,
/// else ANONYMOUS. None (connection dropped, logged) if either fails.
async fn handshake<S: PartitionStore>(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    ctx: &Context<S>,
) -> Option<(tokio_rustls::server::TlsStream<TcpStream>, String)> {
    let count = |result: &'static str| {
        let m = &ctx.metrics;
        m.authentications.get_or_create(&AuthLabels { node_id: m.node_id.clone(), mechanism: "SSL".into(), result }).inc();
    };
    let tls = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            warn!(%peer, error = %e, "TLS handshake failed; closing");
            count("failed");
            return None;
        }
        Err(_) => {
            warn!(%peer, timeout_s = TLS_HANDSHAKE_TIMEOUT.as_secs(), "TLS handshake not completed in time; closing");
            count("failed");
            return None;
        }
    };
    let cert = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec());
    let Some(cert) = cert else {
        return Some((tls, principal::ANONYMOUS.to_string()));
    };
    match subject_dn(&cert).and_then(|dn| ctx.cfg.security.principal_rules.apply(&dn)) {
        Ok(name) => {
            count("ok");
            Some((tls, principal::user(&name)))
        }
        Err(e) => {
            warn!(%peer, error = %e, "client certificate gives no principal; closing");
            count("failed");
            None
        }
    }
}
