//! Failed logins, counted per (account, address) and per account.
//!
//! - **Per (account, address)**: after `login.freeFailures` failures, that address must wait before
//!   it may try that account again: `login.backoffBaseMs`, doubling with every further failure, up
//!   to `login.backoffMaxSeconds`. A request inside the wait is refused without a password check.
//! - **Per account**, over all addresses: after `login.freeFailures` failures, every attempt at the
//!   account waits `100 ms × (failures − free)` before its check, at most
//!   `login.accountDelayMaxMs`. So an attacker spread over many addresses slows the account down
//!   but never locks its owner out: the owner's own address has no back-off of its own.
//! - A success clears the (account, address) count and the account's count. A count is forgotten
//!   `login.backoffMaxSeconds` after its last failure.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The account-wide delay's step per failure past the free ones.
const ACCOUNT_STEP: Duration = Duration::from_millis(100);

/// Above this many counted pairs, expired ones are dropped at the next failure.
const PRUNE_ABOVE: usize = 10_000;

/// The back-off rules (from the `login.*` keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// Failures allowed before any back-off.
    pub free_failures: u32,
    /// The first back-off.
    pub base: Duration,
    /// The longest back-off, and how long a count is remembered.
    pub max: Duration,
    /// The longest account-wide delay.
    pub account_delay_max: Duration,
}

impl BackoffPolicy {
    /// The wait after `failures` failures from one address at one account.
    pub fn backoff_after(&self, failures: u32) -> Duration {
        let Some(past) = failures.checked_sub(self.free_failures + 1) else {
            return Duration::ZERO;
        };
        let factor = 1u32.checked_shl(past.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The delay before an attempt at an account with `failures` failures from all addresses.
    pub fn account_delay(&self, failures: u32) -> Duration {
        let past = failures.saturating_sub(self.free_failures);
        ACCOUNT_STEP
            .saturating_mul(past)
            .min(self.account_delay_max)
    }
}

#[derive(Debug, Clone, Copy)]
struct Count {
    failures: u32,
    last: Instant,
}

/// What an attempt may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Check the password, after waiting `delay` (the account-wide slow-down).
    Go {
        /// The account-wide delay.
        delay: Duration,
    },
    /// Refused: this address is backing off from this account for `retry_after` more.
    Wait {
        /// Time left.
        retry_after: Duration,
    },
}

/// The failure counts.
#[derive(Debug, Default)]
pub struct Failures {
    pairs: HashMap<(String, IpAddr), Count>,
    accounts: HashMap<String, Count>,
}

impl Failures {
    /// Whether `address` may try `account` (a lowercased username) at `now`.
    pub fn check(
        &self,
        policy: &BackoffPolicy,
        account: &str,
        address: IpAddr,
        now: Instant,
    ) -> Verdict {
        if let Some(c) = self.pairs.get(&(account.to_string(), address)) {
            let until = c.last + policy.backoff_after(c.failures);
            if until > now {
                return Verdict::Wait {
                    retry_after: until - now,
                };
            }
        }
        let delay = self
            .accounts
            .get(account)
            .filter(|c| now.duration_since(c.last) < policy.max)
            .map_or(Duration::ZERO, |c| policy.account_delay(c.failures));
        Verdict::Go { delay }
    }

    /// Counts a failure; returns the back-off it starts for this address (zero if none).
    pub fn failed(
        &mut self,
        policy: &BackoffPolicy,
        account: &str,
        address: IpAddr,
        now: Instant,
    ) -> Duration {
        if self.pairs.len() > PRUNE_ABOVE {
            self.forget_expired(policy, now);
        }
        let bump = |c: &mut Count| {
            // A count past its memory starts again.
            if now.duration_since(c.last) >= policy.max {
                c.failures = 0;
            }
            c.failures = c.failures.saturating_add(1);
            c.last = now;
            c.failures
        };
        let fresh = Count {
            failures: 0,
            last: now,
        };
        bump(self.accounts.entry(account.to_string()).or_insert(fresh));
        let n = bump(
            self.pairs
                .entry((account.to_string(), address))
                .or_insert(fresh),
        );
        policy.backoff_after(n)
    }

    /// A success: the address and the account start clean.
    pub fn succeeded(&mut self, account: &str, address: IpAddr) {
        self.pairs.remove(&(account.to_string(), address));
        self.accounts.remove(account);
    }

    /// Drops counts whose last failure is older than the longest back-off.
    pub fn forget_expired(&mut self, policy: &BackoffPolicy, now: Instant) {
        self.pairs
            .retain(|_, c| now.duration_since(c.last) < policy.max);
        self.accounts
            .retain(|_, c| now.duration_since(c.last) < policy.max);
    }

    /// Pairs counted (for tests and figures).
    pub fn pairs(&self) -> usize {
        self.pairs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: BackoffPolicy = BackoffPolicy {
        free_failures: 3,
        base: Duration::from_secs(1),
        max: Duration::from_secs(60),
        account_delay_max: Duration::from_millis(250),
    };

    #[test]
    fn back_off_doubles_after_the_free_failures_up_to_the_cap() {
        let waits: Vec<u64> = (0..=12)
            .map(|n| POLICY.backoff_after(n).as_secs())
            .collect();
        assert_eq!(waits, [0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(POLICY.backoff_after(u32::MAX), POLICY.max);
        let delays: Vec<u128> = (0..8)
            .map(|n| POLICY.account_delay(n).as_millis())
            .collect();
        assert_eq!(delays, [0, 0, 0, 0, 100, 200, 250, 250]);
    }

    #[test]
    fn one_address_backs_off_while_the_owner_only_slows_down() {
        let mut f = Failures::default();
        let attacker: IpAddr = "192.0.2.1".parse().unwrap();
        let owner: IpAddr = "198.51.100.7".parse().unwrap();
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(
                f.check(&POLICY, "ann", attacker, t0),
                Verdict::Go {
                    delay: Duration::ZERO
                },
                "attempt {i}"
            );
            assert_eq!(f.failed(&POLICY, "ann", attacker, t0), Duration::ZERO);
        }
        assert_eq!(
            f.failed(&POLICY, "ann", attacker, t0),
            Duration::from_secs(1)
        );
        assert_eq!(
            f.check(&POLICY, "ann", attacker, t0 + Duration::from_millis(400)),
            Verdict::Wait {
                retry_after: Duration::from_millis(600)
            }
        );
        // The attacker's address may try again once the wait is over.
        assert!(matches!(
            f.check(&POLICY, "ann", attacker, t0 + Duration::from_secs(1)),
            Verdict::Go { .. }
        ));
        // Another account from the same address is not affected.
        assert_eq!(
            f.check(&POLICY, "bob", attacker, t0),
            Verdict::Go {
                delay: Duration::ZERO
            }
        );
        // The owner, elsewhere, is only slowed.
        assert_eq!(
            f.check(&POLICY, "ann", owner, t0),
            Verdict::Go {
                delay: Duration::from_millis(100)
            }
        );
        f.succeeded("ann", owner);
        assert_eq!(
            f.check(&POLICY, "ann", owner, t0),
            Verdict::Go {
                delay: Duration::ZERO
            }
        );
        // The attacker's own back-off outlives the owner's success.
        assert!(matches!(
            f.check(&POLICY, "ann", attacker, t0),
            Verdict::Wait { .. }
        ));
    }

    #[test]
    fn counts_are_forgotten_after_the_longest_back_off() {
        let mut f = Failures::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..5 {
            f.failed(&POLICY, "ann", a, t0);
        }
        let later = t0 + POLICY.max;
        assert_eq!(
            f.check(&POLICY, "ann", a, later),
            Verdict::Go {
                delay: Duration::ZERO
            }
        );
        // A failure after the memory ran out counts from one again.
        assert_eq!(f.failed(&POLICY, "ann", a, later), Duration::ZERO);
        f.forget_expired(&POLICY, later + POLICY.max);
        assert_eq!(f.pairs(), 0);
    }
}
