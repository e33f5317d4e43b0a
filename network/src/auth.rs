//! Who may use the HTTP ports.
//!
//! - The cluster port: only nodes of the cluster, which present the cluster
//!   secret in [`CLUSTER_SECRET_HEADER`] (every request of a node's HTTP
//!   clients carries it). Under `/admin`, an admin API token is accepted too.
//! - The admin port: a bearer token (`Authorization: Bearer ...`) of the
//!   admin role, or of the read-only role for GET; 401 without a valid
//!   token, 403 for a read-only token on a change. Health checks stay open,
//!   `/metrics` unless `metrics_require_auth`.
//!
//! With no secret (no tokens) configured, the port is open, as before
//! security was configured; the node warns at start.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chronik::security::settings::AdminRole;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The header a node's requests to another node carry the secret in.
pub const CLUSTER_SECRET_HEADER: &str = "x-chronik-cluster-secret";

/// Secrets compared in constant time (as hashes, so lengths leak nothing).
#[derive(Clone, Default)]
pub struct HttpAuth {
    cluster_secret: Option<[u8; 32]>,
    tokens: Vec<([u8; 32], AdminRole)>,
    metrics_require_auth: bool,
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

impl HttpAuth {
    pub fn new(s: &chronik::security::settings::SecuritySettings) -> Self {
        HttpAuth {
            cluster_secret: s.cluster_secret.as_deref().map(digest),
            tokens: s.admin_tokens.iter().map(|(t, r)| (digest(t), *r)).collect(),
            metrics_require_auth: s.metrics_require_auth,
        }
    }

    fn is_cluster_secret(&self, headers: &HeaderMap) -> bool {
        let Some(want) = &self.cluster_secret else {
            return true;
        };
        headers.get(CLUSTER_SECRET_HEADER).and_then(|v| v.to_str().ok()).is_some_and(|v| bool::from(digest(v).ct_eq(want)))
    }

    /// The role of the request's bearer token, if it has a valid one.
    fn token_role(&self, headers: &HeaderMap) -> Option<AdminRole> {
        let given = headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ")?.trim();
        let given = digest(given);
        // Every token is compared, so timing tells nothing of which matched.
        let mut role = None;
        for (t, r) in &self.tokens {
            if bool::from(given.ct_eq(t)) {
                role = Some(role.map_or(*r, |had: AdminRole| if had == AdminRole::Admin { had } else { *r }));
            }
        }
        role
    }

    /// The admin API's answer to a request: None to let it through.
    fn admin_refusal(&self, method: &Method, path: &str, headers: &HeaderMap) -> Option<Response> {
        if self.tokens.is_empty() || path.starts_with("/v1/health/") || (path == "/metrics" && !self.metrics_require_auth) {
            return None;
        }
        match self.token_role(headers) {
            Some(AdminRole::Admin) => None,
            Some(AdminRole::ReadOnly) if method == Method::GET || method == Method::HEAD => None,
            Some(AdminRole::ReadOnly) => Some(refuse(StatusCode::FORBIDDEN, "this token is read-only: it may only GET")),
            None => {
                let mut r = refuse(StatusCode::UNAUTHORIZED, "an admin API token is needed: Authorization: Bearer <token> (chronik --token)");
                r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                Some(r)
            }
        }
    }
}

fn refuse(status: StatusCode, why: &str) -> Response {
    crate::admin::error(status, why)
}

/// Middleware of the admin port.
pub async fn admin_port(State(auth): State<Arc<HttpAuth>>, req: Request, next: Next) -> Response {
    match auth.admin_refusal(req.method(), req.uri().path(), req.headers()) {
        Some(refusal) => refusal,
        None => next.run(req).await,
    }
}

/// Middleware of the cluster port: the cluster secret, or under /admin an
/// admin token.
pub async fn cluster_port(State(auth): State<Arc<HttpAuth>>, req: Request, next: Next) -> Response {
    if auth.is_cluster_secret(req.headers()) {
        return next.run(req).await;
    }
    let path = req.uri().path();
    if let Some(admin_path) = path.strip_prefix("/admin") {
        if auth.tokens.is_empty() {
            return refuse(StatusCode::UNAUTHORIZED, "only nodes of this cluster (with its cluster secret) may use this port").into_response();
        }
        if let Some(refusal) = auth.admin_refusal(req.method(), admin_path, req.headers()) {
            return refusal;
        }
        return next.run(req).await;
    }
    tracing::warn!(path, "cluster port: a request without the cluster secret refused");
    refuse(StatusCode::UNAUTHORIZED, "only nodes of this cluster (with its cluster secret) may use this port")
}

/// Headers every request of a node to another node carries.
pub fn node_headers(secret: Option<&str>) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Some(s) = secret {
        let mut v = HeaderValue::from_str(s).expect("a cluster secret is printable text");
        v.set_sensitive(true);
        h.insert(CLUSTER_SECRET_HEADER, v);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use chronik::security::settings::SecurityFile;

    fn auth(dir: &std::path::Path) -> HttpAuth {
        std::fs::write(dir.join("admin"), "admin-token-0123456789\n").unwrap();
        std::fs::write(dir.join("read"), "# readers\nread-token-0123456789\n").unwrap();
        std::fs::write(dir.join("secret"), "cluster-secret-0123456789").unwrap();
        let f = SecurityFile {
            admin_token_file: Some(dir.join("admin")),
            admin_read_token_file: Some(dir.join("read")),
            cluster_secret_file: Some(dir.join("secret")),
            ..Default::default()
        };
        HttpAuth::new(&f.resolve("0.0.0.0:9092", "localhost:9092").unwrap())
    }

    fn bearer(t: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {t}")).unwrap());
        h
    }

    #[test]
    fn roles_and_open_paths() {
        let dir = std::env::temp_dir().join(format!("chronik-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = auth(&dir);
        let status = |m: Method, p: &str, h: HeaderMap| a.admin_refusal(&m, p, &h).map(|r| r.status());
        assert_eq!(status(Method::GET, "/v1/topics", HeaderMap::new()), Some(StatusCode::UNAUTHORIZED));
        assert_eq!(status(Method::GET, "/v1/topics", bearer("wrong")), Some(StatusCode::UNAUTHORIZED));
        assert_eq!(status(Method::GET, "/v1/topics", bearer("read-token-0123456789")), None);
        assert_eq!(status(Method::POST, "/v1/topics", bearer("read-token-0123456789")), Some(StatusCode::FORBIDDEN));
        assert_eq!(status(Method::POST, "/v1/topics", bearer("admin-token-0123456789")), None);
        assert_eq!(status(Method::GET, "/metrics", HeaderMap::new()), None);
        assert_eq!(status(Method::GET, "/v1/health/ready", HeaderMap::new()), None);
        assert!(!a.is_cluster_secret(&HeaderMap::new()));
        assert!(a.is_cluster_secret(&node_headers(Some("cluster-secret-0123456789"))));
        assert!(!a.is_cluster_secret(&node_headers(Some("cluster-secret-012345678"))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
