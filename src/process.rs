//! What the process runs as and where: the mode, the working directories, and the process's own
//! figures (memory, CPU time). Ground layer: imports nothing of ours.

use std::path::{Path, PathBuf};

use bevy::prelude::*;

/// Which mode this app runs in.
#[derive(Resource, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    /// Dedicated headless server.
    Server,
    /// Client joining a remote server.
    Client,
    /// Listen server plus its own client in one process.
    Play,
}

impl RunMode {
    /// Lower-case name as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            RunMode::Server => "server",
            RunMode::Client => "client",
            RunMode::Play => "play",
        }
    }
}

/// Directories the app works in, made absolute against the working directory at start-up.
#[derive(Resource, Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// RON configuration.
    pub config: PathBuf,
    /// Database, backups, key files.
    pub data: PathBuf,
    /// Game assets.
    pub assets: PathBuf,
}

impl Paths {
    /// The three directories, each made absolute against the working directory.
    pub fn new(config: &Path, data: &Path, assets: &Path) -> Self {
        Self {
            config: absolute(config),
            data: absolute(data),
            assets: absolute(assets),
        }
    }
}

/// Bevy resolves a relative asset path against `BEVY_ASSET_ROOT`, `CARGO_MANIFEST_DIR` or the
/// executable's folder; ours are relative to where the operator started the process.
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Resident set size of this process, MiB (Linux; 0 elsewhere).
pub fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<f64>().ok())
        })
        .map_or(0.0, |pages| pages * 4096.0 / (1024.0 * 1024.0))
}

/// CPU time this process has used, seconds (Linux; 0 elsewhere).
pub fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// A value a plugin carries from its fallible constructor into the App: plugins are built
/// through `&self`, so a resource that cannot be cloned (a socket, a store handle) is taken out
/// once, in `build`.
pub struct Carried<T>(std::sync::Mutex<Option<T>>);

impl<T> Carried<T> {
    /// Carries `value`.
    pub fn new(value: T) -> Self {
        Self(std::sync::Mutex::new(Some(value)))
    }

    /// Takes the value out (`None` the second time: a plugin is built once per App).
    pub fn take(&self) -> Option<T> {
        self.0.lock().ok().and_then(|mut v| v.take())
    }
}

/// Inserts a carried resource, or says which plugin was built twice.
pub fn insert_carried<R: Resource>(app: &mut App, plugin: &str, carried: &Carried<R>) {
    match carried.take() {
        Some(r) => {
            app.insert_resource(r);
        }
        None => error!("{plugin} was built twice; its resources came with the first build"),
    }
}
