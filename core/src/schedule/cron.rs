//! Parsed schedule inputs: a five-field cron expression and an IANA time zone, and the fire
//! times they produce.
//!
//! Daylight saving time (croner's rules, the same as Vixie cron's):
//! - a wall-clock time skipped by a spring-forward gap (02:30 in Europe/Berlin on the last
//!   Sunday of March) fires once, at the first instant after the gap (03:00 local);
//! - a wall-clock time repeated by a fall-back overlap fires once, at its first (summer-time)
//!   occurrence, for fixed-time expressions (`30 2 * * *`); interval expressions (`*/15 * * * *`)
//!   fire on both passes, as their interval says.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// A cron expression: minute, hour, day of month, month, day of week (`0 2 * * *`), with
/// names (`MON`, `JAN`), lists, ranges, steps, `L`, `W` and `#`, or a nickname (`@daily`).
#[derive(Clone)]
pub struct CronExpr {
    text: String,
    cron: Cron,
}

impl CronExpr {
    /// The expression as given (trimmed).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first fire time strictly after `t`, in zone `tz`.
    pub fn next_after(&self, tz: &TimeZoneName, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&tz.0);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// The latest fire time in `(after, upto]`, in zone `tz`, if any.
    pub fn latest_in(
        &self,
        tz: &TimeZoneName,
        after: DateTime<Utc>,
        upto: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let local = upto.with_timezone(&tz.0);
        let t = self.cron.find_previous_occurrence(&local, true).ok()?;
        let t = t.with_timezone(&Utc);
        (t > after && t <= upto).then_some(t)
    }

    /// The shortest gap between two consecutive fire times over the year after `from`
    /// (sampled: at most 2000 fires), e.g. 1 day for `0 2 * * *`.
    pub fn shortest_interval(
        &self,
        tz: &TimeZoneName,
        from: DateTime<Utc>,
    ) -> Option<chrono::Duration> {
        let end = from + chrono::Duration::days(366);
        let mut prev = self.next_after(tz, from)?;
        let mut best: Option<chrono::Duration> = None;
        for _ in 0..2000 {
            let Some(next) = self.next_after(tz, prev) else {
                break;
            };
            let gap = next - prev;
            best = Some(best.map_or(gap, |b| b.min(gap)));
            if next > end {
                break;
            }
            prev = next;
        }
        best
    }
}

impl FromStr for CronExpr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let shown: String = text.chars().take(80).collect();
        let fields = text.split_whitespace().count();
        if !text.starts_with('@') && fields != 5 {
            return Err(format!(
                "invalid cron expression {shown:?}: expected 5 fields (minute hour day-of-month \
                 month day-of-week, e.g. \"0 2 * * *\"), got {fields}"
            ));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(text)
            .map_err(|e| format!("invalid cron expression {shown:?}: {e}"))?;
        let expr = Self {
            text: text.to_string(),
            cron,
        };
        // A pattern that never matches (`0 0 31 2 *`) would silently never fire.
        let utc = TimeZoneName::utc();
        if expr.next_after(&utc, Utc::now()).is_none() {
            return Err(format!("invalid cron expression {shown:?}: it never fires"));
        }
        Ok(expr)
    }
}

impl fmt::Display for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CronExpr({:?})", self.text)
    }
}

/// An IANA time zone (`UTC`, `Europe/Berlin`), spelled as the zone database spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeZoneName(Tz);

impl TimeZoneName {
    /// UTC.
    pub fn utc() -> Self {
        Self(Tz::UTC)
    }

    /// The canonical name, e.g. `Europe/Berlin`.
    pub fn as_str(&self) -> &'static str {
        self.0.name()
    }
}

impl FromStr for TimeZoneName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        t.parse::<Tz>().map(Self).map_err(|_| {
            let shown: String = t.chars().take(64).collect();
            format!(
                "unknown time zone {shown:?}: use an IANA name such as UTC, Europe/Berlin or \
                 America/New_York"
            )
        })
    }
}

impl fmt::Display for TimeZoneName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn parses_and_refuses_with_reasons() {
        assert!("0 2 * * *".parse::<CronExpr>().is_ok());
        assert!("0 3 * * SUN".parse::<CronExpr>().is_ok());
        assert!("@daily".parse::<CronExpr>().is_ok());
        for (bad, says) in [
            ("", "5 fields"),
            ("0 2 * *", "5 fields"),
            ("0 0 2 * * *", "5 fields"),
            ("61 2 * * *", "invalid cron"),
            ("0 2 * * MOO", "invalid cron"),
            ("0 0 31 2 *", "never fires"),
        ] {
            let e = bad.parse::<CronExpr>().unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
        assert_eq!(
            "Europe/Berlin".parse::<TimeZoneName>().unwrap().as_str(),
            "Europe/Berlin"
        );
        let e = "Mars/Olympus".parse::<TimeZoneName>().unwrap_err();
        assert!(e.contains("unknown time zone"), "{e}");
    }

    #[test]
    fn next_and_latest_fire_times() {
        let c: CronExpr = "0 2 * * *".parse().unwrap();
        let utc = TimeZoneName::utc();
        assert_eq!(
            c.next_after(&utc, at(2030, 1, 1, 2, 0)),
            Some(at(2030, 1, 2, 2, 0))
        );
        assert_eq!(
            c.latest_in(&utc, at(2030, 1, 1, 0, 0), at(2030, 1, 5, 1, 0)),
            Some(at(2030, 1, 4, 2, 0))
        );
        assert_eq!(
            c.latest_in(&utc, at(2030, 1, 4, 2, 0), at(2030, 1, 5, 1, 0)),
            None
        );
        assert_eq!(
            c.shortest_interval(&utc, at(2030, 1, 1, 0, 0)),
            Some(chrono::Duration::days(1))
        );
    }

    #[test]
    fn daylight_saving_gaps_and_overlaps_fire_once() {
        let berlin: TimeZoneName = "Europe/Berlin".parse().unwrap();
        let c: CronExpr = "30 2 * * *".parse().unwrap();
        // 2030-03-31: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist: fires at 03:00
        // CEST = 01:00 UTC.
        assert_eq!(
            c.next_after(&berlin, at(2030, 3, 30, 12, 0)),
            Some(at(2030, 3, 31, 1, 0))
        );
        // 2030-10-27: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice: fires once, at
        // the first (00:30 UTC), and next on the 28th.
        let first = c.next_after(&berlin, at(2030, 10, 26, 12, 0)).unwrap();
        assert_eq!(first, at(2030, 10, 27, 0, 30));
        assert_eq!(c.next_after(&berlin, first), Some(at(2030, 10, 28, 1, 30)));
    }
}
