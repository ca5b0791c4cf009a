//! The planner against real `pg_restore` output (fixture.*: a schema-only `pg_dump -Fc` of
//! tables `a` (primary key, unique, trigger, an index in tablespace `dummy_ts` with a comment),
//! `"B b"` (foreign key to `a`, index `"i x"`) and `p` partitioned with leaf `p1` and an index
//! on `p` attached on `p1`).

use super::*;

const LIST: &str = include_str!("fixture.list");
const SCRIPT: &str = include_str!("fixture.sql");

fn plan(list: &str, script: &str, tables: &[(String, String)]) -> PostDataPlan {
    super::plan(list.as_bytes(), script.as_bytes(), tables)
}

fn tables() -> Vec<(String, String)> {
    [("public", "a"), ("public", "B b"), ("public", "p1")]
        .iter()
        .map(|(s, n)| (s.to_string(), n.to_string()))
        .collect()
}

fn by_name<'a>(p: &'a PostDataPlan, name: &str) -> &'a EarlyEntry {
    p.early.iter().find(|e| e.name == name).unwrap()
}

#[test]
fn indexes_and_constraints_run_early_the_rest_is_left_to_pg_restore() {
    let p = plan(LIST, SCRIPT, &tables());
    let mut names: Vec<&str> = p.early.iter().map(|e| e.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "B b B b_id_fkey",
            "a a_pkey",
            "a a_x_key",
            "i x",
            "p1_k_idx",
            "p_k_idx",
            "ts_idx"
        ]
    );
    let commented: Vec<&str> = p
        .rest_list
        .lines()
        .filter(|l| l.starts_with(";3"))
        .collect();
    assert_eq!(commented.len(), 7, "{commented:?}");
    assert!(p.rest_has_work);
    for kept in ["TRIGGER public a t", "INDEX ATTACH", "COMMENT"] {
        let line = p.rest_list.lines().find(|l| l.contains(kept)).unwrap();
        assert!(!line.starts_with(';'), "{line}");
    }
}

#[test]
fn each_entry_waits_for_its_tables_and_early_dependencies() {
    let p = plan(LIST, SCRIPT, &tables());
    let ix = by_name(&p, "i x");
    assert_eq!(
        ix.sql,
        r#"CREATE INDEX "i x" ON public."B b" USING btree (y);"#
    );
    assert_eq!(ix.tables, BTreeSet::from([1]));
    assert!(ix.after.is_empty());
    let pk = by_name(&p, "a a_pkey");
    assert_eq!(pk.kind, "CONSTRAINT");
    assert_eq!(pk.tables, BTreeSet::from([0]));
    assert_eq!(
        pk.sql,
        "ALTER TABLE ONLY public.a\n    ADD CONSTRAINT a_pkey PRIMARY KEY (id);"
    );
    // The partitioned parent has no rows of its own: its index may run at once.
    let parent = by_name(&p, "p_k_idx");
    assert!(parent.tables.is_empty() && parent.after.is_empty());
    let leaf = by_name(&p, "p1_k_idx");
    assert_eq!(leaf.tables, BTreeSet::from([2]));
    assert_eq!(leaf.after, BTreeSet::from([parent.dump_id]));
}

#[test]
fn tablespaces_and_session_settings_follow_pg_restore() {
    let p = plan(LIST, SCRIPT, &tables());
    assert_eq!(by_name(&p, "ts_idx").tablespace, "dummy_ts");
    assert_eq!(by_name(&p, "i x").tablespace, "''");
    assert!(p.preamble.contains("set_config('search_path', '', false)"));
    assert!(p.preamble.contains("SET check_function_bodies = false;"));
    assert!(!p.preamble.contains('\\'), "no psql meta-commands");
    assert!(p.early.iter().all(|e| !e.sql.contains("SET ")));
}

#[test]
fn an_entry_that_needs_a_late_one_is_late_too() {
    // A unique index that (hypothetically) depends on the trigger, which runs late.
    let late_id = LIST
        .lines()
        .find(|l| l.contains("TRIGGER"))
        .and_then(|l| l.split_once(';'))
        .map(|p| p.0.to_string())
        .unwrap();
    let script = SCRIPT.replace(
        "-- Dependencies: 215\n-- Name: i x;",
        &format!("-- Dependencies: 215 {late_id}\n-- Name: i x;"),
    );
    assert_ne!(script, SCRIPT, "fixture changed: update the test");
    let p = plan(LIST, &script, &tables());
    assert!(p.early.iter().all(|e| e.name != "i x"));
    let line = p
        .rest_list
        .lines()
        .find(|l| l.contains("INDEX public i x"))
        .unwrap();
    assert!(!line.starts_with(';'));
}

#[test]
fn unexpected_statements_and_unlisted_entries_are_left_to_pg_restore() {
    let two = SCRIPT.replace(
        "CREATE INDEX \"i x\" ON public.\"B b\" USING btree (y);",
        "CREATE INDEX \"i x\" ON public.\"B b\" USING btree (y);\nSELECT 1;",
    );
    assert!(
        plan(LIST, &two, &tables())
            .early
            .iter()
            .all(|e| e.name != "i x")
    );
    let list: String = LIST
        .lines()
        .filter(|l| !l.contains("INDEX public i x"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        plan(&list, SCRIPT, &tables())
            .early
            .iter()
            .all(|e| e.name != "i x")
    );
}

#[test]
fn table_names_with_spaces_match_the_longest_name() {
    let list = "10; 1259 1 TABLE public B b owner\n11; 1259 2 TABLE public B owner x\n";
    let t: Vec<(String, String)> = [("public", "B"), ("public", "B b")]
        .iter()
        .map(|(s, n)| (s.to_string(), n.to_string()))
        .collect();
    let (ids, all) = table_ids(list, &t);
    assert_eq!(ids.get(&10), Some(&1));
    assert_eq!(ids.get(&11), Some(&0));
    assert_eq!(all, BTreeSet::from([10, 11]));
}

#[test]
fn other_encodings_run_early_only_when_ascii() {
    let latin1 = SCRIPT.replace(
        "SET client_encoding = 'UTF8';",
        "SET client_encoding = 'LATIN1';",
    );
    let p = plan(LIST, &latin1, &tables());
    assert_eq!(p.early.len(), 7, "ASCII text is the same in both");
    assert!(!p.preamble.contains("client_encoding"), "ours stays UTF-8");
    let accented = latin1.replace("btree (y)", "btree (y) WHERE (y <> 'é'::text)");
    let p = plan(LIST, &accented, &tables());
    assert!(p.early.is_empty());
    assert!(
        !p.rest_list.lines().any(|l| l.starts_with(";3")),
        "nothing commented out"
    );
    let p = super::plan(LIST.as_bytes(), b"\xff\xfe not utf-8", &tables());
    assert!(p.early.is_empty());
}

#[test]
fn a_foreign_key_waits_for_both_tables_and_the_key_it_references() {
    let p = plan(LIST, SCRIPT, &tables());
    let fk = by_name(&p, "B b B b_id_fkey");
    assert_eq!(fk.kind, "FK CONSTRAINT");
    assert_eq!(fk.tables, BTreeSet::from([0, 1]), "a and \"B b\"");
    assert_eq!(fk.after, BTreeSet::from([by_name(&p, "a a_pkey").dump_id]));
    assert_eq!(
        fk.sql,
        "ALTER TABLE ONLY public.\"B b\"\n    ADD CONSTRAINT \"B b_id_fkey\" FOREIGN KEY (id) REFERENCES public.a(id);"
    );
}

#[test]
fn a_foreign_key_naming_a_table_without_rows_is_left_to_pg_restore() {
    // `a` has no rows in this backup: nothing would wait for it, so the key runs after all data.
    let t: Vec<(String, String)> = tables().into_iter().filter(|t| t.1 != "a").collect();
    let p = plan(LIST, SCRIPT, &t);
    assert!(p.early.iter().all(|e| e.kind != "FK CONSTRAINT"));
    let line = p
        .rest_list
        .lines()
        .find(|l| l.contains("FK CONSTRAINT"))
        .unwrap();
    assert!(!line.starts_with(';'), "{line}");
    // A key on a partitioned table (no ONLY) reaches partitions it does not wait for.
    let script = SCRIPT.replace(
        "ALTER TABLE ONLY public.\"B b\"",
        "ALTER TABLE public.\"B b\"",
    );
    assert_ne!(script, SCRIPT, "fixture changed: update the test");
    let p = plan(LIST, &script, &tables());
    assert!(p.early.iter().all(|e| e.kind != "FK CONSTRAINT"));
}

#[test]
fn pg_restore_has_no_work_when_every_post_data_entry_ran_early() {
    // Only the entries the planner can run itself: drop the trigger, attachment and comment.
    let late = ["TRIGGER", "INDEX ATTACH", "COMMENT"];
    let list: String = LIST
        .lines()
        .filter(|l| !late.iter().any(|k| l.contains(k)))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut script = String::new();
    for part in SCRIPT.split("-- TOC entry ") {
        if !late.iter().any(|k| part.contains(&format!("; Type: {k};"))) {
            if !script.is_empty() {
                script.push_str("-- TOC entry ");
            }
            script.push_str(part);
        }
    }
    assert!(plan(LIST, SCRIPT, &tables()).rest_has_work);
    let p = plan(&list, &script, &tables());
    assert_eq!(p.early.len(), 7);
    assert!(!p.rest_has_work);
}

#[test]
fn nothing_parses_from_garbage() {
    let p = plan("not a listing", "not a script", &tables());
    assert!(p.early.is_empty());
    assert_eq!(p.rest_list, "not a listing\n");
}
