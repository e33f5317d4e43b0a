//! DescribeUserScramCredentials (50): which SCRAM mechanisms each user has
//! a credential for, and its iterations; never salts or keys.

use chronik::security::acl::Operation;
use chronik::PartitionStore;
use kafka_protocol::messages::describe_user_scram_credentials_response::{CredentialInfo, DescribeUserScramCredentialsResult};
use kafka_protocol::messages::{DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse};

use crate::errors;
use crate::server::{Caller, Context};

pub fn handle<S: PartitionStore>(ctx: &Context<S>, req: DescribeUserScramCredentialsRequest, caller: &Caller) -> DescribeUserScramCredentialsResponse {
    let mut resp = DescribeUserScramCredentialsResponse::default();
    if !ctx.authz(caller).cluster(Operation::Describe) {
        // The error on every user asked about. Kafka also sets it at the
        // top, and librdkafka (2.x) then frees the message twice and
        // aborts the client; per user, every client reports it alike.
        let msg = "Cluster authorization failed.";
        resp.results = req
            .users
            .into_iter()
            .flatten()
            .map(|u| {
                DescribeUserScramCredentialsResult::default()
                    .with_user(u.name)
                    .with_error_code(errors::CLUSTER_AUTHORIZATION_FAILED)
                    .with_error_message(Some(super::str(msg)))
            })
            .collect();
        if resp.results.is_empty() {
            // Asked about everyone: only the top-level error can say it.
            resp.error_code = errors::CLUSTER_AUTHORIZATION_FAILED;
            resp.error_message = Some(super::str(msg));
        }
        return resp;
    }
    let state = ctx.store.security();
    let asked: Vec<String> = match req.users {
        Some(users) if !users.is_empty() => users.into_iter().map(|u| u.name.to_string()).collect(),
        _ => state.users.keys().cloned().collect(),
    };
    for user in &asked {
        let mut r = DescribeUserScramCredentialsResult::default().with_user(super::str(user.clone()));
        if asked.iter().filter(|u| *u == user).count() > 1 {
            r.error_code = errors::DUPLICATE_RESOURCE;
            r.error_message = Some(super::str(format!("Cannot describe SCRAM credentials for the same user twice in a single request: {user}")));
        } else {
            match state.users.get(user) {
                Some(creds) => {
                    r.credential_infos =
                        creds.iter().map(|(m, c)| CredentialInfo::default().with_mechanism(m.code()).with_iterations(c.iterations as i32)).collect();
                }
                None => {
                    r.error_code = errors::RESOURCE_NOT_FOUND;
                    r.error_message = Some(super::str(format!("Attempt to describe a user credential that does not exist: {user}")));
                }
            }
        }
        resp.results.push(r);
    }
    resp
}
