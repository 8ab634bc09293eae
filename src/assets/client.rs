//! The client's loader: a verifying asset reader (every file read is checked against the
//! manifest's sha256), a bevy_asset_loader loading state for the critical set with iyes_progress
//! progress, background streaming by priority in batches, `stream_with_quality` with a visible
//! fallback, the LRU cache, and the automatic quality level.
//!
//! The plain parts live in [`super::cache`], [`super::stream`] and [`super::quality`]; this file
//! is the Bevy side.

use std::any::TypeId;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use bevy::asset::io::file::FileAssetReader;
use bevy::asset::io::{
    AssetReader, AssetReaderError, AssetSourceBuilder, AssetSourceId, PathStream, Reader, VecReader,
};
use bevy::asset::{AssetLoader, LoadContext, LoadState, RecursiveDependencyLoadState};
use bevy::ecs::system::SystemParam;
use bevy::prelude::*;
use bevy_asset_loader::prelude::*;
use iyes_progress::prelude::*;
use sha2::{Digest, Sha256};

use super::cache::{CacheStats, LruCache};
use super::manifest::{AssetRegistry, QUALITIES};
use super::quality::{KindQuality, Level, QualityChange, QualityGovernor, level_name};
use super::stream::{LoadStats, StreamQueue};
use crate::config::{ClientConfig, ConfigChanged, Side};

/// What a verifying read reports when the bytes do not match the manifest.
pub const INTEGRITY_MARKER: &str = "sha256 mismatch";

/// Files readable before the manifest arrives: the fallbacks the client shows for what fails
/// to load. Everything else waits for the manifest.
pub const BOOTSTRAP_FILES: &[&str] = &["Models/Miscellaneous/Fallback.glb"];

/// The manifest's hashes, by file path, shared with the verifying reader (`None` until the
/// manifest arrives).
#[derive(Resource, Clone, Default)]
pub struct ManifestHashes(pub Arc<RwLock<Option<HashMap<String, String>>>>);

/// What the reader may do with a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadPolicy {
    /// Read it and check its bytes against this sha256.
    Verify(String),
    /// Read it unchecked: a bootstrap file before the manifest.
    Bootstrap,
    /// Refuse: why.
    Refuse(String),
}

impl ManifestHashes {
    /// What the reader does with `file` (a path under the assets dir, `/`-separated).
    pub fn policy(&self, file: &str) -> ReadPolicy {
        let Ok(map) = self.0.read() else {
            return ReadPolicy::Refuse("asset hashes lock poisoned".into());
        };
        match map.as_ref() {
            Some(m) => match m.get(file) {
                Some(sha) => ReadPolicy::Verify(sha.clone()),
                None => ReadPolicy::Refuse(format!("{file}: not in the server's asset manifest")),
            },
            None if BOOTSTRAP_FILES.contains(&file) => ReadPolicy::Bootstrap,
            None => ReadPolicy::Refuse(format!(
                "{file}: no asset manifest yet (only the bootstrap files are readable before it)"
            )),
        }
    }

    /// Takes the hashes of `registry`'s manifest.
    pub fn replace(&self, registry: &AssetRegistry) {
        let map: HashMap<String, String> = registry
            .manifest()
            .entries
            .iter()
            .flat_map(|e| e.variants.iter())
            .map(|v| (v.file.clone(), v.sha256.clone()))
            .collect();
        match self.0.write() {
            Ok(mut m) => *m = Some(map),
            Err(e) => error!("asset hashes lock poisoned: {e}"),
        }
    }
}

/// The file reader under the assets dir: before the manifest arrives only
/// [`BOOTSTRAP_FILES`] are readable; after, only the files the manifest lists, each checked
/// against its sha256 before any loader sees it. `.meta` files are never read (no manifest
/// lists one, and a local one could change how an asset loads).
pub struct VerifyingReader {
    inner: FileAssetReader,
    hashes: ManifestHashes,
}

fn refused(why: String) -> AssetReaderError {
    AssetReaderError::Io(Arc::new(std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        why,
    )))
}

impl AssetReader for VerifyingReader {
    async fn read<'a>(&'a self, path: &'a Path) -> Result<impl Reader + 'a, AssetReaderError> {
        let file = path.to_string_lossy().replace('\\', "/");
        let expected = match self.hashes.policy(&file) {
            ReadPolicy::Verify(sha) => Some(sha),
            ReadPolicy::Bootstrap => None,
            ReadPolicy::Refuse(why) => return Err(refused(why)),
        };
        let mut reader = self.inner.read(path).await?;
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).await?;
        if let Some(expected) = expected {
            let got = hex::encode(Sha256::digest(&bytes));
            if got != expected {
                return Err(AssetReaderError::Io(Arc::new(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{file}: {INTEGRITY_MARKER} (manifest {}, file {})",
                        expected.get(..12).unwrap_or(&expected),
                        got.get(..12).unwrap_or(&got)
                    ),
                ))));
            }
        }
        Ok(VecReader::new(bytes))
    }

    async fn read_meta<'a>(&'a self, path: &'a Path) -> Result<impl Reader + 'a, AssetReaderError> {
        // No meta file is ever read; the loaders' defaults apply.
        Err::<VecReader, _>(AssetReaderError::NotFound(path.to_path_buf()))
    }

    async fn read_directory<'a>(
        &'a self,
        path: &'a Path,
    ) -> Result<Box<PathStream>, AssetReaderError> {
        self.inner.read_directory(path).await
    }

    async fn is_directory<'a>(&'a self, path: &'a Path) -> Result<bool, AssetReaderError> {
        self.inner.is_directory(path).await
    }
}

/// The client's assets dir (where the verifying reader reads).
#[derive(Resource, Clone, Debug)]
pub struct AssetRoot(pub PathBuf);

/// The client's own files differ from the server's manifest (found once, when the manifest
/// arrives): which, and the content version of each side.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
pub struct AssetsDiffer {
    /// The server's content version (of its manifest).
    pub server_version: String,
    /// This client's content version (of its files, for the same list).
    pub local_version: String,
    /// Files whose bytes differ.
    pub changed: Vec<String>,
    /// Files that are not there.
    pub missing: Vec<String>,
}

impl AssetsDiffer {
    /// One sentence for the log and the player.
    pub fn describe(&self) -> String {
        let list = |v: &[String]| {
            let mut s = v.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
            if v.len() > 5 {
                s.push_str(&format!(" and {} more", v.len() - 5));
            }
            s
        };
        let mut parts = Vec::new();
        if !self.changed.is_empty() {
            parts.push(format!(
                "{} changed ({})",
                self.changed.len(),
                list(&self.changed)
            ));
        }
        if !self.missing.is_empty() {
            parts.push(format!(
                "{} missing ({})",
                self.missing.len(),
                list(&self.missing)
            ));
        }
        format!(
            "your game files differ from the server's (content version {} here, {} on the server): {}; those assets will show fallbacks until you update the game",
            self.local_version,
            self.server_version,
            parts.join(", ")
        )
    }
}

/// A content version: the first 12 hex digits of a sha256 over the sorted `file sha256` lines.
pub fn content_version<'a>(files: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut lines: Vec<String> = files.map(|(f, sha)| format!("{f} {sha}\n")).collect();
    lines.sort();
    let mut h = Sha256::new();
    for l in &lines {
        h.update(l.as_bytes());
    }
    hex::encode(h.finalize())[..12].to_string()
}

/// Compares the files under `root` with `manifest`; `None` when every listed file is there with
/// the listed bytes.
pub fn compare_with_manifest(
    root: &Path,
    manifest: &crate::protocol::AssetManifest,
) -> Option<AssetsDiffer> {
    let listed: Vec<(&str, &str)> = manifest
        .entries
        .iter()
        .flat_map(|e| e.variants.iter())
        .map(|v| (v.file.as_str(), v.sha256.as_str()))
        .collect();
    let mut local = Vec::with_capacity(listed.len());
    let (mut changed, mut missing) = (Vec::new(), Vec::new());
    for (file, sha) in &listed {
        let ours = match std::fs::read(root.join(file)) {
            Ok(bytes) => hex::encode(Sha256::digest(&bytes)),
            Err(_) => {
                missing.push((*file).to_string());
                "missing".to_string()
            }
        };
        if ours != *sha && ours != "missing" {
            changed.push((*file).to_string());
        }
        local.push(((*file).to_string(), ours));
    }
    if changed.is_empty() && missing.is_empty() {
        return None;
    }
    Some(AssetsDiffer {
        server_version: content_version(listed.iter().copied()),
        local_version: content_version(local.iter().map(|(f, s)| (f.as_str(), s.as_str()))),
        changed,
        missing,
    })
}

/// The comparison running on the IO pool.
#[derive(Resource, Default)]
struct LocalCheck(Option<bevy::tasks::Task<Option<AssetsDiffer>>>);

fn finish_local_check(mut check: ResMut<LocalCheck>, mut out: MessageWriter<AssetsDiffer>) {
    let Some(result) = crate::process::take_if_finished(&mut check.0) else {
        return;
    };
    if let Some(differ) = result {
        warn!("assets: {}", differ.describe());
        out.write(differ);
    }
}

/// Makes the default asset source a [`VerifyingReader`] over `dir`. Call before the
/// `AssetPlugin` is added; the returned hashes are filled when the manifest arrives.
pub fn install_verifying_source(app: &mut App, dir: &Path) -> ManifestHashes {
    app.insert_resource(AssetRoot(dir.to_path_buf()));
    let hashes = ManifestHashes::default();
    let shared = hashes.clone();
    let root: PathBuf = dir.to_path_buf();
    app.register_asset_source(
        AssetSourceId::Default,
        AssetSourceBuilder::new(move || {
            Box::new(VerifyingReader {
                inner: FileAssetReader::new(&root),
                hashes: shared.clone(),
            })
        }),
    );
    app.insert_resource(hashes.clone());
    hashes
}

/// A file's bytes, as loaded (and verified) when no decoder is registered for its kind: the
/// headless client and the data files.
#[derive(Asset, TypePath, Debug)]
pub struct AssetBytes(pub Vec<u8>);

/// Loads [`AssetBytes`]; picked by type, never by extension.
#[derive(Default, TypePath)]
pub struct AssetBytesLoader;

impl AssetLoader for AssetBytesLoader {
    type Asset = AssetBytes;
    type Settings = ();
    type Error = std::io::Error;

    async fn load(
        &self,
        reader: &mut dyn Reader,
        _settings: &(),
        _ctx: &mut LoadContext<'_>,
    ) -> Result<AssetBytes, std::io::Error> {
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).await?;
        Ok(AssetBytes(bytes))
    }
}

/// Which asset type each kind (model, texture, sound, font, data, document) decodes to, and
/// the fallback shown in place of one that fails. Everything is [`AssetBytes`] until the
/// renderer registers its decoders.
#[derive(Resource, Default)]
pub struct Decoders {
    types: HashMap<String, TypeId>,
    fallbacks: HashMap<String, UntypedHandle>,
    default_fallback: Option<UntypedHandle>,
}

impl Decoders {
    /// Decodes `kind` as asset type `A`, with `fallback` in place of a failure.
    pub fn set<A: Asset>(&mut self, kind: &str, fallback: Handle<A>) {
        self.types.insert(kind.to_string(), TypeId::of::<A>());
        self.fallbacks.insert(kind.to_string(), fallback.untyped());
    }

    fn type_of(&self, kind: &str) -> TypeId {
        self.types
            .get(kind)
            .copied()
            .unwrap_or(TypeId::of::<AssetBytes>())
    }

    /// The fallback for `kind`.
    pub fn fallback(&self, kind: &str) -> UntypedHandle {
        self.fallbacks
            .get(kind)
            .or(self.default_fallback.as_ref())
            .cloned()
            .unwrap_or_else(|| Handle::<AssetBytes>::default().untyped())
    }
}

/// Where the client's loading is.
#[derive(States, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AssetPhase {
    /// No manifest from the server yet.
    #[default]
    WaitingForManifest,
    /// The critical set is loading behind the loading screen.
    Loading,
    /// A critical asset failed: waiting for its fallback before play.
    Recovering,
    /// Loaded; the rest streams in the background.
    Playing,
}

/// How a [`Streamer::stream_with_quality`] request ended.
#[derive(Debug, Clone)]
pub struct StreamOutcome {
    /// Professional path asked for.
    pub path: String,
    /// File loaded (`None` when the fallback answered).
    pub file: Option<String>,
    /// Quality of that file (empty for single-variant assets).
    pub quality: String,
    /// The asset, or the fallback.
    pub handle: UntypedHandle,
    /// The fallback answered.
    pub fallback: bool,
    /// Served from the cache.
    pub from_cache: bool,
    /// Every error on the way (a variant that failed, then the next tried).
    pub errors: Vec<String>,
}

impl StreamOutcome {
    /// The fallback answering for `path`, with the errors that led to it.
    fn fallback(path: String, handle: UntypedHandle, errors: Vec<String>) -> Self {
        Self {
            path,
            file: None,
            quality: String::new(),
            handle,
            fallback: true,
            from_cache: false,
            errors,
        }
    }
}

/// Called with the outcome once a stream request ends.
pub type StreamCallback = Box<dyn FnOnce(&mut World, &StreamOutcome) + Send + Sync>;

/// An asset that failed (each variant tried), for toasts and the log.
#[derive(Message, Debug, Clone)]
pub struct AssetProblem {
    /// Professional path.
    pub path: String,
    /// What went wrong.
    pub error: String,
    /// The bytes did not match the manifest.
    pub integrity: bool,
}

/// A request answered at once with the fallback, and its callback.
type Refused = Box<(StreamOutcome, Option<StreamCallback>)>;

struct Pending {
    path: String,
    kind: String,
    file: String,
    quality: String,
    size: u64,
    handle: UntypedHandle,
    started: Instant,
    critical: bool,
    streamed: bool,
    from_cache: bool,
    errors: Vec<String>,
    callback: Option<StreamCallback>,
}

/// The client's loading state of every asset: requests in flight, the cache, the background
/// queue, load figures and the quality governor.
#[derive(Resource)]
pub struct AssetStreamer {
    cache: LruCache<UntypedHandle>,
    pending: Vec<Pending>,
    queue: StreamQueue,
    stats: LoadStats,
    /// The quality governor.
    pub governor: QualityGovernor,
    /// Each kind's default quality (`assetManager.quality.*`).
    pub kinds: KindQuality,
    critical: Vec<(String, UntypedHandle)>,
    /// Recent errors, newest last (at most 32).
    pub recent_errors: Vec<String>,
    /// Problems not yet sent as [`AssetProblem`] messages (the next poll sends them).
    problems: Vec<AssetProblem>,
}

/// Cache and load figures for the F3 overlay, the registry stats and the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StreamerStats {
    /// Cache figures.
    pub cache: CacheStats,
    /// Load figures.
    pub loads: LoadStats,
    /// Assets waiting to stream.
    pub queued: usize,
    /// Requests in flight.
    pub in_flight: usize,
    /// Quality level in use.
    pub quality: Level,
}

impl AssetStreamer {
    /// From the client's config: cache bounds, batch size, quality and budgets.
    pub fn from_config(config: Option<&crate::config::Config>) -> Self {
        let get = |key: &str, default: i64| {
            config
                .and_then(|c| c.get::<i64>(key).ok())
                .unwrap_or(default)
                .max(1)
        };
        let entries = get("assetManager.maxCacheSize", 1000) as usize;
        let memory_mb = get("performance.maxMemoryUsage", 1024) as u64;
        let level = get("graphics.qualityLevel", 3).min(5) as Level;
        let fps = get("performance.targetFPS", 60) as u32;
        // The cache starts at a quarter of the memory budget and may grow to half of it.
        let memory = memory_mb << 20;
        let mut governor = QualityGovernor::new(level, fps, memory);
        governor.set_enabled(
            config
                .and_then(|c| c.get::<bool>("assetManager.enableQualityScaling").ok())
                .unwrap_or(true),
        );
        Self {
            cache: LruCache::new(entries, memory / 4, memory / 2),
            pending: Vec::new(),
            queue: StreamQueue::default(),
            stats: LoadStats::default(),
            governor,
            kinds: KindQuality::from_config(config),
            critical: Vec::new(),
            recent_errors: Vec::new(),
            problems: Vec::new(),
        }
    }

    /// Figures now.
    pub fn stats(&self) -> StreamerStats {
        StreamerStats {
            cache: self.cache.stats(),
            loads: self.stats,
            queued: self.queue.queued(),
            in_flight: self.pending.len(),
            quality: self.governor.current,
        }
    }

    /// The cache (for the tuning rule's counts).
    pub fn cache(&self) -> &LruCache<UntypedHandle> {
        &self.cache
    }

    /// Points the critical set's entry for `path` at `handle` (a lower variant or the fallback).
    fn set_critical(&mut self, path: &str, handle: &UntypedHandle) {
        if let Some(slot) = self.critical.iter_mut().find(|(p, _)| p == path) {
            slot.1 = handle.clone();
        }
    }

    /// Critical requests not yet resolved.
    pub fn critical_pending(&self) -> usize {
        self.pending.iter().filter(|p| p.critical).count()
    }

    /// Starts loading `path` (or takes it from the cache). A path the manifest cannot answer
    /// is refused at once: the error is reported and counted, and the fallback answers.
    #[allow(clippy::too_many_arguments)]
    fn request(
        &mut self,
        server: &AssetServer,
        registry: Option<&AssetRegistry>,
        decoders: &Decoders,
        path: &str,
        level: Level,
        critical: bool,
        streamed: bool,
        callback: Option<StreamCallback>,
    ) -> Result<UntypedHandle, Refused> {
        let entry = registry.and_then(|r| r.get(path));
        let level = entry.map_or(level, |e| self.kinds.level_for(&e.kind, level));
        let variant = registry.and_then(|r| r.variant(path, level_name(level)));
        let (Some(entry), Some(variant)) = (entry, variant) else {
            let (error, kind) = match entry {
                None => (format!("{path}: not in the asset manifest"), ""),
                Some(e) => (
                    format!("{path}: the manifest lists no file"),
                    e.kind.as_str(),
                ),
            };
            self.note_problem(path, error.clone(), false);
            self.stats.fallbacks += 1;
            let outcome =
                StreamOutcome::fallback(path.to_string(), decoders.fallback(kind), vec![error]);
            return Err(Box::new((outcome, callback)));
        };
        let (kind, file, quality, size) = (
            entry.kind.clone(),
            variant.file.clone(),
            variant.quality.clone(),
            variant.size,
        );
        let (handle, from_cache) = match self.cache.get(&file) {
            Some(h) => (h.clone(), true),
            None => (
                server
                    .load_builder()
                    .load_erased(decoders.type_of(&kind), file.clone()),
                false,
            ),
        };
        self.pending.push(Pending {
            path: path.to_string(),
            kind,
            file,
            quality,
            size,
            handle: handle.clone(),
            started: Instant::now(),
            critical,
            streamed,
            from_cache,
            errors: Vec::new(),
            callback,
        });
        Ok(handle)
    }

    /// Logs a problem, keeps it among the recent errors, and queues its message.
    fn note_problem(&mut self, path: &str, error: String, integrity: bool) {
        warn!("asset: {error}");
        self.recent_errors.push(error.clone());
        if self.recent_errors.len() > 32 {
            self.recent_errors.remove(0);
        }
        self.problems.push(AssetProblem {
            path: path.to_string(),
            error,
            integrity,
        });
    }
}

/// The door for game code: `streamer.stream_with_quality(path, level, callback)`.
#[derive(SystemParam)]
pub struct Streamer<'w, 's> {
    streamer: ResMut<'w, AssetStreamer>,
    server: Res<'w, AssetServer>,
    // The manifest arrives from the server after join.
    registry: Option<Res<'w, AssetRegistry>>,
    decoders: Res<'w, Decoders>,
    commands: Commands<'w, 's>,
}

impl Streamer<'_, '_> {
    /// Loads the best variant of `path` at or below quality `level`; a variant that fails
    /// falls back to the next lower one, and when none is left the kind's fallback asset
    /// answers and the error is reported. `callback` runs once, with the outcome.
    pub fn stream_with_quality(
        &mut self,
        path: &str,
        level: Level,
        callback: impl FnOnce(&mut World, &StreamOutcome) + Send + Sync + 'static,
    ) {
        let cb: StreamCallback = Box::new(callback);
        if let Err(refused) = self.streamer.request(
            &self.server,
            self.registry.as_deref(),
            &self.decoders,
            path,
            level,
            false,
            false,
            Some(cb),
        ) {
            // Nothing to load: the fallback answers at the next command flush.
            let (outcome, cb) = *refused;
            if let Some(cb) = cb {
                self.commands
                    .queue(move |world: &mut World| cb(world, &outcome));
            }
        }
    }

    /// The quality level in use now.
    pub fn quality(&self) -> Level {
        self.streamer.governor.current
    }
}

/// The critical set, as a bevy_asset_loader collection built from the manifest at run time.
#[derive(Resource, Debug, Clone, Default)]
pub struct CriticalAssets {
    /// Handles by professional path (the fallback where one failed).
    pub handles: Vec<(String, UntypedHandle)>,
}

impl AssetCollection for CriticalAssets {
    fn load(world: &mut World) -> Vec<UntypedHandle> {
        let server = world.resource::<AssetServer>().clone();
        let paths: Vec<String> = world
            .get_resource::<AssetRegistry>()
            .map(|r| {
                r.manifest()
                    .entries
                    .iter()
                    .filter(|e| e.priority == "critical")
                    .map(|e| e.path.clone())
                    .collect()
            })
            .unwrap_or_default();
        world.resource_scope(|world, mut streamer: Mut<AssetStreamer>| {
            let registry = world.get_resource::<AssetRegistry>();
            let decoders = world.resource::<Decoders>();
            let level = streamer.governor.current;
            let mut handles = Vec::new();
            for path in paths {
                match streamer.request(&server, registry, decoders, &path, level, true, false, None)
                {
                    Ok(h) => {
                        streamer.critical.push((path, h.clone()));
                        handles.push(h);
                    }
                    Err(refused) => streamer.critical.push((path, refused.0.handle)),
                }
            }
            handles
        })
    }

    fn create(world: &mut World) -> Self {
        Self {
            handles: world.resource::<AssetStreamer>().critical.clone(),
        }
    }
}

/// The client's asset loading (the manifest comes from [`super::AssetsClientPlugin`]).
pub struct AssetLoadingPlugin;

impl Plugin for AssetLoadingPlugin {
    fn build(&self, app: &mut App) {
        app.init_asset::<AssetBytes>()
            .register_asset_loader(AssetBytesLoader)
            .init_resource::<Decoders>()
            .init_resource::<ManifestHashes>()
            .init_resource::<LocalCheck>()
            .add_message::<AssetProblem>()
            .add_message::<AssetsDiffer>()
            .add_message::<ConfigChanged>()
            .init_state::<AssetPhase>()
            .add_plugins(
                ProgressPlugin::<AssetPhase>::new()
                    .with_state_transition(AssetPhase::Loading, AssetPhase::Playing),
            )
            .add_loading_state(
                LoadingState::new(AssetPhase::Loading)
                    .on_failure_continue_to_state(AssetPhase::Recovering)
                    .load_collection::<CriticalAssets>(),
            )
            .add_systems(Startup, setup_streamer)
            .add_systems(
                Update,
                (
                    start_loading.run_if(in_state(AssetPhase::WaitingForManifest)),
                    finish_local_check,
                    poll_requests,
                    finish_recovery.run_if(in_state(AssetPhase::Recovering)),
                    (stream_background, govern_quality, tune_cache)
                        .run_if(in_state(AssetPhase::Playing)),
                    apply_asset_settings,
                )
                    .chain()
                    .in_set(crate::stages::ClientSystems::Handle),
            );
    }
}

fn setup_streamer(
    mut commands: Commands,
    // The loader also runs alone (the asset benchmark), on the defaults.
    config: Option<Res<ClientConfig>>,
    mut bytes: ResMut<Assets<AssetBytes>>,
    mut decoders: ResMut<Decoders>,
) {
    commands.insert_resource(AssetStreamer::from_config(config.as_deref().map(|c| &c.0)));
    decoders.default_fallback = Some(
        bytes
            .add(AssetBytes(b"bloxquarium fallback asset".to_vec()))
            .untyped(),
    );
}

fn start_loading(
    // The manifest arrives from the server after join.
    registry: Option<Res<AssetRegistry>>,
    hashes: Res<ManifestHashes>,
    mut streamer: ResMut<AssetStreamer>,
    // The loader also runs alone (the asset benchmark), on the defaults.
    config: Option<Res<ClientConfig>>,
    mut next: ResMut<NextState<AssetPhase>>,
    root: Option<Res<AssetRoot>>,
    mut check: ResMut<LocalCheck>,
) {
    let Some(registry) = registry else { return };
    hashes.replace(&registry);
    // This client's files against the server's list, off the frame.
    if let Some(root) = root {
        let (root, manifest) = (root.0.clone(), registry.manifest().clone());
        check.0 = Some(
            bevy::tasks::IoTaskPool::get()
                .spawn(async move { compare_with_manifest(&root, &manifest) }),
        );
    }
    let batch = config
        .and_then(|c| c.get::<i64>("assetManager.preloadBatchSize").ok())
        .unwrap_or(50)
        .max(1) as usize;
    streamer.queue = StreamQueue::from_manifest(registry.manifest(), batch);
    info!(
        "assets: loading the critical set at quality {}; {} more to stream",
        level_name(streamer.governor.current),
        streamer.queue.queued()
    );
    next.set(AssetPhase::Loading);
}

/// Resolves requests: loaded ones go into the cache, failed ones fall back to a lower variant
/// and then to the fallback asset; callbacks run with the outcome.
fn poll_requests(world: &mut World) {
    let server = world.resource::<AssetServer>().clone();
    let mut done: Vec<(StreamOutcome, Option<StreamCallback>)> = Vec::new();
    let problems = world.resource_scope(|world, mut streamer: Mut<AssetStreamer>| {
        let registry = world.get_resource::<AssetRegistry>();
        let decoders = world.resource::<Decoders>();
        let pending = std::mem::take(&mut streamer.pending);
        for mut p in pending {
            let id = p.handle.id();
            let failed = match server.get_load_state(id) {
                Some(LoadState::Failed(e)) => Some(e.to_string()),
                _ => match server.get_recursive_dependency_load_state(id) {
                    Some(RecursiveDependencyLoadState::Failed(e)) => Some(e.to_string()),
                    _ => None,
                },
            };
            if let Some(err) = failed {
                let integrity = err.contains(INTEGRITY_MARKER);
                streamer.stats.failed += 1;
                if integrity {
                    streamer.stats.integrity_failures += 1;
                }
                streamer.cache.remove(&p.file);
                let msg = format!("{} ({}): {err}", p.path, p.file);
                streamer.note_problem(&p.path, msg.clone(), integrity);
                p.errors.push(msg);
                // The best variant below the one that failed, if any.
                let lower = QUALITIES
                    .iter()
                    .position(|q| *q == p.quality)
                    .filter(|at| *at > 0)
                    .and_then(|at| registry?.variant(&p.path, QUALITIES[at - 1]))
                    .filter(|v| v.quality != p.quality)
                    .cloned();
                match lower {
                    Some(v) => {
                        p.handle = server
                            .load_builder()
                            .load_erased(decoders.type_of(&p.kind), v.file.clone());
                        if p.critical {
                            streamer.set_critical(&p.path, &p.handle);
                        }
                        p.file = v.file;
                        p.quality = v.quality;
                        p.size = v.size;
                        p.started = Instant::now();
                        p.from_cache = false;
                        streamer.pending.push(p);
                    }
                    None => {
                        streamer.stats.fallbacks += 1;
                        let handle = decoders.fallback(&p.kind);
                        if p.critical {
                            streamer.set_critical(&p.path, &handle);
                        }
                        if p.streamed {
                            streamer.queue.finished();
                        }
                        done.push((
                            StreamOutcome::fallback(p.path, handle, p.errors),
                            p.callback,
                        ));
                    }
                }
                continue;
            }
            if !server.is_loaded_with_dependencies(id) {
                streamer.pending.push(p);
                continue;
            }
            if !p.from_cache {
                streamer.stats.loaded += 1;
                streamer.stats.bytes = streamer.stats.bytes.saturating_add(p.size);
                streamer.stats.total_ms += p.started.elapsed().as_secs_f64() * 1000.0;
                for (evicted, _) in streamer.cache.put(&p.file, p.handle.clone(), p.size) {
                    debug!("asset cache: evicted {evicted}");
                }
            }
            if p.streamed {
                streamer.queue.finished();
            }
            done.push((
                StreamOutcome {
                    path: p.path,
                    file: Some(p.file),
                    quality: p.quality,
                    handle: p.handle,
                    fallback: false,
                    from_cache: p.from_cache,
                    errors: p.errors,
                },
                p.callback,
            ));
        }
        std::mem::take(&mut streamer.problems)
    });
    for p in problems {
        world.write_message(p);
    }
    for (outcome, cb) in done {
        if let Some(cb) = cb {
            cb(world, &outcome);
        }
    }
}

/// After a critical failure: play starts once every critical request has its asset or its
/// fallback.
fn finish_recovery(
    streamer: Res<AssetStreamer>,
    mut next: ResMut<NextState<AssetPhase>>,
    mut commands: Commands,
) {
    if streamer.critical_pending() == 0 {
        warn!(
            "assets: {} critical asset(s) replaced by the fallback",
            streamer.stats.fallbacks
        );
        commands.insert_resource(CriticalAssets {
            handles: streamer.critical.clone(),
        });
        next.set(AssetPhase::Playing);
    }
}

fn stream_background(
    mut streamer: ResMut<AssetStreamer>,
    server: Res<AssetServer>,
    // The manifest arrives from the server after join.
    registry: Option<Res<AssetRegistry>>,
    decoders: Res<Decoders>,
    // The loader also runs alone (the asset benchmark), on the defaults.
    config: Option<Res<ClientConfig>>,
) {
    if config
        .as_ref()
        .and_then(|c| c.get::<bool>("assetManager.enableStreaming").ok())
        == Some(false)
    {
        return;
    }
    let level = streamer.governor.current;
    for path in streamer.queue.next_batch() {
        let refused = streamer
            .request(
                &server,
                registry.as_deref(),
                &decoders,
                &path,
                level,
                false,
                true,
                None,
            )
            .is_err();
        if refused {
            // Reported and counted by `request`; this one of the batch is done.
            streamer.queue.finished();
        }
    }
}

fn govern_quality(mut streamer: ResMut<AssetStreamer>, time: Res<Time<Real>>) {
    // Memory as the process sampler last read it (about once a second); the frame time every
    // frame.
    let memory = crate::process::sampled().0;
    let ms = time.delta_secs_f64() * 1000.0;
    if ms <= 0.0 {
        return;
    }
    if let Some(change) = streamer.governor.sample(ms, memory) {
        match change {
            QualityChange::Dropped(l) => warn!(
                "assets: quality dropped to {} (frame time {ms:.1} ms, memory {} MiB)",
                level_name(l),
                memory >> 20
            ),
            QualityChange::Raised(l) => info!("assets: quality back up to {}", level_name(l)),
        }
    }
}

fn tune_cache(mut streamer: ResMut<AssetStreamer>) {
    let (transition, grew) = streamer.cache.tune();
    if let Some(t) = transition {
        let s = streamer.cache.stats();
        info!(
            "optimisation rule assets.cache {t:?}: hit rate {:.0}%, cache {} entries / {} MiB",
            s.hit_rate() * 100.0,
            s.max_entries,
            s.max_bytes >> 20
        );
    }
    if grew {
        metrics::counter!("bloxquarium_assets_cache_grown_total").increment(1);
    }
}

/// `graphics.qualityLevel` (the player's choice) and the budgets, applied live.
fn apply_asset_settings(
    // The loader also runs alone (the asset benchmark), on the defaults.
    config: Option<Res<ClientConfig>>,
    mut changed: MessageReader<ConfigChanged>,
    mut streamer: ResMut<AssetStreamer>,
) {
    let Some(config) = config else { return };
    for c in changed.read() {
        if c.side != Side::Client {
            continue;
        }
        if c.under("graphics.qualityLevel")
            && let Ok(level) = config.get::<i64>("graphics.qualityLevel")
        {
            streamer.governor.choose(level.clamp(1, 5) as Level);
        }
        if c.under("assetManager.quality") {
            streamer.kinds = KindQuality::from_config(Some(&config.0));
        }
        if c.under("assetManager.enableQualityScaling")
            && let Ok(on) = config.get::<bool>("assetManager.enableQualityScaling")
        {
            streamer.governor.set_enabled(on);
        }
        if c.under("performance") {
            let fps = config.get::<i64>("performance.targetFPS").unwrap_or(60) as u32;
            let mb = config
                .get::<i64>("performance.maxMemoryUsage")
                .unwrap_or(1024)
                .max(1) as u64;
            streamer.governor.set_budgets(fps, mb << 20);
        }
        if c.under("assetManager.maxCacheSize")
            && let Ok(n) = config.get::<i64>("assetManager.maxCacheSize")
        {
            let evicted = streamer.cache.set_max_entries(n.max(1) as usize);
            debug!("asset cache bound {n}: {} evicted", evicted.len());
        }
        if c.under("assetManager.preloadBatchSize")
            && let Ok(b) = config.get::<i64>("assetManager.preloadBatchSize")
        {
            streamer.queue.set_batch(b.max(1) as usize);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ConfigValue;

    fn manifest_of(files: &[(&str, &[u8])]) -> crate::protocol::AssetManifest {
        crate::protocol::AssetManifest {
            entries: files
                .iter()
                .map(|(f, bytes)| crate::protocol::AssetEntry {
                    path: f.to_string(),
                    category: "Props".into(),
                    kind: "data".into(),
                    priority: "low".into(),
                    variants: vec![crate::protocol::AssetVariant {
                        quality: String::new(),
                        file: f.to_string(),
                        size: bytes.len() as u64,
                        sha256: hex::encode(Sha256::digest(bytes)),
                    }],
                })
                .collect(),
        }
    }

    /// Before the manifest only the bootstrap files are readable; after it, only what it lists,
    /// each against its hash.
    #[test]
    fn the_reader_allows_the_bootstrap_set_then_only_the_manifest() {
        let hashes = ManifestHashes::default();
        assert_eq!(
            hashes.policy("Models/Miscellaneous/Fallback.glb"),
            ReadPolicy::Bootstrap
        );
        assert!(matches!(
            hashes.policy("UI_Assets/Icon_Panel.png"),
            ReadPolicy::Refuse(ref why) if why.contains("no asset manifest yet")
        ));
        let m = manifest_of(&[("a.bin", b"a"), ("Models/Miscellaneous/Fallback.glb", b"f")]);
        hashes.replace(&AssetRegistry::new(m));
        assert!(matches!(hashes.policy("a.bin"), ReadPolicy::Verify(_)));
        assert!(matches!(
            hashes.policy("Models/Miscellaneous/Fallback.glb"),
            ReadPolicy::Verify(_)
        ));
        assert!(matches!(
            hashes.policy("extra.bin"),
            ReadPolicy::Refuse(ref why) if why.contains("not in the server's asset manifest")
        ));
    }

    /// The join-time comparison names changed and missing files and both content versions.
    #[test]
    fn local_files_are_compared_with_the_manifest() {
        let dir = std::env::temp_dir().join(format!("bq-assets-cmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.bin"), b"a").unwrap();
        std::fs::write(dir.join("b.bin"), b"b").unwrap();
        let m = manifest_of(&[("a.bin", b"a"), ("b.bin", b"b")]);
        assert_eq!(compare_with_manifest(&dir, &m), None);
        std::fs::write(dir.join("b.bin"), b"B").unwrap();
        let m = manifest_of(&[("a.bin", b"a"), ("b.bin", b"b"), ("c.bin", b"c")]);
        let d = compare_with_manifest(&dir, &m).unwrap();
        assert_eq!(d.changed, vec!["b.bin".to_string()]);
        assert_eq!(d.missing, vec!["c.bin".to_string()]);
        assert_ne!(d.local_version, d.server_version);
        assert_eq!(d.server_version.len(), 12);
        let said = d.describe();
        assert!(
            said.contains("1 changed (b.bin)") && said.contains("1 missing (c.bin)"),
            "{said}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// `assetManager.enableQualityScaling: false` keeps the player's level however slow the
    /// frames; on (the default), slow frames drop it.
    #[test]
    fn quality_scaling_follows_its_key() {
        let mut config = crate::config::defaults_for_tests();
        let slow = |s: &mut AssetStreamer| {
            (0..super::super::quality::DROP_AFTER * 2)
                .filter_map(|_| s.governor.sample(500.0, 0))
                .count()
        };
        let mut on = AssetStreamer::from_config(Some(&config));
        assert!(slow(&mut on) > 0, "the governor drops the level");
        config
            .set(
                "assetManager.enableQualityScaling",
                ConfigValue::Bool(false),
                "test",
                "",
                std::time::Duration::ZERO,
            )
            .unwrap();
        let mut off = AssetStreamer::from_config(Some(&config));
        assert_eq!(slow(&mut off), 0);
        assert_eq!(
            off.governor.current, 3,
            "the default graphics.qualityLevel stays"
        );
    }

    /// `assetManager.quality.*`: at the default level (HIGH) each kind loads at its own default
    /// quality; the level in use moves every kind by as many levels.
    #[test]
    fn each_kind_loads_at_its_own_default_quality() {
        let mut config = crate::config::defaults_for_tests();
        let s = AssetStreamer::from_config(Some(&config));
        // Defaults: models and textures HIGH, sounds MEDIUM.
        assert_eq!(s.kinds.level_for("model", 3), 3);
        assert_eq!(s.kinds.level_for("sound", 3), 2);
        assert_eq!(
            s.kinds.level_for("model", 5),
            5,
            "the player's choice moves it"
        );
        assert_eq!(s.kinds.level_for("sound", 5), 4);
        assert_eq!(s.kinds.level_for("sound", 1), 1, "never below LOW");
        assert_eq!(
            s.kinds.level_for("font", 4),
            4,
            "other kinds follow the level"
        );
        for (key, value) in [
            ("assetManager.quality.models", "ULTRA"),
            ("assetManager.quality.textures", "MEDIUM"),
            ("assetManager.quality.sounds", "LOW"),
        ] {
            config
                .set(
                    key,
                    ConfigValue::Text(value.into()),
                    "test",
                    "",
                    std::time::Duration::ZERO,
                )
                .unwrap();
        }
        let s = AssetStreamer::from_config(Some(&config));
        assert_eq!(s.kinds.level_for("model", 3), 4);
        assert_eq!(s.kinds.level_for("model", 5), 5, "never above PROFESSIONAL");
        assert_eq!(s.kinds.level_for("sound", 3), 1);
        assert_eq!(s.kinds.level_for("texture", 3), 2);
        assert_eq!(
            s.kinds.level_for("font", 3),
            3,
            "other kinds follow the level"
        );
    }

    fn with(pairs: &[(&str, ConfigValue)]) -> AssetStreamer {
        let mut config = crate::config::defaults_for_tests();
        for (key, value) in pairs {
            config
                .set(key, value.clone(), "test", "", std::time::Duration::ZERO)
                .unwrap();
        }
        AssetStreamer::from_config(Some(&config))
    }

    /// `graphics.qualityLevel` is the level assets load at (before the governor moves it).
    #[test]
    fn the_quality_level_is_the_level_assets_load_at() {
        let s = with(&[]);
        assert_eq!(s.governor.current, 3);
        assert_eq!(s.kinds.level_for("model", s.governor.current), 3);
        let s = with(&[("graphics.qualityLevel", ConfigValue::Int(1))]);
        assert_eq!(s.governor.current, 1);
        assert_eq!(s.kinds.level_for("model", s.governor.current), 1);
    }

    /// `performance.targetFPS` is the frame budget the governor holds frames to: 40 ms frames
    /// are slow at 60 FPS and fine at 15.
    #[test]
    fn the_target_frame_rate_sets_when_frames_are_too_slow() {
        let drops = |s: &mut AssetStreamer| {
            (0..super::super::quality::DROP_AFTER * 2)
                .filter_map(|_| s.governor.sample(40.0, 0))
                .count()
        };
        assert!(drops(&mut with(&[])) > 0);
        assert_eq!(
            drops(&mut with(&[(
                "performance.targetFPS",
                ConfigValue::Int(15)
            )])),
            0
        );
    }

    /// `performance.maxMemoryUsage` is the memory budget: 200 MB in use drops the level at
    /// once under a 128 MB budget, not under the default 1024 MB; the cache's byte bounds
    /// follow it.
    #[test]
    fn the_memory_budget_sets_when_memory_is_too_high() {
        let in_use = 200 << 20;
        let mut d = with(&[]);
        assert_eq!(d.governor.sample(5.0, in_use), None);
        let mut small = with(&[("performance.maxMemoryUsage", ConfigValue::Int(128))]);
        assert_eq!(
            small.governor.sample(5.0, in_use),
            Some(super::super::quality::QualityChange::Dropped(2))
        );
        assert!(small.stats().cache.max_bytes < d.stats().cache.max_bytes);
    }
}
