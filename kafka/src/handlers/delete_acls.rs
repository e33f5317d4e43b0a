//! DeleteAcls (31): removes every binding each filter matches, and names
//! them per filter.

use chronik::security::acl::{AclFilter, Operation};
use chronik::security::SecurityCommand;
use chronik::PartitionStore;
use kafka_protocol::messages::delete_acls_response::{DeleteAclsFilterResult, DeleteAclsMatchingAcl};
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse};

use super::describe_acls::acl_filter;
use crate::errors;
use crate::server::{Caller, Context};

pub async fn handle<S: PartitionStore>(ctx: &Context<S>, r: DeleteAclsRequest, caller: &Caller) -> DeleteAclsResponse {
    let authz = ctx.authz(caller);
    let refusal = super::describe_acls::acl_api_refusal(&authz, Operation::Alter);
    let filters: Vec<Result<AclFilter, (i16, String)>> = r
        .filters
        .iter()
        .map(|f| match &refusal {
            Some(e) => Err(e.clone()),
            None => acl_filter(
                f.resource_type_filter,
                f.resource_name_filter.as_ref(),
                f.pattern_type_filter,
                f.principal_filter.as_ref(),
                f.host_filter.as_ref(),
                f.operation,
                f.permission_type,
            )
            .map_err(|e| (errors::INVALID_REQUEST, e)),
        })
        .collect();
    let state = ctx.store.security();
    let good: Vec<AclFilter> = filters.iter().filter_map(|f| f.as_ref().ok().cloned()).collect();
    let any_match = good.iter().any(|f| state.acls.matching(f).next().is_some());
    let stored =
        if any_match { ctx.store.alter_security(SecurityCommand::DeleteAcls(good)).await.map_err(|e| (errors::code(&e), e.to_string())) } else { Ok(()) };
    let filter_results = filters
        .into_iter()
        .map(|f| {
            let mut res = DeleteAclsFilterResult::default();
            match f.and_then(|f| stored.clone().map(|()| f)) {
                Ok(f) => {
                    res.matching_acls = state
                        .acls
                        .matching(&f)
                        .map(|b| {
                            DeleteAclsMatchingAcl::default()
                                .with_resource_type(b.resource_type.code())
                                .with_resource_name(super::str(b.name.clone()))
                                .with_pattern_type(b.pattern.code())
                                .with_principal(super::str(b.principal.clone()))
                                .with_host(super::str(b.host.clone()))
                                .with_operation(b.operation.code())
                                .with_permission_type(b.permission.code())
                        })
                        .collect();
                }
                Err((code, msg)) => {
                    res.error_code = code;
                    res.error_message = Some(super::str(msg));
                }
            }
            res
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(filter_results)
}
