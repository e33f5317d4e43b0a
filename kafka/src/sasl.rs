//! Who a connection is, and SASL: SaslHandshake (17) and SaslAuthenticate
//! (36) are answered here, in the connection's read loop, before the next
//! frame is read, because they change what the connection may do next.
//!
//! On a SASL listener a connection may send ApiVersions, then SaslHandshake
//! naming a mechanism, then SaslAuthenticate until the exchange ends; any
//! other request before that closes it (as Kafka does). SaslHandshake v0
//! clients send the exchange as bare length-prefixed tokens instead. A
//! failed authentication is answered with SASL_AUTHENTICATION_FAILED after
//! a short delay, and the connection closed. With
//! connections_max_reauth_ms, a session lasts that long: the client
//! authenticates again on the same connection (KIP-368) as the same
//! principal, or is closed at its next request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use chronik::metrics::{AuthLabels, Metrics};
use chronik::security::principal;
use chronik::security::scram::{self, AuthError, Mechanism, ServerExchange};
use chronik::PartitionStore;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind, SaslAuthenticateResponse, SaslHandshakeResponse};
use tracing::{info, warn};

use crate::errors;
use crate::server::encode_response;

/// How long a failed authentication waits before it is answered (Kafka's
/// connection.failed.authentication.delay.ms), to slow down guessing.
const FAILED_AUTH_DELAY: Duration = Duration::from_millis(100);

/// A connection's SASL settings (shared by the listener's connections).
#[derive(Clone, Debug)]
pub struct SaslSettings {
    pub mechanisms: Vec<String>,
    /// 0: sessions never expire.
    pub reauth_ms: u64,
}

enum State {
    /// Authenticated (or nothing to authenticate: not a SASL listener).
    Done,
    /// Waiting for SaslHandshake.
    Handshake,
    /// Mechanism chosen; waiting for its first token.
    Start { mech: String, raw: bool },
    /// A SCRAM exchange waiting for the client's final message.
    Scram { exchange: ServerExchange, raw: bool },
}

/// What the read loop does with a frame.
pub enum Step {
    /// A request for the handlers.
    Pass,
    /// This response frame, in order with the others.
    Respond(futures::future::BoxFuture<'static, BytesMut>),
    /// This response frame, then close the connection.
    RespondClose(futures::future::BoxFuture<'static, BytesMut>, String),
    /// Close the connection.
    Close(String),
}

pub struct Session {
    sasl: Option<SaslSettings>,
    state: State,
    principal: Arc<str>,
    /// When the current SASL session ends (KIP-368).
    expires: Option<Instant>,
    authenticated_once: bool,
}

impl Session {
    /// A connection on a non-SASL listener, as `principal` (ANONYMOUS, or
    /// from its certificate).
    pub fn fixed(principal: String) -> Self {
        Session { sasl: None, state: State::Done, principal: principal.into(), expires: None, authenticated_once: true }
    }

    pub fn sasl(settings: SaslSettings) -> Self {
        Session { sasl: Some(settings), state: State::Handshake, principal: principal::ANONYMOUS.into(), expires: None, authenticated_once: false }
    }

    /// Whether the connection has authenticated (or needs not).
    pub fn authenticated(&self) -> bool {
        self.authenticated_once
    }

    pub fn principal(&self) -> Arc<str> {
        self.principal.clone()
    }

    /// Whether the next frame is a bare SASL token (after SaslHandshake v0).
    pub fn wants_raw_token(&self) -> bool {
        matches!(self.state, State::Start { raw: true, .. } | State::Scram { raw: true, .. })
    }

    /// Whether a request of `key` may go to the handlers now.
    pub fn admits(&self, key: ApiKey) -> Result<(), String> {
        if key == ApiKey::ApiVersions {
            return Ok(());
        }
        // (During a re-authentication the connection keeps its principal.)
        if !self.authenticated_once {
            return Err(format!("{key:?} request before SASL authentication finished; closing (as Kafka does)"));
        }
        if self.expires.is_some_and(|t| Instant::now() > t) {
            return Err(format!("{} sent {key:?} after its SASL session expired (connections_max_reauth_ms); closing", self.principal));
        }
        Ok(())
    }

    /// SaslHandshake or SaslAuthenticate.
    pub fn handle<S: PartitionStore>(
        &mut self,
        key: ApiKey,
        version: i16,
        correlation_id: i32,
        req: RequestKind,
        store: &Arc<S>,
        metrics: &Arc<Metrics>,
    ) -> Step {
        let respond = move |body: ResponseKind| -> futures::future::BoxFuture<'static, BytesMut> {
            Box::pin(async move { encode_response(key, version, correlation_id, &body) })
        };
        let Some(settings) = self.sasl.clone() else {
            // Not a SASL listener: Kafka answers ILLEGAL_SASL_STATE.
            let body = match req {
                RequestKind::SaslHandshake(_) => ResponseKind::SaslHandshake(SaslHandshakeResponse::default().with_error_code(errors::ILLEGAL_SASL_STATE)),
                _ => ResponseKind::SaslAuthenticate(
                    SaslAuthenticateResponse::default()
                        .with_error_code(errors::ILLEGAL_SASL_STATE)
                        .with_error_message(Some(crate::handlers::str("this listener does not use SASL"))),
                ),
            };
            return Step::Respond(respond(body));
        };
        match req {
            RequestKind::SaslHandshake(r) => {
                let in_session = matches!(self.state, State::Done);
                if !matches!(self.state, State::Handshake) && !in_session {
                    return Step::Close("SaslHandshake in the middle of an authentication".into());
                }
                let mechanisms = settings.mechanisms.iter().map(|m| crate::handlers::str(m.clone())).collect();
                let mut body = SaslHandshakeResponse::default().with_mechanisms(mechanisms);
                let mech = r.mechanism.to_string();
                if !settings.mechanisms.contains(&mech) {
                    body.error_code = errors::UNSUPPORTED_SASL_MECHANISM;
                    return Step::RespondClose(respond(ResponseKind::SaslHandshake(body)), format!("SASL mechanism {mech:?} is not enabled"));
                }
                self.state = State::Start { mech, raw: version == 0 };
                Step::Respond(respond(ResponseKind::SaslHandshake(body)))
            }
            RequestKind::SaslAuthenticate(r) => {
                let token = r.auth_bytes;
                match self.step(token, store, metrics, &settings) {
                    Ok((reply, done)) => {
                        let mut body = SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(reply));
                        if done && settings.reauth_ms > 0 {
                            body.session_lifetime_ms = settings.reauth_ms as i64;
                        }
                        Step::Respond(respond(ResponseKind::SaslAuthenticate(body)))
                    }
                    Err((mech, why)) => {
                        let msg = format!("Authentication failed during authentication due to invalid credentials with SASL mechanism {mech}");
                        let body = SaslAuthenticateResponse::default()
                            .with_error_code(errors::SASL_AUTHENTICATION_FAILED)
                            .with_error_message(Some(crate::handlers::str(msg)));
                        Step::RespondClose(delayed(respond(ResponseKind::SaslAuthenticate(body))), why)
                    }
                }
            }
            _ => Step::Pass,
        }
    }

    /// A bare token after SaslHandshake v0: answered as a bare token.
    pub fn raw_token<S: PartitionStore>(&mut self, frame: Bytes, store: &Arc<S>, metrics: &Arc<Metrics>) -> Step {
        let settings = self.sasl.clone().expect("raw tokens only on SASL listeners");
        match self.step(frame, store, metrics, &settings) {
            Ok((reply, _)) => Step::Respond(Box::pin(async move {
                let mut out = BytesMut::with_capacity(4 + reply.len());
                out.extend_from_slice(&(reply.len() as i32).to_be_bytes());
                out.extend_from_slice(&reply);
                out
            })),
            Err((_, why)) => Step::Close(why),
        }
    }

    /// One token of the exchange: our reply and whether it ended, or the
    /// mechanism and why it failed.
    fn step<S: PartitionStore>(
        &mut self,
        token: Bytes,
        store: &Arc<S>,
        metrics: &Arc<Metrics>,
        settings: &SaslSettings,
    ) -> Result<(Vec<u8>, bool), (String, String)> {
        let count = |mech: &str, result: &'static str| {
            metrics.authentications.get_or_create(&AuthLabels { node_id: metrics.node_id.clone(), mechanism: mech.to_string(), result }).inc();
        };
        let outcome = match std::mem::replace(&mut self.state, State::Handshake) {
            State::Start { mech, .. } if mech == "PLAIN" => {
                let result = scram::parse_plain(&token).and_then(|(user, password)| {
                    let creds = store.security();
                    // Any of the user's SCRAM credentials proves the password
                    // (PBKDF2: milliseconds of CPU, off the async workers).
                    let ok = tokio::task::block_in_place(|| {
                        Mechanism::ALL.into_iter().rev().find_map(|m| creds.credential(&user, m).map(|c| c.verifies(m, &password)))
                    });
                    match ok {
                        Some(true) => Ok(user),
                        Some(false) => Err(AuthError::BadProof(user)),
                        None => Err(AuthError::UnknownUser(user)),
                    }
                });
                result.map(|user| (user, vec![], mech.clone())).map_err(|e| (mech, e))
            }
            State::Start { mech, raw } => {
                let m = Mechanism::from_sasl_name(&mech).expect("only enabled mechanisms are chosen");
                let creds = store.security();
                match ServerExchange::first(m, &token, |user| creds.credential(user, m).cloned()) {
                    Ok((exchange, reply)) => {
                        self.state = State::Scram { exchange, raw };
                        return Ok((reply, false));
                    }
                    Err(e) => Err((mech, e)),
                }
            }
            State::Scram { exchange, .. } => {
                let mech = exchange.mechanism().sasl_name().to_string();
                exchange.last(&token).map(|(user, reply)| (user, reply, mech.clone())).map_err(|e| (mech, e))
            }
            State::Done | State::Handshake => return Err(("(none)".into(), "SaslAuthenticate without a SaslHandshake first".into())),
        };
        match outcome {
            Ok((user, reply, mech)) => {
                let who = principal::user(&user);
                if self.authenticated_once && *self.principal != *who {
                    count("reauthentication", "failed");
                    return Err(("(reauthentication)".into(), format!("re-authenticated as {who}, not {}: closing (KIP-368)", self.principal)));
                }
                if !self.authenticated_once {
                    info!(principal = %who, "SASL authentication succeeded");
                }
                self.principal = who.into();
                self.authenticated_once = true;
                self.state = State::Done;
                self.expires = (settings.reauth_ms > 0).then(|| Instant::now() + Duration::from_millis(settings.reauth_ms));
                count(&mech, "ok");
                Ok((reply, true))
            }
            Err((mech, e)) => {
                warn!(mechanism = %mech, reason = %e, "SASL authentication failed");
                count(&mech, "failed");
                Err((mech, format!("SASL authentication failed: {e}")))
            }
        }
    }
}

fn delayed(fut: futures::future::BoxFuture<'static, BytesMut>) -> futures::future::BoxFuture<'static, BytesMut> {
    Box::pin(async move {
        tokio::time::sleep(FAILED_AUTH_DELAY).await;
        fut.await
    })
}
