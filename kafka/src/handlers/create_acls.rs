//! CreateAcls (30): adds ACL bindings through the controller; each
//! creation is answered on its own (an invalid one does not stop the rest).

use chronik::security::acl::{AclBinding, Operation, PatternType, Permission, ResourceType};
use chronik::security::SecurityCommand;
use chronik::PartitionStore;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse};

use crate::errors;
use crate::server::{Caller, Context};

fn binding(c: &AclCreation) -> Result<AclBinding, String> {
    let b = AclBinding {
        resource_type: ResourceType::from_code(c.resource_type).ok_or("unknown resource type")?,
        name: c.resource_name.to_string(),
        pattern: PatternType::from_code(c.resource_pattern_type).ok_or("unknown pattern type")?,
        principal: c.principal.to_string(),
        host: c.host.to_string(),
        operation: Operation::from_code(c.operation).ok_or("unknown operation")?,
        permission: Permission::from_code(c.permission_type).ok_or("unknown permission")?,
    };
    b.validate()?;
    Ok(b)
}

pub async fn handle<S: PartitionStore>(ctx: &Context<S>, r: CreateAclsRequest, caller: &Caller) -> CreateAclsResponse {
    let authz = ctx.authz(caller);
    let refusal = super::describe_acls::acl_api_refusal(&authz, Operation::Alter);
    let parsed: Vec<Result<AclBinding, (i16, String)>> = r
        .creations
        .iter()
        .map(|c| match &refusal {
            Some(e) => Err(e.clone()),
            None => binding(c).map_err(|e| (errors::INVALID_REQUEST, e)),
        })
        .collect();
    let good: Vec<AclBinding> = parsed.iter().filter_map(|p| p.as_ref().ok().cloned()).collect();
    let stored =
        if good.is_empty() { Ok(()) } else { ctx.store.alter_security(SecurityCommand::CreateAcls(good)).await.map_err(|e| (errors::code(&e), e.to_string())) };
    let results = parsed
        .into_iter()
        .map(|p| {
            let mut res = AclCreationResult::default();
            if let Err((code, msg)) = p.and_then(|_| stored.clone()) {
                res.error_code = code;
                res.error_message = Some(super::str(msg));
            }
            res
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}
