//! Reading the layers: `schema.ron`, then `default.ron`, then every other `*.ron` in the config
//! dir (sorted by name), then `BLOXQUARIUM__SECTION__KEY` environment variables; later wins.
//! Every layer is validated against the schema; every problem is reported with file, key, line
//! where known, and reason.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::schema::Schema;
use crate::protocol::ConfigValue;

/// The schema shipped in the binary, used when the config dir has none (a client machine).
pub const EMBEDDED_SCHEMA: &str = include_str!("../../config/schema.ron");

/// Files in the config dir that are not value layers.
const NOT_LAYERS: &[&str] = &["schema.ron", "roles.ron"];
/// Prefix of configuration environment variables.
pub const ENV_PREFIX: &str = "BLOXQUARIUM__";

/// One problem in one layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadProblem {
    /// The file, or `env` for environment variables.
    pub file: String,
    /// The key, when the problem is one key's.
    pub key: Option<String>,
    /// The line, where known.
    pub line: Option<usize>,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for LoadProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// Every problem found while loading; the config is refused if there is any.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid configuration: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct LoadError(pub Vec<LoadProblem>);

/// What was loaded.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The schema.
    pub schema: Schema,
    /// Merged values of every layer.
    pub values: BTreeMap<String, ConfigValue>,
    /// The layer files read, in order.
    pub files: Vec<PathBuf>,
}

/// A game's own config keys: a schema in `schema.ron`'s format, shipped with the game's code
/// and added to the framework's keys (a path both define is refused at start).
#[derive(Debug, Clone, Copy)]
pub struct GameKeys {
    /// Where the keys come from, for messages (`"aquarium keys"`).
    pub name: &'static str,
    /// The schema text.
    pub schema: &'static str,
    /// Defaults the game's code gives instead of the schema text (a table in code that other
    /// code reads too, such as the aquarium's species): each replaces its key's default and
    /// must pass the key's checks.
    pub derived: fn() -> Vec<(&'static str, ConfigValue)>,
}

fn no_derived_defaults() -> Vec<(&'static str, ConfigValue)> {
    Vec::new()
}

impl GameKeys {
    /// A game without keys of its own.
    pub const NONE: Self = Self {
        name: "no game keys",
        schema: "[]",
        derived: no_derived_defaults,
    };

    /// Keys from `schema` with no defaults from code.
    pub const fn plain(name: &'static str, schema: &'static str) -> Self {
        Self {
            name,
            schema,
            derived: no_derived_defaults,
        }
    }
}

fn schema_problem(name: &str, e: super::schema::SchemaError) -> LoadError {
    let (line, key) = match &e {
        super::schema::SchemaError::Parse { line, .. } => (Some(*line), None),
        super::schema::SchemaError::Key { path, .. } => (None, Some(path.clone())),
    };
    LoadError(vec![LoadProblem {
        file: name.to_string(),
        key,
        line,
        reason: e.to_string(),
    }])
}

/// The framework's schema (`dir/schema.ron`, else the embedded one) and the game's keys.
pub fn load_schema(dir: &Path, game: &GameKeys) -> Result<Schema, LoadError> {
    let mut schema = load_framework_schema(dir)?;
    let mut keys =
        Schema::parse(game.name, game.schema).map_err(|e| schema_problem(game.name, e))?;
    for (path, value) in (game.derived)() {
        keys.set_default(game.name, path, value)
            .map_err(|e| schema_problem(game.name, e))?;
    }
    schema
        .extend(game.name, keys)
        .map_err(|e| schema_problem(game.name, e))?;
    Ok(schema)
}

/// Reads the framework's schema from `dir/schema.ron`, else the embedded one.
fn load_framework_schema(dir: &Path) -> Result<Schema, LoadError> {
    let path = dir.join("schema.ron");
    let (name, text) = match std::fs::read_to_string(&path) {
        Ok(t) => (path.display().to_string(), t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
            "<embedded schema.ron>".to_string(),
            EMBEDDED_SCHEMA.to_string(),
        ),
        Err(e) => {
            return Err(LoadError(vec![LoadProblem {
                file: path.display().to_string(),
                key: None,
                line: None,
                reason: e.to_string(),
            }]));
        }
    };
    Schema::parse(&name, &text).map_err(|e| schema_problem(&name, e))
}

/// The value layer files of a config dir, in order: `default.ron` first, then the rest sorted.
pub fn layer_files(dir: &Path) -> Vec<PathBuf> {
    let mut rest: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "ron"))
                .filter(|p| {
                    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    name != "default.ron" && !NOT_LAYERS.contains(&name)
                })
                .collect()
        })
        .unwrap_or_default();
    rest.sort();
    let default = dir.join("default.ron");
    let mut files = Vec::new();
    if default.exists() {
        files.push(default);
    }
    files.extend(rest);
    files
}

/// A fingerprint of the layer files (names, sizes, modification times) for hot-reload polling.
pub fn fingerprint(dir: &Path) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut files = layer_files(dir);
    files.push(dir.join("schema.ron"));
    files
        .into_iter()
        .map(|p| {
            let meta = std::fs::metadata(&p).ok();
            let len = meta.as_ref().map_or(0, |m| m.len());
            let modified = meta.and_then(|m| m.modified().ok());
            (p, len, modified)
        })
        .collect()
}

fn line_of(text: &str, needle: &str) -> Option<usize> {
    text.lines().position(|l| l.contains(needle)).map(|i| i + 1)
}

/// Flattens a RON map (nested maps are sections) into dotted paths.
fn flatten(
    prefix: &str,
    map: &ron::Map,
    out: &mut Vec<(String, ron::Value)>,
    bad: &mut Vec<String>,
) {
    for (k, v) in map.iter() {
        let ron::Value::String(name) = k else {
            bad.push(format!("keys must be strings, found {k:?}"));
            continue;
        };
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        match v {
            ron::Value::Map(inner) => flatten(&path, inner, out, bad),
            other => out.push((path, other.clone())),
        }
    }
}

/// Parses one layer file's text into validated values; `problems` collects what is wrong.
pub fn parse_layer(
    schema: &Schema,
    file: &str,
    text: &str,
    problems: &mut Vec<LoadProblem>,
) -> BTreeMap<String, ConfigValue> {
    let mut values = BTreeMap::new();
    let root: ron::Value = match ron::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            problems.push(LoadProblem {
                file: file.to_string(),
                key: None,
                line: Some(e.span.start.line),
                reason: e.code.to_string(),
            });
            return values;
        }
    };
    let ron::Value::Map(map) = root else {
        problems.push(LoadProblem {
            file: file.to_string(),
            key: None,
            line: Some(1),
            reason: "a config layer is a map of \"section.key\": value".into(),
        });
        return values;
    };
    let mut entries = Vec::new();
    let mut bad = Vec::new();
    flatten("", &map, &mut entries, &mut bad);
    for reason in bad {
        problems.push(LoadProblem {
            file: file.to_string(),
            key: None,
            line: None,
            reason,
        });
    }
    for (path, raw) in entries {
        let last = path.rsplit('.').next().unwrap_or(&path).to_string();
        let line =
            line_of(text, &format!("\"{path}\"")).or_else(|| line_of(text, &format!("\"{last}\"")));
        match schema.key(&path) {
            None => problems.push(LoadProblem {
                file: file.to_string(),
                key: Some(path),
                line,
                reason: "unknown key (not in the schema)".into(),
            }),
            Some(key) => match key.accept(&raw) {
                Ok(v) => {
                    values.insert(path, v);
                }
                Err(reason) => problems.push(LoadProblem {
                    file: file.to_string(),
                    key: Some(path),
                    line,
                    reason,
                }),
            },
        }
    }
    values
}

/// Reads every layer of `dir` plus the environment `env` (pairs of name and value).
pub fn load(
    dir: &Path,
    env: impl IntoIterator<Item = (String, String)>,
    game: &GameKeys,
) -> Result<Loaded, LoadError> {
    let schema = load_schema(dir, game)?;
    let mut problems = Vec::new();
    let mut values = BTreeMap::new();
    let files = layer_files(dir);
    for file in &files {
        let name = file.display().to_string();
        match std::fs::read_to_string(file) {
            Ok(text) => values.extend(parse_layer(&schema, &name, &text, &mut problems)),
            Err(e) => problems.push(LoadProblem {
                file: name,
                key: None,
                line: None,
                reason: e.to_string(),
            }),
        }
    }
    let mut env: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .collect();
    env.sort();
    for (name, text) in env {
        let rest = &name[ENV_PREFIX.len()..];
        match schema.key_for_env(rest) {
            None => problems.push(LoadProblem {
                file: "env".into(),
                key: Some(name.clone()),
                line: None,
                reason: "no such config key".into(),
            }),
            Some(key) => match key.accept_text(&text) {
                Ok(v) => {
                    values.insert(key.spec.path.clone(), v);
                }
                Err(reason) => problems.push(LoadProblem {
                    file: "env".into(),
                    key: Some(name.clone()),
                    line: None,
                    reason,
                }),
            },
        }
    }
    if problems.is_empty() {
        Ok(Loaded {
            schema,
            values,
            files,
        })
    } else {
        Err(LoadError(problems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("bq-cfg-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    const SCHEMA: &str = r#"[
        (path: "graphics.fpsCap", tier: ClientSafe, type: Int, default: 60, min: Some(15.0), max: Some(240.0), description: ""),
        (path: "network.messageTimeout", tier: Shared, type: Duration, default: 30, description: ""),
    ]"#;

    #[test]
    fn layers_apply_in_order_and_env_wins() {
        let d = scratch("order");
        std::fs::write(d.join("schema.ron"), SCHEMA).unwrap();
        std::fs::write(
            d.join("default.ron"),
            r#"{"graphics.fpsCap": 30, "network.messageTimeout": "10s"}"#,
        )
        .unwrap();
        std::fs::write(d.join("a-site.ron"), r#"{"graphics": {"fpsCap": 40}}"#).unwrap();
        std::fs::write(d.join("b-local.ron"), r#"{"graphics.fpsCap": 50}"#).unwrap();
        let loaded = load(
            &d,
            [(
                "BLOXQUARIUM__NETWORK__MESSAGETIMEOUT".to_string(),
                "5".to_string(),
            )],
            &GameKeys::NONE,
        )
        .unwrap();
        assert_eq!(loaded.values["graphics.fpsCap"], ConfigValue::Int(50));
        assert_eq!(
            loaded.values["network.messageTimeout"],
            ConfigValue::Float(5.0)
        );
        assert_eq!(loaded.files.len(), 3);
        assert!(loaded.files[0].ends_with("default.ron"));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn problems_name_file_key_line_and_reason() {
        let d = scratch("bad");
        std::fs::write(d.join("schema.ron"), SCHEMA).unwrap();
        std::fs::write(
            d.join("default.ron"),
            "{\n  \"graphics.fpsCap\": 5,\n  \"graphics.nope\": 1,\n}",
        )
        .unwrap();
        std::fs::write(d.join("z.ron"), "{ \"graphics.fpsCap\": ").unwrap();
        let err = load(
            &d,
            [(
                "BLOXQUARIUM__GRAPHICS__FPSCAP".to_string(),
                "fast".to_string(),
            )],
            &GameKeys::NONE,
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("default.ron:2: graphics.fpsCap: 5 is below the minimum 15"),
            "{text}"
        );
        assert!(
            text.contains("default.ron:3: graphics.nope: unknown key"),
            "{text}"
        );
        assert!(text.contains("z.ron:1"), "{text}");
        assert!(
            text.contains("env: BLOXQUARIUM__GRAPHICS__FPSCAP"),
            "{text}"
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn the_shipped_config_is_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let loaded =
            load(&dir, std::iter::empty(), &GameKeys::NONE).unwrap_or_else(|e| panic!("{e}"));
        assert!(loaded.schema.len() >= 40, "{} keys", loaded.schema.len());
        // The embedded copy is the same file.
        assert_eq!(
            EMBEDDED_SCHEMA,
            std::fs::read_to_string(dir.join("schema.ron")).unwrap()
        );
    }

    #[test]
    fn a_game_adds_its_own_keys_and_may_not_redefine_the_framework_s() {
        let d = scratch("game-keys");
        let keys = GameKeys::plain(
            "test game keys",
            r#"#![enable(implicit_some)] [(path: "lobby.maxPeople", tier: Shared, type: Int, default: 8, min: 1, max: 64, description: "People per lobby.")]"#,
        );
        std::fs::write(d.join("default.ron"), r#"{"lobby.maxPeople": 12}"#).unwrap();
        let loaded = load(&d, std::iter::empty(), &keys).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(loaded.values["lobby.maxPeople"], ConfigValue::Int(12));
        assert!(loaded.schema.key("network.messageTimeout").is_some());
        // Without the game's keys, its value is an unknown key.
        let err = load(&d, std::iter::empty(), &GameKeys::NONE).unwrap_err();
        assert!(
            err.to_string().contains("lobby.maxPeople: unknown key"),
            "{err}"
        );
        let clash = GameKeys::plain(
            "clashing keys",
            r#"[(path: "network.messageTimeout", tier: Shared, type: Int, default: 8, description: "mine")]"#,
        );
        let err = load(&d, std::iter::empty(), &clash)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("clashing keys") && err.contains("already defined by the framework"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&d);
    }
}
