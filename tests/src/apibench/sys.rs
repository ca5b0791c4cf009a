//! What the benchmark reads about processes (from `/proc`, Linux only) and how it summarises
//! latencies.

use std::time::Duration;

/// Clock ticks per second of `/proc/<pid>/stat` times (USER_HZ: 100 on every Linux we run).
const TICKS: f64 = 100.0;

/// CPU time (user + system) process `pid` has used so far; 0 when it is gone.
pub fn cpu(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    Duration::from_secs_f64((ticks(11) + ticks(12)) / TICKS)
}

/// CPU time of several processes together.
pub fn cpu_all(pids: &[u32]) -> Duration {
    pids.iter().map(|p| cpu(*p)).sum()
}

/// Resident memory now and at its peak (`VmRSS`, `VmHWM`), in MiB.
pub fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (kib("VmRSS:") / 1024.0, kib("VmHWM:") / 1024.0)
}

/// This process's soft limit on open files.
pub fn open_files_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The machine's load averages, as `uptime` prints them.
pub fn loadavg() -> String {
    let s = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// Percentiles of a set of samples in milliseconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

/// Nearest-rank percentiles of `ms` (sorted here); all zero when empty.
pub fn percentiles(ms: &mut [f64]) -> Percentiles {
    if ms.is_empty() {
        return Percentiles::default();
    }
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| ms[((ms.len() as f64 * p).ceil() as usize).clamp(1, ms.len()) - 1];
    Percentiles {
        p50: at(0.50),
        p95: at(0.95),
        p99: at(0.99),
        max: ms[ms.len() - 1],
    }
}

/// CPU used over `wall` as a percentage of one core.
pub fn percent(cpu: Duration, wall: Duration) -> f64 {
    100.0 * cpu.as_secs_f64() / wall.as_secs_f64().max(1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        v.reverse();
        let p = percentiles(&mut v);
        assert_eq!((p.p50, p.p95, p.p99, p.max), (50.0, 95.0, 99.0, 100.0));
        assert_eq!(percentiles(&mut []).p99, 0.0);
    }

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        assert!(rss_mib(me).0 > 0.0);
        assert!(open_files_limit() > 0);
        let spin = std::time::Instant::now();
        while cpu(me) == Duration::ZERO && spin.elapsed() < Duration::from_secs(5) {}
        assert!(cpu(me) > Duration::ZERO);
    }
}
