//! The parsers GraphQL (and REST) input goes through before anything reaches core: backup ids,
//! table names, target database names, backup types, roles, and the GraphQL document parser
//! itself (run on every request body up to 64 KiB, before the depth and complexity limits).
//! Byte 0 picks the parser; the rest is the input as UTF-8 (lossy).
//!
//! Checks beyond "no panic": an accepted backup id is exactly the input, has no path
//! separator, `..` or NUL, and parses again; an accepted table name prints to a form that
//! parses back to the same name, has parts of 1 to 63 bytes without NUL, and its quoted form
//! round-trips `""`; an accepted database name is 1 to 63 bytes without NUL; accepted enum
//! names print back to a spelling that parses to the same value.
#![no_main]

use std::str::FromStr;

use cellar_core::auth::Role;
use cellar_core::backup::{BackupId, BackupType};
use cellar_core::dump::TableName;
use cellar_core::restore::catalog::check_database_name;
use libfuzzer_sys::fuzz_target;

fn backup_id(s: &str) {
    if let Ok(id) = BackupId::from_str(s) {
        assert_eq!(id.as_str(), s);
        assert!(!s.contains(['/', '\\', '\0']) && !s.contains(".."), "{s:?}");
        assert_eq!(BackupId::from_str(id.as_str()).as_ref(), Ok(&id));
        let _ = id.format_uuid();
    }
}

fn table_name(s: &str) {
    if let Ok(t) = TableName::parse(s) {
        for part in [t.schema(), t.name()] {
            assert!((1..=63).contains(&part.len()) && !part.contains('\0'), "{t:?}");
        }
        let shown = t.to_string();
        assert_eq!(TableName::parse(&shown).as_ref().ok(), Some(&t), "{shown:?}");
        let quoted = t.quoted();
        assert_eq!(TableName::parse(&quoted).as_ref().ok(), Some(&t), "{quoted:?}");
    }
}

fn database_name(s: &str) {
    if check_database_name(s).is_ok() {
        assert!((1..=63).contains(&s.len()) && !s.contains('\0'));
    }
}

fn enums(s: &str) {
    if let Ok(t) = BackupType::from_str(s) {
        assert_eq!(BackupType::from_str(t.as_str()), Ok(t));
    }
    if let Ok(r) = Role::from_str(s) {
        assert_eq!(Role::from_str(r.as_str()).ok(), Some(r));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let s = String::from_utf8_lossy(rest);
    match pick % 5 {
        0 => backup_id(&s),
        1 => table_name(&s),
        2 => database_name(&s),
        3 => enums(&s),
        _ => {
            let _ = async_graphql_parser::parse_query(&*s);
        }
    }
});
