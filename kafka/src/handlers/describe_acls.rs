//! DescribeAcls (29): the ACLs a filter matches, grouped by resource
//! pattern. SECURITY_DISABLED without an authorizer, as in Kafka.

use std::collections::BTreeMap;

use chronik::security::acl::{AclFilter, Operation, PatternType, Permission, ResourceType};
use chronik::PartitionStore;
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::errors;
use crate::server::{Caller, Context};

/// A filter from the wire (DescribeAcls, DeleteAcls): ANY and null match
/// anything; an unknown code is INVALID_REQUEST.
#[allow(clippy::too_many_arguments)]
pub(crate) fn acl_filter(
    resource_type: i8,
    name: Option<&StrBytes>,
    pattern: i8,
    principal: Option<&StrBytes>,
    host: Option<&StrBytes>,
    operation: i8,
    permission: i8,
) -> Result<AclFilter, String> {
    fn any<T: PartialEq>(code: i8, any: T, parse: fn(i8) -> Option<T>, what: &str) -> Result<Option<T>, String> {
        let v = parse(code).ok_or_else(|| format!("{what} {code} is not valid in a filter"))?;
        Ok((v != any).then_some(v))
    }
    Ok(AclFilter {
        resource_type: any(resource_type, ResourceType::Any, ResourceType::from_code, "resource type")?,
        name: name.map(|n| n.to_string()),
        pattern: any(pattern, PatternType::Any, PatternType::from_code, "pattern type")?,
        principal: principal.map(|p| p.to_string()),
        host: host.map(|h| h.to_string()),
        operation: any(operation, Operation::Any, Operation::from_code, "operation")?,
        permission: any(permission, Permission::Any, Permission::from_code, "permission")?,
    })
}

/// Why the ACL APIs refuse this caller, if they do: SECURITY_DISABLED
/// without an authorizer (as Kafka), else `op` on the cluster is needed.
pub(crate) fn acl_api_refusal(authz: &crate::authz::Authz, op: Operation) -> Option<(i16, String)> {
    if !authz.enabled() {
        Some((errors::SECURITY_DISABLED, "No Authorizer is configured on the broker (set authorizer = \"acl\")".into()))
    } else if !authz.cluster(op) {
        Some((errors::CLUSTER_AUTHORIZATION_FAILED, "Cluster authorization failed.".into()))
    } else {
        None
    }
}

pub fn handle<S: PartitionStore>(ctx: &Context<S>, r: DescribeAclsRequest, caller: &Caller) -> DescribeAclsResponse {
    let mut resp = DescribeAclsResponse::default();
    let authz = ctx.authz(caller);
    let fail = |mut resp: DescribeAclsResponse, (code, msg): (i16, String)| {
        resp.error_code = code;
        resp.error_message = Some(super::str(msg));
        resp
    };
    if let Some(refusal) = acl_api_refusal(&authz, Operation::Describe) {
        return fail(resp, refusal);
    }
    let filter = match acl_filter(
        r.resource_type_filter,
        r.resource_name_filter.as_ref(),
        r.pattern_type_filter,
        r.principal_filter.as_ref(),
        r.host_filter.as_ref(),
        r.operation,
        r.permission_type,
    ) {
        Ok(f) => f,
        Err(e) => return fail(resp, (errors::INVALID_REQUEST, e)),
    };
    let state = ctx.store.security();
    let mut by_resource: BTreeMap<(i8, String, i8), Vec<AclDescription>> = BTreeMap::new();
    for b in state.acls.matching(&filter) {
        by_resource.entry((b.resource_type.code(), b.name.clone(), b.pattern.code())).or_default().push(
            AclDescription::default()
                .with_principal(super::str(b.principal.clone()))
                .with_host(super::str(b.host.clone()))
                .with_operation(b.operation.code())
                .with_permission_type(b.permission.code()),
        );
    }
    resp.resources = by_resource
        .into_iter()
        .map(|((rt, name, pattern), acls)| {
            DescribeAclsResource::default().with_resource_type(rt).with_resource_name(super::str(name)).with_pattern_type(pattern).with_acls(acls)
        })
        .collect();
    resp
}
