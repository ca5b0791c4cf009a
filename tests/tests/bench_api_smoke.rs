//! The API benchmark (`src/bin/bench_api.rs`) at a tiny scale, so that it keeps working: every
//! query answer checked against the catalog and every subscriber receiving every final state.
//! Correctness only; its timings are never asserted.

use std::process::Command;

#[test]
fn bench_api_runs_at_tiny_scale_and_every_answer_is_right() {
    let out = Command::new(env!("CARGO_BIN_EXE_bench_api"))
        .args([
            "--backups",
            "200",
            "--limit",
            "20",
            "--clients",
            "1,4",
            "--secs",
            "0.5",
            "--subscribers",
            "50",
            "--events",
            "10",
            "--jobs",
            "3",
            "--steps",
            "4",
            "--interval-ms",
            "50",
            "--hold-secs",
            "0.2",
        ])
        .output()
        .expect("run bench_api");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "bench_api failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("correctness: ok"), "{stdout}");
    // The report covers every scenario and both subscription kinds.
    for row in [
        "| backups (page + statistics) | 4 |",
        "| backup(id) | 1 |",
        "| jobs (page) | 4 |",
    ] {
        assert!(stdout.contains(row), "missing {row:?} in:\n{stdout}");
    }
    assert!(
        stdout.contains("| subscribers that got every final state | 50 of 50 |"),
        "{stdout}"
    );
}
