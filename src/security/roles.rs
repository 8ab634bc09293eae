//! Roles and permissions (`config/roles.ron`), and per-player role assignments.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

/// The role of players without an assignment.
pub const DEFAULT_ROLE: &str = "player";

#[derive(Debug, Clone, Deserialize)]
struct RoleSpec {
    #[serde(default)]
    inherits: Vec<String>,
    permissions: Vec<String>,
}

/// Every role with the permissions it grants (inheritance resolved).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleBook {
    roles: BTreeMap<String, BTreeSet<String>>,
}

/// Why `roles.ron` is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RolesError {
    /// Not valid RON or not the expected shape.
    #[error("{file}:{line}: {reason}")]
    Parse {
        /// The file.
        file: String,
        /// Line.
        line: usize,
        /// Why.
        reason: String,
    },
    /// A role that does not hold together.
    #[error("{file}: role {role}: {reason}")]
    Role {
        /// The file.
        file: String,
        /// The role.
        role: String,
        /// Why.
        reason: String,
    },
}

fn valid_permission(p: &str) -> bool {
    p == "*"
        || p.split('.').enumerate().all(|(i, seg)| {
            (!seg.is_empty() && seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
                || (seg == "*" && i + 1 == p.split('.').count())
        })
}

/// True if `pattern` (exact, `*`, or `prefix.*`) grants `permission`.
pub fn grants(pattern: &str, permission: &str) -> bool {
    pattern == "*"
        || pattern == permission
        || pattern.strip_suffix(".*").is_some_and(|prefix| {
            permission.starts_with(prefix) && permission.as_bytes().get(prefix.len()) == Some(&b'.')
        })
}

impl RoleBook {
    /// Parses `roles.ron` text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Self, RolesError> {
        let specs: BTreeMap<String, RoleSpec> =
            ron::from_str(text).map_err(|e| RolesError::Parse {
                file: file.to_string(),
                line: e.span.start.line,
                reason: e.code.to_string(),
            })?;
        if !specs.contains_key(DEFAULT_ROLE) {
            return Err(RolesError::Role {
                file: file.to_string(),
                role: DEFAULT_ROLE.into(),
                reason: "the default role must be defined".into(),
            });
        }
        let mut roles = BTreeMap::new();
        for name in specs.keys() {
            let mut granted = BTreeSet::new();
            let mut stack = vec![name.clone()];
            let mut seen = BTreeSet::new();
            while let Some(r) = stack.pop() {
                if !seen.insert(r.clone()) {
                    continue;
                }
                let spec = specs.get(&r).ok_or_else(|| RolesError::Role {
                    file: file.to_string(),
                    role: name.clone(),
                    reason: format!("inherits unknown role {r}"),
                })?;
                for p in &spec.permissions {
                    if !valid_permission(p) {
                        return Err(RolesError::Role {
                            file: file.to_string(),
                            role: r.clone(),
                            reason: format!("bad permission {p:?}"),
                        });
                    }
                    granted.insert(p.clone());
                }
                stack.extend(spec.inherits.iter().cloned());
            }
            roles.insert(name.clone(), granted);
        }
        Ok(Self { roles })
    }

    /// True if the role exists.
    pub fn exists(&self, role: &str) -> bool {
        self.roles.contains_key(role)
    }

    /// True if `role` grants `permission`. An unknown role grants nothing.
    pub fn allows(&self, role: &str, permission: &str) -> bool {
        self.roles
            .get(role)
            .is_some_and(|ps| ps.iter().any(|p| grants(p, permission)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLES: &str = r#"{
        "player": (permissions: ["game.play"]),
        "moderator": (inherits: ["player"], permissions: ["admin.kick", "audit.*"]),
        "admin": (inherits: ["moderator"], permissions: ["*"]),
    }"#;

    #[test]
    fn wildcards_and_inheritance() {
        let b = RoleBook::parse("roles.ron", ROLES).unwrap();
        assert!(b.allows("player", "game.play"));
        assert!(!b.allows("player", "admin.kick"), "nothing not granted");
        assert!(b.allows("moderator", "game.play"), "inherited");
        assert!(b.allows("moderator", "audit.read"));
        assert!(!b.allows("moderator", "auditx.read"));
        assert!(!b.allows("moderator", "config.write.shared"));
        assert!(b.allows("admin", "config.write.shared"));
        assert!(!b.allows("ghost", "game.play"));
    }

    #[test]
    fn bad_files_are_refused() {
        assert!(RoleBook::parse("r", "{").is_err());
        assert!(
            RoleBook::parse("r", r#"{"admin": (permissions: ["*"])}"#)
                .unwrap_err()
                .to_string()
                .contains("default role")
        );
        let bad = r#"{"player": (inherits: ["nobody"], permissions: [])}"#;
        assert!(
            RoleBook::parse("r", bad)
                .unwrap_err()
                .to_string()
                .contains("unknown role nobody")
        );
        let bad = r#"{"player": (permissions: ["a..b"])}"#;
        assert!(
            RoleBook::parse("r", bad)
                .unwrap_err()
                .to_string()
                .contains("bad permission")
        );
    }

    #[test]
    fn the_shipped_roles_parse() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/roles.ron"))
                .unwrap();
        let b = RoleBook::parse("roles.ron", &text).unwrap();
        assert!(b.allows("admin", "admin.grant") && !b.allows("player", "admin.kick"));
    }
}
