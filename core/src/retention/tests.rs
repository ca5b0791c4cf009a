//! The retention plan over generated histories, against a plain reference model.

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::Policy;
use super::plan::{Candidate, plan};
use crate::backup::{BackupState, BackupType};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 6, 15, 12, 0, 0).unwrap()
}

fn policy(t: BackupType, n: Option<u32>, d: Option<u32>) -> Policy {
    Policy {
        backup_type: t,
        max_count: n,
        max_age_days: d,
        keep_daily: 0,
        keep_weekly: 0,
        keep_monthly: 0,
    }
}

fn backup(i: usize, t: BackupType, source: &str, hours_ago: i64) -> Candidate {
    Candidate {
        id: format!("b{i:04}"),
        backup_type: t,
        source: source.into(),
        created_at: now() - Duration::hours(hours_ago),
        state: BackupState::Completed,
        verified: false,
        pinned: false,
        in_use: false,
    }
}

fn history(rng: &mut StdRng, n: usize) -> Vec<Candidate> {
    // Safety backups (taken by restores) are a type of their own, with their own period.
    let types = [
        BackupType::Daily,
        BackupType::Weekly,
        BackupType::Manual,
        BackupType::Safety,
    ];
    (0..n)
        .map(|i| {
            let mut c = backup(
                i,
                types[rng.gen_range(0..types.len())],
                ["app", "crm"][rng.gen_range(0..2)],
                rng.gen_range(0..24 * 200),
            );
            c.state = match rng.gen_range(0..10) {
                0 => BackupState::Failed,
                1 => BackupState::Deleted,
                2 => BackupState::Running,
                _ => BackupState::Completed,
            };
            c.verified = c.state == BackupState::Completed && rng.gen_bool(0.3);
            c.pinned = rng.gen_bool(0.05);
            c.in_use = rng.gen_bool(0.03);
            c
        })
        .collect()
}

#[test]
fn generated_histories_keep_exactly_what_the_policy_says() {
    for seed in 0..200u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let len = rng.gen_range(0..80);
        let h = history(&mut rng, len);
        let policies = [
            policy(
                BackupType::Daily,
                Some(rng.gen_range(1..8)),
                Some(rng.gen_range(1..120)),
            ),
            policy(BackupType::Weekly, None, Some(rng.gen_range(1..120))),
            policy(BackupType::Manual, Some(rng.gen_range(1..5)), None),
            // The seed's safety policy is 10 backups / 14 days; vary the count.
            policy(BackupType::Safety, Some(rng.gen_range(1..12)), Some(14)),
        ];
        let decisions = plan(&policies, &h, now());
        // Every completed or failed backup is decided once; nothing else is.
        let decidable: Vec<_> = h
            .iter()
            .filter(|c| matches!(c.state, BackupState::Completed | BackupState::Failed))
            .collect();
        assert_eq!(decisions.len(), decidable.len(), "seed {seed}");
        for c in decidable {
            let d = decisions.iter().find(|d| d.id == c.id).unwrap();
            assert_eq!(
                d.keep,
                reference_keep(&policies, &h, c),
                "seed {seed}: {c:?} {d:?}"
            );
        }
    }
}

/// The policy restated plainly: protected, or within both limits among its own kind.
fn reference_keep(policies: &[Policy], h: &[Candidate], c: &Candidate) -> bool {
    let newest_verified = h
        .iter()
        .filter(|o| o.source == c.source && o.state == BackupState::Completed && o.verified)
        .max_by_key(|o| (o.created_at, o.id.clone()));
    if c.pinned || c.in_use || newest_verified.is_some_and(|o| o.id == c.id) {
        return true;
    }
    let p = policies
        .iter()
        .find(|p| p.backup_type == c.backup_type)
        .unwrap();
    let newer = h
        .iter()
        .filter(|o| {
            o.backup_type == c.backup_type
                && o.source == c.source
                && o.state == c.state
                && (o.created_at, &o.id) > (c.created_at, &c.id)
        })
        .count();
    let age = (now() - c.created_at).num_seconds() as f64 / 86_400.0;
    p.max_count.is_none_or(|n| newer < n as usize) && p.max_age_days.is_none_or(|d| age <= d as f64)
}

#[test]
fn protections_win_over_every_limit() {
    let p = [policy(BackupType::Daily, Some(1), Some(1))];
    let mut h: Vec<Candidate> = (0..6)
        .map(|i| backup(i, BackupType::Daily, "app", 24 * 10 * (i as i64 + 1)))
        .collect();
    h[2].verified = true;
    h[4].verified = true; // older verified: not protected
    h[3].pinned = true;
    h[5].in_use = true;
    let d = plan(&p, &h, now());
    let keep: Vec<(&str, bool, &str)> = d
        .iter()
        .map(|d| (d.id.as_str(), d.keep, d.reason.as_str()))
        .collect();
    let get = |id: &str| keep.iter().find(|k| k.0 == id).unwrap();
    assert!(
        !get("b0000").1,
        "10 days old, over 1 day: {:?}",
        get("b0000")
    );
    assert!(get("b0002").1 && get("b0002").2.contains("newest verified"));
    assert!(get("b0003").1 && get("b0003").2 == "pinned");
    assert!(!get("b0004").1, "an older verified backup is not protected");
    assert!(get("b0005").1 && get("b0005").2.contains("restore"));
}

#[test]
fn gfs_slots_reach_past_count_and_age() {
    let mut p = policy(BackupType::Daily, Some(2), Some(3));
    p.keep_daily = 5;
    p.keep_monthly = 3;
    // Two backups a day for 100 days.
    let h: Vec<Candidate> = (0..200)
        .map(|i| backup(i, BackupType::Daily, "app", 12 * i as i64 + 1))
        .collect();
    let d = plan(&[p], &h, now());
    let with = |what: &str| -> Vec<&str> {
        d.iter()
            .filter(|d| d.keep && d.reason.contains(what))
            .map(|d| d.id.as_str())
            .collect()
    };
    // b0 (Jun 15 11:00) and b1 (Jun 14 23:00) by count; then the newest of Jun 13, 12, 11
    // (the 5 latest days hold b0, b1, b3, b5, b7); then the newest of May (b29, May 31 23:00)
    // and April (b91, Apr 30 23:00): June's newest is b0 already.
    assert_eq!(with("at most 2"), ["b0000", "b0001"]);
    assert_eq!(with("daily slot"), ["b0003", "b0005", "b0007"]);
    assert_eq!(with("monthly slot"), ["b0029", "b0091"]);
    assert_eq!(d.iter().filter(|d| d.keep).count(), 7);
    assert!(d.iter().filter(|d| !d.keep).all(
        |d| d.reason.contains("older than 3 days") || d.reason.contains("beyond the newest 2")
    ));
}

#[test]
fn failed_backups_never_push_out_good_ones() {
    let p = [policy(BackupType::Daily, Some(2), None)];
    let mut h: Vec<Candidate> = (0..6)
        .map(|i| backup(i, BackupType::Daily, "app", i as i64 + 1))
        .collect();
    for c in &mut h[..4] {
        c.state = BackupState::Failed;
    }
    let d = plan(&p, &h, now());
    let keep = |id: &str| d.iter().find(|d| d.id == id).unwrap().keep;
    // b4 and b5 are the only completed ones: both kept, though 4 failures are newer.
    assert!(keep("b0004") && keep("b0005"));
    // Of the failures, the newest 2 stay for the record.
    assert!(keep("b0000") && keep("b0001") && !keep("b0002") && !keep("b0003"));
}

#[test]
fn a_type_without_a_policy_keeps_everything() {
    let h: Vec<Candidate> = (0..3)
        .map(|i| backup(i, BackupType::Monthly, "app", 24 * 400))
        .collect();
    assert!(plan(&[], &h, now()).iter().all(|d| d.keep));
}
