use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;

use super::swap::{prepare, recover, swap, undo};
use super::*;

/// Every path under `dir` (relative) with its content (`None` for a directory) and mode bits.
fn tree(dir: &Path) -> BTreeMap<String, (Option<Vec<u8>>, u32)> {
    fn walk(root: &Path, at: &Path, out: &mut BTreeMap<String, (Option<Vec<u8>>, u32)>) {
        for e in std::fs::read_dir(at).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                out.insert(rel, (None, meta.mode() & 0o7777));
                walk(root, &p, out);
            } else {
                out.insert(
                    rel,
                    (Some(std::fs::read(&p).unwrap()), meta.mode() & 0o7777),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn header(path: &[u8], kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    // Written raw: `set_path` refuses `..` and absolute paths, which is what these tests need.
    h.as_old_mut().name[..path.len()].copy_from_slice(path);
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(1_700_000_000);
    h.set_cksum();
    h
}

/// A tar stream of `entries` (raw path, kind, content).
fn archive(entries: &[(&[u8], tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, kind, data) in entries {
        b.append(&header(path, *kind, data.len() as u64), *data)
            .unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn extracts_files_and_directories_with_modes_and_times() {
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(src.path().join("leases/2026")).unwrap();
    std::fs::write(src.path().join("leases/2026/a.pdf"), vec![3u8; 2_500_000]).unwrap();
    std::fs::write(src.path().join("notes.txt"), b"tab\there\n").unwrap();
    std::fs::write(src.path().join("empty"), b"").unwrap();
    std::fs::set_permissions(
        src.path().join("notes.txt"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    std::fs::set_permissions(
        src.path().join("leases/2026"),
        std::fs::Permissions::from_mode(0o750),
    )
    .unwrap();
    let mut b = tar::Builder::new(Vec::new());
    b.append_dir_all("", src.path()).unwrap();
    let bytes = b.into_inner().unwrap();

    let dest = tempfile::tempdir().unwrap();
    let stats = extract(&bytes[..], dest.path()).unwrap();
    assert_eq!((stats.files, stats.bytes), (3, 2_500_009));
    assert_eq!(tree(dest.path()), tree(src.path()));
    let mtime = |p: &Path| std::fs::metadata(p).unwrap().mtime();
    assert_eq!(
        mtime(&dest.path().join("notes.txt")),
        mtime(&src.path().join("notes.txt"))
    );
}

#[test]
fn paths_must_stay_inside() {
    for ok in ["a", "a/b", "./a", "a/./b/"] {
        assert!(confined(Path::new(ok)).is_ok(), "{ok}");
    }
    for bad in ["../x", "a/../../x", "a/..", "/etc/passwd", "/", ".", ""] {
        let e = confined(Path::new(bad)).unwrap_err();
        assert!(e.contains("refused"), "{bad}: {e}");
    }
}

#[test]
fn hostile_entries_refuse_the_archive_and_write_nothing_outside() {
    use tar::EntryType::{Block, Char, Fifo, Link, Regular, Symlink};
    let cases: [(&[u8], tar::EntryType, &str); 9] = [
        (b"../escape", Regular, "outside"),
        (b".cellar-old-7/x", Regular, "work directory"),
        (b"ok/../../escape", Regular, "outside"),
        (b"/tmp/cellar-absolute-escape", Regular, "outside"),
        (b"link", Symlink, "Symlink"),
        (b"hard", Link, "Link"),
        (b"dev", Char, "Char"),
        (b"blk", Block, "Block"),
        (b"fifo", Fifo, "Fifo"),
    ];
    for (path, kind, expect) in cases {
        let outer = tempfile::tempdir().unwrap();
        let dest = outer.path().join("dest");
        std::fs::create_dir(&dest).unwrap();
        let bytes = archive(&[
            (b"first.txt", Regular, b"fine"),
            (path, kind, if kind == Regular { b"evil" } else { b"" }),
        ]);
        let err = extract(&bytes[..], &dest).unwrap_err();
        assert!(err.contains(expect) && err.contains("refused"), "{err}");
        let names: Vec<_> = std::fs::read_dir(outer.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["dest"], "nothing beside the destination");
        assert!(!Path::new("/tmp/cellar-absolute-escape").exists());
        let inside = tree(&dest);
        assert!(
            inside.keys().all(|k| k == "first.txt"),
            "only the good entry before the bad one: {inside:?}"
        );
    }
}

#[test]
fn garbage_and_duplicate_entries_are_errors() {
    let dest = tempfile::tempdir().unwrap();
    let mut garbage = vec![0x55u8; 1024];
    garbage[0] = b'x';
    assert!(extract(&garbage[..], dest.path()).is_err());

    let dest = tempfile::tempdir().unwrap();
    let bytes = archive(&[
        (b"a", tar::EntryType::Regular, b"1"),
        (b"a", tar::EntryType::Regular, b"2"),
    ]);
    let err = extract(&bytes[..], dest.path()).unwrap_err();
    assert!(err.contains("creating a"), "{err}");
}

#[test]
fn set_id_bits_are_dropped() {
    let mut h = header(b"tool", tar::EntryType::Regular, 2);
    h.set_mode(0o4755);
    h.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&h, &b"#!"[..]).unwrap();
    let dest = tempfile::tempdir().unwrap();
    extract(&b.into_inner().unwrap()[..], dest.path()).unwrap();
    let mode = std::fs::metadata(dest.path().join("tool")).unwrap().mode();
    assert_eq!(mode & 0o7777, 0o755);
}

/// A files directory with originals and a staging directory with the restored content.
fn scene(id: RestoreId) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("uploads");
    std::fs::create_dir_all(dir.join("tenants/7")).unwrap();
    std::fs::write(dir.join("tenants/7/lease.pdf"), b"original lease").unwrap();
    std::fs::write(dir.join("logo.png"), b"original logo").unwrap();
    let staging = prepare(&dir, id).unwrap();
    std::fs::create_dir_all(staging.join("tenants/9")).unwrap();
    std::fs::write(staging.join("tenants/9/deed.pdf"), b"restored deed").unwrap();
    std::fs::write(staging.join("logo.png"), b"restored logo").unwrap();
    (root, dir, staging)
}

/// [`tree`] without Cellar's work directories.
fn outside_work_dirs(dir: &Path) -> BTreeMap<String, (Option<Vec<u8>>, u32)> {
    tree(dir)
        .into_iter()
        .filter(|(k, _)| !k.starts_with(".cellar-"))
        .collect()
}

fn originals() -> Vec<String> {
    ["logo.png", "tenants", "tenants/7", "tenants/7/lease.pdf"]
        .map(String::from)
        .to_vec()
}

#[test]
fn swap_then_undo_puts_everything_back() {
    let id = RestoreId(41);
    let (_root, dir, staging) = scene(id);
    let before = outside_work_dirs(&dir);
    swap(&dir, &staging, id).unwrap();
    let after: Vec<_> = tree(&dir).into_keys().collect();
    assert!(after.contains(&"tenants/9/deed.pdf".to_string()));
    assert!(after.contains(&".cellar-old-41/tenants/7/lease.pdf".to_string()));
    assert_eq!(
        std::fs::read(dir.join("logo.png")).unwrap(),
        b"restored logo"
    );
    assert!(!staging.exists());

    undo(&dir, &staging, id).unwrap();
    // Renames only: the staged entries are back in staging, for the caller to remove.
    assert_eq!(
        std::fs::read(staging.join("logo.png")).unwrap(),
        b"restored logo"
    );
    std::fs::remove_dir_all(&staging).unwrap();
    assert_eq!(tree(&dir), before);
}

#[test]
fn recovery_after_a_kill_in_either_half_of_the_swap() {
    // Killed while setting the originals aside: some in `moving`, some still in place.
    let id = RestoreId(42);
    let (_root, dir, staging) = scene(id);
    let moving = work_dir(&dir, "moving", id);
    std::fs::create_dir(&moving).unwrap();
    std::fs::rename(dir.join("logo.png"), moving.join("logo.png")).unwrap();
    recover(&dir, id).unwrap();
    let staging_again = prepare(&dir, id).unwrap();
    assert_eq!(staging_again, staging);
    let keys: Vec<_> = tree(&dir).into_keys().collect();
    let mut expect = originals();
    expect.insert(0, ".cellar-restore-42".into());
    assert_eq!(keys, expect);

    // Killed while moving staged entries up: every original in `old`, some staged in place.
    let id = RestoreId(43);
    let (_root, dir, staging) = scene(id);
    let old = work_dir(&dir, "old", id);
    std::fs::create_dir(&old).unwrap();
    for n in ["logo.png", "tenants"] {
        std::fs::rename(dir.join(n), old.join(n)).unwrap();
    }
    std::fs::rename(staging.join("logo.png"), dir.join("logo.png")).unwrap();
    recover(&dir, id).unwrap();
    prepare(&dir, id).unwrap();
    assert_eq!(
        std::fs::read(dir.join("logo.png")).unwrap(),
        b"original logo"
    );
    let keys: Vec<_> = tree(&dir).into_keys().collect();
    let mut expect = originals();
    expect.insert(0, ".cellar-restore-43".into());
    assert_eq!(keys, expect, "staging emptied, originals back");
}

#[test]
fn a_recovery_killed_half_way_and_run_again_loses_no_original() {
    let id = RestoreId(46);
    let (_root, dir, staging) = scene(id);
    swap(&dir, &staging, id).unwrap();
    // A first recovery dropped the staged entries and was killed after moving one original
    // back: the state a second recovery must not mistake for staged files.
    let old = work_dir(&dir, "old", id);
    let moving = work_dir(&dir, "moving", id);
    std::fs::remove_dir_all(dir.join("tenants")).unwrap();
    std::fs::remove_file(dir.join("logo.png")).unwrap();
    std::fs::rename(&old, &moving).unwrap();
    std::fs::rename(moving.join("logo.png"), dir.join("logo.png")).unwrap();
    recover(&dir, id).unwrap();
    recover(&dir, id).unwrap();
    let keys: Vec<_> = tree(&dir)
        .into_keys()
        .filter(|k| !k.starts_with(".cellar-"))
        .collect();
    assert_eq!(keys, originals());
    assert_eq!(
        std::fs::read(dir.join("logo.png")).unwrap(),
        b"original logo"
    );
}

#[test]
fn dropping_staged_or_swapped_files_leaves_the_originals() {
    let id = RestoreId(44);
    let (_root, dir, staging) = scene(id);
    let before = outside_work_dirs(&dir);
    drop(Staged {
        dir: dir.clone(),
        id,
        staging: Some(staging.clone()),
        stats: FilesStats::default(),
    });
    // The staged tree is removed on a thread of its own.
    for _ in 0..200 {
        if !staging.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(tree(&dir), before);

    let (_root, dir, staging) = scene(RestoreId(45));
    swap(&dir, &staging, RestoreId(45)).unwrap();
    drop(Swapped {
        dir: dir.clone(),
        id: RestoreId(45),
        done: false,
        stats: FilesStats::default(),
    });
    let staging = work_dir(&dir, "restore", RestoreId(45));
    for _ in 0..200 {
        if !staging.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(
        tree(&dir),
        before,
        "an unfinished swap is undone when dropped"
    );
}

#[test]
fn work_directories_are_recognised() {
    for ours in [".cellar-old-3", ".cellar-moving-41", ".cellar-restore-7"] {
        assert!(is_work_dir(OsStr::new(ours)), "{ours}");
    }
    // The app's own names stay the app's.
    for app in [
        "cellar-old-3",
        ".cellar",
        ".cellar-notes",
        ".cellar-old-",
        ".cellar-old-3x",
        ".cellar-other-3",
        ".cellar-old--3",
    ] {
        assert!(!is_work_dir(OsStr::new(app)), "{app}");
    }
}
