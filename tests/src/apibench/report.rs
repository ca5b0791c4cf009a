//! The benchmark's Markdown: what ran, on what load, and the two tables.

use std::fmt::Write;

use super::Report;
use super::sys::Percentiles;

fn ms(p: &Percentiles) -> String {
    format!(
        "{:.1} / {:.1} / {:.1} / {:.1} ms",
        p.p50, p.p95, p.p99, p.max
    )
}

fn cpu(c: &[f64; 3]) -> String {
    format!("{:.0}% / {:.0}% / {:.0}%", c[0], c[1], c[2])
}

impl Report {
    /// The whole report as Markdown.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let c = &self.config;
        let _ = writeln!(
            s,
            "load average (1/5/15 min): {} before, {} after; {} cores\n",
            self.load_before,
            self.load_after,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        let _ = writeln!(
            s,
            "catalog: {} backups ({} listed, the rest deleted), {} jobs; pages of {}; {} s per row\n",
            c.backups, self.listed_backups, self.jobs, c.limit, c.secs
        );
        s.push_str("| query | clients | requests | req/s | p50 / p95 / p99 / max | CPU api / postgres / bench |\n");
        s.push_str("|---|---|---|---|---|---|\n");
        for q in &self.queries {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.0} | {} | {} |",
                q.scenario.name(),
                q.clients,
                q.requests,
                q.rps,
                ms(&q.latency),
                cpu(&q.cpu)
            );
        }
        if let Some(b) = &self.subs {
            self.subs_markdown(&mut s, b);
        }
        s
    }

    fn subs_markdown(&self, s: &mut String, b: &super::subs::SubsOutcome) {
        let c = &self.config.subs;
        let per = |x: f64| {
            if b.notify_rate > 0.0 {
                format!("{:.2}", x / b.notify_rate)
            } else {
                "-".into()
            }
        };
        let _ = writeln!(
            s,
            "\nsubscriptions: {} websockets (graphql-transport-ws) on one API: {} jobProgress over \
             {} jobs, {} jobEvents; {} progress writes per job every {} ms, then completion\n",
            b.subscribers,
            b.subscribers - c.events,
            c.jobs,
            c.events,
            c.steps,
            c.interval.as_millis()
        );
        let rows = [
            (
                "connected and registered in",
                format!("{:.1} s", b.connect_secs),
            ),
            (
                "API RSS: before / all open / peak / after close",
                format!(
                    "{:.0} / {:.0} / {:.0} / {:.0} MiB",
                    b.rss[0], b.rss[1], b.rss[2], b.rss[3]
                ),
            ),
            ("CPU api / postgres / bench, held idle", cpu(&b.idle_cpu)),
            (
                "scans/s api_token / job / backup, held idle",
                format!(
                    "{:.0} / {:.0} / {:.0}",
                    b.idle_reads[0], b.idle_reads[1], b.idle_reads[2]
                ),
            ),
            (
                "CPU api / postgres / bench, jobs progressing",
                cpu(&b.busy_cpu),
            ),
            (
                "per NOTIFY: api_token / job / backup scans (job includes the write itself)",
                format!(
                    "{} / {} / {} ({:.0} NOTIFY/s)",
                    per(b.busy_reads[0]),
                    per(b.busy_reads[1]),
                    per(b.busy_reads[2]),
                    b.notify_rate
                ),
            ),
            (
                "fan-out jobProgress p50 / p95 / p99 / max",
                ms(&b.progress_latency),
            ),
            (
                "fan-out jobEvents p50 / p95 / p99 / max",
                ms(&b.events_latency),
            ),
            ("final state p50 / p95 / p99 / max", ms(&b.final_latency)),
            (
                "progress updates delivered",
                format!("{} of {}", b.delivered, b.expected),
            ),
            (
                "subscribers that got every final state",
                format!("{} of {}", b.finished, b.subscribers),
            ),
        ];
        s.push_str("| measure | value |\n|---|---|\n");
        for (k, v) in rows {
            let _ = writeln!(s, "| {k} | {v} |");
        }
    }
}
