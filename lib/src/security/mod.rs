//! Security, pure: who a client is (principals), how it proves it (SCRAM,
//! PLAIN, certificates), what it may do (ACLs), and what the controller
//! replicates of it ([`SecurityState`]: users' SCRAM credentials and the
//! ACLs). Listeners and TLS settings are in `listeners` and `tls`.

pub mod acl;
pub mod listeners;
pub mod principal;
pub mod scram;
pub mod settings;
pub mod tls;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use acl::{AclBinding, AclFilter, Acls};
use scram::{Credential, Mechanism};

/// What the controller group holds of security.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityState {
    /// SCRAM credentials by user, then mechanism.
    #[serde(default)]
    pub users: BTreeMap<String, BTreeMap<Mechanism, Credential>>,
    #[serde(default)]
    pub acls: Acls,
}

/// A change to [`SecurityState`], replicated by the controller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SecurityCommand {
    /// Sets (or replaces) users' credentials and deletes others
    /// (AlterUserScramCredentials): each change stands alone.
    AlterScram {
        upsert: Vec<(String, Mechanism, Credential)>,
        delete: Vec<(String, Mechanism)>,
    },
    CreateAcls(Vec<AclBinding>),
    /// Deletes every binding any of the filters matches.
    DeleteAcls(Vec<AclFilter>),
}

impl SecurityState {
    pub fn credential(&self, user: &str, mech: Mechanism) -> Option<&Credential> {
        self.users.get(user)?.get(&mech)
    }

    /// Applies a change; it cannot fail (the front door validated it), so
    /// every replica ends in the same state.
    pub fn apply(&mut self, cmd: &SecurityCommand) {
        match cmd {
            SecurityCommand::AlterScram { upsert, delete } => {
                for (user, mech) in delete {
                    if let Some(creds) = self.users.get_mut(user) {
                        creds.remove(mech);
                        if creds.is_empty() {
                            self.users.remove(user);
                        }
                    }
                }
                for (user, mech, cred) in upsert {
                    self.users.entry(user.clone()).or_default().insert(*mech, cred.clone());
                }
            }
            SecurityCommand::CreateAcls(bindings) => self.acls.bindings.extend(bindings.iter().cloned()),
            SecurityCommand::DeleteAcls(filters) => self.acls.bindings.retain(|b| !filters.iter().any(|f| f.matches(b))),
        }
    }
}

impl SecurityCommand {
    /// What the change is, for the log: users and mechanisms, never
    /// credentials.
    pub fn summary(&self) -> String {
        match self {
            SecurityCommand::AlterScram { upsert, delete } => {
                let up: Vec<String> = upsert.iter().map(|(u, m, _)| format!("{u}/{m}")).collect();
                let del: Vec<String> = delete.iter().map(|(u, m)| format!("{u}/{m}")).collect();
                format!("SCRAM credentials set [{}], deleted [{}]", up.join(", "), del.join(", "))
            }
            SecurityCommand::CreateAcls(b) => format!("{} ACLs created", b.len()),
            SecurityCommand::DeleteAcls(f) => format!("ACLs deleted by {} filters", f.len()),
        }
    }
}

impl SecurityState {
    /// Whether this state shows the change's effect (a node waits for it
    /// after the change committed).
    pub fn reflects(&self, cmd: &SecurityCommand) -> bool {
        match cmd {
            SecurityCommand::AlterScram { upsert, delete } => {
                upsert.iter().all(|(u, m, c)| self.credential(u, *m) == Some(c))
                    && delete.iter().all(|(u, m)| upsert.iter().any(|(uu, mm, _)| uu == u && mm == m) || self.credential(u, *m).is_none())
            }
            SecurityCommand::CreateAcls(bindings) => bindings.iter().all(|b| self.acls.bindings.contains(b)),
            SecurityCommand::DeleteAcls(filters) => !self.acls.bindings.iter().any(|b| filters.iter().any(|f| f.matches(b))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_upserted_and_deleted_per_mechanism() {
        let mut s = SecurityState::default();
        let c = Credential::from_password(Mechanism::Sha256, "pw", 4096);
        s.apply(&SecurityCommand::AlterScram {
            upsert: vec![("a".into(), Mechanism::Sha256, c.clone()), ("a".into(), Mechanism::Sha512, c.clone())],
            delete: vec![],
        });
        assert_eq!(s.users["a"].len(), 2);
        s.apply(&SecurityCommand::AlterScram { upsert: vec![], delete: vec![("a".into(), Mechanism::Sha256)] });
        assert!(s.credential("a", Mechanism::Sha256).is_none());
        s.apply(&SecurityCommand::AlterScram { upsert: vec![], delete: vec![("a".into(), Mechanism::Sha512)] });
        assert!(s.users.is_empty(), "a user without credentials is gone");
        let json = serde_json::to_string(&s).unwrap();
        assert!(!json.contains("pw"));
    }
}
