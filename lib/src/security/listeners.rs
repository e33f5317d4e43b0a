//! Kafka listeners as Kafka names them: `listeners`
//! ("PLAINTEXT://0.0.0.0:9092,SASL_SSL://:9093"), `advertised.listeners`
//! (what clients are told, per listener name) and
//! `listener.security.protocol.map` ("INTERNAL:SASL_SSL,EXTERNAL:SSL").

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Protocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl Protocol {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "PLAINTEXT" => Protocol::Plaintext,
            "SSL" => Protocol::Ssl,
            "SASL_PLAINTEXT" => Protocol::SaslPlaintext,
            "SASL_SSL" => Protocol::SaslSsl,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Plaintext => "PLAINTEXT",
            Protocol::Ssl => "SSL",
            Protocol::SaslPlaintext => "SASL_PLAINTEXT",
            Protocol::SaslSsl => "SASL_SSL",
        }
    }

    pub fn tls(self) -> bool {
        matches!(self, Protocol::Ssl | Protocol::SaslSsl)
    }

    pub fn sasl(self) -> bool {
        matches!(self, Protocol::SaslPlaintext | Protocol::SaslSsl)
    }
}

/// One Kafka listener of this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    /// Its name ("PLAINTEXT", "INTERNAL"), which Metadata answers by: a
    /// client is told each node's address on the listener it came in on.
    pub name: String,
    pub protocol: Protocol,
    /// Where it listens (host:port; an empty host is every address).
    pub listen: String,
    /// What clients are told (host:port).
    pub advertised: String,
}

fn parse_endpoints(what: &str, text: &str) -> Result<Vec<(String, String, u16)>, String> {
    let mut out: Vec<(String, String, u16)> = vec![];
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, addr) = item.split_once("://").ok_or_else(|| format!("{what}: {item:?} is not NAME://host:port"))?;
        let (host, port) = addr.rsplit_once(':').ok_or_else(|| format!("{what}: {item:?} has no port"))?;
        let port: u16 = port.parse().map_err(|_| format!("{what}: {item:?} has no valid port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(format!("{what}: listener name {name:?} is not valid"));
        }
        if out.iter().any(|(n, ..)| n == name) {
            return Err(format!("{what}: listener {name} is named twice"));
        }
        out.push((name.to_string(), host, port));
    }
    if out.is_empty() {
        return Err(format!("{what} is empty"));
    }
    Ok(out)
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Resolves the three settings into this node's listeners, the first being
/// the node's main address. `default_host` stands in, in what clients are
/// told, for a listener's empty or wildcard host (when
/// advertised.listeners does not name it).
pub fn resolve(listeners: &str, advertised: Option<&str>, protocol_map: Option<&str>, default_host: &str) -> Result<Vec<Listener>, String> {
    let mut map: BTreeMap<String, Protocol> =
        [Protocol::Plaintext, Protocol::Ssl, Protocol::SaslPlaintext, Protocol::SaslSsl].into_iter().map(|p| (p.name().to_string(), p)).collect();
    if let Some(text) = protocol_map {
        map.clear();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, proto) = item.split_once(':').ok_or_else(|| format!("listener.security.protocol.map: {item:?} is not NAME:PROTOCOL"))?;
            let proto = Protocol::parse(proto).ok_or_else(|| format!("listener.security.protocol.map: unknown protocol {proto:?}"))?;
            map.insert(name.to_string(), proto);
        }
    }
    let advertised = match advertised {
        Some(text) => parse_endpoints("advertised.listeners", text)?,
        None => vec![],
    };
    let mut out = vec![];
    for (name, host, port) in parse_endpoints("listeners", listeners)? {
        let protocol = *map.get(&name).ok_or_else(|| format!("listener {name} has no protocol in listener.security.protocol.map"))?;
        let listen_host = if host.is_empty() { "0.0.0.0".to_string() } else { host.clone() };
        let advertised = match advertised.iter().find(|(n, ..)| *n == name) {
            Some((_, h, p)) => host_port(h, *p),
            None if host.is_empty() || host == "0.0.0.0" || host == "::" => host_port(default_host, port),
            None => host_port(&host, port),
        };
        out.push(Listener { name, protocol, listen: host_port(&listen_host, port), advertised });
    }
    if let Some((name, ..)) = advertised.iter().find(|(n, ..)| !out.iter().any(|l| l.name == *n)) {
        return Err(format!("advertised.listeners names {name}, which listeners does not"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_as_kafka_configures_them() {
        let ls = resolve(
            "INTERNAL://:9092, EXTERNAL://0.0.0.0:9093,SASL_SSL://10.0.0.5:9094",
            Some("EXTERNAL://broker1.example.com:19093"),
            Some("INTERNAL:SASL_PLAINTEXT,EXTERNAL:SSL,SASL_SSL:SASL_SSL"),
            "node1",
        )
        .unwrap();
        assert_eq!(ls.len(), 3);
        assert_eq!(
            (ls[0].name.as_str(), ls[0].protocol, ls[0].listen.as_str(), ls[0].advertised.as_str()),
            ("INTERNAL", Protocol::SaslPlaintext, "0.0.0.0:9092", "node1:9092")
        );
        assert_eq!((ls[1].protocol, ls[1].advertised.as_str()), (Protocol::Ssl, "broker1.example.com:19093"));
        assert_eq!((ls[2].protocol, ls[2].listen.as_str(), ls[2].advertised.as_str()), (Protocol::SaslSsl, "10.0.0.5:9094", "10.0.0.5:9094"));
    }

    #[test]
    fn mistakes_are_refused() {
        assert!(resolve("FOO://:1", None, None, "h").is_err(), "no protocol for FOO");
        assert!(resolve("PLAINTEXT://:1,PLAINTEXT://:2", None, None, "h").is_err());
        assert!(resolve("PLAINTEXT://:1", Some("SSL://h:2"), None, "h").is_err());
        assert!(resolve("PLAINTEXT:1", None, None, "h").is_err());
        assert!(resolve("", None, None, "h").is_err());
    }
}
