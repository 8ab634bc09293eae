//! The configuration schema (`config/schema.ron`): every key's path, tier, type, default,
//! validation and description.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::protocol::ConfigValue;

/// Who may see a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Tier {
    /// Sent to clients; a player may set it for themselves (graphics, audio, UI).
    ClientSafe,
    /// Never leaves the server.
    ServerOnly,
    /// Sent to clients; changed only by the server (or a client with permission).
    Shared,
}

impl Tier {
    /// True if clients receive the key.
    pub fn replicated(self) -> bool {
        self != Tier::ServerOnly
    }
}

/// A key's type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ValueType {
    /// true / false.
    Bool,
    /// Whole numbers.
    Int,
    /// Numbers.
    Float,
    /// Text.
    String,
    /// One of the names.
    Enum(Vec<String>),
    /// Seconds: a number, or text such as "250ms", "30s", "5m", "1h".
    Duration,
    /// A list of values of one type.
    List(Box<ValueType>),
}

impl std::fmt::Display for ValueType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ValueType::Bool => f.write_str("bool"),
            ValueType::Int => f.write_str("int"),
            ValueType::Float => f.write_str("float"),
            ValueType::String => f.write_str("string"),
            ValueType::Enum(names) => write!(f, "one of {}", names.join("|")),
            ValueType::Duration => f.write_str("duration"),
            ValueType::List(t) => write!(f, "list of {t}"),
        }
    }
}

/// One key of the schema.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeySpec {
    /// Dotted path, `section.key`.
    pub path: String,
    /// Who may see it.
    pub tier: Tier,
    /// Its type.
    #[serde(rename = "type")]
    pub ty: ValueType,
    /// The default, as written in the schema.
    pub default: ron::Value,
    /// Smallest number (numbers, durations in seconds).
    #[serde(default)]
    pub min: Option<f64>,
    /// Largest number.
    #[serde(default)]
    pub max: Option<f64>,
    /// Allowed values (strings).
    #[serde(default)]
    pub one_of: Option<Vec<String>>,
    /// Longest string or list.
    #[serde(default)]
    pub max_len: Option<usize>,
    /// A regular expression a string must match in full.
    #[serde(default)]
    pub pattern: Option<String>,
    /// What it does.
    pub description: String,
}

/// A checked key: its spec with the default converted and the pattern compiled.
#[derive(Debug, Clone)]
pub struct Key {
    /// The spec as written.
    pub spec: KeySpec,
    /// The default as a value.
    pub default: ConfigValue,
    pattern: Option<regex::Regex>,
}

/// The whole schema.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    keys: BTreeMap<String, Key>,
}

/// Why the schema file is unusable.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// Not valid RON, or not the schema's shape.
    #[error("{file}:{line}:{col}: {reason}")]
    Parse {
        /// The file.
        file: String,
        /// Line (1-based).
        line: usize,
        /// Column.
        col: usize,
        /// What is wrong.
        reason: String,
    },
    /// A key whose spec does not hold together.
    #[error("{file}: key {path}: {reason}")]
    Key {
        /// The file.
        file: String,
        /// The key.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

impl Schema {
    /// Parses `schema.ron` text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Self, SchemaError> {
        let specs: Vec<KeySpec> = ron::from_str(text).map_err(|e| SchemaError::Parse {
            file: file.to_string(),
            line: e.span.start.line,
            col: e.span.start.col,
            reason: e.code.to_string(),
        })?;
        let mut keys = BTreeMap::new();
        for spec in specs {
            let err = |reason: String| SchemaError::Key {
                file: file.to_string(),
                path: spec.path.clone(),
                reason,
            };
            if !valid_path(&spec.path) {
                return Err(err("paths are dotted identifiers like `section.key`".into()));
            }
            let pattern = match &spec.pattern {
                Some(p) => Some(
                    regex::Regex::new(&format!("^(?:{p})$"))
                        .map_err(|e| err(format!("bad pattern: {e}")))?,
                ),
                None => None,
            };
            let default =
                convert(&spec.ty, &spec.default).map_err(|r| err(format!("default: {r}")))?;
            let key = Key {
                spec: spec.clone(),
                default,
                pattern,
            };
            key.check(&key.default)
                .map_err(|r| err(format!("default: {r}")))?;
            if keys.insert(spec.path.clone(), key).is_some() {
                return Err(err("defined twice".into()));
            }
        }
        Ok(Self { keys })
    }

    /// Adds `other`'s keys (a game's own, beside the framework's); a path defined in both is
    /// refused.
    pub fn extend(&mut self, file: &str, other: Schema) -> Result<(), SchemaError> {
        for (path, key) in other.keys {
            if self.keys.contains_key(&path) {
                return Err(SchemaError::Key {
                    file: file.to_string(),
                    path,
                    reason: "already defined by the framework's schema".into(),
                });
            }
            self.keys.insert(path, key);
        }
        Ok(())
    }

    /// Replaces the default of the key at `path` (a default the game's code gives); it must
    /// pass the key's checks.
    pub fn set_default(
        &mut self,
        file: &str,
        path: &str,
        value: ConfigValue,
    ) -> Result<(), SchemaError> {
        let err = |reason: String| SchemaError::Key {
            file: file.to_string(),
            path: path.to_string(),
            reason,
        };
        let key = self
            .keys
            .get_mut(path)
            .ok_or_else(|| err("a default from code for a key the schema lacks".into()))?;
        key.check(&value)
            .map_err(|r| err(format!("default from code: {r}")))?;
        key.default = value;
        Ok(())
    }

    /// The key at `path`.
    pub fn key(&self, path: &str) -> Option<&Key> {
        self.keys.get(path)
    }

    /// Every key, by path.
    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.keys.values()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True with no keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key whose path matches an environment variable's `SECTION__KEY` part (case-insensitive).
    pub fn key_for_env(&self, rest: &str) -> Option<&Key> {
        let wanted = rest.replace("__", ".").to_ascii_lowercase();
        self.keys
            .values()
            .find(|k| k.spec.path.to_ascii_lowercase() == wanted)
    }
}

fn valid_path(p: &str) -> bool {
    p.split('.').count() >= 2
        && p.split('.').all(|seg| {
            !seg.is_empty() && seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

impl Key {
    /// Checks a value against the key's validation rules (the type is already right).
    pub fn check(&self, value: &ConfigValue) -> Result<(), String> {
        let s = &self.spec;
        let number = match value {
            ConfigValue::Int(i) => Some(*i as f64),
            ConfigValue::Float(x) => Some(*x),
            _ => None,
        };
        if let Some(n) = number {
            if !n.is_finite() {
                return Err("must be a finite number".into());
            }
            if let Some(min) = s.min
                && n < min
            {
                return Err(format!("{n} is below the minimum {min}"));
            }
            if let Some(max) = s.max
                && n > max
            {
                return Err(format!("{n} is above the maximum {max}"));
            }
        }
        if let ConfigValue::Text(t) = value {
            if let Some(max) = s.max_len
                && t.chars().count() > max
            {
                return Err(format!(
                    "{} characters, at most {max} allowed",
                    t.chars().count()
                ));
            }
            if let Some(allowed) = &s.one_of
                && !allowed.contains(t)
            {
                return Err(format!("{t:?} is not one of {}", allowed.join(", ")));
            }
            if let Some(re) = &self.pattern
                && !re.is_match(t)
            {
                return Err(format!(
                    "{t:?} does not match the pattern {}",
                    s.pattern.as_deref().unwrap_or("")
                ));
            }
        }
        if let ConfigValue::List(items) = value
            && let Some(max) = s.max_len
            && items.len() > max
        {
            return Err(format!("{} items, at most {max} allowed", items.len()));
        }
        Ok(())
    }

    /// Converts and checks a RON value for this key.
    pub fn accept(&self, raw: &ron::Value) -> Result<ConfigValue, String> {
        let v = convert(&self.spec.ty, raw)?;
        self.check(&v)?;
        Ok(v)
    }

    /// Checks that a value already converted has this key's type, then its rules.
    pub fn accept_value(&self, value: &ConfigValue) -> Result<ConfigValue, String> {
        let v = retype(&self.spec.ty, value)?;
        self.check(&v)?;
        Ok(v)
    }

    /// Parses a value given as text (environment variables).
    pub fn accept_text(&self, text: &str) -> Result<ConfigValue, String> {
        let raw = match &self.spec.ty {
            ValueType::String | ValueType::Enum(_) => ron::Value::String(text.to_string()),
            ValueType::Duration => match parse_duration(text) {
                Some(secs) => ron::Value::Number(ron::value::Number::F64(secs.into())),
                None => {
                    return Err(format!(
                        "{text:?} is not a duration (e.g. 30, 30s, 5m, 250ms)"
                    ));
                }
            },
            _ => ron::from_str(text)
                .map_err(|e| format!("{text:?} is not a {}: {}", self.spec.ty, e.code))?,
        };
        self.accept(&raw)
    }
}

fn type_error(ty: &ValueType, got: &str) -> String {
    format!("expected {ty}, found {got}")
}

fn describe(raw: &ron::Value) -> &'static str {
    match raw {
        ron::Value::Bool(_) => "a bool",
        ron::Value::Char(_) => "a char",
        ron::Value::Map(_) => "a map",
        ron::Value::Number(_) => "a number",
        ron::Value::Option(_) => "an option",
        ron::Value::String(_) => "a string",
        ron::Value::Bytes(_) => "bytes",
        ron::Value::Seq(_) => "a list",
        ron::Value::Unit => "()",
    }
}

/// Converts a RON value to a config value of type `ty`.
pub fn convert(ty: &ValueType, raw: &ron::Value) -> Result<ConfigValue, String> {
    match (ty, raw) {
        (ValueType::Bool, ron::Value::Bool(b)) => Ok(ConfigValue::Bool(*b)),
        (ValueType::Int, ron::Value::Number(n)) => {
            let x = n.into_f64();
            if x.fract() != 0.0 || !x.is_finite() || x.abs() > 9.0e15 {
                return Err(format!("expected int, found {x}"));
            }
            Ok(ConfigValue::Int(x as i64))
        }
        (ValueType::Float, ron::Value::Number(n)) => Ok(ConfigValue::Float(n.into_f64())),
        (ValueType::Duration, ron::Value::Number(n)) => Ok(ConfigValue::Float(n.into_f64())),
        (ValueType::Duration, ron::Value::String(s)) => {
            parse_duration(s).map(ConfigValue::Float).ok_or_else(|| {
                format!("{s:?} is not a duration (e.g. 30, \"30s\", \"5m\", \"250ms\")")
            })
        }
        (ValueType::String, ron::Value::String(s)) => Ok(ConfigValue::Text(s.clone())),
        (ValueType::Enum(names), ron::Value::String(s)) => {
            if names.contains(s) {
                Ok(ConfigValue::Text(s.clone()))
            } else {
                Err(format!("{s:?} is not one of {}", names.join(", ")))
            }
        }
        (ValueType::List(inner), ron::Value::Seq(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| convert(inner, v).map_err(|e| format!("item {i}: {e}")))
            .collect::<Result<Vec<_>, _>>()
            .map(ConfigValue::List),
        (ty, raw) => Err(type_error(ty, describe(raw))),
    }
}

/// Checks (and where lossless, adapts) a config value's type: an Int where a Float is wanted.
pub fn retype(ty: &ValueType, v: &ConfigValue) -> Result<ConfigValue, String> {
    match (ty, v) {
        (ValueType::Bool, ConfigValue::Bool(_))
        | (ValueType::Int, ConfigValue::Int(_))
        | (ValueType::Float | ValueType::Duration, ConfigValue::Float(_))
        | (ValueType::String, ConfigValue::Text(_)) => Ok(v.clone()),
        (ValueType::Float | ValueType::Duration, ConfigValue::Int(i)) => {
            Ok(ConfigValue::Float(*i as f64))
        }
        (ValueType::Enum(names), ConfigValue::Text(s)) => {
            if names.contains(s) {
                Ok(v.clone())
            } else {
                Err(format!("{s:?} is not one of {}", names.join(", ")))
            }
        }
        (ValueType::List(inner), ConfigValue::List(items)) => items
            .iter()
            .map(|i| retype(inner, i))
            .collect::<Result<Vec<_>, _>>()
            .map(ConfigValue::List),
        (ty, v) => Err(format!("expected {ty}, found {v}")),
    }
}

/// `"250ms"`, `"30s"`, `"5m"`, `"1h"`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num.trim().parse().ok()?;
    (v.is_finite() && v >= 0.0).then_some(v * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = r#"[
        (path: "graphics.fpsCap", tier: ClientSafe, type: Int, default: 60, min: Some(15.0), max: Some(240.0), description: "fps"),
        (path: "graphics.particleQuality", tier: ClientSafe, type: Enum(["LOW", "HIGH"]), default: "HIGH", description: "p"),
        (path: "ui.name", tier: Shared, type: String, default: "ab", max_len: Some(4), pattern: Some("[a-z]+"), description: "n"),
        (path: "ui.theme", tier: Shared, type: String, default: "dark", one_of: Some(["dark", "light"]), description: "t"),
        (path: "security.sessionTimeout", tier: ServerOnly, type: Duration, default: "1h", min: Some(60.0), description: "s"),
        (path: "game.prices", tier: Shared, type: List(Int), default: [1, 2], max_len: Some(3), description: "l"),
    ]"#;

    fn schema() -> Schema {
        Schema::parse("schema.ron", SCHEMA).unwrap()
    }

    #[test]
    fn defaults_convert() {
        let s = schema();
        assert_eq!(
            s.key("security.sessionTimeout").unwrap().default,
            ConfigValue::Float(3600.0)
        );
        assert_eq!(
            s.key("game.prices").unwrap().default,
            ConfigValue::List(vec![ConfigValue::Int(1), ConfigValue::Int(2)])
        );
    }

    #[test]
    fn every_rule_has_its_message() {
        let s = schema();
        let fps = s.key("graphics.fpsCap").unwrap();
        assert!(
            fps.accept_text("5")
                .unwrap_err()
                .contains("below the minimum 15")
        );
        assert!(
            fps.accept_text("500")
                .unwrap_err()
                .contains("above the maximum 240")
        );
        assert!(fps.accept_text("1.5").unwrap_err().contains("expected int"));
        assert!(
            fps.accept_text("\"x\"")
                .unwrap_err()
                .contains("expected int, found a string")
        );
        let pq = s.key("graphics.particleQuality").unwrap();
        assert!(
            pq.accept_text("MAX")
                .unwrap_err()
                .contains("not one of LOW, HIGH")
        );
        let name = s.key("ui.name").unwrap();
        assert!(name.accept_text("abcde").unwrap_err().contains("at most 4"));
        assert!(
            name.accept_text("AB")
                .unwrap_err()
                .contains("does not match the pattern")
        );
        let theme = s.key("ui.theme").unwrap();
        assert!(
            theme
                .accept_text("pink")
                .unwrap_err()
                .contains("not one of dark, light")
        );
        let st = s.key("security.sessionTimeout").unwrap();
        assert_eq!(st.accept_text("5m").unwrap(), ConfigValue::Float(300.0));
        assert!(
            st.accept_text("10s")
                .unwrap_err()
                .contains("below the minimum 60")
        );
        assert!(
            st.accept_text("soon")
                .unwrap_err()
                .contains("not a duration")
        );
        let prices = s.key("game.prices").unwrap();
        assert!(
            prices
                .accept_text("[1, 2, 3, 4]")
                .unwrap_err()
                .contains("4 items")
        );
        assert!(
            prices
                .accept_text("[1, \"x\"]")
                .unwrap_err()
                .contains("item 1")
        );
    }

    #[test]
    fn bad_schemas_are_refused_with_position() {
        match Schema::parse("s.ron", "[ (path: ") {
            Err(SchemaError::Parse { line, .. }) => assert_eq!(line, 1),
            other => panic!("{other:?}"),
        }
        let bad_default = r#"[(path: "a.b", tier: Shared, type: Int, default: 1, max: Some(0.0), description: "")]"#;
        assert!(
            Schema::parse("s.ron", bad_default)
                .unwrap_err()
                .to_string()
                .contains("above the maximum")
        );
        let bad_path =
            r#"[(path: "nosection", tier: Shared, type: Int, default: 1, description: "")]"#;
        assert!(Schema::parse("s.ron", bad_path).is_err());
    }

    #[test]
    fn env_names_match_paths() {
        let s = schema();
        assert_eq!(
            s.key_for_env("SECURITY__SESSIONTIMEOUT").unwrap().spec.path,
            "security.sessionTimeout"
        );
        assert!(s.key_for_env("NOPE__X").is_none());
    }
}
