//! What the process runs as and where: the mode, the working directories, the process's own
//! figures (memory, CPU time), and the background tasks it polls. Ground layer: imports nothing
//! of ours.

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
    /// The shared data store (`--store postgres://…`); `None`: the embedded file under `data`.
    pub store: Option<String>,
    /// Key files (`--keys`, default `<data>/keys`): servers on one store share them.
    pub keys: PathBuf,
}

impl Paths {
    /// The three directories, each made absolute against the working directory.
    pub fn new(config: &Path, data: &Path, assets: &Path) -> Self {
        Self {
            config: absolute(config),
            data: absolute(data),
            assets: absolute(assets),
            store: None,
            keys: absolute(data).join("keys"),
        }
    }

    /// These directories with the data store at `store` (`None`: the embedded file).
    pub fn with_store(mut self, store: Option<String>) -> Self {
        self.store = store;
        self
    }

    /// These directories with the key files in `keys` (`None`: `<data>/keys`).
    pub fn with_keys(mut self, keys: Option<&Path>) -> Self {
        if let Some(keys) = keys {
            self.keys = absolute(keys);
        }
        self
    }
}

/// Bevy resolves a relative asset path against `BEVY_ASSET_ROOT`, `CARGO_MANIFEST_DIR` or the
/// executable's folder; ours are relative to where the operator started the process.
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Resident set size of this process, bytes (Linux; 0 elsewhere).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

/// Resident set size of this process, MiB (Linux; 0 elsewhere).
pub fn rss_mb() -> f64 {
    rss_bytes() as f64 / (1024.0 * 1024.0)
}

/// CPU time this process has used (user and system, every thread), seconds; 0 if the system
/// will not say. The kernel sums every thread's time (locking the run queue of each one running
/// now), which took up to a millisecond on a loaded server: a tick should read [`sampled`].
pub fn cpu_seconds() -> f64 {
    // SAFETY: `getrusage` only writes the struct it is given, which is zeroed and ours.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer to a rusage struct.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// The process's figures as a background thread last sampled them (about once a second), so a
/// tick or frame that needs them never waits on the kernel: resident memory in bytes and CPU
/// seconds. The first call starts the sampler and samples once itself.
pub fn sampled() -> (u64, f64) {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: OnceLock<(AtomicU64, AtomicU64)> = OnceLock::new();
    fn sample(into: &(AtomicU64, AtomicU64)) {
        into.0.store(rss_bytes(), Ordering::Relaxed);
        into.1
            .store((cpu_seconds() * 1e6) as u64, Ordering::Relaxed);
    }
    let last = LAST.get_or_init(|| {
        let last = (AtomicU64::new(0), AtomicU64::new(0));
        sample(&last);
        let spawned = std::thread::Builder::new()
            .name("bloxquarium-process-sampler".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(1));
                    if let Some(last) = LAST.get() {
                        sample(last);
                    }
                }
            });
        if let Err(e) = spawned {
            warn!("process figures will not refresh: cannot start the sampler thread: {e}");
        }
        last
    });
    (
        last.0.load(Ordering::Relaxed),
        last.1.load(Ordering::Relaxed) as f64 / 1e6,
    )
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

    /// Takes the value out for `plugin`'s `build`; the second time (a plugin is built once per
    /// App) it says so and gives `None`.
    pub fn take(&self, plugin: &str) -> Option<T> {
        let taken = self.0.lock().ok().and_then(|mut v| v.take());
        if taken.is_none() {
            error!("{plugin} was built twice; its resources came with the first build");
        }
        taken
    }
}

/// Inserts a carried resource in `plugin`'s `build`.
pub fn insert_carried<R: Resource>(app: &mut App, plugin: &str, carried: &Carried<R>) {
    if let Some(r) = carried.take(plugin) {
        app.insert_resource(r);
    }
}

/// Takes the tasks of `tasks` that have finished out of it, with their results, in order; the
/// rest stay. Systems that started work on a task pool call this each frame.
pub fn take_finished<T>(tasks: &mut Vec<bevy::tasks::Task<T>>) -> Vec<T> {
    use bevy::tasks::{block_on, futures_lite::future};
    let mut done = Vec::new();
    tasks.retain_mut(|t| match block_on(future::poll_once(t)) {
        Some(result) => {
            done.push(result);
            false
        }
        None => true,
    });
    done
}

/// The result of the task in `slot` if it has finished (the slot is then empty); `None`, and
/// the task stays, while it runs or when there is none. For systems that keep one task at a
/// time.
pub fn take_if_finished<T>(slot: &mut Option<bevy::tasks::Task<T>>) -> Option<T> {
    use bevy::tasks::{block_on, futures_lite::future};
    let result = block_on(future::poll_once(slot.as_mut()?))?;
    *slot = None;
    Some(result)
}

/// Writes `bytes` to `path` readable by its owner only (mode 0600, parent folders made 0700),
/// through a temporary file and a rename, so a reader sees the old file or the new one.
pub fn write_private_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}
