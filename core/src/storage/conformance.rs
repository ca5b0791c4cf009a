//! The ONE test suite every [`Storage`] backend must pass (restic's `backend/test`): local disk,
//! Google Drive against the fake server, and every wrapper. Call [`run_all`] from a test.
//!
//! Compiled only for tests and with the `conformance` feature, so it never ships in a binary.

mod check;

use futures::future::join_all;

use self::check::{Check, pattern};
use super::{ObjectKey, Storage};

/// Runs every check against `storage`, under objects named `<prefix>/...`, and removes what it
/// wrote. Panics naming the failed check. `prefix` must be a valid [`ObjectKey`] and should be
/// unused, so a shared backend can run the suite beside other data.
pub async fn run_all(storage: &dyn Storage, prefix: &str) {
    let base = ObjectKey::new(prefix).unwrap_or_else(|e| {
        panic!("conformance: prefix {prefix:?} is not a valid object key: {e}")
    });
    round_trip(&Check::new(storage, &base, "round_trip")).await;
    ranges(&Check::new(storage, &base, "ranges")).await;
    missing(&Check::new(storage, &base, "missing")).await;
    listing(&Check::new(storage, &base, "listing")).await;
    overwrite(&Check::new(storage, &base, "overwrite")).await;
    abort_and_drop(&Check::new(storage, &base, "abort_and_drop")).await;
    delete(&Check::new(storage, &base, "delete")).await;
    concurrent_writers(&Check::new(storage, &base, "concurrent_writers")).await;
    cleanup(&Check::new(storage, &base, "cleanup"), &base).await;
}

/// Sizes around the local backend's read chunk and Drive's 256 KiB upload granule, and one
/// large object, written in random chunk sizes, read back and compared by BLAKE3.
async fn round_trip(c: &Check<'_>) {
    const K: u64 = 256 * 1024;
    for (i, size) in [0, 1, K - 1, K + 1, 20_000_000].into_iter().enumerate() {
        let key = c.key(&format!("obj-{size}"));
        let wrote = c.write_chunked(&key, size, i as u64).await;
        let (read, len) = c.hash(&key).await;
        c.expect_eq(len, size, format!("length read back from {key}"));
        c.expect_eq(read, wrote, format!("BLAKE3 of {key}"));
        c.expect_eq(c.size(&key).await, size, format!("stat size of {key}"));
    }
}

/// get_range at the start, middle, across a 256 KiB boundary, at and past the end (clamped),
/// and empty ranges.
async fn ranges(c: &Check<'_>) {
    let data = pattern(7, 300_000);
    let n = data.len() as u64;
    let key = c.key("obj");
    c.put(&key, &data).await;
    let cases = [
        0..10,
        1..11,
        1000..5000,
        262_000..263_000,
        n - 10..n,
        n - 10..n + 100,
        n..n + 10,
        n + 5..n + 10,
        50..50,
        0..n,
        0..u64::MAX,
    ];
    for r in cases {
        let (start, end) = (r.start.min(n) as usize, r.end.min(n) as usize);
        let want = &data[start.min(end)..end];
        let got = c.read_range(&key, r.clone()).await;
        if got != want {
            c.fail(format!(
                "get_range {r:?}: got {} bytes, want {} (clamped)",
                got.len(),
                want.len()
            ));
        }
    }
}

/// Reads of objects that never existed answer not-found, not some other error.
async fn missing(c: &Check<'_>) {
    c.expect_missing(&c.key("never-written"), "never written")
        .await;
    c.expect_missing(&c.key("no/such/dir/obj"), "never written, deep")
        .await;
    c.expect_eq(c.list("").await, vec![], "list of an empty prefix");
}

/// list returns exactly the finished objects under a prefix, sorted, with sizes; never an
/// in-progress, aborted or dropped write.
async fn listing(c: &Check<'_>) {
    for (name, size) in [("b/1", 3), ("a/2", 2), ("a/10", 10), ("a/1", 1)] {
        c.put(&c.key(name), &pattern(size, size as usize)).await;
    }
    let mut open = c.ok(c.s.create(&c.key("c/open")).await, "create c/open");
    c.ok(open.write(pattern(1, 100).into()).await, "write c/open");
    let mut aborted = c.ok(c.s.create(&c.key("a/aborted")).await, "create a/aborted");
    c.ok(
        aborted.write(pattern(1, 100).into()).await,
        "write a/aborted",
    );
    c.ok(aborted.abort().await, "abort a/aborted");
    let mut dropped = c.ok(c.s.create(&c.key("a/dropped")).await, "create a/dropped");
    c.ok(
        dropped.write(pattern(1, 100).into()).await,
        "write a/dropped",
    );
    drop(dropped);

    let owned = |v: &[(&str, u64)]| {
        v.iter()
            .map(|(n, s)| (n.to_string(), *s))
            .collect::<Vec<_>>()
    };
    let all = [("a/1", 1), ("a/10", 10), ("a/2", 2), ("b/1", 3)];
    c.expect_eq(c.list("").await, owned(&all), "list of the whole check");
    c.expect_eq(c.list("a/").await, owned(&all[..3]), "list a/");
    c.expect_eq(c.list("a").await, owned(&all[..3]), "list a (partial name)");
    c.expect_eq(
        c.list("a/1").await,
        owned(&all[..2]),
        "list a/1 (partial name)",
    );
    c.expect_eq(
        c.list("zz").await,
        vec![],
        "list of a prefix matching nothing",
    );
    c.expect_missing(&c.key("c/open"), "write in progress")
        .await;

    c.ok(open.finish().await, "finish c/open");
    let mut with_open = owned(&all);
    with_open.push(("c/open".into(), 100));
    c.expect_eq(c.list("").await, with_open, "list after finishing c/open");
}

/// A second write replaces the first, whether shorter or longer.
async fn overwrite(c: &Check<'_>) {
    let key = c.key("obj");
    for (seed, size) in [(1, 1000), (2, 10), (3, 400_000)] {
        let data = pattern(seed, size);
        c.put(&key, &data).await;
        c.expect_eq(
            c.read(&key).await == data,
            true,
            format!("content after writing {size} bytes"),
        );
        c.expect_eq(c.size(&key).await, size as u64, "stat after overwrite");
        c.expect_eq(
            c.list("").await,
            vec![("obj".into(), size as u64)],
            "list after overwrite",
        );
    }
}

/// Abort and drop leave nothing, and leave an existing object under the same key untouched.
async fn abort_and_drop(c: &Check<'_>) {
    for (how, existing) in [
        ("abort", false),
        ("drop", false),
        ("abort", true),
        ("drop", true),
    ] {
        let key = c.key(&format!("{how}-{existing}"));
        let old = pattern(9, 123);
        if existing {
            c.put(&key, &old).await;
        }
        let mut w = c.ok(c.s.create(&key).await, format!("create {key}"));
        c.ok(
            w.write(pattern(10, 5000).into()).await,
            format!("write {key}"),
        );
        match how {
            "abort" => c.ok(w.abort().await, format!("abort {key}")),
            _ => drop(w),
        }
        if existing {
            c.expect_eq(
                c.read(&key).await == old,
                true,
                format!("{key} kept its content after {how}"),
            );
            c.ok(c.s.delete(&key).await, format!("delete {key}"));
        } else {
            c.expect_missing(&key, how).await;
        }
    }
    c.expect_eq(
        c.list("").await,
        vec![],
        "list after aborted and dropped writes",
    );
}

/// Delete removes, is idempotent, and leaves siblings alone.
async fn delete(c: &Check<'_>) {
    let (key, sibling) = (c.key("d/obj"), c.key("d/sibling"));
    c.put(&key, b"doomed").await;
    c.put(&sibling, b"stays").await;
    c.ok(c.s.delete(&key).await, "delete");
    c.expect_missing(&key, "deleted").await;
    c.ok(c.s.delete(&key).await, "second delete of the same key");
    c.ok(
        c.s.delete(&c.key("never/existed")).await,
        "delete of a key never written",
    );
    c.expect_eq(
        c.read(&sibling).await,
        b"stays".to_vec(),
        "sibling after delete",
    );
    c.expect_eq(
        c.list("").await,
        vec![("d/sibling".into(), 5)],
        "list after delete",
    );
}

/// Eight writers to different keys at once, chunks interleaved; each object intact.
async fn concurrent_writers(c: &Check<'_>) {
    let writes = (0..8u64).map(|i| async move {
        let key = c.key(&format!("w{i}"));
        let hash = c.write_chunked(&key, 300_000 + i, 100 + i).await;
        (key, hash)
    });
    for (key, wrote) in join_all(writes).await {
        c.expect_eq(c.hash(&key).await.0, wrote, format!("BLAKE3 of {key}"));
    }
    c.expect_eq(
        c.list("").await.len(),
        8,
        "objects listed after concurrent writes",
    );
}

/// Deletes everything the suite wrote, which also checks that list and delete agree.
async fn cleanup(c: &Check<'_>, base: &ObjectKey) {
    let prefix = format!("{base}/");
    for info in c.ok(c.s.list(&prefix).await, "list everything") {
        c.ok(c.s.delete(&info.key).await, format!("delete {}", info.key));
    }
    c.expect_eq(
        c.ok(c.s.list(&prefix).await, "list after cleanup"),
        vec![],
        "list after cleanup",
    );
}
