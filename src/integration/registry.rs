//! The integration registry: every plugin registers its name, version, what it depends on, a
//! health check and its figures; and the optimisation rules it owns.

use bevy::prelude::*;
use serde::Serialize;

use super::figures::FigureSource;
use super::rules::TuningRule;

/// A subsystem's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "reason")]
pub enum HealthStatus {
    /// Working.
    Healthy,
    /// Working, with a problem.
    Degraded(String),
    /// Working, but it should take no new players until this clears (its storage is failing,
    /// say): `/ready` says no, `/health` still says the process is alive, so an orchestrator
    /// stops sending players instead of restarting a server that would not be better off.
    Unready(String),
    /// Not working.
    Unhealthy(String),
}

impl HealthStatus {
    fn rank(&self) -> u8 {
        match self {
            HealthStatus::Healthy => 0,
            HealthStatus::Degraded(_) => 1,
            HealthStatus::Unready(_) => 2,
            HealthStatus::Unhealthy(_) => 3,
        }
    }

    /// The short name.
    pub fn name(&self) -> &'static str {
        match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded(_) => "degraded",
            HealthStatus::Unready(_) => "unready",
            HealthStatus::Unhealthy(_) => "unhealthy",
        }
    }
}

/// A health check: reads the World, never changes it.
pub type HealthCheck = fn(&World) -> HealthStatus;

/// One registered plugin.
#[derive(Clone)]
pub struct Integration {
    /// Its name.
    pub name: &'static str,
    /// Its version.
    pub version: &'static str,
    /// Names of the plugins it needs.
    pub depends_on: &'static [&'static str],
    /// Its health check.
    pub check: HealthCheck,
    /// Its figures for the metrics.
    pub figures: FigureSource,
}

/// One system's line in a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SystemHealth {
    /// The plugin.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its health.
    pub health: HealthStatus,
}

/// The outcome of a round of checks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthReport {
    /// The worst of the systems.
    pub overall: HealthStatus,
    /// How many systems are registered.
    pub system_count: usize,
    /// When (ms since the Unix epoch).
    pub checked_at_ms: u64,
    /// Each system.
    pub systems: Vec<SystemHealth>,
}

/// Every registered plugin.
#[derive(Resource, Default, Clone)]
pub struct IntegrationRegistry {
    entries: Vec<Integration>,
    /// Figure sources registered without a health check (a client-side part of a subsystem).
    extra_figures: Vec<FigureSource>,
    /// The optimisation rules subsystems registered.
    pub rules: Vec<TuningRule>,
    /// The last report.
    pub last: Option<HealthReport>,
}

/// Why start-up stops.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plugin {plugin} needs plugin {missing}, which is not part of this app")]
pub struct MissingDependency {
    /// The plugin that needs it.
    pub plugin: String,
    /// What is missing.
    pub missing: String,
}

impl IntegrationRegistry {
    /// Adds a plugin (a second registration of one name replaces the first).
    pub fn register(&mut self, i: Integration) {
        self.entries.retain(|e| e.name != i.name);
        self.entries.push(i);
    }

    /// Every registered plugin's figure source, in registration order.
    pub fn figure_sources(&self) -> impl Iterator<Item = FigureSource> + '_ {
        self.entries
            .iter()
            .map(|e| e.figures)
            .chain(self.extra_figures.iter().copied())
    }

    /// The registered rule called `name`.
    pub fn rule(&self, name: &str) -> Option<&TuningRule> {
        self.rules.iter().find(|r| r.rule.name == name)
    }

    /// Names registered.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.entries.iter().map(|e| e.name)
    }

    /// Every dependency is registered.
    pub fn validate(&self) -> Result<(), MissingDependency> {
        for e in &self.entries {
            for d in e.depends_on {
                if !self.entries.iter().any(|x| x.name == *d) {
                    return Err(MissingDependency {
                        plugin: e.name.to_string(),
                        missing: (*d).to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Runs every check.
    pub fn check_all(&self, world: &World, at_ms: u64) -> HealthReport {
        let systems: Vec<SystemHealth> = self
            .entries
            .iter()
            .map(|e| SystemHealth {
                name: e.name.to_string(),
                version: e.version.to_string(),
                health: (e.check)(world),
            })
            .collect();
        let overall = systems
            .iter()
            .map(|s| &s.health)
            .max_by_key(|h| h.rank())
            .cloned()
            .unwrap_or(HealthStatus::Healthy);
        let overall = match overall {
            HealthStatus::Healthy => HealthStatus::Healthy,
            HealthStatus::Degraded(_) => {
                HealthStatus::Degraded(summary(&systems, |h| h.rank() == 1))
            }
            HealthStatus::Unready(_) => HealthStatus::Unready(summary(&systems, |h| h.rank() == 2)),
            HealthStatus::Unhealthy(_) => {
                HealthStatus::Unhealthy(summary(&systems, |h| h.rank() == 3))
            }
        };
        HealthReport {
            overall,
            system_count: systems.len(),
            checked_at_ms: at_ms,
            systems,
        }
    }
}

fn summary(systems: &[SystemHealth], pick: impl Fn(&HealthStatus) -> bool) -> String {
    systems
        .iter()
        .filter(|s| pick(&s.health))
        .map(|s| match &s.health {
            HealthStatus::Degraded(r) | HealthStatus::Unready(r) | HealthStatus::Unhealthy(r) => {
                format!("{}: {r}", s.name)
            }
            HealthStatus::Healthy => s.name.clone(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The app's registry (created on first use).
fn registry(app: &mut App) -> Mut<'_, IntegrationRegistry> {
    app.init_resource::<IntegrationRegistry>();
    app.world_mut().resource_mut::<IntegrationRegistry>()
}

/// Registers a plugin with the app's registry.
pub fn register(app: &mut App, i: Integration) {
    registry(app).register(i);
}

/// Registers figures that come with no health check of their own (a second registration of
/// one source is ignored).
pub fn register_figures(app: &mut App, source: FigureSource) {
    let mut registry = registry(app);
    if !registry
        .extra_figures
        .iter()
        .any(|f| std::ptr::fn_addr_eq(*f, source))
    {
        registry.extra_figures.push(source);
    }
}

/// Registers an optimisation rule with the app's registry (a second rule of one name replaces
/// the first).
pub fn register_rule(app: &mut App, rule: TuningRule) {
    let mut registry = registry(app);
    registry.rules.retain(|r| r.rule.name != rule.rule.name);
    registry.rules.push(rule);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(_: &World) -> HealthStatus {
        HealthStatus::Healthy
    }
    fn slow(_: &World) -> HealthStatus {
        HealthStatus::Degraded("slow".into())
    }
    fn down(_: &World) -> HealthStatus {
        HealthStatus::Unhealthy("down".into())
    }

    fn entry(name: &'static str, deps: &'static [&'static str], check: HealthCheck) -> Integration {
        Integration {
            name,
            version: "1",
            depends_on: deps,
            check,
            figures: crate::integration::no_figures,
        }
    }

    #[test]
    fn missing_dependencies_name_both_plugins() {
        let mut r = IntegrationRegistry::default();
        r.register(entry("a", &[], ok));
        r.register(entry("b", &["a", "c"], ok));
        let e = r.validate().unwrap_err();
        assert_eq!(
            e.to_string(),
            "plugin b needs plugin c, which is not part of this app"
        );
        r.register(entry("c", &[], ok));
        assert!(r.validate().is_ok());
    }

    #[test]
    fn the_worst_system_decides_and_names_itself() {
        let world = World::new();
        let mut r = IntegrationRegistry::default();
        r.register(entry("a", &[], ok));
        r.register(entry("b", &[], slow));
        let rep = r.check_all(&world, 5);
        assert_eq!(rep.overall, HealthStatus::Degraded("b: slow".into()));
        assert_eq!(rep.system_count, 2);
        r.register(entry("c", &[], down));
        assert_eq!(
            r.check_all(&world, 6).overall,
            HealthStatus::Unhealthy("c: down".into())
        );
    }
}
