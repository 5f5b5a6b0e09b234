//! The ACL check of every request (issue 17): `authorize` over the ACLs
//! that can apply to the resource, found by lookups in the ordered set
//! (`acl::applicable`), against a scan of every ACL, with 10, 1,000 and
//! 10,000 ACLs (one literal and one prefixed per user, users spread over
//! topics), for a principal with an ACL and one without.

use std::collections::BTreeSet;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use replication::metadata::acl::{
    self, AclBinding, AuthorizerConfig, operation, pattern, permission, resource,
};

fn acls(count: usize) -> BTreeSet<AclBinding> {
    (0..count)
        .map(|i| AclBinding {
            resource_type: resource::TOPIC,
            resource_name: if i % 2 == 0 {
                format!("team-{}-orders", i / 2)
            } else {
                format!("team-{}-", i / 2)
            },
            pattern_type: if i % 2 == 0 {
                pattern::LITERAL
            } else {
                pattern::PREFIXED
            },
            principal: format!("User:user-{}", i / 2),
            host: "*".into(),
            operation: operation::WRITE,
            permission: permission::ALLOW,
        })
        .collect()
}

fn check(c: &mut Criterion) {
    let config = AuthorizerConfig::default();
    let mut group = c.benchmark_group("acl_check");
    for count in [10, 1_000, 10_000] {
        let set = acls(count);
        let (principal, topic) = ("User:user-3", "team-3-orders");
        assert!(acl::authorize(
            &config,
            acl::applicable(&set, resource::TOPIC, topic).into_iter(),
            principal,
            "10.0.0.1",
            operation::WRITE,
            resource::TOPIC,
            topic,
        ));
        group.bench_function(format!("indexed/{count}"), |b| {
            b.iter(|| {
                acl::authorize(
                    &config,
                    acl::applicable(&set, resource::TOPIC, black_box(topic)).into_iter(),
                    black_box(principal),
                    "10.0.0.1",
                    operation::WRITE,
                    resource::TOPIC,
                    topic,
                )
            });
        });
        group.bench_function(format!("scan/{count}"), |b| {
            b.iter(|| {
                acl::authorize(
                    &config,
                    set.iter(),
                    black_box(principal),
                    "10.0.0.1",
                    operation::WRITE,
                    resource::TOPIC,
                    black_box(topic),
                )
            });
        });
    }
    group.finish();
}

criterion_group!(benches, check);
criterion_main!(benches);
