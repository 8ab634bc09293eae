//! The seed's automatic optimisations as explicit rules with hysteresis: a rule engages when its
//! figure crosses `engage_at` and releases only when it crosses back past `release_at`, so a
//! figure hovering at the threshold does not flap.

use std::time::Duration;

use bevy::prelude::*;

/// Which way is bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// High values engage the rule.
    High,
    /// Low values engage the rule.
    Low,
}

/// A rule's change of state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// It fired.
    Engaged,
    /// It settled.
    Released,
}

/// One rule.
#[derive(Debug, Clone)]
pub struct OptimisationRule {
    /// Its name.
    pub name: &'static str,
    /// Which way is bad.
    pub direction: Direction,
    /// Threshold that engages it.
    pub engage_at: f64,
    /// Threshold that releases it.
    pub release_at: f64,
    /// Engaged now.
    pub engaged: bool,
    /// Times it fired.
    pub fired: u64,
    /// Times it settled.
    pub settled: u64,
}

impl OptimisationRule {
    /// A rule.
    pub fn new(name: &'static str, direction: Direction, engage_at: f64, release_at: f64) -> Self {
        Self {
            name,
            direction,
            engage_at,
            release_at,
            engaged: false,
            fired: 0,
            settled: 0,
        }
    }

    /// Looks at the figure; returns a transition when there is one.
    pub fn evaluate(&mut self, value: f64) -> Option<Transition> {
        if !value.is_finite() {
            return None;
        }
        let (bad, good) = match self.direction {
            Direction::High => (value >= self.engage_at, value <= self.release_at),
            Direction::Low => (value <= self.engage_at, value >= self.release_at),
        };
        if !self.engaged && bad {
            self.engaged = true;
            self.fired += 1;
            Some(Transition::Engaged)
        } else if self.engaged && good {
            self.engaged = false;
            self.settled += 1;
            Some(Transition::Released)
        } else {
            None
        }
    }
}

/// What a tuning rule looks at, read from the World each check round. The engine keeps the last
/// reading and works out the figure over the window since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// A running count: the figure is how many came per minute over the window.
    PerMinute(u64),
    /// Running counts of operations and failed ones: the figure is the share that succeeded over
    /// the window (not judged over fewer than 5 operations).
    SuccessShare {
        /// Operations in all.
        total: u64,
        /// Failed ones.
        failed: u64,
    },
}

/// Carries out a rule's transition (writes its owner's message).
pub type ApplyTransition = fn(&mut World, Transition);

/// An optimisation rule a subsystem registers: what it measures, and what it does when the rule
/// engages or releases. `apply` sends a message the owning subsystem handles; the engine never
/// touches the subsystem's fields itself.
#[derive(Debug, Clone)]
pub struct TuningRule {
    /// The rule and its hysteresis.
    pub rule: OptimisationRule,
    /// Reads the running counts (`None`: nothing to judge yet).
    pub measure: fn(&World) -> Option<Measure>,
    /// Carries out a transition.
    pub apply: ApplyTransition,
    last: (u64, u64),
}

impl TuningRule {
    /// A rule over `measure` that `apply` carries out.
    pub fn new(
        rule: OptimisationRule,
        measure: fn(&World) -> Option<Measure>,
        apply: ApplyTransition,
    ) -> Self {
        Self {
            rule,
            measure,
            apply,
            last: (0, 0),
        }
    }

    /// Reads the counts over the last `window` and evaluates the rule; returns a transition and
    /// the figure that caused it.
    pub fn sample(&mut self, world: &World, window: Duration) -> Option<(Transition, f64)> {
        let value = match (self.measure)(world)? {
            Measure::PerMinute(count) => {
                let n = count.saturating_sub(self.last.0);
                self.last = (count, 0);
                n as f64 * 60.0 / window.as_secs_f64().max(1.0)
            }
            Measure::SuccessShare { total, failed } => {
                let (t0, f0) = self.last;
                self.last = (total, failed);
                let n = total.saturating_sub(t0);
                if n < 5 {
                    return None;
                }
                1.0 - failed.saturating_sub(f0) as f64 / n as f64
            }
        };
        self.rule.evaluate(value).map(|t| (t, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_once_and_settles_only_past_the_release_point() {
        let mut r = OptimisationRule::new("conflicts", Direction::High, 0.5, 0.2);
        assert_eq!(r.evaluate(0.1), None);
        assert_eq!(r.evaluate(0.6), Some(Transition::Engaged));
        // Hovering between the thresholds changes nothing.
        assert_eq!(r.evaluate(0.4), None);
        assert_eq!(r.evaluate(0.55), None);
        assert_eq!(r.evaluate(0.2), Some(Transition::Released));
        assert_eq!((r.fired, r.settled), (1, 1));
        let mut low = OptimisationRule::new("success", Direction::Low, 0.9, 0.98);
        assert_eq!(low.evaluate(0.95), None);
        assert_eq!(low.evaluate(0.8), Some(Transition::Engaged));
        assert_eq!(low.evaluate(0.95), None);
        assert_eq!(low.evaluate(0.99), Some(Transition::Released));
        assert_eq!(low.evaluate(f64::NAN), None);
    }
}
