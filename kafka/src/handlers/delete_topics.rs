use chronik::PartitionStore;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use tracing::info;

use crate::errors;
use crate::server::Context;

pub async fn handle<S: PartitionStore>(ctx: &Context<S>, req: DeleteTopicsRequest, version: i16) -> DeleteTopicsResponse {
    // v6 names topics in `topics` (by name or id); earlier versions in `topic_names`.
    let names: Vec<Result<String, uuid::Uuid>> = if version >= 6 {
        req.topics.iter().map(|t| t.name.as_ref().map(|n| n.0.to_string()).ok_or(t.topic_id)).collect()
    } else {
        req.topic_names.iter().map(|n| Ok(n.0.to_string())).collect()
    };
    let mut resp = DeleteTopicsResponse::default();
    for name in names {
        let mut r = DeletableTopicResult::default();
        match name {
            Ok(name) => {
                r.name = Some(TopicName(super::str(name.clone())));
                match ctx.store.delete_topic(name.clone()).await {
                    Ok(()) => info!(topic = %name, "deleted topic"),
                    Err(e) => {
                        r.error_code = errors::code(&e);
                        if version >= 5 {
                            r.error_message = Some(super::str(e.to_string()));
                        }
                    }
                }
            }
            Err(id) => {
                let view = ctx.store.cluster_view(None);
                match view.topics.iter().find(|t| uuid::Uuid::from_u128(t.id) == id) {
                    Some(t) => {
                        r.name = Some(TopicName(super::str(t.name.clone())));
                        r.topic_id = id;
                        if let Err(e) = ctx.store.delete_topic(t.name.clone()).await {
                            r.error_code = errors::code(&e);
                            if version >= 5 {
                            r.error_message = Some(super::str(e.to_string()));
                        }
                        }
                    }
                    None => {
                        r.topic_id = id;
                        r.error_code = 100; // UNKNOWN_TOPIC_ID
                        r.error_message = Some(super::str(format!("no topic with id {id}")));
                    }
                }
            }
        }
        resp.responses.push(r);
    }
    resp
}
