//! An order-independent fingerprint of a table's rows as COPY text: the restore drill compares
//! what the backup holds with what a restore produced, whatever order the rows landed in.
//!
//! ```text
//! for each line (one row of COPY text, without its newline):
//!     sum  += first 16 bytes of BLAKE3(line), as a little-endian u128, wrapping
//!     rows += 1
//! ```
//! A sum of hashes is a multiset hash: parallel loads and heap order do not change it; a row
//! changed, missing, duplicated or added does (up to a 2^-128 accident, not an adversary:
//! the stored objects are authenticated separately).

/// Rows seen and the sum of their hashes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fingerprint {
    /// Lines (rows) folded in.
    pub rows: u64,
    /// The wrapping sum of the rows' truncated hashes.
    pub sum: u128,
}

impl Fingerprint {
    /// Adds one row (a line without its newline).
    pub fn add_row(&mut self, line: &[u8]) {
        let h = blake3::hash(line);
        let mut first = [0u8; 16];
        first.copy_from_slice(&h.as_bytes()[..16]);
        self.sum = self.sum.wrapping_add(u128::from_le_bytes(first));
        self.rows += 1;
    }

    /// Folds another fingerprint in (the parts of a table split into ranges).
    pub fn merge(&mut self, other: Fingerprint) {
        self.sum = self.sum.wrapping_add(other.sum);
        self.rows += other.rows;
    }

    /// The sum as 32 hex digits, for messages and results.
    pub fn hex(&self) -> String {
        format!("{:032x}", self.sum)
    }
}

/// Splits a stream of COPY text chunks into rows (a row may span chunks) and fingerprints them.
#[derive(Debug, Default)]
pub struct LineFolder {
    fp: Fingerprint,
    pending: Vec<u8>,
}

impl LineFolder {
    /// Feeds the next chunk of the stream.
    pub fn update(&mut self, mut chunk: &[u8]) {
        while let Some(at) = chunk.iter().position(|&b| b == b'\n') {
            if self.pending.is_empty() {
                self.fp.add_row(&chunk[..at]);
            } else {
                self.pending.extend_from_slice(&chunk[..at]);
                self.fp.add_row(&self.pending);
                self.pending.clear();
            }
            chunk = &chunk[at + 1..];
        }
        self.pending.extend_from_slice(chunk);
    }

    /// The fingerprint; an unterminated last line counts as a row (COPY text always ends its
    /// rows with a newline, so it only happens with damaged input, which then differs).
    pub fn finish(mut self) -> Fingerprint {
        if !self.pending.is_empty() {
            let last = std::mem::take(&mut self.pending);
            self.fp.add_row(&last);
        }
        self.fp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(chunks: &[&[u8]]) -> Fingerprint {
        let mut f = LineFolder::default();
        for c in chunks {
            f.update(c);
        }
        f.finish()
    }

    #[test]
    fn order_and_chunking_do_not_matter() {
        let a = of(&[b"1\ta\n2\tb\n3\tc\n"]);
        assert_eq!(a, of(&[b"3\tc\n1\t", b"a\n2", b"\tb\n"]));
        assert_eq!(a, of(&[b"2\tb\n", b"", b"3\tc\n", b"1\ta\n"]));
        assert_eq!(a.rows, 3);
    }

    #[test]
    fn any_row_change_shows() {
        let a = of(&[b"1\ta\n2\tb\n"]);
        assert_ne!(a, of(&[b"1\ta\n2\tB\n"]), "changed");
        assert_ne!(a, of(&[b"1\ta\n"]), "missing");
        assert_ne!(a, of(&[b"1\ta\n2\tb\n2\tb\n"]), "duplicated");
        assert_ne!(of(&[b"\n"]), of(&[b""]), "an empty row is a row");
    }

    #[test]
    fn parts_merge_to_the_whole() {
        let mut parts = of(&[b"1\ta\n"]);
        parts.merge(of(&[b"2\tb\n"]));
        assert_eq!(parts, of(&[b"2\tb\n1\ta\n"]));
    }
}
