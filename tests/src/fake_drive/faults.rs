//! Fault injection: a schedule (the Nth request) or a seeded random rate, over the kinds of
//! fault Drive really produces.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One injected failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// 429 Too Many Requests.
    TooMany,
    /// 500 backendError.
    Internal,
    /// 503 Service Unavailable.
    Unavailable,
    /// 403 userRateLimitExceeded.
    RateLimit403,
    /// The connection is closed after part of the request body was read, without an answer.
    DropMidBody,
    /// A chunk is answered 308 with a Range short of what was sent.
    PartialAccept,
    /// 403 storageQuotaExceeded (the service-account trap).
    Quota,
}

impl Fault {
    /// Faults that make sense for any request.
    pub const ANY: [Fault; 5] = [
        Fault::TooMany,
        Fault::Internal,
        Fault::Unavailable,
        Fault::RateLimit403,
        Fault::DropMidBody,
    ];
}

/// When to fail. Requests are numbered from 1 (token requests are not counted).
#[derive(Debug, Default)]
pub struct FaultPlan {
    /// Request number -> fault.
    pub schedule: HashMap<u64, Fault>,
    /// Random faults: probability per request, and the generator.
    random: Option<(f64, StdRng)>,
    /// Requests seen.
    pub(super) count: u64,
}

impl FaultPlan {
    /// Fails `rate` (0..1) of requests at random, reproducibly from `seed`.
    pub fn random(rate: f64, seed: u64) -> Self {
        Self {
            random: Some((rate, StdRng::seed_from_u64(seed))),
            ..Self::default()
        }
    }

    /// Fails exactly the given request numbers.
    pub fn scheduled(faults: impl IntoIterator<Item = (u64, Fault)>) -> Self {
        Self {
            schedule: faults.into_iter().collect(),
            ..Self::default()
        }
    }

    /// The fault for the next request, if any; `chunk` requests may also get a partial accept.
    pub(super) fn next(&mut self, chunk: bool) -> Option<Fault> {
        self.count += 1;
        if let Some(f) = self.schedule.get(&self.count) {
            return Some(*f);
        }
        let (rate, rng) = self.random.as_mut()?;
        if !rng.gen_bool(*rate) {
            return None;
        }
        let n = Fault::ANY.len() + usize::from(chunk);
        Some(
            *Fault::ANY
                .get(rng.gen_range(0..n))
                .unwrap_or(&Fault::PartialAccept),
        )
    }
}
