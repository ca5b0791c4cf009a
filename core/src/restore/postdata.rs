//! Indexes and constraints built as soon as their table's rows are in, instead of after all the
//! data: `pg_restore -j` does this with its own data; our data comes from our objects, so the
//! schedule is ours too.
//!
//! ```text
//! pg_restore -l archive                        TOC: dump id, type, schema, tag of every entry
//! pg_restore -v --section=post-data -f - archive
//!                                              SQL of each post-data entry, with its dump id
//!                                              ("-- TOC entry N") and dependencies
//! early = INDEX, CONSTRAINT and FK CONSTRAINT entries of one plain statement whose post-data
//!         dependencies are early too; each waits for the tables it depends on (TABLE entries
//!         of the TOC matched to the manifest's tables), then runs on a free lane
//! rest  = the TOC with early entries commented out, for pg_restore -L --section=post-data -j
//!         after all data (triggers, attachments, comments...); skipped when nothing is left
//! ```
//! Matching TOC entries to tables only decides *when* an entry runs, never whether it runs: an
//! index created before its rows is still correct, just built incrementally.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A post-data statement Cellar runs itself, early.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EarlyEntry {
    /// The archive's dump id.
    pub dump_id: u32,
    /// `INDEX`, `CONSTRAINT` or `FK CONSTRAINT`.
    pub kind: String,
    /// As the archive names it (for errors).
    pub name: String,
    /// The value of `default_tablespace` in force for it, as pg_restore writes it (`''` is the
    /// database's default).
    pub tablespace: String,
    /// The statement, as pg_restore would send it.
    pub sql: String,
    /// Early entries that must have run first.
    pub after: BTreeSet<u32>,
    /// Indexes of the tables (in the caller's table list) whose rows must be loaded first.
    pub tables: BTreeSet<usize>,
}

impl EarlyEntry {
    /// How much heavier this build is than a B-tree over the same bytes, by access method.
    ///
    /// A B-tree build is one sort; GIN extracts every key of every value (each jsonb path,
    /// each tsvector lexeme) and GiST inserts row by row. On the realistic dataset the GIN index
    /// on a jsonb column took 6.7 s over 23 MB of rows where B-trees took 0.3-0.8 s over 260 MB
    /// (docs/BENCHMARKS.md); the factors only need to get the order right, not the time.
    pub fn cost_factor(&self) -> u64 {
        match self.method() {
            Method::Gin => 40,
            Method::Gist => 20,
            Method::Other => 1,
        }
    }

    /// The `maintenance_work_mem` this build runs with.
    ///
    /// A B-tree sorts in memory when the sort fits, so more is faster (the server default,
    /// 64 MB, spills a few million keys to disk). A GIN build is the opposite: it gathers keys
    /// in a tree that is flushed into the index whenever it outgrows this memory, and a tree
    /// that stays in the processor's cache is faster than one that does not. The GIN index of
    /// the realistic dataset built in 1.9-2.3 s with 4-16 MB and 3.4-3.5 s with 256 MB
    /// (docs/BENCHMARKS.md, session 6).
    pub fn maintenance_work_mem(&self) -> &'static str {
        match self.method() {
            Method::Gin => "16MB",
            Method::Gist | Method::Other => "256MB",
        }
    }

    fn method(&self) -> Method {
        let sql = self.sql.to_ascii_lowercase();
        if sql.contains(" using gin ") || sql.contains(" using gin(") {
            Method::Gin
        } else if sql.contains(" using gist ") || sql.contains(" using spgist ") {
            Method::Gist
        } else {
            Method::Other
        }
    }
}

/// Index access methods whose builds cost differently.
enum Method {
    Gin,
    /// GiST and SP-GiST.
    Gist,
    Other,
}

/// What runs early and what is left to `pg_restore -L`.
#[derive(Debug, Default)]
pub struct PostDataPlan {
    /// The session settings pg_restore starts with (its script's `SET`s).
    pub preamble: String,
    pub early: Vec<EarlyEntry>,
    /// The TOC list with early entries commented out.
    pub rest_list: String,
    /// Whether post-data entries remain for `pg_restore` once the early ones ran.
    pub rest_has_work: bool,
}

impl PostDataPlan {
    fn nothing_early(listing: &str) -> Self {
        Self {
            preamble: String::new(),
            early: Vec::new(),
            rest_list: listing.lines().map(|l| format!("{l}\n")).collect(),
            rest_has_work: true,
        }
    }
}

/// One entry of the verbose post-data script.
#[derive(Debug)]
struct ScriptEntry {
    dump_id: u32,
    deps: Vec<u32>,
    kind: String,
    name: String,
    tablespace: String,
    sql: String,
}

/// Lines pg_restore prints between entries to set the session up for the next one.
fn is_session_line(line: &str) -> bool {
    line.starts_with("SET ") || line.starts_with("RESET ") || line.starts_with("SELECT pg_catalog.")
}

/// Splits `pg_restore -v -f -` output into its preamble and entries.
fn parse_script(script: &str) -> (String, Vec<ScriptEntry>) {
    let mut preamble = String::new();
    let mut entries: Vec<ScriptEntry> = Vec::new();
    let mut tablespace = "''".to_string();
    let mut lines = script.lines().peekable();
    let mut current: Option<ScriptEntry> = None;
    while let Some(line) = lines.next() {
        if let Some(rest) = line.strip_prefix("-- TOC entry ") {
            entries.extend(current.take());
            let dump_id = rest.split(' ').next().and_then(|n| n.parse().ok());
            let mut e = ScriptEntry {
                dump_id: dump_id.unwrap_or(0),
                deps: Vec::new(),
                kind: String::new(),
                name: String::new(),
                tablespace: tablespace.clone(),
                sql: String::new(),
            };
            while let Some(h) = lines.next_if(|l| l.starts_with("-- ")) {
                if let Some(d) = h.strip_prefix("-- Dependencies: ") {
                    e.deps = d.split(' ').filter_map(|n| n.parse().ok()).collect();
                } else if let Some(n) = h.strip_prefix("-- Name: ") {
                    let (name, rest) = n.split_once("; Type: ").unwrap_or((n, ""));
                    e.name = name.to_string();
                    e.kind = rest.split_once("; Schema: ").map_or(rest, |p| p.0).into();
                }
            }
            current = Some(e);
            continue;
        }
        if line.starts_with('\\') || line.starts_with("--") {
            continue; // psql meta-commands (\restrict) and comments
        }
        if let Some(ts) = line.strip_prefix("SET default_tablespace = ") {
            tablespace = ts.trim_end_matches(';').to_string();
            continue;
        }
        match current.as_mut() {
            // Our connections keep their own (UTF-8) client encoding.
            None if line.starts_with("SET client_encoding") => {}
            None if is_session_line(line) => {
                preamble.push_str(line);
                preamble.push('\n');
            }
            None => {}
            Some(_) if is_session_line(line) => {} // settings of the next entry (rare)
            Some(e) if !line.is_empty() || !e.sql.is_empty() => {
                e.sql.push_str(line);
                e.sql.push('\n');
            }
            Some(_) => {} // blank lines before the statement
        }
    }
    entries.extend(current);
    (preamble, entries)
}

/// `TABLE` entries of a `pg_restore -l` listing matched to `tables` (`(schema, name)`):
/// dump id -> index in `tables`, and the dump ids of every `TABLE` entry. A listing line reads
/// `ID; CLASS OID TABLE schema tag owner`; names may hold spaces, so the longest
/// `schema name ` prefix wins.
fn table_ids(listing: &str, tables: &[(String, String)]) -> (HashMap<u32, usize>, BTreeSet<u32>) {
    let (mut out, mut all) = (HashMap::new(), BTreeSet::new());
    for line in listing.lines().filter(|l| !l.starts_with(';')) {
        let Some((id, rest)) = line.split_once("; ") else {
            continue;
        };
        let mut parts = rest.splitn(3, ' ');
        let (_, _, what) = (parts.next(), parts.next(), parts.next().unwrap_or(""));
        let Some(what) = what.strip_prefix("TABLE ") else {
            continue;
        };
        all.extend(id.trim().parse::<u32>());
        let best = tables
            .iter()
            .enumerate()
            .filter(|(_, (s, n))| what.starts_with(&format!("{s} {n} ")))
            .max_by_key(|(_, (s, n))| s.len() + n.len());
        if let (Ok(id), Some((i, _))) = (id.trim().parse(), best) {
            out.insert(id, i);
        }
    }
    (out, all)
}

/// A plain `CREATE [UNIQUE] INDEX`, `ALTER TABLE ... ADD CONSTRAINT`, or foreign key on one
/// table (`ALTER TABLE ONLY`: a partitioned table's key would reach partitions it does not
/// wait for), one statement.
fn runs_early(e: &ScriptEntry) -> bool {
    let sql = e.sql.trim();
    let one_statement = sql.ends_with(';') && sql.matches(";\n").count() == 0;
    let shape = match e.kind.as_str() {
        "INDEX" => sql.starts_with("CREATE INDEX ") || sql.starts_with("CREATE UNIQUE INDEX "),
        "CONSTRAINT" => sql.starts_with("ALTER TABLE ") && sql.contains(" ADD CONSTRAINT "),
        "FK CONSTRAINT" => {
            sql.starts_with("ALTER TABLE ONLY ")
                && sql.contains(" ADD CONSTRAINT ")
                && sql.contains(" FOREIGN KEY ")
        }
        _ => false,
    };
    one_statement && shape && e.dump_id != 0
}

/// Plans the post-data section: see the module docs. `tables` are the backup's tables with rows.
/// pg_restore prints in the archive's encoding; our connections speak UTF-8, so an archive in
/// another encoding runs early only when its text is plain ASCII (the same in both).
pub fn plan(listing: &[u8], script: &[u8], tables: &[(String, String)]) -> PostDataPlan {
    let (Ok(listing), Ok(script)) = (std::str::from_utf8(listing), std::str::from_utf8(script))
    else {
        return PostDataPlan::nothing_early(&String::from_utf8_lossy(listing));
    };
    let utf8 = script.contains("SET client_encoding = 'UTF8';");
    let ascii = script.is_ascii() && listing.is_ascii();
    if !(utf8 || ascii) {
        return PostDataPlan::nothing_early(listing);
    }
    let (preamble, entries) = parse_script(script);
    let listed: BTreeSet<u32> = listing
        .lines()
        .filter_map(|l| l.split_once(';')?.0.trim().parse().ok())
        .collect();
    let (tables_by_id, all_tables) = table_ids(listing, tables);
    let post: BTreeSet<u32> = entries.iter().map(|e| e.dump_id).collect();
    // A foreign key checks each row COPY adds to a table it already holds, against rows that
    // must all be there: it runs early only once every table it names has all its rows, so
    // only when each of them is a table whose rows the backup holds (and waits for).
    let waits_for_its_tables = |e: &ScriptEntry| {
        e.kind != "FK CONSTRAINT"
            || e.deps
                .iter()
                .filter(|d| all_tables.contains(d))
                .all(|d| tables_by_id.contains_key(d))
    };
    // Early = candidates whose post-data dependencies are early too (to a fixed point).
    let mut early: BTreeMap<u32, &ScriptEntry> = entries
        .iter()
        .filter(|e| runs_early(e) && waits_for_its_tables(e) && listed.contains(&e.dump_id))
        .map(|e| (e.dump_id, e))
        .collect();
    loop {
        let drop: Vec<u32> = early
            .values()
            .filter(|e| {
                e.deps
                    .iter()
                    .any(|d| post.contains(d) && !early.contains_key(d))
            })
            .map(|e| e.dump_id)
            .collect();
        if drop.is_empty() {
            break;
        }
        for d in drop {
            early.remove(&d);
        }
    }
    let early_entries = early
        .values()
        .map(|e| EarlyEntry {
            dump_id: e.dump_id,
            kind: e.kind.clone(),
            name: e.name.clone(),
            tablespace: e.tablespace.clone(),
            sql: e.sql.trim().to_string(),
            after: e
                .deps
                .iter()
                .copied()
                .filter(|d| early.contains_key(d))
                .collect(),
            tables: e
                .deps
                .iter()
                .filter_map(|d| tables_by_id.get(d).copied())
                .collect(),
        })
        .collect();
    let rest_list = listing
        .lines()
        .map(|l| {
            let id = l
                .split_once(';')
                .and_then(|p| p.0.trim().parse::<u32>().ok());
            match id {
                Some(id) if early.contains_key(&id) => format!(";{l}\n"),
                _ => format!("{l}\n"),
            }
        })
        .collect();
    let rest_has_work = entries.iter().any(|e| !early.contains_key(&e.dump_id));
    PostDataPlan {
        preamble,
        early: early_entries,
        rest_list,
        rest_has_work,
    }
}

#[cfg(test)]
mod tests;
