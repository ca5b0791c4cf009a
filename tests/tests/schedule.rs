//! Schedules against a real catalog with a controllable clock: three workers' ticks over a
//! simulated week fire each due time exactly once; a down period fires only the latest missed
//! time; a disabled schedule fires nothing; daylight saving time is handled as documented.

use std::sync::Arc;

use cellar_core::backup::BackupType;
use cellar_core::schedule::{self, RawSchedule, ScheduleInput, catalog};
use cellar_tests::TestDb;
use chrono::{DateTime, Duration, TimeZone, Utc};
use sqlx::PgPool;
use tokio::sync::Barrier;

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

async fn fire_times(pool: &PgPool, name: &str) -> Vec<DateTime<Utc>> {
    let s = catalog::get(pool, name).await.unwrap().unwrap();
    let mut f: Vec<_> = catalog::fires(pool, s.id, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.fire_at)
        .collect();
    f.sort();
    f
}

async fn backup_jobs(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM job WHERE kind = 'backup'")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Ticks from `from` to `to` in `step`s, as `workers` concurrent workers whose clocks differ
/// by a few seconds. A barrier per step makes them contend: all tick the same fire time at
/// once, so none can run ahead and claim every fire alone. (Every worker waits at every step,
/// even once its fast clock has passed `to`, so the barrier always fills.)
async fn run_workers(
    pool: &PgPool,
    workers: i64,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    step: Duration,
) {
    let steps = (to - from).num_seconds() / step.num_seconds() + 1;
    let barrier = Arc::new(Barrier::new(workers as usize));
    let tasks = (0..workers).map(|k| {
        let (pool, barrier) = (pool.clone(), Arc::clone(&barrier));
        tokio::spawn(async move {
            for i in 0..steps {
                let now = from + step * i as i32 + Duration::seconds(k * 7);
                barrier.wait().await;
                if now <= to {
                    schedule::tick(&pool, now, "app").await.unwrap();
                }
            }
        })
    });
    for t in tasks.collect::<Vec<_>>() {
        t.await.unwrap();
    }
}

/// Moves every schedule's creation (the start of its due fire times) to `t`.
async fn created_at(pool: &PgPool, t: DateTime<Utc>) {
    sqlx::query("UPDATE schedule SET fires_after = $1")
        .bind(t)
        .execute(pool)
        .await
        .unwrap();
}

fn input(name: &str, cron: &str, tz: &str) -> ScheduleInput {
    ScheduleInput::parse(RawSchedule {
        name: name.into(),
        cron: cron.into(),
        time_zone: Some(tz.into()),
        backup_type: Some(BackupType::Daily),
        ..Default::default()
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_over_a_week_fire_each_seed_schedule_once() {
    let (_db, pool) = TestDb::catalog().await;
    let names: Vec<String> = catalog::list(&pool)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(
        names,
        ["daily", "monthly", "weekly"],
        "the seed's three schedules"
    );

    // Wednesday 2030-05-29 to Wednesday 2030-06-05: crosses Sunday 2 June and the 1st. The
    // schedules count as created when the week starts (else its first tick would also run
    // the latest fire missed since the migration created them).
    let (from, to) = (at(2030, 5, 29, 0, 0), at(2030, 6, 5, 0, 0));
    created_at(&pool, from).await;
    run_workers(&pool, 3, from, to, Duration::minutes(7)).await;

    let daily: Vec<_> = (0..7)
        .map(|d| at(2030, 5, 29, 2, 0) + Duration::days(d))
        .collect();
    assert_eq!(fire_times(&pool, "daily").await, daily);
    assert_eq!(fire_times(&pool, "weekly").await, [at(2030, 6, 2, 3, 0)]);
    assert_eq!(fire_times(&pool, "monthly").await, [at(2030, 6, 1, 4, 0)]);
    assert_eq!(backup_jobs(&pool).await, 9, "one job per fire");

    // The fires produced ordinary backups with the schedule's type and options.
    let rows: Vec<(String, bool, bool, String)> = sqlx::query_as(
        "SELECT b.backup_type::text, b.include_files, b.verify_after, b.source FROM backup b
         JOIN schedule s ON s.id = b.schedule_id WHERE s.name = 'monthly'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows, [("monthly".into(), true, true, "app".into())]);

    // Running the week again (a worker with a slow clock) fires nothing more, even once the
    // jobs are gone (pruned).
    sqlx::query("UPDATE backup SET job_id = NULL")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM job").execute(&pool).await.unwrap();
    run_workers(&pool, 2, from, to, Duration::hours(1)).await;
    assert_eq!(fire_times(&pool, "daily").await.len(), 7);
    assert_eq!(backup_jobs(&pool).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_period_fires_only_the_latest_missed_time_and_disabled_fires_nothing() {
    let (_db, pool) = TestDb::catalog().await;
    catalog::set_enabled(&pool, "weekly", false, at(2030, 1, 1, 0, 0))
        .await
        .unwrap();
    catalog::set_enabled(&pool, "monthly", false, at(2030, 1, 1, 0, 0))
        .await
        .unwrap();

    created_at(&pool, at(2030, 3, 10, 0, 0)).await;
    // Everything is down from 2030-03-10 to 2030-03-15 10:00: one daily fire, the 15th's.
    let r = schedule::tick(&pool, at(2030, 3, 10, 1, 0), "app")
        .await
        .unwrap();
    assert!(
        r.fired.is_empty(),
        "first tick after creation: nothing due before it? {r:?}"
    );
    let r = schedule::tick(&pool, at(2030, 3, 15, 10, 0), "app")
        .await
        .unwrap();
    let fired: Vec<_> = r
        .fired
        .iter()
        .map(|f| (f.schedule.as_str(), f.fire_at))
        .collect();
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0].1, at(2030, 3, 15, 2, 0));
    assert_eq!(r.next_fire_at, Some(at(2030, 3, 16, 2, 0)));
    assert!(
        schedule::tick(&pool, at(2030, 3, 15, 11, 0), "app")
            .await
            .unwrap()
            .fired
            .is_empty()
    );

    // Disabled over a week: nothing. Enabled again: no catch-up, the next time fires.
    catalog::set_enabled(&pool, "daily", false, at(2030, 3, 15, 12, 0))
        .await
        .unwrap();
    run_workers(
        &pool,
        3,
        at(2030, 3, 15, 12, 0),
        at(2030, 3, 22, 12, 0),
        Duration::minutes(30),
    )
    .await;
    assert_eq!(fire_times(&pool, "daily").await.len(), 1);
    let s = catalog::set_enabled(&pool, "daily", true, at(2030, 3, 22, 12, 0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        s.next_fire_at(at(2030, 3, 22, 12, 0)),
        Some(at(2030, 3, 23, 2, 0))
    );
    run_workers(
        &pool,
        3,
        at(2030, 3, 22, 12, 0),
        at(2030, 3, 23, 12, 0),
        Duration::minutes(30),
    )
    .await;
    assert_eq!(
        fire_times(&pool, "daily").await,
        [at(2030, 3, 15, 2, 0), at(2030, 3, 23, 2, 0)]
    );
    assert!(fire_times(&pool, "weekly").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daylight_saving_time_fires_once_per_day() {
    let (_db, pool) = TestDb::catalog().await;
    for s in ["daily", "weekly", "monthly"] {
        catalog::delete(&pool, s).await.unwrap().unwrap();
    }
    let t0 = at(2030, 3, 29, 0, 0);
    catalog::upsert(&pool, &input("berlin", "30 2 * * *", "Europe/Berlin"), t0)
        .await
        .unwrap();
    catalog::upsert(
        &pool,
        &input("quarter", "*/15 2 * * *", "Europe/Berlin"),
        t0,
    )
    .await
    .unwrap();

    // Spring: on 2030-03-31 02:00 CET jumps to 03:00 CEST; 02:30 does not exist: the fire is
    // at the first instant after the gap, 03:00 CEST (01:00 UTC).
    run_workers(&pool, 3, t0, at(2030, 4, 1, 12, 0), Duration::minutes(5)).await;
    assert_eq!(
        fire_times(&pool, "berlin").await,
        [
            at(2030, 3, 29, 1, 30),
            at(2030, 3, 30, 1, 30),
            at(2030, 3, 31, 1, 0),
            at(2030, 4, 1, 0, 30)
        ]
    );

    // Autumn: on 2030-10-27 03:00 CEST falls back to 02:00 CET; 02:30 happens twice: a
    // fixed-time schedule fires once (the first, 00:30 UTC); an interval one fires on both
    // passes, each exactly once.
    // (The first tick also runs the latest fire missed since April, on the 26th: not counted.)
    let t1 = at(2030, 10, 26, 12, 0);
    run_workers(&pool, 3, t1, at(2030, 10, 28, 12, 0), Duration::minutes(5)).await;
    let autumn: Vec<_> = fire_times(&pool, "berlin")
        .await
        .into_iter()
        .filter(|t| *t > t1)
        .collect();
    assert_eq!(autumn, [at(2030, 10, 27, 0, 30), at(2030, 10, 28, 1, 30)]);
    let quarter: Vec<_> = fire_times(&pool, "quarter")
        .await
        .into_iter()
        .filter(|t| *t > t1)
        .collect();
    // 02:00..02:45 CEST (00:00..00:45 UTC), then again in CET (01:00..01:45 UTC); next day once.
    assert_eq!(quarter.len(), 8 + 4, "{quarter:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_timing_only_fires_later_times_and_inputs_are_parsed() {
    let (_db, pool) = TestDb::catalog().await;
    let t0 = at(2030, 1, 10, 12, 0);
    let (s, created) = catalog::upsert(&pool, &input("daily", "0 2 * * *", "UTC"), t0)
        .await
        .unwrap();
    assert!(
        !created,
        "the seed's daily schedule is replaced, not duplicated"
    );
    // Same timing again, later: fires_after does not move (only a change of timing moves it).
    let (s2, _) = catalog::upsert(
        &pool,
        &input("daily", "0 2 * * *", "UTC"),
        at(2030, 1, 20, 0, 0),
    )
    .await
    .unwrap();
    assert_eq!(s2.fires_after, s.fires_after);
    let (s3, _) = catalog::upsert(
        &pool,
        &input("daily", "0 5 * * *", "UTC"),
        at(2030, 1, 20, 0, 0),
    )
    .await
    .unwrap();
    assert_eq!(s3.fires_after, at(2030, 1, 20, 0, 0));
    let r = schedule::tick(&pool, at(2030, 1, 20, 4, 0), "app")
        .await
        .unwrap();
    assert!(r.fired.iter().all(|f| f.schedule != "daily"), "{r:?}");

    for (raw, says) in [
        (
            RawSchedule {
                name: "Bad Name".into(),
                cron: "0 2 * * *".into(),
                ..Default::default()
            },
            "name",
        ),
        (
            RawSchedule {
                name: "x".into(),
                cron: "0 2 * *".into(),
                ..Default::default()
            },
            "5 fields",
        ),
        (
            RawSchedule {
                name: "x".into(),
                cron: "0 2 * * *".into(),
                time_zone: Some("Mars/Base".into()),
                ..Default::default()
            },
            "unknown time zone",
        ),
        (
            RawSchedule {
                name: "x".into(),
                cron: "0 2 * * *".into(),
                tables: Some(vec!["a.b.c".into()]),
                ..Default::default()
            },
            "tables",
        ),
        (
            RawSchedule {
                name: "x".into(),
                cron: "0 2 * * *".into(),
                backup_type: Some(BackupType::Safety),
                ..Default::default()
            },
            "safety",
        ),
        (
            RawSchedule {
                name: "x".into(),
                cron: "0 2 * * *".into(),
                verify: Some("full".into()),
                ..Default::default()
            },
            "verify",
        ),
    ] {
        let e = ScheduleInput::parse(raw).unwrap_err();
        assert!(e.contains(says), "{says}: {e}");
    }

    // The shortest interval over enabled schedules (for health): daily now 1 day; an hourly
    // schedule makes it 1 hour.
    let day = schedule::shortest_interval(&pool, t0).await.unwrap();
    assert_eq!(day, Some(Duration::days(1)));
    catalog::upsert(&pool, &input("hourly", "0 * * * *", "UTC"), t0)
        .await
        .unwrap();
    assert_eq!(
        schedule::shortest_interval(&pool, t0).await.unwrap(),
        Some(Duration::hours(1))
    );
}

/// The loop in the real binary (not `tick` called by hand): a `cellar-worker` started after a
/// down period fires the latest missed time of an every-minute schedule once, and runs its
/// backup to completion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_worker_fires_the_latest_missed_time_on_start_and_runs_the_backup() {
    use cellar_tests::rig::{self, Rig};
    let mut rig = Rig::new(rig::source(100).await).await;
    let pool = rig.pool.clone();
    // Only this schedule, "created" ten minutes ago: ten fire times were missed while no
    // worker ran.
    sqlx::query("UPDATE schedule SET enabled = false")
        .execute(&pool)
        .await
        .unwrap();
    let mut s = input("every-minute", "* * * * *", "UTC");
    s.backup_type = BackupType::Manual;
    catalog::upsert(&pool, &s, Utc::now() - Duration::minutes(10))
        .await
        .unwrap();
    let started = Utc::now();
    let _worker = rig.worker();
    let done = cellar_tests::wait_for(
        std::time::Duration::from_secs(60),
        "the fired backup to complete",
        || {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>(
                    "SELECT count(*) FROM backup b JOIN schedule s ON s.id = b.schedule_id
                      WHERE s.name = 'every-minute' AND b.state = 'completed'",
                )
                .fetch_one(&pool)
                .await
                .unwrap()
                    >= 1
            }
        },
    )
    .await;
    eprintln!("fired and completed within {done:?} of the worker's start");
    let fires = fire_times(&pool, "every-minute").await;
    // The latest missed minute (or, if a minute boundary passed meanwhile, that one too): never
    // the ten missed ones.
    assert!(!fires.is_empty() && fires.len() <= 2, "{fires:?}");
    let first = fires[0];
    assert!(
        first <= started && started - first < Duration::seconds(60),
        "{fires:?} at {started}"
    );
}
