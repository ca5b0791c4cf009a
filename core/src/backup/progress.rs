//! What a running backup tells the outside world, through a trait (house rule 9): core calls
//! [`Progress::report`] as often as it likes; the worker's implementation throttles the writes to
//! the job row (and so the NOTIFYs subscribers receive).

use serde::Serialize;

/// A snapshot of a job's progress; serialized (camelCase) into the job's `progress` column.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProgressReport {
    /// `starting`, `schema`, `data`, `manifest`, `verifying`, `cleanup`, `done`.
    pub phase: String,
    /// 0-100, estimated.
    pub percent: f64,
    /// Plain bytes processed so far.
    pub bytes_done: u64,
    /// Estimated plain bytes in all (from relation sizes while dumping).
    pub bytes_total: u64,
    /// Rows processed so far.
    pub rows_done: u64,
    /// Tables (or objects, while verifying) finished.
    pub tables_done: u64,
    /// Tables (or objects) in all.
    pub tables_total: u64,
    /// Bytes per second since the phase began.
    pub throughput: f64,
    /// Seconds left at the current throughput, when it can be estimated.
    pub eta: Option<f64>,
}

/// Receives progress reports.
pub trait Progress: Send + Sync {
    /// Called whenever progress changes; must be cheap.
    fn report(&self, report: ProgressReport);
}

/// Ignores reports.
impl Progress for () {
    fn report(&self, _: ProgressReport) {}
}

impl ProgressReport {
    /// Fills `percent`, `throughput` and `eta` from the counts and the phase's elapsed time.
    pub fn derive(mut self, elapsed_secs: f64) -> Self {
        if self.bytes_total > 0 {
            self.percent = (100.0 * self.bytes_done as f64 / self.bytes_total as f64).min(99.0);
        }
        if elapsed_secs > 0.0 {
            self.throughput = self.bytes_done as f64 / elapsed_secs;
        }
        if self.throughput > 0.0 && self.bytes_total > self.bytes_done {
            self.eta = Some((self.bytes_total - self.bytes_done) as f64 / self.throughput);
        }
        self
    }
}
