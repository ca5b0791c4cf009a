//! The data phase of a full restore with index builds interleaved: `jobs` lanes, each taking
//! the next piece of work as it frees up.
//!
//! ```text
//! loop, per lane:
//!   an early post-data entry whose tables are loaded and whose early dependencies ran
//!       (costliest first)              -> run it on the lane's DDL connection
//!   else the next data object (by its table's critical path) -> COPY it; when it was its
//!       table's last, entries waiting on the table may become ready
//!   else entries still wait on work in flight -> sleep until some finishes
//!   else done
//! ```
//! An index build on a finished table overlaps with COPY into other tables, as `pg_restore -j`
//! does; the total parallelism stays `jobs` (one server backend busy per lane).
//!
//! Order is longest-path-first: a table's path is its bytes plus the costliest build that waits
//! for it (bytes x [`EarlyEntry::cost_factor`]), so a small table under a GIN index loads
//! first and its slow build runs beside the other tables' COPY instead of after it, alone on
//! one lane (that tail was 4.8 s of a 12.9 s restore of the realistic dataset).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Mutex;

use futures::StreamExt;
use sqlx::PgConnection;
use tokio::sync::Notify;

use super::RestoreError;
use super::load::{Meter, copy_object};
use super::open::OpenedBackup;
use super::postdata::{EarlyEntry, PostDataPlan};
use super::target::Server;
use crate::backup::BackupEnv;
use crate::format::ManifestObject;

/// Set once per DDL connection; each build sets its own `maintenance_work_mem`
/// ([`EarlyEntry::maintenance_work_mem`]).
const INDEX_SESSION: &str = "SET synchronous_commit = off;";

/// The backup's tables that have rows, in the order the planner numbers them.
pub fn tables_with_rows(backup: &OpenedBackup) -> Vec<(String, String)> {
    let mut seen = BTreeSet::new();
    backup
        .data_objects()
        .iter()
        .filter_map(|(o, _)| o.table.as_ref())
        .map(|t| (t.schema.clone(), t.name.clone()))
        .filter(|t| seen.insert(t.clone()))
        .collect()
}

type Object<'b> = (&'b ManifestObject, Option<&'b [String]>);

/// Work not yet handed out, and what has finished.
struct State {
    /// `(object, table)` indexes, largest object first.
    objects: VecDeque<(usize, usize)>,
    /// Objects not yet loaded (queued or in flight), per table index.
    unloaded: HashMap<usize, usize>,
    /// Indexes into `plan.early`, not yet started.
    waiting: Vec<usize>,
    ran: BTreeSet<u32>,
    in_flight: usize,
    /// Tables under running entries: (builds holding SHARE, one holding ACCESS EXCLUSIVE).
    busy: HashMap<usize, (usize, bool)>,
}

/// Whether an entry locks its tables against every other build. `CREATE INDEX` takes SHARE,
/// so index builds on one table run side by side; `ALTER TABLE ... ADD CONSTRAINT` takes ACCESS
/// EXCLUSIVE, and started beside a build on the same table it would hold a lane while waiting
/// (a primary key once waited 6 s behind a GIN build). `pg_restore -j` avoids the same way.
fn exclusive(e: &EarlyEntry) -> bool {
    e.kind != "INDEX"
}

#[derive(Debug, PartialEq, Eq)]
enum Work {
    /// Run `plan.early[i]`.
    Entry(usize),
    /// COPY object `o` of table `t`.
    Copy {
        o: usize,
        t: usize,
    },
    /// Entries wait on work in flight.
    Wait,
    Done,
}

struct Scheduler<'p> {
    plan: &'p PostDataPlan,
    /// Plain bytes per table index, to weigh builds.
    size: HashMap<usize, u64>,
    state: Mutex<State>,
    changed: Notify,
}

impl<'p> Scheduler<'p> {
    /// `objects` are `(table index, plain size)`, in any order.
    fn new(plan: &'p PostDataPlan, objects: &[(usize, u64)]) -> Self {
        let (mut unloaded, mut size) = (HashMap::new(), HashMap::new());
        for &(t, bytes) in objects {
            *unloaded.entry(t).or_default() += 1;
            *size.entry(t).or_default() += bytes;
        }
        // A table's critical path: its rows, then the costliest build waiting for them.
        let mut path: HashMap<usize, u64> = size.clone();
        for e in &plan.early {
            let cost = e
                .tables
                .iter()
                .filter_map(|t| size.get(t))
                .sum::<u64>()
                .saturating_mul(e.cost_factor());
            for t in &e.tables {
                if let (Some(p), Some(bytes)) = (path.get_mut(t), size.get(t)) {
                    *p = (*p).max(bytes.saturating_add(cost));
                }
            }
        }
        let mut order: Vec<usize> = (0..objects.len()).collect();
        // Longest path first; a table's objects together, largest first.
        order.sort_by_key(|&o| {
            let (t, bytes) = objects[o];
            std::cmp::Reverse((path[&t], t, bytes))
        });
        Self {
            plan,
            size,
            state: Mutex::new(State {
                objects: order.into_iter().map(|o| (o, objects[o].0)).collect(),
                unloaded,
                waiting: (0..plan.early.len()).collect(),
                ran: BTreeSet::new(),
                in_flight: 0,
                busy: HashMap::new(),
            }),
            changed: Notify::new(),
        }
    }

    fn ready(&self, s: &State, e: &EarlyEntry) -> bool {
        e.tables
            .iter()
            .all(|t| s.unloaded.get(t).is_none_or(|&n| n == 0))
            && e.after.iter().all(|d| s.ran.contains(d))
            && e.tables.iter().all(|t| match s.busy.get(t) {
                None => true,
                Some(&(shared, excl)) => !(excl || (exclusive(e) && shared > 0)),
            })
    }

    /// The build's estimated cost: its tables' bytes times its access method's factor.
    fn weight(&self, e: &EarlyEntry) -> u64 {
        e.tables
            .iter()
            .filter_map(|t| self.size.get(t))
            .sum::<u64>()
            .saturating_mul(e.cost_factor())
    }

    fn next(&self) -> Work {
        let mut s = self.state.lock().expect("scheduler lock");
        let ready = s
            .waiting
            .iter()
            .enumerate()
            .filter(|&(_, &i)| self.ready(&s, &self.plan.early[i]))
            // Costliest first; on a tie, builds that share their table before a constraint
            // that would lock it, then plan order.
            .max_by_key(|&(pos, &i)| {
                let e = &self.plan.early[i];
                (self.weight(e), !exclusive(e), std::cmp::Reverse(pos))
            })
            .map(|(pos, _)| pos);
        // Dependencies form a DAG over work that is queued or running, so with nothing in flight
        // something is always ready; if not (a bug), run the oldest rather than hang.
        let stuck = s.objects.is_empty() && s.in_flight == 0 && !s.waiting.is_empty();
        if let Some(pos) = ready.or(stuck.then_some(0)) {
            s.in_flight += 1;
            let i = s.waiting.remove(pos);
            let e = &self.plan.early[i];
            for &t in &e.tables {
                let b = s.busy.entry(t).or_default();
                match exclusive(e) {
                    true => b.1 = true,
                    false => b.0 += 1,
                }
            }
            return Work::Entry(i);
        }
        if let Some((o, t)) = s.objects.pop_front() {
            s.in_flight += 1;
            return Work::Copy { o, t };
        }
        if s.waiting.is_empty() {
            Work::Done
        } else {
            Work::Wait
        }
    }

    /// `entry` is an index into `plan.early`, `table` the table an object was loaded into.
    fn finished(&self, entry: Option<usize>, table: Option<usize>) {
        let mut s = self.state.lock().expect("scheduler lock");
        s.in_flight -= 1;
        if let Some(e) = entry.map(|i| &self.plan.early[i]) {
            s.ran.insert(e.dump_id);
            for t in &e.tables {
                if let Some(b) = s.busy.get_mut(t) {
                    match exclusive(e) {
                        true => b.1 = false,
                        false => b.0 -= 1,
                    }
                    if *b == (0, false) {
                        s.busy.remove(t);
                    }
                }
            }
        }
        if let Some(n) = table.and_then(|t| s.unloaded.get_mut(&t)) {
            *n -= 1;
        }
        drop(s);
        self.changed.notify_waiters();
    }
}

/// Loads every data object into `db` and runs `plan.early` as their tables fill, on `jobs`
/// lanes. Returns the rows loaded.
pub async fn load_and_index(
    server: &Server,
    db: &str,
    env: &BackupEnv,
    backup: &OpenedBackup,
    jobs: usize,
    meter: &Meter<'_>,
    plan: &PostDataPlan,
) -> Result<u64, RestoreError> {
    let tables = tables_with_rows(backup);
    let index: HashMap<(String, String), usize> = tables
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, t)| (t, i))
        .collect();
    let objects = backup.data_objects();
    let sizes: Vec<(usize, u64)> = objects
        .iter()
        .map(|(o, _)| {
            let t = o.table.as_ref().expect("data objects name their table");
            (
                index[&(t.schema.clone(), t.name.clone())],
                o.digest.plain_size,
            )
        })
        .collect();
    let sched = Scheduler::new(plan, &sizes);
    let lanes = jobs.max(1).min(objects.len() + plan.early.len()).max(1);
    let lane = || lane(server, db, env, backup, meter, &sched, &objects);
    let mut running = futures::stream::iter(0..lanes)
        .map(|_| lane())
        .buffer_unordered(lanes);
    let mut rows = 0;
    while let Some(r) = running.next().await {
        rows += r?;
    }
    Ok(rows)
}

async fn lane(
    server: &Server,
    db: &str,
    env: &BackupEnv,
    backup: &OpenedBackup,
    meter: &Meter<'_>,
    sched: &Scheduler<'_>,
    objects: &[Object<'_>],
) -> Result<u64, RestoreError> {
    let (mut data, mut ddl): (Option<PgConnection>, Option<PgConnection>) = (None, None);
    let mut rows = 0;
    loop {
        let changed = sched.changed.notified();
        match sched.next() {
            Work::Done => return Ok(rows),
            Work::Wait => changed.await,
            Work::Entry(i) => {
                let started = std::time::Instant::now();
                let e = &sched.plan.early[i];
                let conn = match ddl.as_mut() {
                    Some(c) => c,
                    None => ddl.insert(ddl_connection(server, db, sched.plan).await?),
                };
                run_entry(conn, e).await?;
                sched.finished(Some(i), None);
                let secs = started.elapsed().as_secs_f64();
                tracing::debug!(kind = %e.kind, name = %e.name, secs, "post-data entry done");
            }
            Work::Copy { o, t } => {
                let started = std::time::Instant::now();
                let (o, cols) = objects[o];
                let conn = match data.as_mut() {
                    Some(c) => c,
                    None => data.insert(super::load::data_connection(server, db).await?),
                };
                rows += copy_object(conn, env, backup, o, cols, meter).await?;
                sched.finished(None, Some(t));
                let secs = started.elapsed().as_secs_f64();
                let table = o
                    .table
                    .as_ref()
                    .map(|t| t.name.as_str())
                    .unwrap_or_default();
                tracing::debug!(object = %o.name, table, bytes = o.digest.plain_size, secs, "object loaded");
            }
        }
    }
}

/// A connection set up as pg_restore sets up its own (the script's preamble).
async fn ddl_connection(
    server: &Server,
    db: &str,
    plan: &PostDataPlan,
) -> Result<PgConnection, RestoreError> {
    let mut conn = server.connect(db).await?;
    let setup = format!("{}{INDEX_SESSION}", plan.preamble);
    sqlx::raw_sql(sqlx::AssertSqlSafe(setup))
        .execute(&mut conn)
        .await?;
    Ok(conn)
}

#[tracing::instrument(skip_all, fields(entry = %e.name, kind = %e.kind))]
async fn run_entry(conn: &mut PgConnection, e: &EarlyEntry) -> Result<(), RestoreError> {
    let sql = format!(
        "SET default_tablespace = {};\nSET maintenance_work_mem = '{}';\n{}",
        e.tablespace,
        e.maintenance_work_mem(),
        e.sql
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(conn)
        .await
        .map_err(|err| {
            RestoreError::from(err).context(&format!("creating {} {}", e.kind, e.name))
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u32, tables: &[usize], after: &[u32]) -> EarlyEntry {
        EarlyEntry {
            dump_id: id,
            kind: "INDEX".into(),
            name: format!("i{id}"),
            tablespace: "''".into(),
            sql: String::new(),
            after: after.iter().copied().collect(),
            tables: tables.iter().copied().collect(),
        }
    }

    fn plan(early: Vec<EarlyEntry>) -> PostDataPlan {
        PostDataPlan {
            early,
            ..Default::default()
        }
    }

    #[test]
    fn a_table_s_index_starts_while_other_tables_still_load() {
        // Table 0: two objects (the largest), table 1: one; an index on each.
        let p = plan(vec![entry(10, &[0], &[]), entry(11, &[1], &[])]);
        let s = Scheduler::new(&p, &[(0, 500), (1, 100), (0, 400)]);
        assert_eq!(s.next(), Work::Copy { o: 0, t: 0 });
        assert_eq!(s.next(), Work::Copy { o: 2, t: 0 });
        s.finished(None, Some(0)); // one of table 0's two objects
        assert_eq!(s.next(), Work::Copy { o: 1, t: 1 }, "table 0 not complete");
        s.finished(None, Some(0));
        assert_eq!(
            s.next(),
            Work::Entry(0),
            "table 0 loaded while table 1 loads"
        );
        assert_eq!(s.next(), Work::Wait, "index 11 waits for table 1");
        s.finished(None, Some(1));
        assert_eq!(s.next(), Work::Entry(1));
        assert_eq!(s.next(), Work::Done, "nothing left to hand out");
    }

    #[test]
    fn dependencies_between_entries_are_respected_and_big_tables_go_first() {
        // 20 (on table 1, the biggest) and 21 (table 0) are ready at once; 22 needs 20.
        let p = plan(vec![
            entry(21, &[0], &[]),
            entry(22, &[], &[20]),
            entry(20, &[1], &[]),
        ]);
        let s = Scheduler::new(&p, &[(0, 10), (1, 90)]);
        assert!(matches!(s.next(), Work::Copy { .. }));
        assert!(matches!(s.next(), Work::Copy { .. }));
        s.finished(None, Some(0));
        s.finished(None, Some(1));
        assert_eq!(s.next(), Work::Entry(2), "the biggest table's index first");
        assert_eq!(s.next(), Work::Entry(0));
        assert_eq!(s.next(), Work::Wait, "22 waits for 20");
        s.finished(Some(2), None); // 20
        assert_eq!(s.next(), Work::Entry(1), "22");
        s.finished(Some(0), None);
        s.finished(Some(1), None);
        assert_eq!(s.next(), Work::Done);
    }

    #[test]
    fn a_small_table_under_a_gin_index_loads_first_and_its_build_goes_first() {
        // Table 0: 300 bytes with a B-tree; table 1: 30 bytes with a GIN index (path 30 + 30x40).
        let mut gin = entry(41, &[1], &[]);
        gin.sql = "CREATE INDEX h ON public.m USING gin (history);".into();
        let mut btree = entry(40, &[0], &[]);
        btree.sql = "CREATE INDEX k ON public.p USING btree (k);".into();
        let p = plan(vec![btree, gin]);
        let s = Scheduler::new(&p, &[(0, 200), (0, 100), (1, 30)]);
        assert_eq!(s.next(), Work::Copy { o: 2, t: 1 }, "the GIN table first");
        s.finished(None, Some(1));
        assert_eq!(
            s.next(),
            Work::Entry(1),
            "its build beside the big table's COPY"
        );
        assert_eq!(s.next(), Work::Copy { o: 0, t: 0 });
        assert_eq!(s.next(), Work::Copy { o: 1, t: 0 });
        s.finished(None, Some(0));
        s.finished(None, Some(0));
        assert_eq!(s.next(), Work::Entry(0));
        assert_eq!(p.early[1].cost_factor(), 40);
        assert_eq!(p.early[0].cost_factor(), 1);
        assert_eq!(
            p.early[1].maintenance_work_mem(),
            "16MB",
            "GIN: small and cached"
        );
        assert_eq!(
            p.early[0].maintenance_work_mem(),
            "256MB",
            "B-tree: sort in memory"
        );
    }

    #[test]
    fn a_constraint_never_waits_on_a_lane_behind_a_build_on_its_table() {
        // Two indexes and a primary key on table 0, an index on table 1.
        let mut pk = entry(52, &[0], &[]);
        pk.kind = "CONSTRAINT".into();
        let p = plan(vec![
            entry(50, &[0], &[]),
            entry(51, &[0], &[]),
            pk,
            entry(53, &[1], &[]),
        ]);
        let s = Scheduler::new(&p, &[(0, 100), (1, 10)]);
        assert!(matches!(s.next(), Work::Copy { .. }));
        assert!(matches!(s.next(), Work::Copy { .. }));
        s.finished(None, Some(0));
        s.finished(None, Some(1));
        assert_eq!(s.next(), Work::Entry(0), "index 50");
        assert_eq!(s.next(), Work::Entry(1), "index 51 shares the table");
        assert_eq!(
            s.next(),
            Work::Entry(3),
            "the key waits; table 1's index goes"
        );
        assert_eq!(s.next(), Work::Wait);
        s.finished(Some(0), None);
        assert_eq!(s.next(), Work::Wait, "51 still builds on table 0");
        s.finished(Some(1), None);
        assert_eq!(s.next(), Work::Entry(2), "the key, alone on its table");
        s.finished(Some(3), None);
        s.finished(Some(2), None);
        assert_eq!(s.next(), Work::Done);
    }

    #[test]
    fn entries_on_tables_without_rows_run_at_once_and_nothing_hangs() {
        let p = plan(vec![entry(30, &[], &[]), entry(31, &[7], &[99])]);
        let s = Scheduler::new(&p, &[]);
        assert_eq!(s.next(), Work::Entry(0));
        s.finished(Some(0), None);
        // 31 waits on an entry that is not in the plan: with nothing in flight, it runs.
        assert_eq!(s.next(), Work::Entry(1));
        s.finished(Some(1), None);
        assert_eq!(s.next(), Work::Done);
    }
}
