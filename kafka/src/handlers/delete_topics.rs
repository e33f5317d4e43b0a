use chronik::PartitionStore;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use tracing::info;

use crate::errors;
use crate::server::{Caller, Context};
use chronik::security::acl::Operation;

pub async fn handle<S: PartitionStore>(ctx: &Context<S>, req: DeleteTopicsRequest, version: i16, caller: &Caller) -> DeleteTopicsResponse {
    let authz = ctx.authz(caller);
    // v6 names topics in `topics` (by name or by id); earlier versions in `topic_names`.
    let asked: Vec<(Result<String, i16>, uuid::Uuid)> = if version >= 6 {
        req.topics
            .iter()
            .map(|t| match &t.name {
                Some(n) => (Ok(n.0.to_string()), super::topic_uuid(ctx, n)),
                None => (super::topic_named(ctx, &TopicName::default(), t.topic_id, true), t.topic_id),
            })
            .collect()
    } else {
        req.topic_names.iter().map(|n| (Ok(n.0.to_string()), uuid::Uuid::nil())).collect()
    };
    let mut resp = DeleteTopicsResponse::default();
    for (name, id) in asked {
        let mut r = DeletableTopicResult::default();
        r.topic_id = id;
        let result = match name {
            Ok(name) if !authz.topic(Operation::Delete, &name) => {
                r.name = Some(TopicName(super::str(name.clone())));
                Err((errors::TOPIC_AUTHORIZATION_FAILED, "Topic authorization failed.".to_string()))
            }
            Ok(name) => {
                r.name = Some(TopicName(super::str(name.clone())));
                let result = ctx.store.delete_topic(name.clone()).await.map_err(|e| (errors::code(&e), e.to_string()));
                if result.is_ok() {
                    info!(topic = %name, "deleted topic");
                }
                result
            }
            Err(code) => Err((code, format!("no topic has id {id}"))),
        };
        if let Err((code, message)) = result {
            r.error_code = code;
            if version >= 5 {
                r.error_message = Some(super::str(message));
            }
        }
        resp.responses.push(r);
    }
    resp
}
