//! What faults cost in bytes: the chunk requests that carried bytes again, per object.
//!
//! ```text
//! for each session request, in log order, grouped by the object it writes:
//!   a chunk [a, b) with a < high  -> a re-send of min(high, b) - a bytes, charged to the faults
//!                                    seen on that object since its previous re-send
//!   high = max(high, b)            (what requests carried, whether or not the fake kept it)
//!   an injected fault on the request adds one to the faults seen
//! ```
//! `high` counts bytes sent, not bytes kept: a chunk answered 429 before its body was read
//! still counts as carried, so the figures are upper bounds on what a fault really cost.

use std::collections::HashMap;

use super::state::LogEntry;

/// A chunk request that carried bytes an earlier request for the same object already carried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resend {
    /// The object (Drive file name) being uploaded.
    pub object: String,
    /// The first byte of the request.
    pub start: u64,
    /// How many of its bytes had been carried before.
    pub bytes: u64,
    /// Injected faults on this object's requests since its previous re-send: a re-send
    /// without one is a client that sends the same bytes twice for no reason.
    pub faults_before: usize,
}

/// Every re-send in `log` (see the module comment).
pub fn resends(log: &[LogEntry]) -> Vec<Resend> {
    let mut seen: HashMap<&str, (u64, usize)> = HashMap::new();
    let mut out = Vec::new();
    for e in log {
        let Some(object) = e.object.as_deref() else {
            continue;
        };
        let (high, faults) = seen.entry(object).or_default();
        if let Some((a, b)) = e.span() {
            if a < *high {
                out.push(Resend {
                    object: object.to_string(),
                    start: a,
                    bytes: (*high).min(b) - a,
                    faults_before: *faults,
                });
                *faults = 0;
            }
            *high = (*high).max(b);
        }
        if e.fault.is_some() {
            *faults += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{Resend, resends};
    use crate::fake_drive::{Fault, LogEntry};

    const MIB: u64 = 1 << 20;

    /// A session request for `object` over `[a, b)` (a status query without a span).
    fn req(object: &str, span: Option<(u64, u64)>, fault: Option<Fault>) -> LogEntry {
        LogEntry {
            method: "PUT".into(),
            path: "/upload/drive/v3/files".into(),
            upload: Some("session".into()),
            object: Some(object.into()),
            content_range: span.map(|(a, b)| format!("bytes {a}-{}/*", b - 1)),
            bytes_received: 0,
            status: 308,
            fault,
        }
    }

    #[test]
    fn re_sends_are_counted_per_object_and_charged_to_the_faults_before_them() {
        let log = [
            req("a", Some((0, MIB)), Some(Fault::TooMany)),
            req("b", Some((0, MIB)), None), // another object starts at 0: not a re-send
            req("a", None, Some(Fault::Internal)), // the status query fails too
            req("a", None, None),
            req("a", Some((0, MIB)), None), // the whole chunk again, after two faults
            req("b", Some((MIB, 2 * MIB)), Some(Fault::PartialAccept)),
            req("b", Some((3 * MIB / 2, 5 * MIB / 2)), None),
            req("b", Some((2 * MIB, 3 * MIB)), None), // no fault since the last re-send
        ];
        let at = |object: &str, start, bytes, faults_before| Resend {
            object: object.into(),
            start,
            bytes,
            faults_before,
        };
        assert_eq!(
            resends(&log),
            [
                at("a", 0, MIB, 2),
                at("b", 3 * MIB / 2, MIB / 2, 1),
                at("b", 2 * MIB, MIB / 2, 0),
            ]
        );
    }
}
