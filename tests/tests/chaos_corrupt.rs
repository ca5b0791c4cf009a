//! Chaos on the stored bytes: seeded random corruption of every object kind (KEY, MANIFEST,
//! schema, sequences, table data, files archive): a flipped bit, a truncation, two byte ranges
//! swapped, two frames reordered, an object replaced by another of the same backup. Deep verify
//! must name the damaged object every time; a restore must refuse and leave the target exactly
//! as it was. Then wrong, missing and unknown keys, and KEY or MANIFEST taken from another
//! backup: clear errors, nothing changed.
//!
//! `CELLAR_CHAOS_CORRUPT_TRIALS` (default 100) verify trials, of which the first
//! `CELLAR_CHAOS_CORRUPT_RESTORES` (default 8) also try a restore; `CELLAR_CHAOS_SEED` replays.

use std::sync::Arc;

use cellar_core::backup::catalog::{self, BackupRequest};
use cellar_core::backup::{BackupEnv, BackupId, BackupState, verify};
use cellar_core::format::KeyRing;
use cellar_core::format::manifest::ObjectKind;
use cellar_core::restore::{RestoreRequest, RestoreState, catalog as restores};
use cellar_tests::TestDb;
use cellar_tests::chaos::{self, Tally, fingerprint};
use cellar_tests::rig::{self, Rig};
use cellar_worker::{RunOnce, Worker, WorkerConfig};
use rand::Rng;
use rand::rngs::StdRng;

fn count(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Fx {
    rig: Rig,
    env: BackupEnv,
    files: tempfile::TempDir,
}

impl Fx {
    async fn new() -> Self {
        let rig = Rig::new(rig::source(30_000).await).await;
        let files = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(files.path().join("uploads/2026")).unwrap();
        for (name, len) in [("a.bin", 70_000), ("uploads/2026/b.txt", 3_000)] {
            let body: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            std::fs::write(files.path().join(name), body).unwrap();
        }
        let mut s = cellar_tests::backup_settings(&rig.source, &rig.backups(), &rig.key);
        s.split_table_mib = 64; // one multi-frame object for the big table
        s.files_dir = Some(files.path().to_path_buf());
        let env = s.build(rig.pool.clone(), &rig.catalog.url).unwrap();
        Self { rig, env, files }
    }

    async fn run_jobs(&self, env: &BackupEnv) {
        let mut w = Worker::new(self.rig.pool.clone(), WorkerConfig::default());
        cellar_worker::handlers::register_all(&mut w, env.clone());
        let w = Arc::new(w);
        while w.run_once().await.unwrap() != RunOnce::Empty {}
    }

    async fn backup(&self) -> BackupId {
        let req = BackupRequest {
            source: "src".into(),
            include_files: true,
            ..Default::default()
        };
        let (id, _) = catalog::create(&self.rig.pool, &req).await.unwrap();
        self.run_jobs(&self.env).await;
        let row = catalog::get(&self.rig.pool, &id).await.unwrap().unwrap();
        assert_eq!(row.state, BackupState::Completed, "{:?}", row.error);
        id
    }

    /// A full restore of `id` into `target` with `env`: the row's state and error.
    async fn restore(
        &self,
        env: &BackupEnv,
        id: &BackupId,
        target: &TestDb,
    ) -> (RestoreState, String) {
        let mut req = RestoreRequest::new(id.clone());
        req.target_database = Some(target.name.clone());
        req.confirm = true;
        req.create_safety_backup = false;
        req.files = true; // the files archive is extracted too, so its damage must refuse
        let (rid, _) = restores::create(&self.rig.pool, &req).await.unwrap();
        self.run_jobs(env).await;
        let row = restores::get(&self.rig.pool, rid).await.unwrap().unwrap();
        (row.state, row.error.unwrap_or_default())
    }
}

/// Frame boundaries `(start, end)` of a framed object (header 54 bytes, then u32 BE length
/// prefixes with the last-frame flag in bit 31), or none if the bytes do not parse.
fn frames(b: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = 54;
    while at + 4 <= b.len() {
        let prefix = u32::from_be_bytes(b[at..at + 4].try_into().unwrap());
        let end = at + 4 + (prefix & 0x7fff_ffff) as usize;
        if end > b.len() {
            break;
        }
        out.push((at, end));
        at = end;
    }
    out
}

/// Damages `orig` one way; returns the new bytes and the mutation's name.
fn mutate(orig: &[u8], others: &[Vec<u8>], rng: &mut StdRng) -> (Vec<u8>, &'static str) {
    let mut b = orig.to_vec();
    let len = b.len();
    match rng.gen_range(0..5) {
        0 => {
            let at = rng.gen_range(0..len);
            b[at] ^= 1 << rng.gen_range(0..8);
            (b, "flip")
        }
        1 => {
            b.truncate(rng.gen_range(0..len));
            (b, "truncate")
        }
        2 if len >= 4 => loop {
            let n = rng.gen_range(1..=(len / 2).min(16));
            let (x, y) = (rng.gen_range(0..=len - n), rng.gen_range(0..=len - n));
            if x.abs_diff(y) >= n && b[x..x + n] != b[y..y + n] {
                for i in 0..n {
                    b.swap(x + i, y + i);
                }
                return (b, "swap bytes");
            }
        },
        3 if frames(orig).len() == 1 => {
            let (a, c) = frames(orig)[0];
            let mut out = orig[..c].to_vec();
            out.extend_from_slice(&orig[a..c]);
            (out, "duplicate a frame")
        }
        3 if frames(orig).len() >= 2 => {
            let f = frames(orig);
            let i = rng.gen_range(0..f.len() - 1);
            let (a, c) = (f[i], f[i + 1]);
            let mut out = orig[..a.0].to_vec();
            out.extend_from_slice(&orig[c.0..c.1]);
            out.extend_from_slice(&orig[a.0..a.1]);
            out.extend_from_slice(&orig[c.1..]);
            (out, "reorder frames")
        }
        _ => {
            let other = &others[rng.gen_range(0..others.len())];
            (other.clone(), "replaced by another object")
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_corruption_is_named_by_verify_and_refused_by_restore() {
    let trials = count("CELLAR_CHAOS_CORRUPT_TRIALS", 100);
    let restores = count("CELLAR_CHAOS_CORRUPT_RESTORES", 8);
    let seed = chaos::base_seed("corrupt");
    let fx = Fx::new().await;
    let id = fx.backup().await;
    let objects = fx.env.storage.list(&format!("{id}/")).await.unwrap();
    let paths: Vec<_> = objects
        .iter()
        .map(|o| fx.rig.backups().join(o.key.as_str()))
        .collect();
    let originals: Vec<Vec<u8>> = paths.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let opened = cellar_core::restore::open::OpenedBackup::open(&fx.env, &id)
        .await
        .unwrap();
    let files_object = opened
        .manifest
        .objects
        .iter()
        .find(|o| o.kind == ObjectKind::Files)
        .map(|o| o.name.to_string())
        .expect("a files archive");
    let kind_of = |name: &str| {
        let kind = opened
            .manifest
            .objects
            .iter()
            .find(|o| o.name.as_str() == name);
        kind.map_or_else(
            || name.rsplit('/').next().unwrap_or_default().to_string(),
            |o| format!("{:?}", o.kind),
        )
    };
    let target = rig::source(100).await;
    let mut t = Tally::default();
    for i in 0..trials {
        let mut rng = chaos::rng(seed, i);
        let k = rng.gen_range(0..objects.len());
        let others: Vec<Vec<u8>> = (0..originals.len())
            .filter(|&j| j != k)
            .map(|j| originals[j].clone())
            .collect();
        let (bad, how) = mutate(&originals[k], &others, &mut rng);
        std::fs::write(&paths[k], &bad).unwrap();
        let name = objects[k].key.as_str();
        let trial = format!("trial {i} (CELLAR_CHAOS_SEED={seed}): {how} of {name}");
        let how = format!("{} {how}", kind_of(name));
        let v = verify::verify(&fx.env, &id, &()).await.unwrap();
        assert!(!v.is_valid(), "{trial} went unnoticed");
        assert!(
            v.failures.iter().any(|f| f.object == name),
            "{trial}: failures name {:?}",
            v.failures
        );
        if i < restores {
            let before = fingerprint(&target).await;
            let files_before = cellar_tests::file_tree(fx.files.path());
            let (state, error) = fx.restore(&fx.env, &id, &target).await;
            let after = fingerprint(&target).await;
            assert_eq!(state, RestoreState::Failed, "{trial}: restore went ahead");
            assert!(!error.is_empty(), "{trial}");
            assert_eq!(after, before, "{trial} changed the target");
            assert_eq!(
                cellar_tests::file_tree(fx.files.path()),
                files_before,
                "{trial} changed the files"
            );
            if name == files_object {
                // Refused at open (size) or while extracted aside: either way it is named.
                assert!(error.contains(name), "{trial}: {error}");
            }
            t.add(format!("{how}: verify named it, restore refused"));
        } else {
            t.add(format!("{how}: verify named it"));
        }
        std::fs::write(&paths[k], &originals[k]).unwrap();
    }
    assert!(verify::verify(&fx.env, &id, &()).await.unwrap().is_valid());
    t.report("corrupt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_missing_and_unknown_keys_and_borrowed_objects_are_refused() {
    let fx = Fx::new().await;
    let a = fx.backup().await;
    let b = fx.backup().await;
    let target = rig::source(100).await;
    let before = fingerprint(&target).await;

    // An empty key is refused; no key at all means a development key (documented, loud), which
    // cannot open backups written under the real one.
    let mut s = cellar_tests::backup_settings(&fx.rig.source, &fx.rig.backups(), " ");
    let err = s.build(fx.rig.pool.clone(), &fx.rig.catalog.url).err();
    assert!(err.expect("an empty key").contains("CELLAR_ENCRYPTION_KEY"));
    s.encryption_key = None;
    let dev = s.build(fx.rig.pool.clone(), &fx.rig.catalog.url).unwrap();
    let v = verify::verify(&dev, &a, &()).await.unwrap();
    assert_eq!(v.failures[0].object, format!("{a}/KEY"), "{v:?}");
    assert!(v.failures[0].error.contains("not in"), "{v:?}");
    let (state, error) = fx.restore(&dev, &a, &target).await;
    assert_eq!(state, RestoreState::Failed);
    eprintln!("chaos missing key: {error}");

    // A key that is not the one the backup names: the key id is unknown to this keyring.
    let other = KeyRing::generate_entry();
    let env = fx.rig.backup_env_with_key(&other);
    let v = verify::verify(&env, &a, &()).await.unwrap();
    assert_eq!(v.failures[0].object, format!("{a}/KEY"), "{v:?}");
    let (state, error) = fx.restore(&env, &a, &target).await;
    assert_eq!(state, RestoreState::Failed);
    assert!(
        error.contains("not in") && !error.contains(&other),
        "{error}"
    );
    assert_eq!(fingerprint(&target).await, before);

    // KEY and MANIFEST copied from backup b into backup a: bound to b's id, refused.
    for object in ["KEY", "MANIFEST"] {
        let (pa, pb) = (
            fx.rig.backups().join(a.as_str()).join(object),
            fx.rig.backups().join(b.as_str()).join(object),
        );
        let original = std::fs::read(&pa).unwrap();
        std::fs::copy(&pb, &pa).unwrap();
        let v = verify::verify(&fx.env, &a, &()).await.unwrap();
        let named = format!("{a}/{object}");
        assert!(
            v.failures.iter().any(|f| f.object == named),
            "{object}: {v:?}"
        );
        let (state, error) = fx.restore(&fx.env, &a, &target).await;
        assert_eq!(
            state,
            RestoreState::Failed,
            "{object} of another backup accepted"
        );
        eprintln!(
            "chaos borrowed {object}: verify {:?}; restore: {error}",
            v.failures[0].error
        );
        assert_eq!(fingerprint(&target).await, before);
        std::fs::write(&pa, original).unwrap();
    }
    assert!(verify::verify(&fx.env, &a, &()).await.unwrap().is_valid());
}
