//! Detectors for suspicious activity, as plain types: clock skew. (A game raises its own kinds,
//! such as the aquarium's economy detectors; the per-address limit on connection attempts is the
//! transport's `AddressGate`.)

use std::collections::HashSet;
use std::time::Duration;

/// What kind of suspicious activity: a stable name (stats, audit). The framework's kinds are the
/// constants here; a game declares its own (`Suspicion("overspend")`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Suspicion(pub &'static str);

impl Suspicion {
    /// The client's clock is far from the server's.
    pub const CLOCK_SKEW: Self = Self("clock_skew");
    /// An address sent connection attempts over the limit.
    pub const CONNECT_FLOOD: Self = Self("connect_flood");
    /// Envelope, decoding or validation failures reported by the transport.
    pub const BAD_INPUT: Self = Self("bad_input");

    /// Stable name (stats, audit).
    pub fn key(self) -> &'static str {
        self.0
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
