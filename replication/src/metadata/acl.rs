//! ACLs with Kafka's semantics (its StandardAuthorizer is the reference):
//! bindings of a resource pattern (topic, group, cluster, transactional
//! id; literal, `*`, or prefixed) to an entry (principal, host,
//! operation, allow or deny), kept in the cluster metadata; filters as
//! DescribeAcls and DeleteAcls match them; and the decision for a
//! principal's operation on a resource: super users may do anything, a
//! matching deny wins over any allow, an allow of Read, Write, Delete or
//! Alter implies Describe and one of AlterConfigs implies DescribeConfigs,
//! and a resource no ACL names is allowed only with
//! `allow.everyone.if.no.acl.found`. Sans-IO: the broker asks with the
//! metadata snapshot its shard holds.

/// Kafka's resource types (`ResourceType`).
pub mod resource {
    pub const ANY: i8 = 1;
    pub const TOPIC: i8 = 2;
    pub const GROUP: i8 = 3;
    pub const CLUSTER: i8 = 4;
    pub const TRANSACTIONAL_ID: i8 = 5;
}

/// Kafka's pattern types (`PatternType`).
pub mod pattern {
    pub const ANY: i8 = 1;
    pub const MATCH: i8 = 2;
    pub const LITERAL: i8 = 3;
    pub const PREFIXED: i8 = 4;
}

/// Kafka's operations (`AclOperation`).
pub mod operation {
    pub const ANY: i8 = 1;
    pub const ALL: i8 = 2;
    pub const READ: i8 = 3;
    pub const WRITE: i8 = 4;
    pub const CREATE: i8 = 5;
    pub const DELETE: i8 = 6;
    pub const ALTER: i8 = 7;
    pub const DESCRIBE: i8 = 8;
    pub const CLUSTER_ACTION: i8 = 9;
    pub const DESCRIBE_CONFIGS: i8 = 10;
    pub const ALTER_CONFIGS: i8 = 11;
    pub const IDEMPOTENT_WRITE: i8 = 12;
}

/// Kafka's permission types (`AclPermissionType`).
pub mod permission {
    pub const ANY: i8 = 1;
    pub const DENY: i8 = 2;
    pub const ALLOW: i8 = 3;
}

/// The cluster resource's only name.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// A literal resource name, principal or host that matches every one.
pub const WILDCARD: &str = "*";

/// One ACL: a resource pattern and an entry. Part of the archived records
/// and snapshots: never edit its fields.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
pub struct AclBinding {
    pub resource_type: i8,
    pub resource_name: String,
    pub pattern_type: i8,
    /// `User:NAME` (or `User:*`).
    pub principal: String,
    /// A client address, or `*`.
    pub host: String,
    pub operation: i8,
    pub permission: i8,
}

impl AclBinding {
    /// Why this binding cannot be stored (CreateAcls answers
    /// INVALID_REQUEST), if it cannot.
    pub fn invalid(&self) -> Option<&'static str> {
        use {operation as op, pattern as pt, resource as rt};
        if ![rt::TOPIC, rt::GROUP, rt::CLUSTER, rt::TRANSACTIONAL_ID].contains(&self.resource_type)
        {
            return Some("the resource type is not topic, group, cluster or transactional id");
        }
        if ![pt::LITERAL, pt::PREFIXED].contains(&self.pattern_type) {
            return Some("the pattern type is not literal or prefixed");
        }
        if self.resource_name.is_empty() {
            return Some("the resource name is empty");
        }
        if self.resource_type == rt::CLUSTER
            && (self.resource_name != CLUSTER_NAME || self.pattern_type != pt::LITERAL)
        {
            return Some("the cluster resource is the literal kafka-cluster");
        }
        if self.pattern_type == pt::PREFIXED && self.resource_name == WILDCARD {
            return Some("a prefixed pattern cannot be the wildcard");
        }
        match self.principal.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
            _ => return Some("the principal is not TYPE:NAME"),
        }
        if self.host.is_empty() {
            return Some("the host is empty");
        }
        if !(op::ALL..=op::IDEMPOTENT_WRITE).contains(&self.operation) {
            return Some("not an operation");
        }
        if ![permission::DENY, permission::ALLOW].contains(&self.permission) {
            return Some("the permission is not allow or deny");
        }
        None
    }
}

/// A DescribeAcls or DeleteAcls filter: `None` (or the ANY values)
/// matches everything in that field; pattern type MATCH matches the
/// patterns that would apply to the named resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: i8,
    pub resource_name: Option<String>,
    pub pattern_type: i8,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: i8,
    pub permission: i8,
}

impl AclFilter {
    /// Why the filter matches nothing sensible (answered INVALID_REQUEST).
    pub fn invalid(&self) -> Option<&'static str> {
        if !(resource::ANY..=resource::TRANSACTIONAL_ID).contains(&self.resource_type) {
            return Some("not a resource type filter");
        }
        if !(pattern::ANY..=pattern::PREFIXED).contains(&self.pattern_type) {
            return Some("not a pattern type filter");
        }
        if !(operation::ANY..=operation::IDEMPOTENT_WRITE).contains(&self.operation) {
            return Some("not an operation filter");
        }
        if !(permission::ANY..=permission::ALLOW).contains(&self.permission) {
            return Some("not a permission filter");
        }
        None
    }

    pub fn matches(&self, acl: &AclBinding) -> bool {
        let field =
            |filter: &Option<String>, value: &str| filter.as_deref().is_none_or(|f| f == value);
        let any_or = |filter: i8, any: i8, value: i8| filter == any || filter == value;
        let resource_name = match (self.pattern_type, &self.resource_name) {
            (_, None) => true,
            (pattern::MATCH, Some(name)) => pattern_applies(acl, name),
            (_, Some(name)) => *name == acl.resource_name,
        };
        any_or(self.resource_type, resource::ANY, acl.resource_type)
            && resource_name
            && (self.pattern_type == pattern::ANY
                || self.pattern_type == pattern::MATCH
                || self.pattern_type == acl.pattern_type)
            && field(&self.principal, &acl.principal)
            && field(&self.host, &acl.host)
            && any_or(self.operation, operation::ANY, acl.operation)
            && any_or(self.permission, permission::ANY, acl.permission)
    }
}

/// Whether `acl`'s resource pattern covers the resource named `name` (of
/// the same type).
fn pattern_applies(acl: &AclBinding, name: &str) -> bool {
    match acl.pattern_type {
        pattern::LITERAL => acl.resource_name == name || acl.resource_name == WILDCARD,
        pattern::PREFIXED => name.starts_with(&acl.resource_name),
        _ => false,
    }
}

/// Below this many ACLs, [`applicable`] scans them all (cheaper than its
/// lookups).
const SCAN_BELOW: usize = 32;

/// The ACLs of `acls` that can apply to the resource of `resource_type`
/// named `name`: those of its literal name, of the literal `*`, and of
/// each of its prefixes. The set is ordered by resource type, name and
/// pattern first, so each is a range found in O(log n): a check costs
/// about (2 + the name's length) lookups however many ACLs there are,
/// not a scan of them all.
pub fn applicable<'a>(
    acls: &'a std::collections::BTreeSet<AclBinding>,
    resource_type: i8,
    name: &str,
) -> Vec<&'a AclBinding> {
    if acls.len() < SCAN_BELOW {
        return acls
            .iter()
            .filter(|acl| acl.resource_type == resource_type && pattern_applies(acl, name))
            .collect();
    }
    let mut key = AclBinding {
        resource_type,
        resource_name: String::new(),
        pattern_type: i8::MIN,
        principal: String::new(),
        host: String::new(),
        operation: i8::MIN,
        permission: i8::MIN,
    };
    let mut found = Vec::new();
    let mut collect = |key: &mut AclBinding, resource_name: &str, pattern_type: i8| {
        key.resource_name.clear();
        key.resource_name.push_str(resource_name);
        key.pattern_type = pattern_type;
        let same = |acl: &&AclBinding| {
            acl.resource_type == resource_type
                && acl.resource_name == resource_name
                && acl.pattern_type == pattern_type
        };
        found.extend(acls.range(&*key..).take_while(same));
    };
    collect(&mut key, name, pattern::LITERAL);
    if name != WILDCARD {
        collect(&mut key, WILDCARD, pattern::LITERAL);
    }
    let prefix_ends = name.char_indices().skip(1).map(|(i, _)| i);
    for end in prefix_ends.chain([name.len()]) {
        if let Some(prefix) = name.get(..end) {
            collect(&mut key, prefix, pattern::PREFIXED);
        }
    }
    found
}

/// What the authorizer is configured with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizerConfig {
    /// Principals that may do anything (`super.users`).
    pub super_users: Vec<String>,
    /// `allow.everyone.if.no.acl.found`.
    pub allow_if_no_acl: bool,
}

impl AuthorizerConfig {
    /// Whether `principal` may do anything (`super.users`), before any
    /// ACL is looked at.
    pub fn is_super_user(&self, principal: &str) -> bool {
        self.super_users.iter().any(|s| s == principal)
    }
}

/// Whether `principal` from `host` may do `op` on the resource of
/// `resource_type` named `name`, by `acls`.
pub fn authorize<'a>(
    config: &AuthorizerConfig,
    acls: impl Iterator<Item = &'a AclBinding>,
    principal: &str,
    host: &str,
    op: i8,
    resource_type: i8,
    name: &str,
) -> bool {
    if config.is_super_user(principal) {
        return true;
    }
    let mut any_acl = false;
    let mut allowed = false;
    for acl in acls {
        if acl.resource_type != resource_type || !pattern_applies(acl, name) {
            continue;
        }
        any_acl = true;
        let entry_applies = (acl.principal == principal || acl.principal == "User:*")
            && (acl.host == host || acl.host == WILDCARD);
        if !entry_applies {
            continue;
        }
        match acl.permission {
            permission::DENY if acl.operation == op || acl.operation == operation::ALL => {
                return false;
            }
            permission::ALLOW if implies(acl.operation, op) => allowed = true,
            _ => {}
        }
    }
    allowed || (!any_acl && config.allow_if_no_acl)
}

/// Whether `principal` from `host` may do `op` on some resource of
/// `resource_type` (Kafka's `authorizeByResourceType`, as an idempotent
/// producer's InitProducerId asks for Write on any topic): an allow names
/// one, and no deny covers every one (a literal `*`).
pub fn authorize_any<'a>(
    config: &AuthorizerConfig,
    acls: impl Iterator<Item = &'a AclBinding> + Clone,
    principal: &str,
    host: &str,
    op: i8,
    resource_type: i8,
) -> bool {
    if config.is_super_user(principal) {
        return true;
    }
    let applies = |acl: &AclBinding| {
        acl.resource_type == resource_type
            && (acl.principal == principal || acl.principal == "User:*")
            && (acl.host == host || acl.host == WILDCARD)
    };
    let denied_everywhere = acls.clone().any(|acl| {
        applies(acl)
            && acl.permission == permission::DENY
            && (acl.operation == op || acl.operation == operation::ALL)
            && acl.pattern_type == pattern::LITERAL
            && acl.resource_name == WILDCARD
    });
    !denied_everywhere
        && acls.into_iter().any(|acl| {
            applies(acl) && acl.permission == permission::ALLOW && implies(acl.operation, op)
        })
}

/// Whether an allow of `granted` allows `op`.
fn implies(granted: i8, op: i8) -> bool {
    use operation::*;
    granted == op
        || granted == ALL
        || (op == DESCRIBE && [READ, WRITE, DELETE, ALTER].contains(&granted))
        || (op == DESCRIBE_CONFIGS && granted == ALTER_CONFIGS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// ACLs over a few names and prefixes of each other, so that prefixes,
    /// literals, wildcards and near misses all occur.
    fn any_acl() -> impl Strategy<Value = AclBinding> {
        let names = prop::sample::select(vec!["*", "a", "ab", "abc", "abd", "b", "ba", "é", "éa"]);
        (
            prop::sample::select(vec![resource::TOPIC, resource::GROUP]),
            names,
            prop::sample::select(vec![pattern::LITERAL, pattern::PREFIXED]),
            prop::sample::select(vec!["User:alice", "User:*"]),
            prop::sample::select(vec![operation::READ, operation::ALL]),
            prop::sample::select(vec![permission::ALLOW, permission::DENY]),
        )
            .prop_map(|(rt, name, pt, principal, op, perm)| AclBinding {
                resource_type: rt,
                resource_name: name.to_string(),
                pattern_type: pt,
                principal: principal.to_string(),
                host: "*".into(),
                operation: op,
                permission: perm,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, rng_seed: proptest::test_runner::RngSeed::Fixed(17), ..ProptestConfig::default() })]

        /// The indexed lookup finds exactly what a scan of every ACL
        /// finds (seed 17).
        #[test]
        fn the_applicable_acls_are_those_a_scan_finds(
            acls in prop::collection::btree_set(any_acl(), 0..120),
            name in prop::sample::select(vec!["*", "a", "ab", "abc", "abcd", "abd", "b", "bab", "é", "éa", "éab", "z"]),
            resource_type in prop::sample::select(vec![resource::TOPIC, resource::GROUP]),
        ) {
            let mut found = applicable(&acls, resource_type, name);
            found.sort();
            let scanned: Vec<&AclBinding> = acls
                .iter()
                .filter(|acl| acl.resource_type == resource_type && pattern_applies(acl, name))
                .collect();
            prop_assert_eq!(found, scanned);
        }
    }

    fn acl(rt: i8, name: &str, pt: i8, principal: &str, op: i8, perm: i8) -> AclBinding {
        AclBinding {
            resource_type: rt,
            resource_name: name.into(),
            pattern_type: pt,
            principal: principal.into(),
            host: "*".into(),
            operation: op,
            permission: perm,
        }
    }

    #[test]
    fn deny_wins_prefixes_and_wildcards_match_and_allows_imply_describe() {
        use operation::*;
        use permission::*;
        let acls = [
            acl(
                resource::TOPIC,
                "orders",
                pattern::LITERAL,
                "User:alice",
                WRITE,
                ALLOW,
            ),
            acl(
                resource::TOPIC,
                "orders",
                pattern::LITERAL,
                "User:alice",
                READ,
                DENY,
            ),
            acl(
                resource::TOPIC,
                "ticks-",
                pattern::PREFIXED,
                "User:*",
                READ,
                ALLOW,
            ),
            acl(
                resource::TOPIC,
                "ticks-secret",
                pattern::LITERAL,
                "User:bob",
                ALL,
                DENY,
            ),
            acl(
                resource::GROUP,
                "*",
                pattern::LITERAL,
                "User:bob",
                ALL,
                ALLOW,
            ),
            acl(
                resource::TOPIC,
                "cfg",
                pattern::LITERAL,
                "User:carol",
                ALTER_CONFIGS,
                ALLOW,
            ),
        ];
        let config = AuthorizerConfig {
            super_users: vec!["User:admin".into()],
            allow_if_no_acl: false,
        };
        let may = |principal: &str, op: i8, rt: i8, name: &str| {
            authorize(&config, acls.iter(), principal, "10.0.0.1", op, rt, name)
        };
        assert!(may("User:alice", WRITE, resource::TOPIC, "orders"));
        assert!(
            may("User:alice", DESCRIBE, resource::TOPIC, "orders"),
            "write implies describe"
        );
        assert!(
            !may("User:alice", READ, resource::TOPIC, "orders"),
            "denied"
        );
        assert!(
            !may("User:bob", WRITE, resource::TOPIC, "orders"),
            "no acl for bob"
        );
        assert!(
            may("User:bob", READ, resource::TOPIC, "ticks-eu"),
            "prefix, any user"
        );
        assert!(
            !may("User:bob", READ, resource::TOPIC, "ticks-secret"),
            "deny wins"
        );
        assert!(may("User:alice", READ, resource::TOPIC, "ticks-secret"));
        assert!(
            may("User:bob", READ, resource::GROUP, "anything"),
            "wildcard"
        );
        assert!(may("User:carol", DESCRIBE_CONFIGS, resource::TOPIC, "cfg"));
        assert!(!may("User:carol", DESCRIBE, resource::TOPIC, "cfg"));
        assert!(
            may("User:admin", DELETE, resource::CLUSTER, CLUSTER_NAME),
            "super user"
        );
        assert!(!may("User:alice", CREATE, resource::TOPIC, "fresh"));
    }

    #[test]
    fn resources_no_acl_names_are_open_only_when_configured() {
        use operation::*;
        use permission::*;
        let acls = [acl(
            resource::TOPIC,
            "orders",
            pattern::LITERAL,
            "User:alice",
            WRITE,
            ALLOW,
        )];
        let config = AuthorizerConfig::default();
        let open = AuthorizerConfig {
            allow_if_no_acl: true,
            ..config.clone()
        };
        let may_open = |principal: &str, name: &str| {
            authorize(
                &open,
                acls.iter(),
                principal,
                "h",
                CREATE,
                resource::TOPIC,
                name,
            )
        };
        assert!(may_open("User:alice", "fresh"), "no acl names it");
        assert!(!may_open("User:bob", "orders"), "acls name it");
        let closed = authorize(
            &config,
            acls.iter(),
            "User:a",
            "h",
            CREATE,
            resource::TOPIC,
            "x",
        );
        assert!(!closed, "allow.everyone.if.no.acl.found is off by default");
    }

    #[test]
    fn filters_match_as_describe_and_delete_acls_do() {
        use operation::*;
        use permission::*;
        let literal = acl(
            resource::TOPIC,
            "orders",
            pattern::LITERAL,
            "User:alice",
            READ,
            ALLOW,
        );
        let prefixed = acl(
            resource::TOPIC,
            "ord",
            pattern::PREFIXED,
            "User:bob",
            WRITE,
            DENY,
        );
        let everything = AclFilter {
            resource_type: resource::ANY,
            resource_name: None,
            pattern_type: pattern::ANY,
            principal: None,
            host: None,
            operation: operation::ANY,
            permission: permission::ANY,
        };
        assert!(everything.matches(&literal) && everything.matches(&prefixed));
        let applying = AclFilter {
            resource_type: resource::TOPIC,
            resource_name: Some("orders".into()),
            pattern_type: pattern::MATCH,
            ..everything.clone()
        };
        assert!(applying.matches(&literal) && applying.matches(&prefixed));
        let exact = AclFilter {
            pattern_type: pattern::LITERAL,
            ..applying.clone()
        };
        assert!(exact.matches(&literal) && !exact.matches(&prefixed));
        let bobs = AclFilter {
            principal: Some("User:bob".into()),
            ..everything
        };
        assert!(!bobs.matches(&literal) && bobs.matches(&prefixed));
        assert_eq!(literal.invalid(), None);
        let cluster = acl(
            resource::CLUSTER,
            "other",
            pattern::LITERAL,
            "User:a",
            ALTER,
            ALLOW,
        );
        assert!(cluster.invalid().is_some());
        let no_type = acl(resource::TOPIC, "t", pattern::LITERAL, "alice", READ, ALLOW);
        assert!(no_type.invalid().is_some());
    }
}
