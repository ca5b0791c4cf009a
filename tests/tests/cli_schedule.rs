//! The `cellar` binary's schedule, retention and pin commands against an in-process API:
//! output, exit codes, and what they change. (`scripts/test` builds the binary first.)

mod api_common;

use std::path::{Path, PathBuf};
use std::process::Command;

use api_common::Api;
use serde_json::Value;

fn cellar(api: &Api, token: &str, args: &[&str]) -> (i32, String, String) {
    let exe = std::env::current_exe().unwrap();
    let bin: PathBuf = exe.parent().and_then(Path::parent).unwrap().join("cellar");
    assert!(
        bin.exists(),
        "{} is missing: run scripts/test",
        bin.display()
    );
    let out = Command::new(bin)
        .args(args)
        .env("CELLAR_URL", &api.url)
        .env("CELLAR_TOKEN", token)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_retention_and_pin_commands() {
    let api = Api::start().await;
    let (code, out, _) = cellar(&api, &api.viewer, &["schedule", "list"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("daily") && out.contains("0 2 * * *") && out.contains("next 20"),
        "{out}"
    );

    let set = [
        "schedule",
        "set",
        "nightly",
        "--cron",
        "30 1 * * *",
        "--time-zone",
        "Europe/Berlin",
        "--type",
        "daily",
        "--verify",
        "quick",
    ];
    let (code, _, err) = cellar(&api, &api.operator, &set);
    assert_eq!(code, 3, "operators may not change schedules: {err}");
    let (code, out, err) = cellar(&api, &api.master, &set);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("nightly") && out.contains("Europe/Berlin"),
        "{out}"
    );
    let (code, _, err) = cellar(
        &api,
        &api.master,
        &["schedule", "set", "bad", "--cron", "0 2 * *"],
    );
    assert_eq!(code, 2, "bad input: {err}");
    assert!(err.contains("5 fields"), "{err}");

    let (code, out, _) = cellar(
        &api,
        &api.master,
        &["--json", "schedule", "disable", "nightly"],
    );
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["enabled"], false);
    assert_eq!(
        cellar(&api, &api.master, &["schedule", "enable", "nightly"]).0,
        0
    );
    assert_eq!(
        cellar(&api, &api.master, &["schedule", "delete", "nightly"]).0,
        0
    );
    assert_eq!(
        cellar(&api, &api.master, &["schedule", "delete", "nightly"]).0,
        4,
        "gone"
    );

    let (code, out, _) = cellar(&api, &api.viewer, &["retention", "show"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("safety") && out.contains("maxAgeDays 14"),
        "{out}"
    );
    let args = [
        "retention",
        "set",
        "daily",
        "--max-count",
        "1",
        "--max-age-days",
        "30",
    ];
    assert_eq!(cellar(&api, &api.master, &args).0, 0);

    let older = api.completed_backup().await;
    let _newer = api.completed_backup().await;
    let (code, out, _) = cellar(
        &api,
        &api.viewer,
        &["retention", "preview", "--type", "daily"],
    );
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!("DELETE {older}")) && out.contains("1 of 2"),
        "{out}"
    );

    // A proposed policy: planned, shown, not saved.
    let (code, out, _) = cellar(
        &api,
        &api.viewer,
        &[
            "retention",
            "preview",
            "--type",
            "daily",
            "--max-count",
            "5",
        ],
    );
    assert_eq!(code, 0);
    assert!(
        out.contains("0 of 2 backups would be deleted under the proposed policy"),
        "{out}"
    );
    let (code, _, err) = cellar(
        &api,
        &api.viewer,
        &["retention", "preview", "--max-count", "5"],
    );
    assert_eq!(code, 2, "a proposed policy needs its type");
    assert!(err.contains("--type"), "{err}");
    let (_, out, _) = cellar(&api, &api.viewer, &["retention", "show"]);
    assert!(
        out.contains("daily    maxCount 1 "),
        "the saved policy is unchanged: {out}"
    );

    let (code, out, _) = cellar(&api, &api.operator, &["backup", "pin", older.as_str()]);
    assert_eq!(code, 0);
    assert!(out.contains("pinned"), "{out}");
    let (_, out, _) = cellar(
        &api,
        &api.viewer,
        &["retention", "preview", "--type", "daily"],
    );
    assert!(out.contains("0 of 2"), "{out}");
    assert_eq!(
        cellar(&api, &api.operator, &["backup", "unpin", older.as_str()]).0,
        3
    );
    assert_eq!(
        cellar(&api, &api.master, &["backup", "unpin", older.as_str()]).0,
        0
    );
}
