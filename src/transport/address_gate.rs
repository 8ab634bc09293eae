//! The per-address limit on connection attempts (netcode connection requests), checked by the
//! gate before netcode decrypts anything.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

/// A token bucket per source address for connection attempts (netcode connection requests).
#[derive(Debug)]
pub struct AddressGate {
    per_second: f64,
    burst: f64,
    buckets: HashMap<IpAddr, (f64, Duration)>,
    /// Attempts refused.
    pub refused: u64,
    /// Addresses refused since the last [`AddressGate::take_flooders`].
    flooders: HashMap<IpAddr, u64>,
}

/// Most addresses tracked at once; the fullest buckets are forgotten first when it is reached.
const MAX_TRACKED: usize = 65_536;

impl AddressGate {
    /// `per_second` attempts per address, bursts up to `burst`.
    pub fn new(per_second: f64, burst: f64) -> Self {
        Self {
            per_second,
            burst: burst.max(1.0),
            buckets: HashMap::new(),
            refused: 0,
            flooders: HashMap::new(),
        }
    }

    /// True if an attempt from `addr` at `now` is within the limit.
    pub fn allow(&mut self, addr: IpAddr, now: Duration) -> bool {
        if self.buckets.len() >= MAX_TRACKED && !self.buckets.contains_key(&addr) {
            // Buckets that have refilled carry no information: drop them.
            let (rate, burst) = (self.per_second, self.burst);
            self.buckets.retain(|_, (tokens, at)| {
                *tokens + now.saturating_sub(*at).as_secs_f64() * rate < burst
            });
            if self.buckets.len() >= MAX_TRACKED {
                self.refused += 1;
                *self.flooders.entry(addr).or_default() += 1;
                return false;
            }
        }
        let (tokens, at) = self.buckets.entry(addr).or_insert((self.burst, now));
        *tokens =
            (*tokens + now.saturating_sub(*at).as_secs_f64() * self.per_second).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            self.refused += 1;
            *self.flooders.entry(addr).or_default() += 1;
            false
        }
    }

    /// Addresses refused since the last call, with how many attempts each.
    pub fn take_flooders(&mut self) -> Vec<(IpAddr, u64)> {
        let mut v: Vec<_> = self.flooders.drain().collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_gate_limits_each_address_alone() {
        let mut g = AddressGate::new(2.0, 4.0);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let t = Duration::from_millis;
        let allowed = (0..10).filter(|_| g.allow(a, t(0))).count();
        assert_eq!(allowed, 4, "the burst");
        assert!(g.allow(b, t(0)), "another address is unaffected");
        assert!(!g.allow(a, t(100)));
        assert!(g.allow(a, t(600)), "refilled at 2/s");
        assert_eq!(g.refused, 7);
        assert_eq!(g.take_flooders(), vec![(a, 7)]);
        assert!(g.take_flooders().is_empty());
    }
}
