//! The KIP-848 machine with exact inputs: joins, revocations before
//! reassignment, lost replies, fencing, leaving, timeouts, the assignors,
//! and the checks offset requests go through.

use super::*;
use crate::group::{Coordinator, GroupConfig, Join};
use crate::handlers::errors::{
    GROUP_ID_NOT_FOUND, INCONSISTENT_GROUP_PROTOCOL, INVALID_REGULAR_EXPRESSION,
    STALE_MEMBER_EPOCH, UNSUPPORTED_VERSION,
};

const T: TopicUuid = [7; 16];
const U: TopicUuid = [9; 16];

fn topics(partitions: i32) -> TopicsView {
    TopicsView::from([("t".to_string(), (T, partitions))])
}

fn config() -> ConsumerConfig {
    ConsumerConfig {
        heartbeat_interval_ms: 500,
        session_timeout_ms: 10_000,
    }
}

fn join(member: &str, assignor: &str) -> Heartbeat {
    Heartbeat {
        version: 1,
        member_id: member.to_string(),
        member_epoch: 0,
        rebalance_timeout_ms: 30_000,
        subscribed_topic_names: Some(vec!["t".to_string()]),
        server_assignor: Some(assignor.to_string()),
        owned: Some(Assignment::new()),
        client_id: "c".to_string(),
        client_host: "/127.0.0.1".to_string(),
        ..Heartbeat::default()
    }
}

/// A heartbeat that changes nothing but says what the member owns.
fn beat(member: &str, epoch: i32, owned: &Assignment) -> Heartbeat {
    Heartbeat {
        version: 1,
        member_id: member.to_string(),
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        owned: Some(owned.clone()),
        ..Heartbeat::default()
    }
}

fn parts(topic: TopicUuid, list: &[i32]) -> Assignment {
    Assignment::from([(topic, list.iter().copied().collect())])
}

#[test]
fn a_partition_moves_only_after_its_owner_revoked_it() {
    let mut g = ConsumerGroup::default();
    let t = topics(4);
    let a = g.heartbeat(0, join("a", "range"), &t, &config());
    assert_eq!((a.error, a.member_epoch), (NONE, 1));
    assert_eq!(a.assignment, Some(parts(T, &[0, 1, 2, 3])));
    assert_eq!(a.heartbeat_interval_ms, 500);
    let a_owns = parts(T, &[0, 1, 2, 3]);

    // b joins: the group epoch goes to 2; b's range ([2, 3]) is still a's.
    let b = g.heartbeat(10, join("b", "range"), &t, &config());
    assert_eq!((b.error, b.member_epoch), (NONE, 2));
    assert_eq!(b.assignment, Some(Assignment::new()));
    assert_eq!(state_name(&g), "Reconciling");

    // a is told to give up [2, 3], at its epoch.
    let a = g.heartbeat(20, beat("a", 1, &a_owns), &t, &config());
    assert_eq!((a.error, a.member_epoch), (NONE, 1));
    assert_eq!(a.assignment, Some(parts(T, &[0, 1])));
    // b asks again: still a's.
    let b = g.heartbeat(30, beat("b", 2, &Assignment::new()), &t, &config());
    assert_eq!((b.member_epoch, b.assignment), (2, None));
    // a has revoked them: epoch 2.
    let a = g.heartbeat(40, beat("a", 1, &parts(T, &[0, 1])), &t, &config());
    assert_eq!((a.error, a.member_epoch, a.assignment), (NONE, 2, None));
    // b gets them.
    let b = g.heartbeat(50, beat("b", 2, &Assignment::new()), &t, &config());
    assert_eq!((b.member_epoch, b.assignment), (2, Some(parts(T, &[2, 3]))));
    assert_eq!(state_name(&g), "Stable");
}

#[test]
fn epochs_are_checked_and_a_lost_reply_is_forgiven() {
    let mut g = ConsumerGroup::default();
    let t = topics(2);
    g.heartbeat(0, join("a", "uniform"), &t, &config());
    let ahead = g.heartbeat(1, beat("a", 5, &parts(T, &[0, 1])), &t, &config());
    assert_eq!(ahead.error, FENCED_MEMBER_EPOCH);
    let stranger = g.heartbeat(1, beat("z", 1, &Assignment::new()), &t, &config());
    assert_eq!(stranger.error, UNKNOWN_MEMBER_ID);
    // A new partition: epoch 2 for a. Its reply is lost; a comes back at
    // epoch 1 owning what it had: accepted.
    let t3 = topics(3);
    let bumped = g.heartbeat(2, beat("a", 1, &parts(T, &[0, 1])), &t3, &config());
    assert_eq!(
        (bumped.member_epoch, bumped.assignment.clone()),
        (2, Some(parts(T, &[0, 1, 2])))
    );
    let again = g.heartbeat(3, beat("a", 1, &parts(T, &[0, 1])), &t3, &config());
    assert_eq!((again.error, again.member_epoch), (NONE, 2));
    // At epoch 1 owning a partition it never had: fenced.
    let odd = g.heartbeat(4, beat("a", 1, &parts(U, &[0])), &t3, &config());
    assert_eq!(odd.error, FENCED_MEMBER_EPOCH);
    assert_eq!(g.check_member_epoch("a", 1), Err(STALE_MEMBER_EPOCH));
    assert_eq!(g.check_member_epoch("a", 3), Err(FENCED_MEMBER_EPOCH));
    assert_eq!(g.check_member_epoch("a", 2), Ok(()));
}

#[test]
fn leaving_and_timeouts_hand_partitions_back() {
    let mut g = ConsumerGroup::default();
    let t = topics(2);
    g.heartbeat(0, join("a", "uniform"), &t, &config());
    g.heartbeat(0, join("b", "uniform"), &t, &config());
    // a revokes one partition for b, then both are stable.
    let a = g.heartbeat(1, beat("a", 1, &parts(T, &[0, 1])), &t, &config());
    let kept = a.assignment.expect("a's new assignment");
    assert_eq!(kept.values().map(BTreeSet::len).sum::<usize>(), 1);
    g.heartbeat(2, beat("a", 1, &kept), &t, &config());
    let b = g.heartbeat(3, beat("b", 2, &Assignment::new()), &t, &config());
    assert_eq!(
        b.assignment
            .map(|a| a.values().map(BTreeSet::len).sum::<usize>()),
        Some(1)
    );
    // b leaves: a gets both back.
    let left = g.heartbeat(4, beat("b", LEAVE_EPOCH, &Assignment::new()), &t, &config());
    assert_eq!((left.error, left.member_epoch), (NONE, LEAVE_EPOCH));
    let a = g.heartbeat(5, beat("a", 2, &kept), &t, &config());
    assert_eq!((a.member_epoch, a.assignment), (3, Some(parts(T, &[0, 1]))));
    // Silent past the session timeout: gone.
    assert_eq!(g.tick(10_004, &config()), Vec::<String>::new());
    assert_eq!(g.tick(10_005, &config()), vec!["a".to_string()]);
    assert_eq!(state_name(&g), "Empty");
}

#[test]
fn a_member_that_does_not_revoke_in_time_is_fenced() {
    let mut g = ConsumerGroup::default();
    let t = topics(2);
    g.heartbeat(0, join("a", "range"), &t, &config());
    g.heartbeat(0, join("b", "range"), &t, &config());
    // a is asked to revoke at 100; its rebalance timeout is 30 s.
    g.heartbeat(100, beat("a", 1, &parts(T, &[0, 1])), &t, &config());
    for now in [5_000, 10_000, 15_000, 20_000, 25_000] {
        g.heartbeat(now, beat("a", 1, &parts(T, &[0, 1])), &t, &config());
        g.heartbeat(now, beat("b", 2, &Assignment::new()), &t, &config());
        assert!(g.tick(now, &config()).is_empty());
    }
    g.heartbeat(30_000, beat("b", 2, &Assignment::new()), &t, &config());
    assert_eq!(g.tick(30_100, &config()), vec!["a".to_string()]);
    let b = g.heartbeat(30_200, beat("b", 2, &Assignment::new()), &t, &config());
    assert_eq!((b.member_epoch, b.assignment), (3, Some(parts(T, &[0, 1]))));
}

#[test]
fn bad_heartbeats_get_kafkas_codes() {
    let mut g = ConsumerGroup::default();
    let t = topics(1);
    let mut no_timeout = join("a", "uniform");
    no_timeout.rebalance_timeout_ms = -1;
    assert_eq!(
        g.heartbeat(0, no_timeout, &t, &config()).error,
        INVALID_REQUEST
    );
    let mut owning = join("a", "uniform");
    owning.owned = Some(parts(T, &[0]));
    assert_eq!(g.heartbeat(0, owning, &t, &config()).error, INVALID_REQUEST);
    let mut unnamed = join("", "uniform");
    unnamed.version = 1;
    assert_eq!(
        g.heartbeat(0, unnamed, &t, &config()).error,
        INVALID_REQUEST
    );
    assert_eq!(
        g.heartbeat(0, join("a", "sticky"), &t, &config()).error,
        UNSUPPORTED_ASSIGNOR
    );
    let mut below = beat("a", -3, &Assignment::new());
    below.member_epoch = -3;
    assert_eq!(g.heartbeat(0, below, &t, &config()).error, INVALID_REQUEST);
    // v0: the coordinator names the member.
    let mut v0 = join("", "uniform");
    v0.version = 0;
    let named = g.heartbeat(0, v0, &t, &config());
    assert_eq!(named.error, NONE);
    assert!(named.member_id.starts_with("c-"), "{}", named.member_id);
    // A static member's instance id is taken while its member is there.
    let mut first = join("s1", "uniform");
    first.instance_id = Some("i".to_string());
    assert_eq!(g.heartbeat(0, first, &t, &config()).error, NONE);
    let mut second = join("s2", "uniform");
    second.instance_id = Some("i".to_string());
    assert_eq!(
        g.heartbeat(0, second, &t, &config()).error,
        UNRELEASED_INSTANCE_ID
    );
}

#[test]
fn range_gives_contiguous_ranges_and_uniform_stays_balanced_and_sticky() {
    let t = TopicsView::from([("t".to_string(), (T, 5)), ("u".to_string(), (U, 6))]);
    let both = vec!["t".to_string(), "u".to_string()];
    let members = [
        Subscriber {
            member_id: "a",
            topics: &both,
            current: None,
        },
        Subscriber {
            member_id: "b",
            topics: &both,
            current: None,
        },
    ];
    let range = assignor::assign("range", &members, &t);
    assert_eq!(
        range["a"],
        Assignment::from([
            (T, BTreeSet::from([0, 1, 2])),
            (U, BTreeSet::from([0, 1, 2]))
        ])
    );
    assert_eq!(
        range["b"],
        Assignment::from([(T, BTreeSet::from([3, 4])), (U, BTreeSet::from([3, 4, 5]))])
    );
    // Uniform: 11 partitions over 3 members, then a fourth joins.
    let ids = ["a", "b", "c"];
    let three: Vec<Subscriber<'_>> = ids
        .iter()
        .map(|id| Subscriber {
            member_id: id,
            topics: &both,
            current: None,
        })
        .collect();
    let first = assignor::assign("uniform", &three, &t);
    let sizes = |a: &BTreeMap<String, Assignment>| -> Vec<usize> {
        a.values()
            .map(|m| m.values().map(BTreeSet::len).sum())
            .collect()
    };
    assert_eq!(sizes(&first), vec![4, 4, 3]);
    let four: Vec<Subscriber<'_>> = ["a", "b", "c", "d"]
        .iter()
        .map(|id| Subscriber {
            member_id: id,
            topics: &both,
            current: first.get(*id),
        })
        .collect();
    let second = assignor::assign("uniform", &four, &t);
    let mut counts = sizes(&second);
    counts.sort_unstable();
    assert_eq!(counts, vec![2, 3, 3, 3]);
    // Sticky: the old members kept only partitions they had.
    for id in ids {
        assert!(
            partitions_of(&second[id]).all(|tp| partitions_of(&first[id]).any(|o| o == tp)),
            "{id} kept its own"
        );
    }
    let all: BTreeSet<(TopicUuid, i32)> = second.values().flat_map(partitions_of).collect();
    assert_eq!(all.len(), 11, "every partition once");
}

#[test]
fn the_two_protocols_do_not_mix_and_commits_need_v9() {
    let mut c = Coordinator::new(GroupConfig::default(), 0);
    let t = topics(1);
    let reply = c.consumer_heartbeat(0, "g", join("a", "uniform"), &t);
    assert_eq!((reply.error, reply.member_epoch), (NONE, 1));
    let classic = Join {
        group_id: "g".to_string(),
        member_id: String::new(),
        instance_id: None,
        client_id: "c".to_string(),
        client_host: "h".to_string(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 10_000,
        protocol_type: "consumer".to_string(),
        protocols: vec![("range".to_string(), bytes::Bytes::new())],
        require_known_member_id: false,
    };
    let (joined, _) = c.join(0, 1, classic.clone());
    assert_eq!(joined.map(|j| j.error), Some(INCONSISTENT_GROUP_PROTOCOL));
    assert_eq!(
        c.check_commit("g", "a", None, 1, Some(8)),
        Err(UNSUPPORTED_VERSION)
    );
    assert_eq!(c.check_commit("g", "a", None, 1, Some(9)), Ok(()));
    assert_eq!(
        c.check_commit("g", "a", None, 0, Some(9)),
        Err(STALE_MEMBER_EPOCH)
    );
    assert_eq!(c.check_fetch("g", Some(("a", 1))), Ok(()));
    assert_eq!(c.check_fetch("g", Some(("b", 1))), Err(UNKNOWN_MEMBER_ID));
    assert_eq!(c.check_fetch("g", None), Ok(()));
    assert_eq!(c.list()[0].group_type, "consumer");
    // A classic group with members is not a consumer group.
    let mut classic = classic;
    classic.group_id = "k".to_string();
    c.join(0, 2, classic);
    let refused = c.consumer_heartbeat(0, "k", join("a", "uniform"), &t);
    assert_eq!(refused.error, GROUP_ID_NOT_FOUND);
    assert_eq!(c.consumer_group("k").err(), Some(GROUP_ID_NOT_FOUND));
    // The consumer group empties: a classic member may take it.
    c.consumer_heartbeat(1, "g", beat("a", LEAVE_EPOCH, &Assignment::new()), &t);
    assert!(c.deletable("g").is_ok());
}

#[test]
fn a_regular_expression_subscribes_to_whole_names_and_topics_created_later() {
    let mut g = ConsumerGroup::default();
    let mut by_regex = join("a", "uniform");
    by_regex.subscribed_topic_names = None;
    by_regex.subscribed_topic_regex = Some("orders-.*".to_string());
    let t = TopicsView::from([
        ("orders-eu".to_string(), (T, 2)),
        ("old-orders-eu".to_string(), ([3; 16], 1)),
    ]);
    let a = g.heartbeat(0, by_regex, &t, &config());
    assert_eq!((a.error, a.member_epoch), (NONE, 1));
    assert_eq!(
        a.assignment,
        Some(parts(T, &[0, 1])),
        "a whole-name match only"
    );
    // A matching topic appears: a new epoch, its partitions too.
    let mut more = t.clone();
    more.insert("orders-us".to_string(), (U, 1));
    let a = g.heartbeat(1, beat("a", 1, &parts(T, &[0, 1])), &more, &config());
    let mut want = parts(T, &[0, 1]);
    want.insert(U, BTreeSet::from([0]));
    assert_eq!((a.member_epoch, a.assignment), (2, Some(want)));
    let mut bad = join("b", "uniform");
    bad.subscribed_topic_regex = Some("(".to_string());
    assert_eq!(
        g.heartbeat(2, bad, &t, &config()).error,
        INVALID_REGULAR_EXPRESSION
    );
}

#[test]
fn a_static_member_that_comes_back_takes_over_without_a_rebalance() {
    let mut g = ConsumerGroup::default();
    let t = topics(2);
    let statik = |id: &str| {
        let mut hb = join(id, "range");
        hb.instance_id = Some("instance-1".to_string());
        hb
    };
    g.heartbeat(0, statik("s1"), &t, &config());
    g.heartbeat(0, join("b", "range"), &t, &config());
    let s1 = g.heartbeat(1, beat("s1", 1, &parts(T, &[0, 1])), &t, &config());
    // Range: "b" sorts first.
    assert_eq!(s1.assignment, Some(parts(T, &[1])));
    g.heartbeat(2, beat("s1", 1, &parts(T, &[1])), &t, &config());
    g.heartbeat(3, beat("b", 2, &Assignment::new()), &t, &config());
    assert_eq!((g.epoch, state_name(&g)), (2, "Stable"));
    // s1 leaves as a static member: nothing moves.
    let mut leaving = beat("s1", STATIC_LEAVE_EPOCH, &parts(T, &[1]));
    leaving.instance_id = Some("instance-1".to_string());
    let left = g.heartbeat(4, leaving, &t, &config());
    assert_eq!((left.error, left.member_epoch), (NONE, STATIC_LEAVE_EPOCH));
    assert_eq!(g.epoch, 2);
    // Its successor gets its partition at its epoch.
    let s2 = g.heartbeat(5, statik("s2"), &t, &config());
    assert_eq!(
        (s2.error, s2.member_epoch, s2.assignment),
        (NONE, 2, Some(parts(T, &[1])))
    );
    assert_eq!(g.epoch, 2);
    assert!(!g.members.contains_key("s1"));
    // A departed static member that never comes back times out.
    let mut leaving = beat("s2", STATIC_LEAVE_EPOCH, &parts(T, &[1]));
    leaving.instance_id = Some("instance-1".to_string());
    g.heartbeat(6, leaving, &t, &config());
    g.heartbeat(9_000, beat("b", 2, &parts(T, &[0])), &t, &config());
    assert_eq!(g.tick(10_005, &config()), vec!["s2".to_string()]);
    let b = g.heartbeat(10_006, beat("b", 2, &parts(T, &[0])), &t, &config());
    assert_eq!((b.member_epoch, b.assignment), (3, Some(parts(T, &[0, 1]))));
}
