//! Detectors for suspicious activity, as plain types: clock skew. (Impossible income is the
//! game's `IncomeWatch`; the per-address limit on connection attempts is the transport's
//! `AddressGate`.)

use std::collections::HashSet;
use std::time::Duration;

/// What kind of suspicious activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Suspicion {
    /// A purchase costing more than the balance (a client that knows its balance never asks).
    Overspend,
    /// Coins rose faster than the player's fish can earn plus what was credited.
    ImpossibleIncome,
    /// The client's clock is far from the server's.
    ClockSkew,
    /// An address sent connection attempts over the limit.
    ConnectFlood,
    /// Envelope, decoding or validation failures reported by the transport.
    BadInput,
}

impl Suspicion {
    /// Stable name (stats, audit).
    pub fn key(self) -> &'static str {
        match self {
            Suspicion::Overspend => "overspend",
            Suspicion::ImpossibleIncome => "impossible_income",
            Suspicion::ClockSkew => "clock_skew",
            Suspicion::ConnectFlood => "connect_flood",
            Suspicion::BadInput => "bad_input",
        }
    }
}

/// The difference between a client's clock and the server's, if over `max` (ms).
pub fn clock_skew(client_ms: u64, server_ms: u64, max: Duration) -> Option<u64> {
    let skew = client_ms.abs_diff(server_ms);
    (skew > max.as_millis() as u64).then_some(skew)
}

/// Remembers which sessions were already reported for clock skew (one report per session).
#[derive(Debug, Default)]
pub struct SkewReports(HashSet<u64>);

impl SkewReports {
    /// True the first time for `client`.
    pub fn first(&mut self, client: u64) -> bool {
        self.0.insert(client)
    }
    /// Forgets a client whose session ended.
    pub fn forget(&mut self, client: u64) {
        self.0.remove(&client);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_skew_over_the_limit() {
        let max = Duration::from_secs(60);
        assert_eq!(clock_skew(1_000_000, 1_030_000, max), None);
        assert_eq!(clock_skew(1_000_000, 1_090_000, max), Some(90_000));
        assert_eq!(clock_skew(1_090_000, 1_000_000, max), Some(90_000));
        let mut r = SkewReports::default();
        assert!(r.first(3));
        assert!(!r.first(3));
        r.forget(3);
        assert!(r.first(3));
    }
}
