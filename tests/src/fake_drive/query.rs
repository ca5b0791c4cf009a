//! The fake's `q` parser: the subset of Drive's query language Cellar uses, parsed strictly so
//! a malformed query from the client fails the test with Drive's 400, as it would in production.
//!
//! ```text
//! or    := and ('or' and)*
//! and   := unary ('and' unary)*
//! unary := 'not' unary | '(' or ')' | STRING 'in' 'parents' | 'trashed' ('='|'!=') BOOL
//!        | 'name' ('='|'!='|'contains') STRING
//!        | 'appProperties' 'has' '{' 'key' '=' STRING 'and' 'value' '=' STRING '}'
//! ```

use std::collections::HashMap;

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    And(Box<Query>, Box<Query>),
    Or(Box<Query>, Box<Query>),
    Not(Box<Query>),
    InParents(String),
    Trashed(bool),
    NameEq(String),
    NameContains(String),
    HasProp(String, String),
}

/// What a query is evaluated against.
pub struct Candidate<'a> {
    pub name: &'a str,
    pub parents: &'a [String],
    pub trashed: bool,
    pub props: &'a HashMap<String, String>,
}

impl Query {
    pub fn matches(&self, c: &Candidate<'_>) -> bool {
        match self {
            Self::And(a, b) => a.matches(c) && b.matches(c),
            Self::Or(a, b) => a.matches(c) || b.matches(c),
            Self::Not(a) => !a.matches(c),
            Self::InParents(p) => c.parents.iter().any(|x| x == p),
            Self::Trashed(t) => c.trashed == *t,
            Self::NameEq(n) => c.name == n,
            Self::NameContains(n) => c.name.contains(n.as_str()),
            Self::HasProp(k, v) => c.props.get(k) == Some(v),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Str(String),
    Word(String),
    Sym(&'static str),
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut it = s.chars().peekable();
    while let Some(&c) = it.peek() {
        match c {
            ' ' | '\t' | '\n' => {
                it.next();
            }
            '\'' => {
                it.next();
                let mut v = String::new();
                loop {
                    match it.next() {
                        Some('\\') => v.push(it.next().ok_or("dangling escape")?),
                        Some('\'') => break,
                        Some(ch) => v.push(ch),
                        None => return Err("unterminated string".into()),
                    }
                }
                out.push(Tok::Str(v));
            }
            '!' => {
                it.next();
                if it.next() != Some('=') {
                    return Err("expected != ".into());
                }
                out.push(Tok::Sym("!="));
            }
            '=' | '{' | '}' | '(' | ')' => {
                it.next();
                out.push(Tok::Sym(match c {
                    '=' => "=",
                    '{' => "{",
                    '}' => "}",
                    '(' => "(",
                    _ => ")",
                }));
            }
            c if c.is_ascii_alphabetic() => {
                let mut w = String::new();
                while let Some(&ch) = it.peek().filter(|ch| ch.is_ascii_alphanumeric()) {
                    w.push(ch);
                    it.next();
                }
                out.push(Tok::Word(w));
            }
            other => return Err(format!("unexpected character {other:?}")),
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    at: usize,
}

impl Parser {
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn peek_word(&self, w: &str) -> bool {
        matches!(self.toks.get(self.at), Some(Tok::Word(x)) if x == w)
    }

    fn expect(&mut self, want: Tok) -> Result<(), String> {
        match self.next() {
            Some(t) if t == want => Ok(()),
            other => Err(format!("expected {want:?}, got {other:?}")),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(s),
            other => Err(format!("expected a string, got {other:?}")),
        }
    }

    fn or(&mut self) -> Result<Query, String> {
        let mut q = self.and()?;
        while self.peek_word("or") {
            self.at += 1;
            q = Query::Or(Box::new(q), Box::new(self.and()?));
        }
        Ok(q)
    }

    fn and(&mut self) -> Result<Query, String> {
        let mut q = self.unary()?;
        while self.peek_word("and") {
            self.at += 1;
            q = Query::And(Box::new(q), Box::new(self.unary()?));
        }
        Ok(q)
    }

    fn unary(&mut self) -> Result<Query, String> {
        match self.next() {
            Some(Tok::Word(w)) if w == "not" => Ok(Query::Not(Box::new(self.unary()?))),
            Some(Tok::Sym("(")) => {
                let q = self.or()?;
                self.expect(Tok::Sym(")"))?;
                Ok(q)
            }
            Some(Tok::Str(s)) => {
                self.expect(Tok::Word("in".into()))?;
                self.expect(Tok::Word("parents".into()))?;
                Ok(Query::InParents(s))
            }
            Some(Tok::Word(w)) if w == "trashed" => self.trashed(),
            Some(Tok::Word(w)) if w == "name" => self.name(),
            Some(Tok::Word(w)) if w == "appProperties" => self.has_prop(),
            other => Err(format!("unsupported query term {other:?}")),
        }
    }

    fn trashed(&mut self) -> Result<Query, String> {
        let negate = match self.next() {
            Some(Tok::Sym("=")) => false,
            Some(Tok::Sym("!=")) => true,
            other => return Err(format!("expected = or != after trashed, got {other:?}")),
        };
        let v = match self.next() {
            Some(Tok::Word(w)) if w == "true" => true,
            Some(Tok::Word(w)) if w == "false" => false,
            other => return Err(format!("expected true or false, got {other:?}")),
        };
        Ok(Query::Trashed(v != negate))
    }

    fn name(&mut self) -> Result<Query, String> {
        match self.next() {
            Some(Tok::Sym("=")) => Ok(Query::NameEq(self.string()?)),
            Some(Tok::Sym("!=")) => Ok(Query::Not(Box::new(Query::NameEq(self.string()?)))),
            Some(Tok::Word(w)) if w == "contains" => Ok(Query::NameContains(self.string()?)),
            other => Err(format!("unsupported name operator {other:?}")),
        }
    }

    fn has_prop(&mut self) -> Result<Query, String> {
        self.expect(Tok::Word("has".into()))?;
        self.expect(Tok::Sym("{"))?;
        self.expect(Tok::Word("key".into()))?;
        self.expect(Tok::Sym("="))?;
        let k = self.string()?;
        self.expect(Tok::Word("and".into()))?;
        self.expect(Tok::Word("value".into()))?;
        self.expect(Tok::Sym("="))?;
        let v = self.string()?;
        self.expect(Tok::Sym("}"))?;
        Ok(Query::HasProp(k, v))
    }
}

/// Parses a whole `q`.
pub fn parse(q: &str) -> Result<Query, String> {
    let mut p = Parser {
        toks: lex(q)?,
        at: 0,
    };
    let out = p.or()?;
    if p.at < p.toks.len() {
        return Err(format!("trailing input at token {}", p.at));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_client_sends() {
        let q = parse(
            "('F1' in parents or 'F\\'2' in parents) and trashed = false and \
             appProperties has { key='cellar_key' and value='a/b' }",
        )
        .unwrap();
        let props = HashMap::from([("cellar_key".to_string(), "a/b".to_string())]);
        let parents = vec!["F'2".to_string()];
        let c = Candidate {
            name: "a/b",
            parents: &parents,
            trashed: false,
            props: &props,
        };
        assert!(q.matches(&c));
        assert!(!parse("'F1' in parents").unwrap().matches(&c));
        assert!(parse("size > 3").is_err());
        assert!(parse("trashed = false and").is_err());
    }
}
