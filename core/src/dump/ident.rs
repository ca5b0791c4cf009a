//! Table names as the user types them, parsed once into [`TableName`], and identifier quoting.

use std::fmt;

use super::error::{DumpError, Result};

/// PostgreSQL's NAMEDATALEN - 1: longer identifiers would be silently truncated by the server.
const MAX_IDENT_BYTES: usize = 63;

/// A schema-qualified table name. Parsed from user input with SQL's rules (unquoted parts fold to
/// lower case, `"..."` keeps case and allows anything but NUL, `""` is a literal quote), so that
/// what reaches SQL is always quoted by [`quote_ident`] and never interpolated raw.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableName {
    schema: String,
    name: String,
}

impl TableName {
    /// Builds a name from catalog values (already exact; no folding, no quotes).
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Result<Self> {
        let (schema, name) = (schema.into(), name.into());
        for part in [&schema, &name] {
            check_part(part).map_err(|reason| DumpError::InvalidTableName {
                input: format!("{schema}.{name}"),
                reason,
            })?;
        }
        Ok(Self { schema, name })
    }

    /// Parses `users`, `public.users` or `"Weird ""Name"""."T;x"`; a bare name means `public`.
    pub fn parse(input: &str) -> Result<Self> {
        let bad = |reason| DumpError::InvalidTableName {
            input: input.to_string(),
            reason,
        };
        let mut parts = Vec::new();
        let mut rest = input.trim();
        loop {
            let (part, after) = parse_part(rest).map_err(bad)?;
            check_part(&part).map_err(bad)?;
            parts.push(part);
            match after.strip_prefix('.') {
                Some(next) => rest = next,
                None if after.is_empty() => break,
                None => return Err(bad("unexpected text after a name; quote it with \"...\"")),
            }
        }
        match <[String; 2]>::try_from(parts) {
            Ok([schema, name]) => Ok(Self { schema, name }),
            Err(parts) if parts.len() == 1 => Ok(Self {
                schema: "public".into(),
                name: parts.into_iter().next().unwrap_or_default(),
            }),
            Err(_) => Err(bad("expected `table` or `schema.table`")),
        }
    }

    /// The schema, exactly as in the catalog.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The table's own name, exactly as in the catalog.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `"schema"."name"`, safe to splice into SQL and into pg_dump `-t` patterns.
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }
}

/// Shows the shortest form that [`TableName::parse`] reads back to the same name.
impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}",
            quote_if_needed(&self.schema),
            quote_if_needed(&self.name)
        )
    }
}

/// Quotes an SQL identifier: `a"b` becomes `"a""b"`. Always quotes, so keywords and mixed case
/// are safe too.
pub fn quote_ident(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fn quote_if_needed(ident: &str) -> String {
    let plain = ident.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && ident
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        ident.to_string()
    } else {
        quote_ident(ident)
    }
}

/// Reads one identifier from the start of `s`; returns it and the rest.
fn parse_part(s: &str) -> Result<(String, &str), &'static str> {
    if let Some(body) = s.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            if c != '"' {
                out.push(c);
            } else if body[i + 1..].starts_with('"') {
                out.push('"');
                chars.next();
            } else {
                return Ok((out, &body[i + 1..]));
            }
        }
        return Err("unterminated quoted identifier");
    }
    let end = s.find('.').unwrap_or(s.len());
    let word = &s[..end];
    let ok_start = word.starts_with(|c: char| c.is_alphabetic() || c == '_');
    let ok_rest = word
        .chars()
        .all(|c| c.is_alphanumeric() || c == '_' || c == '$');
    if !(word.is_empty() || ok_start && ok_rest) {
        return Err("unquoted names hold only letters, digits, _ and $; quote others with \"...\"");
    }
    Ok((word.to_ascii_lowercase(), &s[end..]))
}

fn check_part(part: &str) -> Result<(), &'static str> {
    if part.is_empty() {
        Err("empty name")
    } else if part.contains('\0') {
        Err("names cannot contain NUL")
    } else if part.len() > MAX_IDENT_BYTES {
        Err("longer than 63 bytes")
    } else {
        Ok(())
    }
}

/// The candidate closest to `wanted` by edit distance, if it is close enough to be a likely typo
/// (at most a third of the name, or differing only by case).
pub(crate) fn closest<'a>(
    wanted: &TableName,
    candidates: &'a [TableName],
) -> Option<&'a TableName> {
    let target = wanted.to_string();
    let (best, dist) = candidates
        .iter()
        .map(|c| {
            (
                c,
                edit_distance(&target.to_lowercase(), &c.to_string().to_lowercase()),
            )
        })
        .min_by_key(|(_, d)| *d)?;
    (dist <= (target.chars().count() / 3).max(1)).then_some(best)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = subst.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> (String, String) {
        let t = TableName::parse(s).unwrap();
        (t.schema().to_string(), t.name().to_string())
    }

    #[test]
    fn parses_plain_and_qualified_names() {
        assert_eq!(parse("users"), ("public".into(), "users".into()));
        assert_eq!(parse("App.Users"), ("app".into(), "users".into()));
        assert_eq!(
            parse(r#""Weird ""Name"""."T;x""#),
            (r#"Weird "Name""#.into(), "T;x".into())
        );
        assert_eq!(parse(r#"s."a.b""#), ("s".into(), "a.b".into()));
        assert_eq!(parse("café"), ("public".into(), "café".into()));
    }

    #[test]
    fn rejects_bad_names() {
        for bad in [
            "", ".", "a.", ".a", "a.b.c", "\"\"", "\"x", "a;b", "a b", "\"a\"b", "\"a\0\"",
        ] {
            assert!(TableName::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(TableName::parse(&"x".repeat(63)).is_ok());
        assert!(TableName::parse(&"x".repeat(64)).is_err());
        assert!(
            TableName::new("public", "é".repeat(32)).is_err(),
            "64 bytes"
        );
    }

    #[test]
    fn quotes_identifiers() {
        assert_eq!(quote_ident("users"), "\"users\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        let t = TableName::new("Weird \"Name\"", "T;x").unwrap();
        assert_eq!(t.quoted(), r#""Weird ""Name"""."T;x""#);
    }

    #[test]
    fn display_round_trips_through_parse() {
        for (s, n) in [
            ("public", "users"),
            ("A", "b c"),
            ("x", "a\"b"),
            ("s", "1st"),
            ("s", "é"),
        ] {
            let t = TableName::new(s, n).unwrap();
            assert_eq!(TableName::parse(&t.to_string()).unwrap(), t, "{t}");
        }
    }

    #[test]
    fn suggests_close_names_only() {
        let names = [
            TableName::new("public", "users").unwrap(),
            TableName::new("app", "Orders").unwrap(),
        ];
        let wanted = TableName::parse("public.usres").unwrap();
        assert_eq!(closest(&wanted, &names), Some(&names[0]));
        let wanted = TableName::parse("app.orders").unwrap();
        assert_eq!(closest(&wanted, &names), Some(&names[1]));
        let wanted = TableName::parse("payments").unwrap();
        assert_eq!(closest(&wanted, &names), None);
    }
}
