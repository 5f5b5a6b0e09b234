//! Exact inputs, exact outputs: the join and sync phases, timeouts,
//! leaving, static members, commit checks; and a seeded random run.

use super::*;

const SESSION: i32 = 10_000;
const REBALANCE: i32 = 30_000;

fn join(member: &str, instance: Option<&str>) -> Join {
    Join {
        group_id: "g".into(),
        member_id: member.into(),
        instance_id: instance.map(String::from),
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: SESSION,
        rebalance_timeout_ms: REBALANCE,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"sub"))],
        require_known_member_id: true,
    }
}

fn sync(member: &str, generation: i32, assignments: &[(&str, &'static [u8])]) -> Sync {
    Sync {
        group_id: "g".into(),
        member_id: member.into(),
        instance_id: None,
        generation,
        assignments: assignments
            .iter()
            .map(|(m, a)| (m.to_string(), Bytes::from_static(a)))
            .collect(),
    }
}

/// A xorshift generator seeded from SHARDLOG_TEST_SEED (else `default`),
/// the seed printed: `next(n)` is in `0..n`.
fn seeded(default: u64) -> impl FnMut(u64) -> u64 {
    let seed = std::env::var("SHARDLOG_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    eprintln!("seed {seed}");
    let mut rng = seed | 1;
    move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    }
}

fn coordinator() -> Coordinator {
    Coordinator::new(GroupConfig::default(), 0)
}

/// First join (KIP-394): the id comes back with MEMBER_ID_REQUIRED.
fn member_id(c: &mut Coordinator, now: u64) -> String {
    let (reply, replies) = c.join(now, 0, join("", None));
    let reply = reply.unwrap();
    assert_eq!(reply.error, MEMBER_ID_REQUIRED);
    assert!(replies.is_empty());
    reply.member_id
}

fn join_reply(replies: &Replies, token: Token) -> &JoinReply {
    match replies.iter().find(|(t, _)| *t == token) {
        Some((_, Reply::Join(reply))) => reply,
        other => panic!("no join reply for {token}: {other:?}"),
    }
}

fn sync_reply(replies: &Replies, token: Token) -> &SyncReply {
    match replies.iter().find(|(t, _)| *t == token) {
        Some((_, Reply::Sync(reply))) => reply,
        other => panic!("no sync reply for {token}: {other:?}"),
    }
}

/// One member through join and sync: generation 1, Stable.
fn stable_with_one(c: &mut Coordinator) -> String {
    let a = member_id(c, 0);
    assert_eq!(
        c.join(0, 1, join(&a, None)),
        (None, vec![]),
        "held: initial delay"
    );
    assert!(c.tick(2_999).is_empty());
    let replies = c.tick(3_000);
    let reply = join_reply(&replies, 1);
    assert_eq!(
        (reply.error, reply.generation, reply.leader.as_str()),
        (NONE, 1, a.as_str())
    );
    assert_eq!(reply.protocol_name.as_deref(), Some("range"));
    assert_eq!(
        reply.members,
        vec![(a.clone(), None, Bytes::from_static(b"sub"))]
    );
    let (reply, replies) = c.sync(2, sync(&a, 1, &[(&a, b"p0")]));
    assert!(reply.is_none());
    assert_eq!(
        sync_reply(&replies, 2).assignment,
        Bytes::from_static(b"p0")
    );
    assert_eq!(c.state("g"), Some(GroupState::Stable));
    a
}

#[test]
fn a_first_member_joins_after_the_initial_delay_and_syncs() {
    let mut c = coordinator();
    stable_with_one(&mut c);
}

/// Kafka's rule, whatever the ids: the first member in leads, and when it
/// leaves the one that has been in the group longest takes over.
#[test]
fn the_longest_member_leads() {
    let mut c = Coordinator::new(GroupConfig::default(), 0);
    let mut first = join("", None);
    first.client_id = "z-late-in-the-alphabet".into();
    let z = c.join(0, 0, first.clone()).0.unwrap().member_id;
    let mut second = join("", None);
    second.client_id = "a-early".into();
    let a = c.join(0, 0, second.clone()).0.unwrap().member_id;
    let mut third = second.clone();
    third.client_id = "m-middle".into();
    let m = c.join(0, 0, third.clone()).0.unwrap().member_id;
    for (token, (id, base)) in [(&z, &first), (&a, &second), (&m, &third)]
        .into_iter()
        .enumerate()
    {
        let mut again = base.clone();
        again.member_id = id.clone();
        assert_eq!(c.join(0, token as Token + 1, again), (None, vec![]));
    }
    let replies = c.tick(3_000);
    assert_eq!(
        join_reply(&replies, 2).leader,
        z,
        "first in, though last by id"
    );
    let (codes, replies) = c.leave(3_100, "g", &[(z.clone(), None)]);
    assert_eq!(codes, vec![NONE]);
    assert!(replies.is_empty());
    let (reply, replies) = c.join(3_200, 10, {
        let mut j = join(&m, None);
        j.client_id = "m-middle".into();
        j
    });
    assert!(reply.is_none() && replies.is_empty(), "waits for a");
    let replies = c.join(3_300, 11, join(&a, None)).1;
    assert_eq!(join_reply(&replies, 11).leader, a, "a came before m");
    assert_eq!(join_reply(&replies, 10).leader, a);
}

#[test]
fn a_second_member_makes_everyone_rejoin_and_the_leader_assigns() {
    let mut c = coordinator();
    let a = stable_with_one(&mut c);
    let b = member_id(&mut c, 4_000);
    assert_eq!(c.join(4_000, 10, join(&b, None)), (None, vec![]));
    assert_eq!(c.state("g"), Some(GroupState::PreparingRebalance));
    assert_eq!(c.heartbeat(4_100, "g", &a, None, 1), REBALANCE_IN_PROGRESS);
    // a rejoins: the phase completes at once (no initial delay: not empty).
    let (reply, replies) = c.join(4_200, 11, join(&a, None));
    assert!(reply.is_none());
    let (ra, rb) = (join_reply(&replies, 11), join_reply(&replies, 10));
    assert_eq!((ra.generation, rb.generation), (2, 2));
    assert_eq!(
        (ra.leader.as_str(), rb.leader.as_str()),
        (a.as_str(), a.as_str())
    );
    assert_eq!(ra.members.len(), 2, "the leader sees every member");
    assert!(rb.members.is_empty());
    // The follower's sync waits for the leader's.
    assert_eq!(c.sync(12, sync(&b, 2, &[])), (None, vec![]));
    let (reply, replies) = c.sync(13, sync(&a, 2, &[(&a, b"A"), (&b, b"B")]));
    assert!(reply.is_none());
    assert_eq!(
        sync_reply(&replies, 12).assignment,
        Bytes::from_static(b"B")
    );
    assert_eq!(
        sync_reply(&replies, 13).assignment,
        Bytes::from_static(b"A")
    );
    assert_eq!(c.heartbeat(4_300, "g", &b, None, 2), NONE);
    assert_eq!(c.heartbeat(4_300, "g", &b, None, 1), ILLEGAL_GENERATION);
}

#[test]
fn an_expired_session_removes_the_member_and_the_rest_rebalance() {
    let mut c = coordinator();
    let a = stable_with_one(&mut c);
    let b = member_id(&mut c, 4_000);
    c.join(4_000, 10, join(&b, None));
    let (_, replies) = c.join(4_000, 11, join(&a, None));
    assert_eq!(replies.len(), 2);
    c.sync(12, sync(&a, 2, &[(&a, b"A"), (&b, b"B")]));
    // a heartbeats; b goes silent.
    for t in (5_000..=14_000).step_by(1_000) {
        assert_eq!(c.heartbeat(t, "g", &a, None, 2), NONE);
        assert!(c.tick(t).is_empty(), "b's session runs until 14 000");
    }
    assert!(c.tick(14_000).is_empty());
    c.tick(14_001);
    assert_eq!(c.state("g"), Some(GroupState::PreparingRebalance));
    assert_eq!(c.heartbeat(14_002, "g", &b, None, 2), UNKNOWN_MEMBER_ID);
    let (_, replies) = c.join(14_003, 20, join(&a, None));
    let reply = join_reply(&replies, 20);
    assert_eq!((reply.generation, reply.members.len()), (3, 1));
}

#[test]
fn leaving_rebalances_at_once_and_the_last_member_leaves_an_empty_group() {
    let mut c = coordinator();
    let a = stable_with_one(&mut c);
    let (codes, replies) = c.leave(5_000, "g", &[(a.clone(), None), ("nobody".into(), None)]);
    assert_eq!(codes, vec![NONE, UNKNOWN_MEMBER_ID]);
    assert!(replies.is_empty());
    assert_eq!(c.state("g"), Some(GroupState::Empty));
    assert_eq!(c.heartbeat(5_001, "g", &a, None, 1), UNKNOWN_MEMBER_ID);
}

#[test]
fn a_join_phase_ends_at_the_rebalance_timeout_without_the_silent_members() {
    let mut c = coordinator();
    let a = stable_with_one(&mut c);
    let b = member_id(&mut c, 4_000);
    c.join(4_000, 10, join(&b, None));
    // a never rejoins (but keeps heartbeating so its session lives).
    for t in [13_000, 22_000, 31_000] {
        assert_eq!(c.heartbeat(t, "g", &a, None, 1), REBALANCE_IN_PROGRESS);
        assert!(c.tick(t).is_empty());
    }
    assert!(c.tick(33_999).is_empty());
    let replies = c.tick(34_000);
    let reply = join_reply(&replies, 10);
    assert_eq!((reply.generation, reply.leader.as_str()), (2, b.as_str()));
    assert_eq!(c.heartbeat(34_001, "g", &a, None, 2), UNKNOWN_MEMBER_ID);
}

#[test]
fn a_restarted_static_member_gets_its_assignment_back_without_a_rebalance() {
    let mut c = coordinator();
    // Two static members; "s2" is not the leader.
    let (r1, _) = c.join(0, 1, join("", Some("s1")));
    assert!(r1.is_none(), "static members skip MEMBER_ID_REQUIRED");
    let (r2, _) = c.join(0, 2, join("", Some("s2")));
    assert!(r2.is_none());
    let replies = c.tick(3_000);
    let (one, two) = (
        join_reply(&replies, 1).clone(),
        join_reply(&replies, 2).clone(),
    );
    let leader = one.leader.clone();
    let (leader_reply, other) = if leader == one.member_id {
        (one, two)
    } else {
        (two, one)
    };
    c.sync(3, sync(&other.member_id, 1, &[]));
    let _ = c.sync(
        4,
        sync(
            &leader_reply.member_id,
            1,
            &[(&leader_reply.member_id, b"L"), (&other.member_id, b"F")],
        ),
    );
    assert_eq!(c.state("g"), Some(GroupState::Stable));
    let instance = c
        .describe("g")
        .unwrap()
        .3
        .into_iter()
        .find(|m| m.member_id == other.member_id)
        .unwrap()
        .instance_id
        .unwrap();
    // The follower's process restarts: a join with no member id.
    let (reply, replies) = c.join(5_000, 5, join("", Some(&instance)));
    let reply = reply.expect("answered at once");
    assert!(replies.is_empty());
    assert_eq!(
        (reply.error, reply.generation),
        (NONE, 1),
        "same generation: no rebalance"
    );
    assert_ne!(reply.member_id, other.member_id, "a new member id");
    assert_eq!(c.state("g"), Some(GroupState::Stable));
    let (sync_now, _) = c.sync(6, sync(&reply.member_id, 1, &[]));
    assert_eq!(sync_now.unwrap().assignment, Bytes::from_static(b"F"));
    // The old process, if still around, is fenced.
    let fenced = c.heartbeat(5_001, "g", &other.member_id, Some(&instance), 1);
    assert_eq!(fenced, FENCED_INSTANCE_ID);
}

#[test]
fn commits_are_checked_against_the_group() {
    let mut c = coordinator();
    assert_eq!(
        c.check_commit("simple", "", None, -1, Some(8)),
        Ok(()),
        "a standalone consumer"
    );
    assert_eq!(
        c.check_commit("simple", "", None, 3, Some(8)),
        Err(ILLEGAL_GENERATION)
    );
    let a = stable_with_one(&mut c);
    assert_eq!(c.check_commit("g", &a, None, 1, Some(8)), Ok(()));
    assert_eq!(
        c.check_commit("g", &a, None, 0, Some(8)),
        Err(ILLEGAL_GENERATION)
    );
    assert_eq!(
        c.check_commit("g", "stranger", None, 1, Some(8)),
        Err(UNKNOWN_MEMBER_ID)
    );
    let b = member_id(&mut c, 4_000);
    c.join(4_000, 10, join(&b, None));
    c.join(4_000, 11, join(&a, None));
    assert_eq!(c.state("g"), Some(GroupState::CompletingRebalance));
    assert_eq!(
        c.check_commit("g", &a, None, 2, Some(8)),
        Err(REBALANCE_IN_PROGRESS)
    );
}

#[test]
fn bad_joins_get_their_error_codes() {
    let mut c = coordinator();
    let mut no_group = join("", None);
    no_group.group_id.clear();
    assert_eq!(c.join(0, 1, no_group).0.unwrap().error, INVALID_GROUP_ID);
    let mut short = join("", None);
    short.session_timeout_ms = 10;
    assert_eq!(
        c.join(0, 1, short).0.unwrap().error,
        INVALID_SESSION_TIMEOUT
    );
    assert_eq!(
        c.join(0, 1, join("made-up", None)).0.unwrap().error,
        UNKNOWN_MEMBER_ID
    );
    let a = stable_with_one(&mut c);
    let mut other = join("", None);
    other.require_known_member_id = false;
    other.protocols = vec![("roundrobin".into(), Bytes::new())];
    assert_eq!(
        c.join(5_000, 9, other).0.unwrap().error,
        INCONSISTENT_GROUP_PROTOCOL
    );
    assert_eq!(
        c.heartbeat(5_000, "g", &a, None, 1),
        NONE,
        "the group is untouched"
    );
}

/// Random joins, syncs, heartbeats, leaves and ticks: every held request is
/// answered exactly once, generations never go back, and a Stable group
/// has no held joins. SHARDLOG_TEST_SEED picks another run.
#[test]
fn random_runs_answer_every_held_request_once() {
    let mut next = seeded(0x6a09_e667_u64);
    let mut c = coordinator();
    let mut now = 0u64;
    let mut token = 0u64;
    let mut held: std::collections::BTreeSet<Token> = Default::default();
    let mut members: Vec<String> = Vec::new();
    let mut generation = 0;
    let deliver = |replies: Replies, held: &mut std::collections::BTreeSet<Token>| {
        for (t, _) in replies {
            assert!(held.remove(&t), "token {t} answered twice or never held");
        }
    };
    for _ in 0..3_000 {
        now += next(700);
        token += 1;
        match next(6) {
            0 => {
                let id = if members.is_empty() || next(3) == 0 {
                    let id = member_id(&mut c, now);
                    members.push(id.clone());
                    id
                } else {
                    members[next(members.len() as u64) as usize].clone()
                };
                held.insert(token);
                let (reply, replies) = c.join(now, token, join(&id, None));
                if reply.is_some() {
                    held.remove(&token);
                }
                deliver(replies, &mut held);
            }
            1 if !members.is_empty() => {
                let id = members[next(members.len() as u64) as usize].clone();
                let assignments: Vec<(String, Bytes)> = members
                    .iter()
                    .map(|m| (m.clone(), Bytes::from_static(b"x")))
                    .collect();
                held.insert(token);
                let request = Sync {
                    group_id: "g".into(),
                    member_id: id,
                    instance_id: None,
                    generation,
                    assignments,
                };
                let (reply, replies) = c.sync(token, request);
                if reply.is_some() {
                    held.remove(&token);
                }
                deliver(replies, &mut held);
            }
            2 if !members.is_empty() => {
                let id = members[next(members.len() as u64) as usize].clone();
                c.heartbeat(now, "g", &id, None, generation);
            }
            3 if !members.is_empty() && next(4) == 0 => {
                let id = members.remove(next(members.len() as u64) as usize);
                let (_, replies) = c.leave(now, "g", &[(id, None)]);
                deliver(replies, &mut held);
            }
            _ => deliver(c.tick(now), &mut held),
        }
        if let Some((state, _, _, _)) = c.describe("g") {
            let g = c.groups.get("g").unwrap().generation;
            assert!(g >= generation, "generation went back");
            generation = g;
            if state == GroupState::Stable {
                assert!(
                    c.groups["g"]
                        .members
                        .values()
                        .all(|m| m.awaiting_join.is_none())
                );
            }
        }
    }
    // Time runs out for everyone: every held request is answered.
    deliver(c.tick(now + 10_000_000), &mut held);
    deliver(c.tick(now + 20_000_000), &mut held);
    assert!(held.is_empty(), "never answered: {held:?}");
}

#[test]
fn a_restarted_static_leader_with_new_subscription_bytes_causes_no_rebalance() {
    let mut c = coordinator();
    let (_, _) = c.join(0, 1, join("", Some("only")));
    let replies = c.tick(3_000);
    let first = join_reply(&replies, 1).clone();
    assert_eq!(first.leader, first.member_id);
    c.sync(2, sync(&first.member_id, 1, &[(&first.member_id, b"all")]));
    let mut again = join("", Some("only"));
    again.protocols = vec![("range".into(), Bytes::from_static(b"sub+owned"))];
    let (reply, _) = c.join(4_000, 3, again);
    let reply = reply.expect("answered at once");
    assert_eq!(
        (reply.generation, reply.leader.clone()),
        (1, reply.member_id.clone())
    );
    assert_eq!(reply.members.len(), 1, "the leader gets the member list");
    assert_eq!(c.state("g"), Some(GroupState::Stable));
    let (now, _) = c.sync(
        4,
        sync(&reply.member_id, 1, &[(&reply.member_id, b"ignored")]),
    );
    assert_eq!(
        now.unwrap().assignment,
        Bytes::from_static(b"all"),
        "stable: kept"
    );
}

#[test]
fn offsets_expire_only_in_empty_groups_after_the_retention() {
    let mut c = coordinator();
    let key = |p| OffsetKey {
        topic: "t".into(),
        partition: p,
    };
    let at = |ms| CommittedOffset {
        offset: 1,
        leader_epoch: -1,
        metadata: String::new(),
        commit_timestamp_ms: ms,
    };
    c.commit("standalone", vec![(key(0), at(1_000)), (key(1), at(5_000))]);
    let a = stable_with_one(&mut c);
    c.commit("g", vec![(key(0), at(1_000))]);
    assert_eq!(
        c.expired_offsets(6_000, 1_000),
        vec![("standalone".to_string(), key(0))]
    );
    c.forget("standalone", &key(0));
    // A group with members keeps its offsets however old.
    assert!(
        c.expired_offsets(100_000, 1_000)
            .iter()
            .all(|(g, _)| g == "standalone")
    );
    c.leave(7_000, "g", &[(a, None)]);
    let mut expired = c.expired_offsets(100_000, 1_000);
    expired.sort();
    assert_eq!(
        expired,
        vec![
            ("g".to_string(), key(0)),
            ("standalone".to_string(), key(1))
        ]
    );
    c.forget("g", &key(0));
    c.forget("standalone", &key(1));
    c.drop_empty_groups();
    assert_eq!(c.list(), vec![]);
}

/// Commits, deletions and coordinator restarts at random (seeded): a
/// restarted coordinator rebuilt from the durable records (what the broker
/// replays from `__consumer_offsets`) has exactly the committed offsets the
/// model has, and its old members must join again. SHARDLOG_TEST_SEED picks
/// another run.
#[test]
fn random_commits_and_restarts_keep_exactly_the_committed_offsets() {
    let mut next = seeded(0xbb67_ae85_u64);
    // The durable record stream: Some(value) a commit, None a tombstone.
    let mut log: Vec<(String, OffsetKey, Option<CommittedOffset>)> = Vec::new();
    let mut model: BTreeMap<(String, OffsetKey), i64> = BTreeMap::new();
    let mut c = coordinator();
    let (mut now, mut restarts) = (0u64, 0);
    let a = stable_with_one(&mut c);
    let mut member = Some(a);
    for step in 0..2_000 {
        now += next(50);
        let group = ["g", "solo-1", "solo-2"][next(3) as usize].to_string();
        let key = OffsetKey {
            topic: format!("t{}", next(3)),
            partition: next(4) as i32,
        };
        match next(10) {
            0 => {
                // Restart: only the durable records survive.
                restarts += 1;
                c = Coordinator::new(GroupConfig::default(), restarts * 1_000_000);
                for (group, key, value) in &log {
                    match value {
                        Some(value) => c.commit(group, vec![(key.clone(), value.clone())]),
                        None => c.forget(group, key),
                    }
                }
                if let Some(old) = member.take() {
                    assert_eq!(c.heartbeat(now, "g", &old, None, 1), UNKNOWN_MEMBER_ID);
                }
            }
            1 => {
                log.push((group.clone(), key.clone(), None));
                c.forget(&group, &key);
                model.remove(&(group, key));
            }
            _ => {
                let (member_id, generation) = match (&member, group.as_str()) {
                    (Some(m), "g") => (m.clone(), 1),
                    _ => (String::new(), -1),
                };
                if c.check_commit(&group, &member_id, None, generation, Some(8))
                    .is_err()
                {
                    continue;
                }
                let value = CommittedOffset {
                    offset: step,
                    leader_epoch: -1,
                    metadata: String::new(),
                    commit_timestamp_ms: 0,
                };
                log.push((group.clone(), key.clone(), Some(value.clone())));
                c.commit(&group, vec![(key.clone(), value)]);
                model.insert((group, key), step);
            }
        }
        for group in ["g", "solo-1", "solo-2"] {
            let have: BTreeMap<OffsetKey, i64> = c
                .all_committed(group)
                .into_iter()
                .map(|(k, v)| (k, v.offset))
                .collect();
            let want: BTreeMap<OffsetKey, i64> = model
                .iter()
                .filter(|((g, _), _)| g == group)
                .map(|((_, k), v)| (k.clone(), *v))
                .collect();
            assert_eq!(have, want, "step {step}, group {group}");
        }
    }
    assert!(restarts > 0);
}

fn key() -> OffsetKey {
    OffsetKey {
        topic: "t".into(),
        partition: 0,
    }
}

fn at(offset: i64) -> CommittedOffset {
    CommittedOffset {
        offset,
        leader_epoch: -1,
        metadata: String::new(),
        commit_timestamp_ms: 0,
    }
}

#[test]
fn unloading_a_partition_answers_its_held_requests_and_forgets_only_its_groups() {
    let mut c = coordinator();
    let a = stable_with_one(&mut c);
    let b = member_id(&mut c, 4_000);
    // b's join is held (a must rejoin); a's sync would be next.
    assert_eq!(c.join(4_000, 10, join(&b, None)), (None, vec![]));
    let mut other = join("", None);
    other.group_id = "elsewhere".into();
    assert_eq!(
        c.join(4_000, 11, other).0.unwrap().error,
        MEMBER_ID_REQUIRED
    );
    c.commit("g", vec![(key(), at(7))]);
    c.commit("elsewhere", vec![(key(), at(9))]);

    let replies = c.unload(|group| group == "g");
    assert_eq!(replies.len(), 1, "{replies:?}");
    let reply = join_reply(&replies, 10);
    assert_eq!(
        (reply.error, reply.member_id.as_str()),
        (NOT_COORDINATOR, b.as_str())
    );
    assert_eq!(c.state("g"), None);
    assert!(c.committed("g", &key()).is_none());
    assert_eq!(c.heartbeat(4_100, "g", &a, None, 1), UNKNOWN_MEMBER_ID);
    assert_eq!(
        c.committed("elsewhere", &key()).map(|o| o.offset),
        Some(9),
        "another partition's group stays"
    );
}
