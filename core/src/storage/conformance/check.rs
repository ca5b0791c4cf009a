//! The helper every conformance check uses: it names the check in every failure, and wraps the
//! trait's calls so checks read as a list of expectations.

use std::fmt::Display;
use std::ops::Range;

use bytes::Bytes;
use futures::TryStreamExt;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

use crate::storage::{ObjectInfo, ObjectKey, Storage, StorageError};

/// One named check running under its own directory `<prefix>/<name>`.
pub(super) struct Check<'a> {
    pub(super) s: &'a dyn Storage,
    pub(super) name: &'static str,
    pub(super) dir: ObjectKey,
}

impl<'a> Check<'a> {
    pub(super) fn new(s: &'a dyn Storage, base: &ObjectKey, name: &'static str) -> Self {
        let dir = base.join(name).expect("check names are valid key segments");
        Self { s, name, dir }
    }

    /// Panics with the check's name and the backend's description.
    pub(super) fn fail(&self, msg: impl Display) -> ! {
        panic!(
            "conformance check `{}` failed on {}: {msg}",
            self.name,
            self.s.describe()
        )
    }

    /// Unwraps a result, failing the check with what was being done.
    pub(super) fn ok<T>(&self, r: Result<T, StorageError>, doing: impl Display) -> T {
        r.unwrap_or_else(|e| self.fail(format!("{doing}: unexpected error: {e}")))
    }

    /// `<dir>/<rel>`.
    pub(super) fn key(&self, rel: &str) -> ObjectKey {
        self.dir.join(rel).unwrap_or_else(|e| self.fail(e))
    }

    /// The check's directory as a list prefix, `<dir>/<rel>`.
    pub(super) fn prefix(&self, rel: &str) -> String {
        format!("{}/{rel}", self.dir)
    }

    pub(super) async fn put(&self, key: &ObjectKey, bytes: &[u8]) {
        let info = self.ok(
            self.s.put(key, Bytes::copy_from_slice(bytes)).await,
            format!("put {key}"),
        );
        self.expect_eq(
            info.size,
            bytes.len() as u64,
            format!("size reported by put {key}"),
        );
    }

    pub(super) async fn read(&self, key: &ObjectKey) -> Vec<u8> {
        let stream = self.ok(self.s.get(key).await, format!("get {key}"));
        let chunks: Vec<Bytes> = self.ok(stream.try_collect().await, format!("reading {key}"));
        chunks.concat()
    }

    pub(super) async fn read_range(&self, key: &ObjectKey, r: Range<u64>) -> Vec<u8> {
        let doing = format!("get_range {key} {r:?}");
        let stream = self.ok(self.s.get_range(key, r).await, &doing);
        let chunks: Vec<Bytes> = self.ok(stream.try_collect().await, &doing);
        chunks.concat()
    }

    /// BLAKE3 and length of a whole object, streamed.
    pub(super) async fn hash(&self, key: &ObjectKey) -> (blake3::Hash, u64) {
        let mut stream = self.ok(self.s.get(key).await, format!("get {key}"));
        let (mut hasher, mut len) = (blake3::Hasher::new(), 0u64);
        while let Some(chunk) = self.ok(stream.try_next().await, format!("reading {key}")) {
            hasher.update(&chunk);
            len += chunk.len() as u64;
        }
        (hasher.finalize(), len)
    }

    pub(super) async fn size(&self, key: &ObjectKey) -> u64 {
        let info = self.ok(self.s.stat(key).await, format!("stat {key}"));
        self.expect_eq(&info.key, key, format!("key reported by stat {key}"));
        info.size
    }

    /// stat, get and get_range of `key` all answer "not found".
    pub(super) async fn expect_missing(&self, key: &ObjectKey, why: &str) {
        let results = [
            ("stat", self.s.stat(key).await.map(drop)),
            ("get", self.s.get(key).await.map(drop)),
            ("get_range", self.s.get_range(key, 0..10).await.map(drop)),
        ];
        for (op, r) in results {
            match r {
                Err(e) if e.is_not_found() => {}
                Err(e) => self.fail(format!("{op} {key} ({why}): want not-found, got error {e}")),
                Ok(()) => self.fail(format!("{op} {key} ({why}): want not-found, got an object")),
            }
        }
    }

    /// Names (relative to the check's directory) and sizes listed under `<dir>/<rel>`.
    pub(super) async fn list(&self, rel: &str) -> Vec<(String, u64)> {
        let prefix = self.prefix(rel);
        let infos: Vec<ObjectInfo> = self.ok(self.s.list(&prefix).await, format!("list {prefix}"));
        let strip = format!("{}/", self.dir);
        let rel_of = |k: &ObjectKey| k.as_str().strip_prefix(&strip).map(str::to_owned);
        let names = infos.iter().map(|i| rel_of(&i.key).map(|n| (n, i.size)));
        let names: Option<Vec<_>> = names.collect();
        names.unwrap_or_else(|| self.fail(format!("list {prefix} returned {infos:?}")))
    }

    pub(super) fn expect_eq<T: PartialEq + std::fmt::Debug>(
        &self,
        got: T,
        want: T,
        what: impl Display,
    ) {
        if got != want {
            self.fail(format!("{what}: got {got:?}, want {want:?}"));
        }
    }

    /// Writes `size` pseudo-random bytes (from `seed`) in random chunk sizes, tiny to large,
    /// yielding between chunks; returns the BLAKE3 of what was written.
    pub(super) async fn write_chunked(
        &self,
        key: &ObjectKey,
        size: u64,
        seed: u64,
    ) -> blake3::Hash {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut w = self.ok(self.s.create(key).await, format!("create {key}"));
        self.ok(w.write(Bytes::new()).await, format!("empty write to {key}"));
        let (mut hasher, mut left) = (blake3::Hasher::new(), size);
        while left > 0 {
            let max = [16, 4096, 300_000][rng.gen_range(0..3)];
            let n = rng.gen_range(1..=max).min(left as usize);
            let mut buf = vec![0u8; n];
            rng.fill_bytes(&mut buf);
            hasher.update(&buf);
            self.ok(w.write(Bytes::from(buf)).await, format!("write to {key}"));
            left -= n as u64;
            tokio::task::yield_now().await;
        }
        let info = self.ok(w.finish().await, format!("finish {key}"));
        self.expect_eq(&info.key, key, format!("key reported by finish {key}"));
        self.expect_eq(info.size, size, format!("size reported by finish {key}"));
        hasher.finalize()
    }
}

/// `len` deterministic pseudo-random bytes.
pub(super) fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    StdRng::seed_from_u64(seed).fill_bytes(&mut buf);
    buf
}
