//! Tests of [`Retrying`] against `Flaky`, a test double of a backend whose calls fail a set
//! number of times before succeeding.

use std::sync::atomic::{AtomicU32, Ordering};

use super::*;

/// Fails its first `failures` calls with a clone of `error`, then answers with canned values.
#[derive(Debug)]
struct Flaky {
    failures: AtomicU32,
    error: fn() -> StorageError,
    calls: AtomicU32,
    writes: std::sync::Arc<AtomicU32>,
}

fn transient() -> StorageError {
    StorageError::Transient {
        backend: "flaky".into(),
        message: "timeout".into(),
    }
}

fn permanent() -> StorageError {
    StorageError::Permanent {
        backend: "flaky".into(),
        message: "quota".into(),
    }
}

fn not_found() -> StorageError {
    StorageError::NotFound("k".into())
}

impl Flaky {
    fn new(failures: u32, error: fn() -> StorageError) -> Self {
        let writes = Default::default();
        Self {
            failures: AtomicU32::new(failures),
            error,
            calls: AtomicU32::new(0),
            writes,
        }
    }

    fn gate(&self) -> Result<(), StorageError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let left = self.failures.load(Ordering::SeqCst);
        if left == 0 {
            return Ok(());
        }
        self.failures.store(left - 1, Ordering::SeqCst);
        Err((self.error)())
    }

    fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }
}

/// A writer whose every write fails transiently, to show writes are never replayed.
struct BrokenWriter(std::sync::Arc<AtomicU32>);

#[async_trait]
impl ObjectWriter for BrokenWriter {
    async fn write(&mut self, _: Bytes) -> Result<(), StorageError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Err(transient())
    }
    async fn finish(self: Box<Self>) -> Result<ObjectInfo, StorageError> {
        Err(transient())
    }
    async fn abort(self: Box<Self>) -> Result<(), StorageError> {
        Ok(())
    }
}

fn empty() -> ByteStream {
    Box::pin(futures::stream::empty())
}

#[async_trait]
impl Storage for Flaky {
    fn describe(&self) -> String {
        "flaky".into()
    }
    async fn create(&self, _: &ObjectKey) -> Result<Box<dyn ObjectWriter>, StorageError> {
        self.gate()?;
        Ok(Box::new(BrokenWriter(self.writes.clone())))
    }
    async fn put(&self, key: &ObjectKey, bytes: Bytes) -> Result<ObjectInfo, StorageError> {
        self.gate()?;
        Ok(ObjectInfo {
            key: key.clone(),
            size: bytes.len() as u64,
        })
    }
    async fn get(&self, _: &ObjectKey) -> Result<ByteStream, StorageError> {
        self.gate().map(|()| empty())
    }
    async fn get_range(&self, _: &ObjectKey, _: Range<u64>) -> Result<ByteStream, StorageError> {
        self.gate().map(|()| empty())
    }
    async fn stat(&self, key: &ObjectKey) -> Result<ObjectInfo, StorageError> {
        self.gate().map(|()| ObjectInfo {
            key: key.clone(),
            size: 7,
        })
    }
    async fn list(&self, _: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        self.gate().map(|()| Vec::new())
    }
    async fn delete(&self, _: &ObjectKey) -> Result<(), StorageError> {
        self.gate()
    }
}

fn policy(max_attempts: u32) -> RetryPolicy {
    let (base_delay, max_delay) = (Duration::from_millis(1), Duration::from_millis(4));
    RetryPolicy {
        max_attempts,
        base_delay,
        max_delay,
    }
}

fn wrap(failures: u32, error: fn() -> StorageError, max_attempts: u32) -> Retrying<Flaky> {
    Retrying::new(Flaky::new(failures, error), policy(max_attempts))
}

fn key() -> ObjectKey {
    ObjectKey::new("a/b").unwrap()
}

/// Runs one operation by name, reducing its result to `Result<(), _>`.
async fn call(s: &Retrying<Flaky>, op: &str) -> Result<(), StorageError> {
    let k = key();
    match op {
        "create" => s.create(&k).await.map(drop),
        "put" => s.put(&k, Bytes::from_static(b"x")).await.map(drop),
        "get" => s.get(&k).await.map(drop),
        "get_range" => s.get_range(&k, 1..5).await.map(drop),
        "stat" => s.stat(&k).await.map(drop),
        "list" => s.list("a/").await.map(drop),
        "delete" => s.delete(&k).await,
        _ => unreachable!("unknown op {op}"),
    }
}

const OPS: [&str; 7] = [
    "create",
    "put",
    "get",
    "get_range",
    "stat",
    "list",
    "delete",
];

#[tokio::test]
async fn every_operation_retries_transient_errors_until_success() {
    for op in OPS {
        let s = wrap(3, transient, 5);
        call(&s, op).await.unwrap_or_else(|e| panic!("{op}: {e}"));
        assert_eq!(s.inner().calls(), 4, "{op}: 3 failures then 1 success");
    }
}

#[tokio::test]
async fn gives_up_after_max_attempts_with_the_last_error() {
    for op in OPS {
        let s = wrap(100, transient, 4);
        let err = call(&s, op).await.expect_err(op);
        assert!(err.is_transient(), "{op}: {err}");
        assert_eq!(s.inner().calls(), 4, "{op}: bounded attempts");
    }
}

#[tokio::test]
async fn permanent_and_not_found_errors_are_not_retried() {
    for (error, is_nf) in [
        (permanent as fn() -> StorageError, false),
        (not_found, true),
    ] {
        for op in OPS {
            let s = wrap(1, error, 5);
            let err = call(&s, op).await.expect_err(op);
            assert_eq!(err.is_not_found(), is_nf, "{op}: {err}");
            assert_eq!(s.inner().calls(), 1, "{op}: must not retry {err}");
        }
    }
}

#[tokio::test]
async fn writes_inside_a_writer_are_not_replayed() {
    let s = wrap(0, transient, 5);
    let mut w = s.create(&key()).await.unwrap();
    let err = w
        .write(Bytes::from_static(b"abc"))
        .await
        .expect_err("write fails");
    assert!(err.is_transient());
    assert_eq!(
        s.inner().writes.load(Ordering::SeqCst),
        1,
        "the wrapper must not replay a write"
    );
}

#[test]
fn delay_grows_with_jitter_and_is_capped() {
    let p = RetryPolicy {
        max_attempts: 50,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(1),
    };
    for _ in 0..100 {
        let d1 = p.delay(1);
        assert!(
            (Duration::from_millis(50)..=Duration::from_millis(100)).contains(&d1),
            "{d1:?}"
        );
        let d3 = p.delay(3);
        assert!(
            (Duration::from_millis(200)..=Duration::from_millis(400)).contains(&d3),
            "{d3:?}"
        );
        let d40 = p.delay(40);
        assert!(
            (Duration::from_millis(500)..=Duration::from_secs(1)).contains(&d40),
            "{d40:?}"
        );
    }
}
