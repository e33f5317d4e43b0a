//! KIP-848's server-side assignors: given each member's subscription and
//! the subscribed topics' partition counts, every member's target
//! assignment. Pure and deterministic (members in id order).
//!
//! - `uniform` (Kafka's default): every partition of a subscribed topic to
//!   one subscriber, balanced so that counts differ by at most one among
//!   members that could take the same partitions, sticky: a member keeps
//!   what it had where the balance allows.
//! - `range`: per topic, contiguous ranges of partitions over its
//!   subscribers in id order (the first `n % m` get one more), so that
//!   co-partitioned topics line up.

use std::collections::{BTreeMap, BTreeSet};

/// Partitions by topic.
pub type Assignment = BTreeMap<String, BTreeSet<i32>>;

pub const UNIFORM: &str = "uniform";
pub const RANGE: &str = "range";
pub const ASSIGNORS: &[&str] = &[UNIFORM, RANGE];

/// One member as an assignor sees it.
pub struct Subscriber<'a> {
    pub topics: &'a BTreeSet<String>,
    /// Its current target (for stickiness).
    pub current: &'a Assignment,
}

/// Targets by member id, from `assignor` (one of [`ASSIGNORS`]).
pub fn assign(assignor: &str, members: &BTreeMap<String, Subscriber>, partitions: &BTreeMap<String, i32>) -> BTreeMap<String, Assignment> {
    match assignor {
        RANGE => range(members, partitions),
        _ => uniform(members, partitions),
    }
}

fn range(members: &BTreeMap<String, Subscriber>, partitions: &BTreeMap<String, i32>) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members.keys().map(|m| (m.clone(), Assignment::new())).collect();
    for (topic, count) in partitions {
        let subs: Vec<&String> = members.iter().filter(|(_, s)| s.topics.contains(topic)).map(|(m, _)| m).collect();
        if subs.is_empty() {
            continue;
        }
        let (each, extra) = (*count as usize / subs.len(), *count as usize % subs.len());
        let mut next = 0;
        for (i, m) in subs.iter().enumerate() {
            let n = each + usize::from(i < extra);
            if n > 0 {
                out.get_mut(*m).expect("a member").insert(topic.clone(), (next as i32..(next + n) as i32).collect());
            }
            next += n;
        }
    }
    out
}

fn uniform(members: &BTreeMap<String, Subscriber>, partitions: &BTreeMap<String, i32>) -> BTreeMap<String, Assignment> {
    let eligible = |m: &str, t: &str| members.get(m).is_some_and(|s| s.topics.contains(t));
    let exists = |t: &str, p: i32| partitions.get(t).is_some_and(|n| (0..*n).contains(&p));
    let wanted: usize = partitions.iter().filter(|(t, _)| members.values().any(|s| s.topics.contains(*t))).map(|(_, n)| *n as usize).sum();
    // Each member's fair share (the whole of it when all subscribe alike).
    let quota = if members.is_empty() { 0 } else { wanted.div_ceil(members.len()) };
    let mut owned: BTreeMap<&String, BTreeSet<(&String, i32)>> = members.keys().map(|m| (m, BTreeSet::new())).collect();
    let mut taken: BTreeSet<(&String, i32)> = BTreeSet::new();
    // Sticky: what a member had stays, up to its quota.
    for (m, s) in members {
        for (t, ps) in s.current {
            let Some((topic, _)) = partitions.get_key_value(t) else { continue };
            for p in ps.iter().copied().filter(|p| exists(t, *p)) {
                if eligible(m, t) && owned[m].len() < quota && taken.insert((topic, p)) {
                    owned.get_mut(m).expect("a member").insert((topic, p));
                }
            }
        }
    }
    // The rest: each to the least loaded member that may take it.
    for (t, n) in partitions {
        for p in 0..*n {
            if taken.contains(&(t, p)) {
                continue;
            }
            if let Some(m) = members.keys().filter(|m| eligible(m, t)).min_by_key(|m| (owned[*m].len(), *m)) {
                taken.insert((t, p));
                owned.get_mut(m).expect("a member").insert((t, p));
            }
        }
    }
    // Balance: move a partition from a more loaded member to one with at
    // least two fewer that may take it, while there is such a pair.
    loop {
        let mut by_load: Vec<&String> = owned.keys().copied().collect();
        by_load.sort_by_key(|m| (owned[*m].len(), *m));
        let step = by_load.iter().rev().find_map(|from| {
            by_load.iter().take_while(|to| owned[**to].len() + 1 < owned[*from].len()).find_map(|to| {
                owned[*from].iter().find(|(t, _)| eligible(to, t)).map(|key| (*key, *from, *to))
            })
        });
        let Some((key, from, to)) = step else { break };
        owned.get_mut(from).expect("a member").remove(&key);
        owned.get_mut(to).expect("a member").insert(key);
    }
    owned
        .into_iter()
        .map(|(m, keys)| {
            let mut a = Assignment::new();
            for (t, p) in keys {
                a.entry(t.clone()).or_default().insert(p);
            }
            (m.clone(), a)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(topics: &[&str]) -> BTreeSet<String> {
        topics.iter().map(|t| t.to_string()).collect()
    }

    fn run(assignor: &str, subs: &[(&str, &[&str], Assignment)], partitions: &[(&str, i32)]) -> BTreeMap<String, Assignment> {
        let topics: Vec<BTreeSet<String>> = subs.iter().map(|(_, t, _)| set(t)).collect();
        let members = subs.iter().zip(&topics).map(|((m, _, cur), t)| (m.to_string(), Subscriber { topics: t, current: cur })).collect();
        assign(assignor, &members, &partitions.iter().map(|(t, n)| (t.to_string(), *n)).collect())
    }

    fn count(a: &Assignment) -> usize {
        a.values().map(|p| p.len()).sum()
    }

    fn every_partition_once(out: &BTreeMap<String, Assignment>, partitions: &[(&str, i32)]) {
        let mut seen = BTreeSet::new();
        for a in out.values() {
            for (t, ps) in a {
                for p in ps {
                    assert!(seen.insert((t.clone(), *p)), "{t}-{p} twice in {out:?}");
                }
            }
        }
        let want: usize = partitions.iter().map(|(_, n)| *n as usize).sum();
        assert_eq!(seen.len(), want, "{out:?}");
    }

    #[test]
    fn uniform_balances_and_covers_every_partition() {
        let parts = [("a", 7), ("b", 3)];
        let out = run(UNIFORM, &[("m1", &["a", "b"], Assignment::new()), ("m2", &["a", "b"], Assignment::new()), ("m3", &["a", "b"], Assignment::new())], &parts);
        every_partition_once(&out, &parts);
        let counts: Vec<usize> = out.values().map(count).collect();
        assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1, "{counts:?}");
    }

    #[test]
    fn uniform_is_sticky_when_a_member_joins() {
        let parts = [("a", 6)];
        let two = run(UNIFORM, &[("m1", &["a"], Assignment::new()), ("m2", &["a"], Assignment::new())], &parts);
        let three = run(UNIFORM, &[("m1", &["a"], two["m1"].clone()), ("m2", &["a"], two["m2"].clone()), ("m3", &["a"], Assignment::new())], &parts);
        every_partition_once(&three, &parts);
        assert_eq!(three.values().map(count).collect::<Vec<_>>(), vec![2, 2, 2]);
        // Each old member kept two of its three.
        for m in ["m1", "m2"] {
            assert!(three[m]["a"].is_subset(&two[m]["a"]), "{m}: {:?} then {:?}", two[m], three[m]);
        }
    }

    #[test]
    fn uniform_gives_topics_only_to_their_subscribers() {
        let parts = [("a", 4), ("b", 4)];
        let out = run(UNIFORM, &[("m1", &["a"], Assignment::new()), ("m2", &["a", "b"], Assignment::new()), ("m3", &["b"], Assignment::new())], &parts);
        every_partition_once(&out, &parts);
        assert!(!out["m1"].contains_key("b") && !out["m3"].contains_key("a"), "{out:?}");
        let counts: Vec<usize> = out.values().map(count).collect();
        assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1, "{counts:?}");
    }

    #[test]
    fn range_lines_up_co_partitioned_topics() {
        let parts = [("a", 5), ("b", 5)];
        let out = run(RANGE, &[("m1", &["a", "b"], Assignment::new()), ("m2", &["a", "b"], Assignment::new())], &parts);
        every_partition_once(&out, &parts);
        assert_eq!(out["m1"]["a"], out["m1"]["b"]);
        assert_eq!(out["m1"]["a"], [0, 1, 2].into_iter().collect());
        assert_eq!(out["m2"]["b"], [3, 4].into_iter().collect());
    }

    #[test]
    fn no_members_or_no_topics_assign_nothing() {
        assert!(run(UNIFORM, &[], &[("a", 3)]).is_empty());
        let out = run(RANGE, &[("m1", &["missing"], Assignment::new())], &[]);
        assert_eq!(out["m1"], Assignment::new());
    }
}
