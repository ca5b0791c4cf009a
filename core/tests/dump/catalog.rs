//! Which tables are copied and how: partitions, inheritance, generated columns, unlogged tables,
//! odd names, row-level security, and selections checked against the catalog.

use std::sync::Arc;

use cellar_core::dump::{
    CopyTask, DataConn, DumpError, PageRange, Snapshot, TableInfo, TableName, plan_copy,
};

use crate::common::{TestDb, TestRole, copy_all, copy_one, lines_by_table};

const ZOO: &str = r#"
CREATE TABLE meas (id int, city text, at date) PARTITION BY RANGE (at);
CREATE TABLE meas_2023 PARTITION OF meas FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
CREATE TABLE meas_2024 PARTITION OF meas FOR VALUES FROM ('2024-01-01') TO ('2025-01-01') PARTITION BY LIST (city);
CREATE TABLE meas_2024_a PARTITION OF meas_2024 FOR VALUES IN ('a');
CREATE TABLE meas_2024_rest PARTITION OF meas_2024 DEFAULT;
INSERT INTO meas VALUES (1, 'a', '2023-05-01'), (2, 'a', '2024-05-01'), (3, 'b', '2024-06-01'), (4, 'c', '2024-07-01');
CREATE TABLE animal (id int, name text);
CREATE TABLE dog (bark text) INHERITS (animal);
INSERT INTO animal VALUES (1, 'cat'), (2, 'cow');
INSERT INTO dog VALUES (3, 'rex', 'woof'), (4, 'fido', 'wuff'), (5, 'spot', 'arf');
CREATE TABLE gen (a int, b int GENERATED ALWAYS AS (a * 2) STORED, c text);
ALTER TABLE gen ADD COLUMN dropped int;
ALTER TABLE gen DROP COLUMN dropped;
INSERT INTO gen (a, c) VALUES (1, 'x'), (2, 'y');
CREATE UNLOGGED TABLE scratch (x int);
INSERT INTO scratch VALUES (7);
CREATE SCHEMA "Weird ""S""";
CREATE TABLE "Weird ""S"""."T;x ünï" ("col ""q""" text, "DROP TABLE" int);
INSERT INTO "Weird ""S"""."T;x ünï" VALUES ('hé', 1);
CREATE TABLE secret (id int, owner text);
ALTER TABLE secret ENABLE ROW LEVEL SECURITY;
ALTER TABLE secret FORCE ROW LEVEL SECURITY;
CREATE POLICY mine ON secret USING (owner = current_user);
INSERT INTO secret VALUES (1, 'nobody'), (2, 'nobody'), (3, 'somebody');
CREATE VIEW v AS SELECT 1 AS one;
CREATE MATERIALIZED VIEW mv_empty AS SELECT 1 AS one WITH NO DATA;
"#;

fn find<'a>(tables: &'a [TableInfo], name: &str) -> &'a TableInfo {
    tables
        .iter()
        .find(|t| t.name.to_string() == name)
        .unwrap_or_else(|| panic!("{name} not listed"))
}

#[tokio::test]
async fn every_table_holding_rows_is_listed_and_copied() {
    let db = TestDb::create();
    db.exec(ZOO).await;
    let mut snap = Snapshot::open(&db.url).await.unwrap();
    let tables = snap.list_tables(None).await.unwrap();
    let mut names: Vec<String> = tables.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            r#""Weird ""S"""."T;x ünï""#,
            "public.animal",
            "public.dog",
            "public.gen",
            "public.meas_2023",
            "public.meas_2024_a",
            "public.meas_2024_rest",
            "public.scratch",
            "public.secret"
        ],
        "partitioned parents, views and matviews hold no rows"
    );
    assert!(
        find(&tables, "public.animal").has_children && !find(&tables, "public.dog").has_children
    );
    assert!(
        find(&tables, "public.meas_2023").is_partition && find(&tables, "public.scratch").unlogged
    );
    assert_eq!(
        find(&tables, "public.gen").columns,
        ["a", "c"],
        "generated and dropped columns excluded"
    );
    let secret = find(&tables, "public.secret");
    assert!(secret.row_security && secret.force_row_security);

    let by_table =
        lines_by_table(&copy_all(&db.url, snap.id(), plan_copy(&tables, u64::MAX, 2), 2).await);
    assert_eq!(
        by_table["public.animal"],
        ["1\tcat", "2\tcow"],
        "the parent's own rows only"
    );
    assert_eq!(by_table["public.dog"].len(), 3);
    assert_eq!(by_table["public.gen"], ["1\tx", "2\ty"]);
    assert_eq!(by_table["public.meas_2024_rest"].len(), 2);
    assert_eq!(by_table["public.scratch"], ["7"]);
    assert_eq!(
        by_table["public.secret"].len(),
        3,
        "RLS is off for a superuser's dump"
    );
    assert_eq!(by_table[r#""Weird ""S"""."T;x ünï""#], ["hé\t1"]);
    assert!(
        snap.populated_matviews().await.unwrap().is_empty(),
        "mv_empty is not populated"
    );
}

#[tokio::test]
async fn range_copies_of_an_inheritance_parent_read_only_its_rows() {
    let db = TestDb::create();
    db.exec(ZOO).await;
    let mut snap = Snapshot::open(&db.url).await.unwrap();
    let tables = snap.list_tables(None).await.unwrap();
    let animal = Arc::new(find(&tables, "public.animal").clone());
    let task = CopyTask {
        index: 0,
        table: animal,
        range: Some(PageRange {
            start: 0,
            end: None,
        }),
        part: 0,
        parts: 1,
        estimated_bytes: 0,
    };
    let mut conn = DataConn::connect(&db.url, snap.id()).await.unwrap();
    let out = copy_one(&mut conn, &task).await.unwrap();
    assert_eq!(String::from_utf8(out.text).unwrap(), "1\tcat\n2\tcow\n");
}

#[tokio::test]
async fn odd_names_round_trip_through_parsing_and_selection() {
    let db = TestDb::create();
    db.exec(ZOO).await;
    let mut snap = Snapshot::open(&db.url).await.unwrap();
    let typed = TableName::parse(r#""Weird ""S"""."T;x ünï""#).unwrap();
    assert_eq!((typed.schema(), typed.name()), (r#"Weird "S""#, "T;x ünï"));
    let selection = snap
        .resolve_selection(std::slice::from_ref(&typed))
        .await
        .unwrap();
    let tables = snap.list_tables(Some(&selection)).await.unwrap();
    assert_eq!(tables.len(), 1);
    assert_eq!(tables[0].name, typed);
    assert_eq!(
        TableName::parse(&tables[0].name.to_string()).unwrap(),
        typed
    );
    assert_eq!(tables[0].columns, [r#"col "q""#, "DROP TABLE"]);
}

#[tokio::test]
async fn a_partitioned_parent_in_a_selection_expands_to_its_leaves() {
    let db = TestDb::create();
    db.exec(ZOO).await;
    let mut snap = Snapshot::open(&db.url).await.unwrap();
    let selection = snap
        .resolve_selection(&[
            TableName::parse("meas").unwrap(),
            TableName::parse("dog").unwrap(),
        ])
        .await
        .unwrap();
    // dog's rows but not animal's; animal's definition though, which dog's INHERITS needs.
    let names: Vec<String> = snap
        .list_tables(Some(&selection))
        .await
        .unwrap()
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    assert_eq!(
        names,
        [
            "public.dog",
            "public.meas_2023",
            "public.meas_2024_a",
            "public.meas_2024_rest"
        ]
    );
    let relations: Vec<String> = selection
        .relations()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        relations,
        [
            "public.animal",
            "public.dog",
            "public.meas",
            "public.meas_2023",
            "public.meas_2024",
            "public.meas_2024_a",
            "public.meas_2024_rest"
        ]
    );
    // A lone leaf brings its parents' definitions (for ATTACH PARTITION), not their rows.
    let leaf = TableName::parse("meas_2024_a").unwrap();
    let selection = snap.resolve_selection(&[leaf]).await.unwrap();
    let relations: Vec<String> = selection
        .relations()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        relations,
        ["public.meas", "public.meas_2024", "public.meas_2024_a"]
    );
    assert_eq!(snap.list_tables(Some(&selection)).await.unwrap().len(), 1);
}

#[tokio::test]
async fn unknown_or_non_table_selections_fail_clearly() {
    let db = TestDb::create();
    db.exec(ZOO).await;
    let mut snap = Snapshot::open(&db.url).await.unwrap();
    let err = snap
        .resolve_selection(&[TableName::parse("public.aminal").unwrap()])
        .await
        .unwrap_err();
    assert!(matches!(err, DumpError::UnknownTable { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "table public.aminal does not exist in the source database (did you mean public.animal?)"
    );
    let err = snap
        .resolve_selection(&[TableName::parse("nothing_like_it").unwrap()])
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "table public.nothing_like_it does not exist in the source database"
    );
    let err = snap
        .resolve_selection(&[TableName::parse("v").unwrap()])
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("public.v is a view, not a table"),
        "{err}"
    );
}

#[tokio::test]
async fn row_security_the_role_cannot_bypass_fails_before_copying() {
    let role = TestRole::create("");
    let db = TestDb::create();
    db.exec(&format!(
        "CREATE TABLE secret (id int, owner text); ALTER TABLE secret ENABLE ROW LEVEL SECURITY;
         CREATE POLICY mine ON secret USING (owner = current_user);
         INSERT INTO secret VALUES (1, 'nobody'), (2, '{0}');
         GRANT SELECT ON secret TO {0};",
        role.0
    ))
    .await;
    let mut snap = Snapshot::open(&role.url(&db)).await.unwrap();
    let err = snap.list_tables(None).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DumpError::RowSecurity { .. }), "{msg}");
    assert!(
        msg.contains("public.secret") && msg.contains("BYPASSRLS") && msg.contains("owner"),
        "{msg}"
    );
    drop(snap);
    // As the owner (without FORCE) the role sees every row.
    db.exec(&format!("ALTER TABLE secret OWNER TO {}", role.0))
        .await;
    let mut snap = Snapshot::open(&role.url(&db)).await.unwrap();
    let tables = snap.list_tables(None).await.unwrap();
    let out = copy_all(
        &role.url(&db),
        snap.id(),
        plan_copy(&tables, u64::MAX, 2),
        1,
    )
    .await;
    assert_eq!(out[0].stats.rows, 2);
}
