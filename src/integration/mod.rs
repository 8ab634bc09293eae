//! The integration registry every subsystem registers into (the seed's IntegrationManager):
//! each plugin, in its own `build`, registers its name, version, dependencies, health check, the
//! figures it exports as metrics, and the optimisation rules it owns. Ground layer: it names no
//! subsystem; the `health` plugin runs the checks, serves the figures and drives the rules.

mod figures;
mod registry;
mod rules;

pub use figures::{Figure, FigureKind, FigureSource, no_figures, rule_figures};
pub use registry::{
    HealthCheck, HealthReport, HealthStatus, Integration, IntegrationRegistry, MissingDependency,
    SystemHealth, register, register_figures, register_rule,
};
pub use rules::{ApplyTransition, Direction, Measure, OptimisationRule, Transition, TuningRule};
