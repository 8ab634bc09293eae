//! Assets: the manifest and registry ([`manifest`]), and the plugins that send the signed
//! manifest to each client at join and receive it there. (The generator that writes the tree is
//! the `assetgen` tool.)
//!
//! The client's side is in [`client`]: the verifying reader, the loading state for the critical
//! set, background streaming, `stream_with_quality`, the cache ([`cache`]) and the automatic
//! quality level ([`quality`]).

mod cache;
mod client;
mod health;
mod manifest;
mod quality;
mod stream;

use bevy::prelude::*;

pub use cache::LruCache;
pub use client::{
    AssetBytes, AssetLoadingPlugin, AssetPhase, AssetProblem, AssetRoot, AssetStreamer,
    AssetsDiffer, BOOTSTRAP_FILES, CriticalAssets, Decoders, ManifestHashes, ReadPolicy,
    StreamOutcome, Streamer, StreamerStats, compare_with_manifest, content_version,
    install_verifying_source,
};
pub use manifest::{AssetRegistry, AssetStats, Preload, scan as scan_manifest};
pub use quality::{Level as QualityLevel, level_name as quality_name};
pub use stream::StreamQueue;

use crate::protocol::{self, AssetManifest};
use crate::transport::{ServerNet, SessionStarted, SignedBlobReceived};

/// Scans the assets dir for the server: warnings are logged, never fatal.
pub fn registry_for_server(dir: &std::path::Path, config: &crate::config::Config) -> AssetRegistry {
    let (m, warnings) = manifest::scan(dir, &Preload::from_config(config));
    for w in &warnings {
        warn!("assets: {w}");
    }
    info!(
        "assets: {} in the manifest from {}",
        m.entries.len(),
        dir.display()
    );
    AssetRegistry::new(m)
}

/// Sends the signed manifest to each client at join.
pub struct AssetsServerPlugin {
    registry: crate::process::Carried<AssetRegistry>,
}

impl AssetsServerPlugin {
    /// Scans `paths.assets` with the `assetManager.preload.*` priorities (problems are logged,
    /// never fatal).
    pub fn from_config(config: &crate::config::Config, paths: &crate::process::Paths) -> Self {
        Self {
            registry: crate::process::Carried::new(registry_for_server(&paths.assets, config)),
        }
    }
}

impl Plugin for AssetsServerPlugin {
    fn build(&self, app: &mut App) {
        crate::stages::server(app);
        crate::process::insert_carried(app, "the assets server plugin", &self.registry);
        crate::integration::register(app, health::INTEGRATION);
        app.add_systems(
            Update,
            send_manifest.in_set(crate::stages::ServerSystems::Handle),
        );
    }
}

fn send_manifest(
    mut joined: MessageReader<SessionStarted>,
    registry: Res<AssetRegistry>,
    mut net: ResMut<ServerNet>,
    mut encoded: Local<Option<Vec<u8>>>,
) {
    for s in joined.read() {
        if encoded.is_none() {
            *encoded = protocol::encode(registry.manifest())
                .map_err(|e| error!("cannot encode the asset manifest: {e}"))
                .ok();
        }
        if let Some(bytes) = encoded.as_ref() {
            net.send_signed(s.client, protocol::ASSET_MANIFEST, bytes.clone());
        }
    }
}

/// Receives the signed manifest on the client.
pub struct AssetsClientPlugin;

impl Plugin for AssetsClientPlugin {
    fn build(&self, app: &mut App) {
        crate::stages::client(app);
        crate::integration::register_figures(app, health::loader_figures);
        app.add_plugins(client::AssetLoadingPlugin).add_systems(
            PreUpdate,
            receive_manifest.in_set(crate::stages::ClientSystems::Sync),
        );
    }
}

fn receive_manifest(mut blobs: MessageReader<SignedBlobReceived>, mut commands: Commands) {
    for b in blobs.read() {
        if b.purpose != protocol::ASSET_MANIFEST {
            continue;
        }
        match protocol::decode::<AssetManifest>(&b.blob) {
            Ok(m) => {
                info!("asset manifest: {} assets", m.entries.len());
                commands.insert_resource(AssetRegistry::new(m));
            }
            Err(e) => warn!("asset manifest refused: {e}"),
        }
    }
}
