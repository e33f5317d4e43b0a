//! SCRAM (RFC 5802, 7677) as Kafka speaks it: credentials as the controller
//! stores them (salted and hashed, never the password), the server side of
//! one exchange, and PLAIN checked against the same credentials (as
//! Redpanda does), so one user store serves both mechanisms.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// Kafka's bounds on a credential's iterations (ScramMechanism).
pub const ITERATIONS_MIN: u32 = 4096;
pub const ITERATIONS_MAX: u32 = 16384;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Mechanism {
    Sha256,
    Sha512,
}

impl Mechanism {
    pub const ALL: [Mechanism; 2] = [Mechanism::Sha256, Mechanism::Sha512];

    /// The SASL mechanism name ("SCRAM-SHA-256").
    pub fn sasl_name(self) -> &'static str {
        match self {
            Mechanism::Sha256 => "SCRAM-SHA-256",
            Mechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_sasl_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.sasl_name() == name)
    }

    /// Kafka's wire code (ScramMechanism: 1 SHA-256, 2 SHA-512).
    pub fn code(self) -> i8 {
        match self {
            Mechanism::Sha256 => 1,
            Mechanism::Sha512 => 2,
        }
    }

    pub fn from_code(code: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.code() == code)
    }

    fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        match self {
            Mechanism::Sha256 => {
                let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
                parts.iter().for_each(|p| m.update(p));
                m.finalize().into_bytes().to_vec()
            }
            Mechanism::Sha512 => {
                let mut m = Hmac::<Sha512>::new_from_slice(key).expect("HMAC takes any key length");
                parts.iter().for_each(|p| m.update(p));
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Mechanism::Sha256 => Sha256::digest(data).to_vec(),
            Mechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// Hi(password, salt, i): PBKDF2 with HMAC of this hash.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Mechanism::Sha256 => pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password, salt, iterations).to_vec(),
            Mechanism::Sha512 => pbkdf2::pbkdf2_hmac_array::<Sha512, 64>(password, salt, iterations).to_vec(),
        }
    }
}

/// What the controller keeps of one user's password for one mechanism.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: u32,
}

impl std::fmt::Display for Mechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.sasl_name())
    }
}

impl Credential {
    /// From a salted password (what AlterUserScramCredentials carries).
    pub fn from_salted(mech: Mechanism, salted: &[u8], salt: Vec<u8>, iterations: u32) -> Self {
        let client_key = mech.hmac(salted, &[b"Client Key"]);
        Credential { stored_key: mech.hash(&client_key), server_key: mech.hmac(salted, &[b"Server Key"]), salt, iterations }
    }

    /// From a password, with a fresh random salt (the admin API).
    pub fn from_password(mech: Mechanism, password: &str, iterations: u32) -> Self {
        let salt: [u8; 24] = rand::random();
        let salted = mech.salted_password(password.as_bytes(), &salt, iterations);
        Self::from_salted(mech, &salted, salt.to_vec(), iterations)
    }

    /// Whether `password` is this credential's (PLAIN).
    pub fn verifies(&self, mech: Mechanism, password: &str) -> bool {
        let salted = mech.salted_password(password.as_bytes(), &self.salt, self.iterations);
        let stored = mech.hash(&mech.hmac(&salted, &[b"Client Key"]));
        bool::from(stored.ct_eq(&self.stored_key))
    }
}

/// Checks a credential's iterations as Kafka does (UNACCEPTABLE_CREDENTIAL).
pub fn check_iterations(iterations: i32) -> Result<u32, String> {
    u32::try_from(iterations)
        .ok()
        .filter(|i| (ITERATIONS_MIN..=ITERATIONS_MAX).contains(i))
        .ok_or_else(|| format!("iterations {iterations} is outside {ITERATIONS_MIN}..={ITERATIONS_MAX}"))
}

/// Why an exchange failed. The client is told only that authentication
/// failed; the reason goes to the server's log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("malformed {0} message: {1}")]
    Malformed(&'static str, String),
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    #[error("wrong password for user {0:?}")]
    BadProof(String),
    #[error("{0}")]
    Unsupported(String),
}

/// The server side of one SCRAM exchange: `first` answers the client's
/// first message, `last` checks its proof and answers with the server's
/// signature.
pub struct ServerExchange {
    mech: Mechanism,
    user: String,
    cred: Credential,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

impl ServerExchange {
    /// `lookup` finds a user's credential for this mechanism.
    pub fn first(mech: Mechanism, msg: &[u8], lookup: impl Fn(&str) -> Option<Credential>) -> Result<(Self, Vec<u8>), AuthError> {
        let msg = std::str::from_utf8(msg).map_err(|_| AuthError::Malformed("client-first", "not UTF-8".into()))?;
        // gs2-header: "n,," or "y,," (no channel binding), optionally "a=authzid".
        let mut parts = msg.splitn(3, ',');
        let (cb, authzid, bare) = (parts.next().unwrap_or(""), parts.next(), parts.next());
        let (Some(authzid), Some(bare)) = (authzid, bare) else {
            return Err(AuthError::Malformed("client-first", "no gs2 header".into()));
        };
        if cb != "n" && cb != "y" {
            return Err(AuthError::Unsupported("channel binding is not supported".into()));
        }
        let attrs = attributes(bare);
        if attrs.iter().any(|(k, _)| *k == "m") {
            return Err(AuthError::Unsupported("SCRAM extension 'm' is not supported".into()));
        }
        if attrs.iter().any(|(k, v)| *k == "tokenauth" && *v == "true") {
            return Err(AuthError::Unsupported("delegation tokens are not supported".into()));
        }
        let user = attr(&attrs, "n").map(unescape_name).ok_or_else(|| AuthError::Malformed("client-first", "no user name".into()))?;
        if let Some(a) = authzid.strip_prefix("a=") {
            if unescape_name(a) != user {
                return Err(AuthError::Unsupported("an authorization id other than the user is not supported".into()));
            }
        }
        let client_nonce = attr(&attrs, "r").filter(|r| !r.is_empty()).ok_or_else(|| AuthError::Malformed("client-first", "no nonce".into()))?;
        let cred = lookup(&user).ok_or_else(|| AuthError::UnknownUser(user.clone()))?;
        let ours: [u8; 18] = rand::random();
        let nonce = format!("{client_nonce}{}", B64.encode(ours));
        let server_first = format!("r={nonce},s={},i={}", B64.encode(&cred.salt), cred.iterations);
        let out = server_first.clone().into_bytes();
        Ok((ServerExchange { mech, user, cred, client_first_bare: bare.to_string(), server_first, nonce }, out))
    }

    pub fn mechanism(&self) -> Mechanism {
        self.mech
    }

    pub fn last(self, msg: &[u8]) -> Result<(String, Vec<u8>), AuthError> {
        let msg = std::str::from_utf8(msg).map_err(|_| AuthError::Malformed("client-final", "not UTF-8".into()))?;
        let (without_proof, proof) = msg.rsplit_once(",p=").ok_or_else(|| AuthError::Malformed("client-final", "no proof".into()))?;
        let attrs = attributes(without_proof);
        // Kafka checks that the nonce *ends* with the server's, and
        // librdkafka relies on it: it sends its own nonce, then the whole
        // server nonce (which already starts with its own).
        if !attr(&attrs, "r").is_some_and(|r| r.ends_with(self.nonce.as_str())) {
            return Err(AuthError::Malformed("client-final", "nonce does not end with the server's".into()));
        }
        let proof = B64.decode(proof).map_err(|_| AuthError::Malformed("client-final", "proof is not base64".into()))?;
        let auth_message = format!("{},{},{}", self.client_first_bare, self.server_first, without_proof);
        let signature = self.mech.hmac(&self.cred.stored_key, &[auth_message.as_bytes()]);
        if proof.len() != signature.len() {
            return Err(AuthError::BadProof(self.user));
        }
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
        if !bool::from(self.mech.hash(&client_key).ct_eq(&self.cred.stored_key)) {
            return Err(AuthError::BadProof(self.user));
        }
        let server_signature = self.mech.hmac(&self.cred.server_key, &[auth_message.as_bytes()]);
        Ok((self.user, format!("v={}", B64.encode(server_signature)).into_bytes()))
    }
}

/// A PLAIN message ("authzid NUL user NUL password"): the user and password.
pub fn parse_plain(msg: &[u8]) -> Result<(String, String), AuthError> {
    let text = std::str::from_utf8(msg).map_err(|_| AuthError::Malformed("PLAIN", "not UTF-8".into()))?;
    let parts: Vec<&str> = text.split('\0').collect();
    let [authzid, user, password] = parts[..] else {
        return Err(AuthError::Malformed("PLAIN", "expected authzid, user and password".into()));
    };
    if user.is_empty() || password.is_empty() {
        return Err(AuthError::Malformed("PLAIN", "empty user or password".into()));
    }
    if !authzid.is_empty() && authzid != user {
        return Err(AuthError::Unsupported("an authorization id other than the user is not supported".into()));
    }
    Ok((user.to_string(), password.to_string()))
}

fn attributes(s: &str) -> Vec<(&str, &str)> {
    s.split(',').filter_map(|kv| kv.split_once('=')).collect()
}

fn attr<'a>(attrs: &[(&'a str, &'a str)], key: &str) -> Option<&'a str> {
    attrs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// SCRAM's saslname: "=2C" is ',' and "=3D" is '='.
fn unescape_name(s: &str) -> String {
    s.replace("=2C", ",").replace("=3D", "=")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client's side, written from RFC 5802, to drive the server's.
    fn client_final(mech: Mechanism, password: &str, client_first_bare: &str, server_first: &str) -> (String, Vec<u8>) {
        let attrs = attributes(server_first);
        let salt = B64.decode(attr(&attrs, "s").unwrap()).unwrap();
        let iterations: u32 = attr(&attrs, "i").unwrap().parse().unwrap();
        let salted = mech.salted_password(password.as_bytes(), &salt, iterations);
        let client_key = mech.hmac(&salted, &[b"Client Key"]);
        let stored = mech.hash(&client_key);
        let without_proof = format!("c=biws,r={}", attr(&attrs, "r").unwrap());
        let auth = format!("{client_first_bare},{server_first},{without_proof}");
        let sig = mech.hmac(&stored, &[auth.as_bytes()]);
        let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
        let server_sig = mech.hmac(&mech.hmac(&salted, &[b"Server Key"]), &[auth.as_bytes()]);
        (format!("{without_proof},p={}", B64.encode(proof)), server_sig)
    }

    fn run(mech: Mechanism, stored_password: &str, given: &str, user: &str) -> Result<String, AuthError> {
        let cred = Credential::from_password(mech, stored_password, 4096);
        let first_bare = format!("n={},r=fyko+d2lbbFgONRv9qkxdawL", user.replace('=', "=3D").replace(',', "=2C"));
        let (ex, server_first) = ServerExchange::first(mech, format!("n,,{first_bare}").as_bytes(), |u| (u == "al,ice=").then(|| cred.clone()))?;
        let server_first = String::from_utf8(server_first).unwrap();
        assert!(server_first.starts_with("r=fyko+d2lbbFgONRv9qkxdawL"), "the server's nonce extends the client's");
        let (last, expect_sig) = client_final(mech, given, &first_bare, &server_first);
        let (who, server_final) = ex.last(last.as_bytes())?;
        assert_eq!(server_final, format!("v={}", B64.encode(expect_sig)).into_bytes(), "the client can verify the server");
        Ok(who)
    }

    #[test]
    fn a_right_password_authenticates_with_both_hashes() {
        for mech in Mechanism::ALL {
            assert_eq!(run(mech, "pencil", "pencil", "al,ice=").unwrap(), "al,ice=");
        }
    }

    #[test]
    fn a_wrong_password_or_unknown_user_does_not() {
        for mech in Mechanism::ALL {
            assert!(matches!(run(mech, "pencil", "pen", "al,ice="), Err(AuthError::BadProof(_))));
            assert!(matches!(run(mech, "pencil", "pencil", "bob"), Err(AuthError::UnknownUser(_))));
        }
    }

    #[test]
    fn rfc_7677_test_vector() {
        // RFC 7677 section 3: user "user", password "pencil".
        let mech = Mechanism::Sha256;
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let salted = mech.salted_password(b"pencil", &salt, 4096);
        let cred = Credential::from_salted(mech, &salted, salt, 4096);
        let first = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
        let (mut ex, _) = ServerExchange::first(mech, first, |_| Some(cred.clone())).unwrap();
        // The RFC's server nonce, in place of our random one.
        ex.nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into();
        ex.server_first = format!("r={},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", ex.nonce);
        let last = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        let (_, server_final) = ex.last(last).unwrap();
        assert_eq!(server_final, b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    }

    #[test]
    fn plain_checks_against_scram_credentials() {
        let cred = Credential::from_password(Mechanism::Sha512, "s3cret", 4096);
        assert!(cred.verifies(Mechanism::Sha512, "s3cret"));
        assert!(!cred.verifies(Mechanism::Sha512, "s3cre"));
        assert_eq!(parse_plain(b"\0alice\0s3cret").unwrap(), ("alice".into(), "s3cret".into()));
        assert!(parse_plain(b"alice\0s3cret").is_err());
        assert!(parse_plain(b"bob\0alice\0s3cret").is_err());
    }

    #[test]
    fn iterations_are_bounded_as_kafka_bounds_them() {
        assert!(check_iterations(4095).is_err());
        assert!(check_iterations(16385).is_err());
        assert_eq!(check_iterations(8192), Ok(8192));
    }
}
