//! The job kinds this worker runs.

use serde_json::json;

use crate::runtime::Worker;
use crate::{JobContext, JobError, JobOutput};

/// `ping`: completes at once with the worker's identity. `diagnose` and the queue benchmark
/// use it to measure that workers pick jobs up and how fast.
pub const PING: &str = "ping";

/// Registers every production handler.
pub fn register_all(w: &mut Worker) {
    let id = w.id();
    w.register(PING, move |_ctx: JobContext| async move {
        Ok::<JobOutput, JobError>(Some(json!({ "worker": id })))
    });
}
