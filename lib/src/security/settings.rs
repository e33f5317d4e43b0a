//! The `[security]` section of the config file (and its flags), resolved:
//! Kafka listeners, TLS files, SASL mechanisms, the ACL authorizer, the
//! cluster secret between nodes and the admin API's tokens.
//!
//! ```toml
//! [security]
//! listeners = "SASL_SSL://:9093,PLAINTEXT://127.0.0.1:9092"
//! ssl_cert_file = "node1.pem"
//! ssl_key_file = "node1.key"
//! ssl_ca_file = "ca.pem"
//! sasl_enabled_mechanisms = "SCRAM-SHA-256,SCRAM-SHA-512"
//! authorizer = "acl"
//! super_users = "User:admin"
//! cluster_secret_file = "cluster.secret"
//! admin_token_file = "admin.token"
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::acl::AuthorizerSettings;
use super::listeners::{self, Listener, Protocol};
use super::principal::MappingRules;
use super::tls::{ClientAuth, TlsFiles};

/// The section as written; every field optional.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityFile {
    /// Kafka's listeners; default: one PLAINTEXT listener at kafka_listen.
    pub listeners: Option<String>,
    pub advertised_listeners: Option<String>,
    pub listener_security_protocol_map: Option<String>,
    /// PEM files: this node's certificate chain and key, and the CAs that
    /// sign client (and node) certificates.
    pub ssl_cert_file: Option<PathBuf>,
    pub ssl_key_file: Option<PathBuf>,
    pub ssl_ca_file: Option<PathBuf>,
    /// none (default), requested or required (Kafka's ssl.client.auth).
    pub ssl_client_auth: Option<ClientAuth>,
    pub ssl_principal_mapping_rules: Option<String>,
    /// Default "SCRAM-SHA-256,SCRAM-SHA-512"; PLAIN only when named.
    pub sasl_enabled_mechanisms: Option<String>,
    /// Kafka's connections.max.reauth.ms (KIP-368): a SASL session lasts
    /// this long, then the client must authenticate again (0: forever).
    pub connections_max_reauth_ms: Option<u64>,
    /// "acl" turns on Kafka's ACL authorizer; "none" (default) allows all.
    pub authorizer: Option<String>,
    /// Principals allowed everything, ";"-separated (Kafka's super.users).
    pub super_users: Option<String>,
    pub allow_everyone_if_no_acl_found: Option<bool>,
    /// A file whose content nodes present to each other's cluster port; a
    /// request without it is refused (all nodes need the same).
    pub cluster_secret_file: Option<PathBuf>,
    /// TLS on the cluster port, both ways (mTLS): each node presents
    /// ssl_cert_file and accepts only peers whose certificate ssl_ca_file
    /// signed. Every node of the cluster needs the same setting.
    pub cluster_tls: Option<bool>,
    /// Bearer tokens of the admin API, one per line: full access, and
    /// read-only (GET) access.
    pub admin_token_file: Option<PathBuf>,
    pub admin_read_token_file: Option<PathBuf>,
    /// Whether /metrics needs a token too (default false: Prometheus
    /// scrapes it without one).
    pub metrics_require_auth: Option<bool>,
}

/// What the admin API lets a token do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminRole {
    ReadOnly,
    Admin,
}

/// The resolved settings. Debug never shows the secret or the tokens.
#[derive(Clone)]
pub struct SecuritySettings {
    pub listeners: Vec<Listener>,
    pub tls: Option<TlsFiles>,
    pub principal_rules: MappingRules,
    /// Enabled SASL mechanisms, in the order ApiVersions... SaslHandshake lists them.
    pub sasl_mechanisms: Vec<String>,
    pub connections_max_reauth_ms: u64,
    /// Some: the ACL authorizer is on.
    pub authorizer: Option<AuthorizerSettings>,
    pub cluster_secret: Option<String>,
    /// mTLS between nodes (the TLS files are `tls`).
    pub cluster_tls: bool,
    pub admin_tokens: Vec<(String, AdminRole)>,
    pub metrics_require_auth: bool,
}

pub const SASL_MECHANISMS_KNOWN: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];
/// Shortest cluster secret accepted.
pub const CLUSTER_SECRET_LEN_MIN: usize = 16;

fn read_secret(what: &str, path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
    Ok(text.trim().to_string())
}

fn read_tokens(what: &str, path: &Path, role: AdminRole) -> Result<Vec<(String, AdminRole)>, String> {
    let tokens: Vec<_> =
        read_secret(what, path)?.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(|t| (t.to_string(), role)).collect();
    if tokens.is_empty() {
        return Err(format!("{what} {} holds no token", path.display()));
    }
    if let Some((t, _)) = tokens.iter().find(|(t, _)| t.len() < CLUSTER_SECRET_LEN_MIN) {
        return Err(format!("{what} {}: a token of {} characters is too short (at least {CLUSTER_SECRET_LEN_MIN})", path.display(), t.len()));
    }
    Ok(tokens)
}

impl SecurityFile {
    /// `kafka_listen` and `advertised` are the node's single-listener
    /// settings, used when `listeners` is not set.
    pub fn resolve(self, kafka_listen: &str, advertised: &str) -> Result<SecuritySettings, String> {
        let listeners = match &self.listeners {
            Some(text) => {
                let host = advertised.rsplit_once(':').map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']')).unwrap_or("localhost");
                listeners::resolve(text, self.advertised_listeners.as_deref(), self.listener_security_protocol_map.as_deref(), host)?
            }
            None if self.advertised_listeners.is_some() || self.listener_security_protocol_map.is_some() => {
                return Err("advertised_listeners and listener_security_protocol_map need listeners".into())
            }
            None => vec![Listener { name: "PLAINTEXT".into(), protocol: Protocol::Plaintext, listen: kafka_listen.into(), advertised: advertised.into() }],
        };
        let tls = match (&self.ssl_cert_file, &self.ssl_key_file) {
            (Some(cert), Some(key)) => {
                Some(TlsFiles { cert: cert.clone(), key: key.clone(), ca: self.ssl_ca_file.clone(), client_auth: self.ssl_client_auth.unwrap_or_default() })
            }
            (None, None) => None,
            _ => return Err("ssl_cert_file and ssl_key_file go together".into()),
        };
        if let Some(l) = listeners.iter().find(|l| l.protocol.tls()) {
            let Some(tls) = &tls else {
                return Err(format!("listener {} is {}: it needs ssl_cert_file and ssl_key_file", l.name, l.protocol.name()));
            };
            // Load once now, so a bad file fails the start, not a client.
            tls.server_config().map_err(|e| format!("listener {}: {e}", l.name))?;
        }
        let sasl_mechanisms: Vec<String> = self
            .sasl_enabled_mechanisms
            .as_deref()
            .unwrap_or("SCRAM-SHA-256,SCRAM-SHA-512")
            .split(',')
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty())
            .collect();
        if let Some(m) = sasl_mechanisms.iter().find(|m| !SASL_MECHANISMS_KNOWN.contains(&m.as_str())) {
            return Err(format!("sasl_enabled_mechanisms: {m} is not supported (supported: {})", SASL_MECHANISMS_KNOWN.join(", ")));
        }
        if sasl_mechanisms.is_empty() && listeners.iter().any(|l| l.protocol.sasl()) {
            return Err("a SASL listener needs sasl_enabled_mechanisms".into());
        }
        let principal_rules = match &self.ssl_principal_mapping_rules {
            Some(text) => MappingRules::parse(text)?,
            None => MappingRules::default(),
        };
        let authorizer = match self.authorizer.as_deref().unwrap_or("none") {
            "none" => None,
            "acl" => Some(AuthorizerSettings {
                super_users: self.super_users.as_deref().unwrap_or("").split(';').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect(),
                allow_everyone_if_no_acl_found: self.allow_everyone_if_no_acl_found.unwrap_or(false),
            }),
            other => return Err(format!("authorizer {other:?}: expected \"acl\" or \"none\"")),
        };
        if let Some(bad) = authorizer.iter().flat_map(|a| &a.super_users).find(|u| !u.contains(':')) {
            return Err(format!("super_users: {bad:?} is not a principal (User:name)"));
        }
        let cluster_secret = match &self.cluster_secret_file {
            Some(p) => {
                let s = read_secret("cluster_secret_file", p)?;
                if s.len() < CLUSTER_SECRET_LEN_MIN {
                    return Err(format!("cluster_secret_file {}: the secret must have at least {CLUSTER_SECRET_LEN_MIN} characters", p.display()));
                }
                Some(s)
            }
            None => None,
        };
        let cluster_tls = self.cluster_tls.unwrap_or(false);
        if cluster_tls && tls.as_ref().is_none_or(|t| t.ca.is_none()) {
            return Err("cluster_tls needs ssl_cert_file, ssl_key_file and ssl_ca_file (the CA that signs every node's certificate)".into());
        }
        let mut admin_tokens = vec![];
        if let Some(p) = &self.admin_token_file {
            admin_tokens.extend(read_tokens("admin_token_file", p, AdminRole::Admin)?);
        }
        if let Some(p) = &self.admin_read_token_file {
            admin_tokens.extend(read_tokens("admin_read_token_file", p, AdminRole::ReadOnly)?);
        }
        Ok(SecuritySettings {
            listeners,
            tls,
            principal_rules,
            sasl_mechanisms,
            connections_max_reauth_ms: self.connections_max_reauth_ms.unwrap_or(0),
            authorizer,
            cluster_secret,
            cluster_tls,
            admin_tokens,
            metrics_require_auth: self.metrics_require_auth.unwrap_or(false),
        })
    }
}

impl std::fmt::Debug for SecuritySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecuritySettings")
            .field("listeners", &self.listeners)
            .field("tls", &self.tls)
            .field("sasl_mechanisms", &self.sasl_mechanisms)
            .field("connections_max_reauth_ms", &self.connections_max_reauth_ms)
            .field("authorizer", &self.authorizer)
            .field("cluster_secret", &self.cluster_secret.as_ref().map(|_| "<redacted>"))
            .field("cluster_tls", &self.cluster_tls)
            .field("admin_tokens", &self.admin_tokens.iter().map(|(_, role)| role).collect::<Vec<_>>())
            .field("metrics_require_auth", &self.metrics_require_auth)
            .finish_non_exhaustive()
    }
}

impl SecuritySettings {
    /// Whether anything asks clients, nodes or operators to authenticate.
    pub fn any(&self) -> bool {
        self.listeners.iter().any(|l| l.protocol != Protocol::Plaintext)
            || self.authorizer.is_some()
            || self.cluster_secret.is_some()
            || !self.admin_tokens.is_empty()
    }

    /// Settings that leave a door open while others are locked, for the log.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = vec![];
        if !self.any() {
            return w;
        }
        if self.cluster_secret.is_none() && !self.cluster_tls {
            w.push("no cluster_secret_file nor cluster_tls: anyone who reaches the cluster port can act as a node (vote, append, change metadata)".into());
        } else if !self.cluster_tls {
            w.push("cluster_tls is off: the cluster port is plain HTTP (its secret and data can be read on the network)".into());
        }
        if self.admin_tokens.is_empty() {
            w.push("no admin_token_file: the admin API is open to anyone who reaches it".into());
        }
        if self.authorizer.is_none() {
            w.push("authorizer is \"none\": every authenticated client may do anything".into());
        }
        if let Some(l) = self.listeners.iter().find(|l| l.protocol == Protocol::Plaintext) {
            w.push(format!("listener {} ({}) is PLAINTEXT: its clients are User:ANONYMOUS, unencrypted", l.name, l.listen));
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_one_plaintext_listener_and_nothing_else() {
        let s = SecurityFile::default().resolve("0.0.0.0:9092", "localhost:9092").unwrap();
        assert_eq!(s.listeners.len(), 1);
        assert_eq!(s.listeners[0].advertised, "localhost:9092");
        assert!(!s.any() && s.warnings().is_empty());
    }

    #[test]
    fn tls_listener_needs_files_and_mechanisms_are_checked() {
        let f = SecurityFile { listeners: Some("SSL://:9093".into()), ..Default::default() };
        assert!(f.resolve("0.0.0.0:9092", "h:9092").unwrap_err().contains("ssl_cert_file"));
        let f = SecurityFile { listeners: Some("SASL_PLAINTEXT://:9093".into()), sasl_enabled_mechanisms: Some("GSSAPI".into()), ..Default::default() };
        assert!(f.resolve("0.0.0.0:9092", "h:9092").is_err());
        let f = SecurityFile { authorizer: Some("acl".into()), super_users: Some("admin".into()), ..Default::default() };
        assert!(f.resolve("0.0.0.0:9092", "h:9092").is_err());
    }

    #[test]
    fn an_open_door_beside_a_locked_one_is_warned_about() {
        let f = SecurityFile { listeners: Some("SASL_PLAINTEXT://:9093,PLAINTEXT://:9092".into()), authorizer: Some("acl".into()), ..Default::default() };
        let s = f.resolve("0.0.0.0:9092", "h:9092").unwrap();
        assert_eq!(s.listeners[0].advertised, "h:9093");
        let w = s.warnings().join("\n");
        assert!(w.contains("cluster_secret_file") && w.contains("admin_token_file") && w.contains("PLAINTEXT"), "{w}");
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let dir = std::env::temp_dir().join(format!("chronik-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("secret"), "the-cluster-secret-0123").unwrap();
        std::fs::write(dir.join("token"), "the-admin-token-0123456").unwrap();
        let f = SecurityFile { cluster_secret_file: Some(dir.join("secret")), admin_token_file: Some(dir.join("token")), ..Default::default() };
        let shown = format!("{:?}", f.resolve("0.0.0.0:9092", "h:9092").unwrap());
        assert!(!shown.contains("the-cluster-secret") && !shown.contains("the-admin-token") && shown.contains("<redacted>"), "{shown}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
