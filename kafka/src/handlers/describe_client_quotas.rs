//! DescribeClientQuotas (48): Chronik enforces no client quotas, so no
//! entity has one; the answer is an empty list (what Kafka answers when
//! none is set). `kafka-configs --describe --entity-type users` asks it
//! before it lists SCRAM credentials.

use chronik::security::acl::Operation;
use chronik::PartitionStore;
use kafka_protocol::messages::{DescribeClientQuotasRequest, DescribeClientQuotasResponse};

use crate::errors;
use crate::server::{Caller, Context};

pub fn handle<S: PartitionStore>(ctx: &Context<S>, _req: DescribeClientQuotasRequest, caller: &Caller) -> DescribeClientQuotasResponse {
    let mut resp = DescribeClientQuotasResponse::default();
    if !ctx.authz(caller).cluster(Operation::DescribeConfigs) {
        resp.error_code = errors::CLUSTER_AUTHORIZATION_FAILED;
        resp.error_message = Some(super::str("Cluster authorization failed."));
        return resp;
    }
    resp.entries = Some(vec![]);
    resp
}
