//! Figures: what a subsystem exports as metrics, each with its help text.

use bevy::prelude::*;

use super::rules::OptimisationRule;
use crate::clock::{Histogram, bucket_quantile};

/// How a figure behaves over time.
#[derive(Debug, Clone, PartialEq)]
pub enum FigureKind {
    /// A monotonic total.
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Samples in buckets (for quantiles): cumulative counts per upper bound, `+Inf` last.
    Histogram {
        /// (upper bound, samples at or under it).
        buckets: Vec<(f64, u64)>,
        /// Sum of the samples.
        sum: f64,
    },
}

/// One figure for the metrics.
#[derive(Debug, Clone)]
pub struct Figure {
    /// Metric name (Prometheus conventions: base units, `_total` for counters).
    pub name: &'static str,
    /// What it measures, for the `# HELP` line.
    pub help: &'static str,
    /// Labels.
    pub labels: Vec<(&'static str, String)>,
    /// Value.
    pub value: f64,
    /// Counter, gauge or histogram (for a histogram, `value` is its count).
    pub kind: FigureKind,
}

impl Figure {
    /// A monotonic total.
    pub fn counter(name: &'static str, help: &'static str, value: u64) -> Self {
        Self {
            name,
            help,
            labels: Vec::new(),
            value: value as f64,
            kind: FigureKind::Counter,
        }
    }

    /// A value that goes up and down.
    pub fn gauge(name: &'static str, help: &'static str, value: f64) -> Self {
        Self {
            name,
            help,
            labels: Vec::new(),
            value,
            kind: FigureKind::Gauge,
        }
    }

    /// A histogram of durations, seconds.
    pub fn histogram(name: &'static str, help: &'static str, h: &Histogram) -> Self {
        Self {
            name,
            help,
            labels: Vec::new(),
            value: h.count() as f64,
            kind: FigureKind::Histogram {
                buckets: h.cumulative(),
                sum: h.sum(),
            },
        }
    }

    /// The `q` quantile of a histogram figure (interpolated in its bucket); `None` for others.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        match &self.kind {
            FigureKind::Histogram { buckets, .. } => Some(bucket_quantile(buckets, q)),
            _ => None,
        }
    }

    /// With one more label.
    pub fn label(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.labels.push((key, value.into()));
        self
    }
}

/// Adds a subsystem's figures, read from the World.
pub type FigureSource = fn(&World, &mut Vec<Figure>);

/// For an integration that exports no figures.
pub fn no_figures(_: &World, _: &mut Vec<Figure>) {}

/// An optimisation rule's figures: times fired, and whether it is engaged now.
pub fn rule_figures(rule: &OptimisationRule, out: &mut Vec<Figure>) {
    out.push(
        Figure::counter(
            "bloxquarium_optimisation_fired_total",
            "Times an automatic optimisation rule fired.",
            rule.fired,
        )
        .label("rule", rule.name),
    );
    out.push(
        Figure::gauge(
            "bloxquarium_optimisation_engaged",
            "Whether an automatic optimisation rule is engaged now (1) or not (0).",
            f64::from(u8::from(rule.engaged)),
        )
        .label("rule", rule.name),
    );
}
