//! The Google Drive backend against the fake Drive: the storage conformance suite, faults on
//! a fifth of all requests with a large object, fail-fast permanent errors, resumed uploads.

use std::time::Instant;

use bytes::Bytes;
use cellar_core::storage::{ObjectKey, ObjectWriter, Storage, StorageError, conformance};
use cellar_tests::fake_drive::{
    FakeDrive, Fault, FaultPlan, LogEntry, MY_DRIVE_FOLDER, SHARED_FOLDER, resends,
};
use futures::TryStreamExt;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

const MIB: usize = 1024 * 1024;

fn key(s: &str) -> ObjectKey {
    ObjectKey::new(s).unwrap()
}

/// `len` reproducible pseudo-random bytes, in pieces of `piece` bytes.
fn pieces(seed: u64, len: usize, piece: usize) -> Vec<Bytes> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    let mut left = len;
    while left > 0 {
        let mut b = vec![0u8; piece.min(left)];
        rng.fill_bytes(&mut b);
        left -= b.len();
        out.push(Bytes::from(b));
    }
    out
}

async fn read_all(s: &dyn Storage, k: &ObjectKey) -> Vec<u8> {
    let chunks: Vec<Bytes> = s.get(k).await.unwrap().try_collect().await.unwrap();
    chunks.concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conformance_suite_passes_against_the_fake_drive() {
    let fake = FakeDrive::start().await;
    fake.set_max_page(7); // several pages per listing
    let dir = tempfile::tempdir().unwrap();
    let s = fake.storage(dir.path(), SHARED_FOLDER, 256).await;
    conformance::run_all(&s, "conformance").await;
    assert!(fake.files().is_empty(), "the suite cleans up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mb_object_survives_faults_on_a_fifth_of_requests() {
    let fake = FakeDrive::start().await;
    let dir = tempfile::tempdir().unwrap();
    let chunk = MIB as u64;
    let s = fake.storage(dir.path(), SHARED_FOLDER, 1024).await;
    let size = 200 * MIB;
    let data = pieces(42, size, 3 * MIB / 2 + 17);
    fake.set_faults(FaultPlan::random(0.2, 7));

    let k = key("big/object");
    let started = Instant::now();
    let mut w = s.create(&k).await.unwrap();
    for d in &data {
        w.write(d.clone()).await.unwrap();
    }
    let info = w.finish().await.unwrap();
    let upload_secs = started.elapsed().as_secs_f64();
    assert_eq!(info.size, size as u64);

    let log = fake.log();
    let chunks: Vec<&LogEntry> = log
        .iter()
        .filter(|e| e.upload.as_deref() == Some("session"))
        .collect();
    let faults = chunks
        .iter()
        .filter(|e| e.fault.is_some() || e.status >= 429)
        .count();
    let resends = resends(&log);
    let total_resent: u64 = resends.iter().map(|r| r.bytes).sum();
    assert!(
        faults >= 20,
        "a fifth of ~250 requests should fail: {faults}"
    );
    assert!(
        resends
            .iter()
            .all(|r| r.bytes <= chunk && r.faults_before > 0),
        "only a fault re-sends, and at most one chunk: {resends:?}"
    );
    assert!(
        total_resent <= faults as u64 * chunk,
        "{total_resent} bytes re-sent for {faults} faults"
    );

    let back = read_all(&s, &k).await;
    assert!(back == data.concat(), "read back byte-identical");
    eprintln!(
        "200 MiB with 20% faults: {} chunk requests, {faults} faults on them, {} re-sends, \
         {total_resent} bytes re-sent (max {} per fault), upload {:.1} MiB/s",
        chunks.len(),
        resends.len(),
        resends.iter().map(|r| r.bytes).max().unwrap_or(0),
        size as f64 / MIB as f64 / upload_secs
    );
    fake.set_faults(FaultPlan::default());
    s.delete(&k).await.unwrap();
}

fn assert_no_secrets(msg: &str) {
    assert!(!msg.contains("PRIVATE KEY"), "{msg}");
    assert!(!msg.contains("fake-token-"), "{msg}");
    assert!(!msg.contains("upload_id"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_errors_fail_fast_and_say_what_to_do() {
    let fake = FakeDrive::start().await;
    let dir = tempfile::tempdir().unwrap();
    let body = Bytes::from(vec![7u8; 1000]);
    let big = pieces(1, 3 * MIB, MIB);

    // My Drive folder: the service-account quota trap, for a small and a resumable upload.
    let s = fake.storage(dir.path(), MY_DRIVE_FOLDER, 256).await;
    let started = Instant::now();
    let e = s.put(&key("db/small"), body.clone()).await.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, StorageError::Permanent { .. }), "{e}");
    assert!(
        msg.contains("storageQuotaExceeded") && msg.contains("shared drive"),
        "{msg}"
    );
    assert!(
        msg.contains("delegation") && msg.contains("GOOGLE_DRIVE_SUBJECT"),
        "{msg}"
    );
    assert_no_secrets(&msg);
    let mut w = s.create(&key("db/large")).await.unwrap();
    let mut failed = None;
    for b in &big {
        if let Err(e) = w.write(b.clone()).await {
            failed = Some(e);
            break;
        }
    }
    let e = failed.expect("the session start is refused");
    assert!(e.to_string().contains("shared drive"), "{e}");
    let uploads = fake
        .log()
        .iter()
        .filter(|l| l.path.starts_with("/upload"))
        .count();
    assert_eq!(uploads, 2, "one request each, no retries");
    assert!(started.elapsed().as_secs() < 5);

    // A folder that does not exist (or is not shared with the account).
    let s = fake.storage(dir.path(), "no-such-folder", 256).await;
    let msg = s
        .put(&key("db/x"), body.clone())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("GOOGLE_DRIVE_BACKUP_FOLDER_ID") && msg.contains("share"),
        "{msg}"
    );
    assert_no_secrets(&msg);

    // Delegation: the same My Drive folder works when acting as a user.
    let mut settings = fake.settings(dir.path(), MY_DRIVE_FOLDER);
    settings.google_drive_subject = Some("person@example.com".into());
    let cfg = settings.config().unwrap().unwrap();
    let s = cellar_core::storage::DriveStorage::connect(cfg)
        .await
        .unwrap();
    s.put(&key("db/delegated"), body.clone()).await.unwrap();
    assert_eq!(read_all(&s, &key("db/delegated")).await, body.to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_upload_starts_from_the_confirmed_offset() {
    let fake = FakeDrive::start().await;
    let dir = tempfile::tempdir().unwrap();
    let s = fake.storage(dir.path(), SHARED_FOLDER, 1024).await;
    let data = pieces(3, 6 * MIB + 12345, MIB);
    let k = key("db/resumed");

    // The 3rd chunk is only partly accepted: Drive confirms 2.5 MiB, not 3.
    let mut w = s.create_resumable(&k, None).await.unwrap();
    let cps = w.checkpoints();
    fake.set_faults(FaultPlan::scheduled([(4, Fault::PartialAccept)]));
    for d in &data[..3] {
        w.write(d.clone()).await.unwrap();
    }
    let at = cps.borrow().clone().expect("a checkpoint");
    assert_eq!(
        at.confirmed,
        5 * MIB as u64 / 2,
        "what Drive confirmed, not what was sent"
    );
    drop(w); // the process dies here
    fake.clear_log();

    let mut w = s.create_resumable(&k, Some(at.clone())).await.unwrap();
    assert_eq!(w.resume_offset(), at.confirmed);
    for d in &data {
        w.write(d.clone()).await.unwrap(); // bytes before the offset are hashed, not sent
    }
    Box::new(w).finish().await.unwrap();
    let first = fake
        .log()
        .iter()
        .find_map(LogEntry::span)
        .expect("a chunk was sent");
    assert_eq!(
        first.0, at.confirmed,
        "the first chunk after resuming starts at the confirmed offset"
    );
    assert!(read_all(&s, &k).await == data.concat());

    // An expired session starts over from byte 0.
    let k2 = key("db/expired");
    let mut w = s.create_resumable(&k2, None).await.unwrap();
    let cps = w.checkpoints();
    w.write(data[0].clone()).await.unwrap();
    let at = cps.borrow().clone().unwrap();
    drop(w);
    fake.expire_sessions();
    let mut w = s.create_resumable(&k2, Some(at)).await.unwrap();
    assert_eq!(w.resume_offset(), 0);
    for d in &data {
        w.write(d.clone()).await.unwrap();
    }
    Box::new(w).finish().await.unwrap();
    assert!(read_all(&s, &k2).await == data.concat());
}
