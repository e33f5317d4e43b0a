//! AlterUserScramCredentials (51): sets and deletes users' SCRAM
//! credentials through the controller. The client sends a salt and salted
//! password (never the password); the controller keeps the salt, the
//! stored key and the server key. All of one user's changes succeed or
//! fail together, as in Kafka.

use std::collections::BTreeMap;

use chronik::security::acl::Operation;
use chronik::security::scram::{self, Credential, Mechanism};
use chronik::security::SecurityCommand;
use chronik::PartitionStore;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse};

use crate::errors;
use crate::server::{Caller, Context};

type Changes = (Vec<(String, Mechanism, Credential)>, Vec<(String, Mechanism)>);

pub async fn handle<S: PartitionStore>(ctx: &Context<S>, req: AlterUserScramCredentialsRequest, caller: &Caller) -> AlterUserScramCredentialsResponse {
    // Per user: its changes, or the first error among them.
    let mut users: BTreeMap<String, Result<Changes, (i16, String)>> = BTreeMap::new();
    let mut seen: Vec<(String, i8)> = vec![];
    let mut note = |user: &str, mech: i8, change: Result<Changes, (i16, String)>| {
        let dup = seen.contains(&(user.to_string(), mech));
        seen.push((user.to_string(), mech));
        let change =
            if dup { Err((errors::DUPLICATE_RESOURCE, format!("A user credential cannot be altered twice in the same request: {user}"))) } else { change };
        let entry = users.entry(user.to_string()).or_insert_with(|| Ok((vec![], vec![])));
        match (entry.as_mut(), change) {
            (Ok(have), Ok((up, del))) => {
                have.0.extend(up);
                have.1.extend(del);
            }
            (Ok(_), Err(e)) => *entry = Err(e),
            (Err(_), _) => {}
        }
    };
    let state = ctx.store.security();
    for d in &req.deletions {
        let user = d.name.to_string();
        let change = check(&user, d.mechanism).and_then(|m| match state.credential(&user, m) {
            Some(_) => Ok((vec![], vec![(user.clone(), m)])),
            None => Err((errors::RESOURCE_NOT_FOUND, format!("Attempt to delete a user credential that does not exist: {user}"))),
        });
        note(&user, d.mechanism, change);
    }
    for u in &req.upsertions {
        let user = u.name.to_string();
        let change = check(&user, u.mechanism).and_then(|m| {
            let iterations = scram::check_iterations(u.iterations).map_err(|e| (errors::UNACCEPTABLE_CREDENTIAL, e))?;
            if u.salt.is_empty() || u.salted_password.is_empty() {
                return Err((errors::UNACCEPTABLE_CREDENTIAL, "salt and salted password must not be empty".into()));
            }
            Ok((vec![(user.clone(), m, Credential::from_salted(m, &u.salted_password, u.salt.to_vec(), iterations))], vec![]))
        });
        note(&user, u.mechanism, change);
    }
    let authorized = ctx.authz(caller).cluster(Operation::Alter);
    let (mut upsert, mut delete) = (vec![], vec![]);
    for change in users.values().flatten() {
        upsert.extend(change.0.iter().cloned());
        delete.extend(change.1.iter().cloned());
    }
    let applied = if !authorized || (upsert.is_empty() && delete.is_empty()) {
        Ok(())
    } else {
        ctx.store.alter_security(SecurityCommand::AlterScram { upsert, delete }).await.map_err(|e| (errors::code(&e), e.to_string()))
    };
    let mut resp = AlterUserScramCredentialsResponse::default();
    for (user, result) in users {
        let result = match (authorized, result, &applied) {
            (false, ..) => Err((errors::CLUSTER_AUTHORIZATION_FAILED, "Cluster authorization failed.".to_string())),
            (true, Ok(_), Err(e)) => Err(e.clone()),
            (true, r, _) => r.map(|_| ()),
        };
        let mut r = AlterUserScramCredentialsResult::default().with_user(super::str(user));
        if let Err((code, msg)) = result {
            r.error_code = code;
            r.error_message = Some(super::str(msg));
        }
        resp.results.push(r);
    }
    resp
}

fn check(user: &str, mechanism: i8) -> Result<Mechanism, (i16, String)> {
    if user.is_empty() {
        return Err((errors::UNACCEPTABLE_CREDENTIAL, "Username must not be empty".into()));
    }
    Mechanism::from_code(mechanism).ok_or_else(|| (errors::UNSUPPORTED_SASL_MECHANISM, format!("Unknown SCRAM mechanism {mechanism}")))
}
