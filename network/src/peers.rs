//! How nodes reach each other over HTTP: the cluster secret on every
//! request, and with `cluster_tls` TLS both ways (each node presents its
//! certificate; the cluster port accepts only peers whose certificate the
//! cluster's CA signed). [`TlsListener`] serves the cluster port over TLS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chronik::security::settings::SecuritySettings;
use chronik::security::tls::ClientAuth;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tracing::warn;

/// What a node's HTTP clients to other nodes need.
#[derive(Clone, Default)]
pub struct PeerHttp {
    secret: Option<String>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl PeerHttp {
    /// From the node's settings; the server side's TLS config too when
    /// `cluster_tls` is on.
    pub fn from_settings(s: &SecuritySettings) -> Result<(Self, Option<Arc<rustls::ServerConfig>>), String> {
        if !s.cluster_tls {
            return Ok((PeerHttp { secret: s.cluster_secret.clone(), tls: None }, None));
        }
        let mut files = s.tls.clone().ok_or("cluster_tls needs the TLS files")?;
        let client = files.client_config()?;
        files.client_auth = ClientAuth::Required;
        let server = files.server_config()?;
        Ok((PeerHttp { secret: s.cluster_secret.clone(), tls: Some(client) }, Some(server)))
    }

    /// "https" with cluster TLS, else "http".
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// A client builder with the secret's header and the TLS settings.
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        let b = reqwest::Client::builder().default_headers(crate::auth::node_headers(self.secret.as_deref()));
        match &self.tls {
            Some(tls) => b.use_preconfigured_tls((**tls).clone()),
            None => b,
        }
    }
}

/// How long a peer has to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes under way at once; more connections wait to be accepted.
const HANDSHAKES_MAX: usize = 64;

/// The cluster port over TLS: connections are accepted and their handshakes
/// done off the accept loop (a slow or silent peer holds up no one).
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(HANDSHAKES_MAX);
        let acceptor = TlsAcceptor::from(config);
        let slots = Arc::new(Semaphore::new(HANDSHAKES_MAX));
        tokio::spawn(async move {
            loop {
                let Ok(slot) = slots.clone().acquire_owned().await else { return };
                let (stream, peer) = match tcp.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        warn!(error = %e, "cluster port: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            drop(slot);
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => warn!(%peer, error = %e, "cluster port: TLS handshake refused (not a node of this cluster?)"),
                        Err(_) => warn!(%peer, "cluster port: TLS handshake not completed in time"),
                    }
                });
            }
        });
        Ok(TlsListener { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept loop is gone (the runtime is stopping).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
