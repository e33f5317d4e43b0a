//! Kafka's ACL model and its authorizer's decision, pure: bindings (a
//! resource pattern and an access entry), filters (DescribeAcls,
//! DeleteAcls), and `Acls::authorize` as Kafka's StandardAuthorizer decides:
//! super users may do anything; a resource no binding matches is open only
//! if `allow.everyone.if.no.acl.found`; a matching DENY wins over any ALLOW;
//! READ, WRITE, DELETE or ALTER imply DESCRIBE, ALTER_CONFIGS implies
//! DESCRIBE_CONFIGS, ALL implies every operation.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// Kafka's codes for each enum below (their `code()`), which are also what
/// the wire carries.
macro_rules! kafka_enum {
    ($name:ident { $($variant:ident = $code:expr, $text:expr);+ $(;)? }) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name { $($variant),+ }
        impl $name {
            pub fn code(self) -> i8 { match self { $($name::$variant => $code),+ } }
            pub fn from_code(code: i8) -> Option<Self> { match code { $($code => Some($name::$variant),)+ _ => None } }
            /// Kafka's name, as its tools print it.
            pub fn text(self) -> &'static str { match self { $($name::$variant => $text),+ } }
            pub fn from_text(s: &str) -> Option<Self> {
                let s = s.to_ascii_uppercase().replace('-', "_");
                [$($name::$variant),+].into_iter().find(|v| v.text() == s)
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(self.text()) }
        }
    };
}

kafka_enum!(ResourceType {
    Any = 1, "ANY"; Topic = 2, "TOPIC"; Group = 3, "GROUP"; Cluster = 4, "CLUSTER";
    TransactionalId = 5, "TRANSACTIONAL_ID"; DelegationToken = 6, "DELEGATION_TOKEN"; User = 7, "USER";
});

kafka_enum!(PatternType { Any = 1, "ANY"; Match = 2, "MATCH"; Literal = 3, "LITERAL"; Prefixed = 4, "PREFIXED" });

kafka_enum!(Operation {
    Any = 1, "ANY"; All = 2, "ALL"; Read = 3, "READ"; Write = 4, "WRITE"; Create = 5, "CREATE";
    Delete = 6, "DELETE"; Alter = 7, "ALTER"; Describe = 8, "DESCRIBE"; ClusterAction = 9, "CLUSTER_ACTION";
    DescribeConfigs = 10, "DESCRIBE_CONFIGS"; AlterConfigs = 11, "ALTER_CONFIGS"; IdempotentWrite = 12, "IDEMPOTENT_WRITE";
    CreateTokens = 13, "CREATE_TOKENS"; DescribeTokens = 14, "DESCRIBE_TOKENS"; TwoPhaseCommit = 15, "TWO_PHASE_COMMIT";
});

kafka_enum!(Permission { Any = 1, "ANY"; Deny = 2, "DENY"; Allow = 3, "ALLOW" });

/// The cluster resource's only name.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// A literal resource name, principal or host that matches any.
pub const WILDCARD: &str = "*";
pub const WILDCARD_PRINCIPAL: &str = "User:*";

/// One ACL: who (principal, host) may or may not do what to which resources.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub name: String,
    /// Literal or prefixed.
    pub pattern: PatternType,
    /// "User:alice", or "User:*".
    pub principal: String,
    /// An IP address, or "*".
    pub host: String,
    pub operation: Operation,
    /// Allow or deny.
    pub permission: Permission,
}

impl AclBinding {
    /// Refuses what Kafka refuses in CreateAcls.
    pub fn validate(&self) -> Result<(), String> {
        if matches!(self.resource_type, ResourceType::Any) || matches!(self.pattern, PatternType::Any | PatternType::Match) {
            return Err("an ACL names one resource type and a LITERAL or PREFIXED pattern".into());
        }
        if matches!(self.operation, Operation::Any) || matches!(self.permission, Permission::Any) {
            return Err("an ACL names one operation and ALLOW or DENY".into());
        }
        if self.name.is_empty() {
            return Err("resource name is empty".into());
        }
        if self.resource_type == ResourceType::Cluster && self.name != CLUSTER_NAME {
            return Err(format!("the cluster resource is named {CLUSTER_NAME:?}"));
        }
        match self.principal.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
            _ => return Err(format!("principal {:?} is not of the form Type:name", self.principal)),
        }
        if self.host.is_empty() {
            return Err("host is empty (use \"*\" for any)".into());
        }
        Ok(())
    }

    /// Whether this binding's pattern covers resource `name` of `rt`.
    fn covers(&self, rt: ResourceType, name: &str) -> bool {
        self.resource_type == rt
            && match self.pattern {
                PatternType::Literal => self.name == name || self.name == WILDCARD,
                PatternType::Prefixed => name.starts_with(&self.name),
                _ => false,
            }
    }

    fn applies_to(&self, principal: &str, host: &str) -> bool {
        (self.principal == principal || self.principal == WILDCARD_PRINCIPAL) && (self.host == host || self.host == WILDCARD)
    }
}

/// Which bindings a DescribeAcls or DeleteAcls means; None matches any.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclFilter {
    pub resource_type: Option<ResourceType>,
    pub name: Option<String>,
    /// Any (None), a literal or prefixed pattern exactly, or Match: every
    /// pattern that covers `name`.
    pub pattern: Option<PatternType>,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<Operation>,
    pub permission: Option<Permission>,
}

impl AclFilter {
    pub fn matches(&self, b: &AclBinding) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        self.resource_type.is_none_or(|t| t == b.resource_type)
            && self.operation.is_none_or(|o| o == b.operation)
            && self.permission.is_none_or(|p| p == b.permission)
            && eq(&self.principal, &b.principal)
            && eq(&self.host, &b.host)
            && match (self.pattern, &self.name) {
                (Some(PatternType::Match), Some(name)) => b.covers(b.resource_type, name),
                (Some(PatternType::Match), None) | (None, None) => true,
                (p, name) => p.is_none_or(|p| p == b.pattern) && eq(name, &b.name),
            }
    }
}

/// The authorizer's settings (Kafka's super.users and
/// allow.everyone.if.no.acl.found).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthorizerSettings {
    /// Principals ("User:admin") allowed everything.
    pub super_users: BTreeSet<String>,
    /// Whether a resource that no ACL names is open to everyone (Kafka's
    /// default, and ours: false).
    pub allow_everyone_if_no_acl_found: bool,
}

/// The operations that, allowed, imply `op` (Kafka's implied operations).
fn implying(op: Operation) -> &'static [Operation] {
    use Operation::*;
    match op {
        Describe => &[Describe, Read, Write, Delete, Alter, All],
        DescribeConfigs => &[DescribeConfigs, AlterConfigs, All],
        Read => &[Read, All],
        Write => &[Write, All],
        Create => &[Create, All],
        Delete => &[Delete, All],
        Alter => &[Alter, All],
        ClusterAction => &[ClusterAction, All],
        AlterConfigs => &[AlterConfigs, All],
        IdempotentWrite => &[IdempotentWrite, All],
        CreateTokens => &[CreateTokens, All],
        DescribeTokens => &[DescribeTokens, All],
        TwoPhaseCommit => &[TwoPhaseCommit, All],
        All | Any => &[All],
    }
}

/// The cluster's ACLs, as the controller holds them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acls {
    pub bindings: BTreeSet<AclBinding>,
}

impl Acls {
    /// Whether `principal` connecting from `host` may do `op` on resource
    /// `name` of type `rt`.
    pub fn authorize(&self, settings: &AuthorizerSettings, principal: &str, host: &str, op: Operation, rt: ResourceType, name: &str) -> bool {
        if settings.super_users.contains(principal) {
            return true;
        }
        let mut any = false;
        let mut allowed = false;
        for b in self.bindings.iter().filter(|b| b.covers(rt, name)) {
            any = true;
            if !b.applies_to(principal, host) {
                continue;
            }
            match b.permission {
                // DENY of an operation (or ALL) wins; a denied READ does not deny DESCRIBE.
                Permission::Deny if b.operation == op || b.operation == Operation::All => return false,
                Permission::Allow if implying(op).contains(&b.operation) => allowed = true,
                _ => {}
            }
        }
        allowed || (!any && settings.allow_everyone_if_no_acl_found)
    }

    /// Whether `principal` may do `op` on some resource of type `rt`
    /// (Kafka's authorizeByResourceType): an ALLOW exists that no DENY of
    /// the same literal or prefixed pattern (or a wildcard DENY) undoes.
    pub fn authorize_any(&self, settings: &AuthorizerSettings, principal: &str, host: &str, op: Operation, rt: ResourceType) -> bool {
        if settings.super_users.contains(principal) {
            return true;
        }
        let mine = || self.bindings.iter().filter(|b| b.resource_type == rt && b.applies_to(principal, host));
        let denied_all = mine().any(|b| {
            b.permission == Permission::Deny && (b.operation == op || b.operation == Operation::All) && b.pattern == PatternType::Literal && b.name == WILDCARD
        });
        if denied_all {
            return false;
        }
        mine().any(|b| {
            b.permission == Permission::Allow
                && implying(op).contains(&b.operation)
                && !mine().any(|d| {
                    d.permission == Permission::Deny && (d.operation == op || d.operation == Operation::All) && d.pattern == b.pattern && d.name == b.name
                })
        }) || (settings.allow_everyone_if_no_acl_found && !self.bindings.iter().any(|b| b.resource_type == rt))
    }

    /// Bindings a filter matches.
    pub fn matching<'a>(&'a self, f: &'a AclFilter) -> impl Iterator<Item = &'a AclBinding> + 'a {
        self.bindings.iter().filter(move |b| f.matches(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(rt: ResourceType, name: &str, pattern: PatternType, principal: &str, op: Operation, perm: Permission) -> AclBinding {
        AclBinding { resource_type: rt, name: name.into(), pattern, principal: principal.into(), host: "*".into(), operation: op, permission: perm }
    }

    fn acls(bs: Vec<AclBinding>) -> Acls {
        Acls { bindings: bs.into_iter().collect() }
    }

    use Operation::*;
    use PatternType::*;
    use Permission::*;
    use ResourceType::*;

    #[test]
    fn allow_deny_and_implied_describe() {
        let s = AuthorizerSettings::default();
        let a = acls(vec![b(Topic, "orders", Literal, "User:alice", Read, Allow), b(Topic, "orders", Literal, "User:mallory", All, Deny)]);
        assert!(a.authorize(&s, "User:alice", "10.0.0.1", Read, Topic, "orders"));
        assert!(a.authorize(&s, "User:alice", "10.0.0.1", Describe, Topic, "orders"), "READ implies DESCRIBE");
        assert!(!a.authorize(&s, "User:alice", "10.0.0.1", Write, Topic, "orders"));
        assert!(!a.authorize(&s, "User:bob", "10.0.0.1", Read, Topic, "orders"));
        assert!(!a.authorize(&s, "User:mallory", "10.0.0.1", Describe, Topic, "orders"));
        assert!(!a.authorize(&s, "User:alice", "10.0.0.1", Read, Topic, "payments"), "no ACL and allow.everyone off");
    }

    #[test]
    fn deny_wins_prefixes_wildcards_hosts_and_super_users() {
        let mut s = AuthorizerSettings::default();
        let mut host_only = b(Topic, "*", Literal, "User:*", Write, Allow);
        host_only.host = "10.0.0.9".into();
        let a = acls(vec![b(Topic, "app-", Prefixed, "User:alice", All, Allow), b(Topic, "app-secret", Literal, "User:alice", Read, Deny), host_only]);
        assert!(a.authorize(&s, "User:alice", "h", Write, Topic, "app-1"));
        assert!(!a.authorize(&s, "User:alice", "h", Read, Topic, "app-secret"), "DENY wins");
        assert!(a.authorize(&s, "User:alice", "h", Describe, Topic, "app-secret"), "a denied READ does not deny DESCRIBE");
        assert!(a.authorize(&s, "User:bob", "10.0.0.9", Write, Topic, "anything"));
        assert!(!a.authorize(&s, "User:bob", "10.0.0.8", Write, Topic, "anything"));
        s.super_users.insert("User:root".into());
        assert!(a.authorize(&s, "User:root", "h", Delete, Cluster, CLUSTER_NAME));
    }

    #[test]
    fn allow_everyone_if_no_acl_found_only_for_resources_without_acls() {
        let s = AuthorizerSettings { allow_everyone_if_no_acl_found: true, ..Default::default() };
        let a = acls(vec![b(Topic, "locked", Literal, "User:alice", Read, Allow)]);
        assert!(a.authorize(&s, "User:bob", "h", Write, Topic, "open"));
        assert!(!a.authorize(&s, "User:bob", "h", Read, Topic, "locked"));
    }

    #[test]
    fn by_resource_type() {
        let s = AuthorizerSettings::default();
        let a = acls(vec![
            b(Topic, "t-", Prefixed, "User:alice", Write, Allow),
            b(Topic, "t-", Prefixed, "User:carol", Write, Allow),
            b(Topic, "t-", Prefixed, "User:carol", Write, Deny),
        ]);
        assert!(a.authorize_any(&s, "User:alice", "h", Write, Topic));
        assert!(!a.authorize_any(&s, "User:bob", "h", Write, Topic));
        assert!(!a.authorize_any(&s, "User:carol", "h", Write, Topic));
    }

    #[test]
    fn filters_as_describe_and_delete_acls_mean_them() {
        let a = acls(vec![
            b(Topic, "app-", Prefixed, "User:alice", Read, Allow),
            b(Topic, "app-1", Literal, "User:bob", Write, Allow),
            b(Group, "g", Literal, "User:bob", Read, Allow),
        ]);
        let all = AclFilter::default();
        assert_eq!(a.matching(&all).count(), 3);
        let m = AclFilter { resource_type: Some(Topic), name: Some("app-1".into()), pattern: Some(Match), ..Default::default() };
        assert_eq!(a.matching(&m).count(), 2, "MATCH: every pattern covering app-1");
        let lit = AclFilter { resource_type: Some(Topic), name: Some("app-1".into()), pattern: Some(Literal), ..Default::default() };
        assert_eq!(a.matching(&lit).count(), 1);
        let bob = AclFilter { principal: Some("User:bob".into()), ..Default::default() };
        assert_eq!(a.matching(&bob).count(), 2);
    }

    #[test]
    fn validation_refuses_what_kafka_refuses() {
        assert!(b(Topic, "t", Literal, "User:a", Read, Allow).validate().is_ok());
        assert!(b(Topic, "t", Match, "User:a", Read, Allow).validate().is_err());
        assert!(b(Cluster, "c", Literal, "User:a", Alter, Allow).validate().is_err());
        assert!(b(Topic, "t", Literal, "alice", Read, Allow).validate().is_err());
        assert!(b(Topic, "t", Literal, "User:a", Operation::Any, Allow).validate().is_err());
    }
}
