//! Assets: the generator ([`generate`], `bloxquarium assets generate`) and the glTF writer it
//! uses ([`glb`]), the manifest and registry ([`manifest`]), and the plugins that send the
//! signed manifest to each client at join and receive it there.
//!
//! The client's side is in [`client`]: the verifying reader, the loading state for the critical
//! set, background streaming, `stream_with_quality`, the cache ([`cache`]) and the automatic
//! quality level ([`quality`]).

pub mod cache;
pub mod client;
pub mod generate;
pub mod glb;
pub mod manifest;
pub mod quality;
pub mod sound;
pub mod stream;

use bevy::prelude::*;

pub use client::{
    AssetBytes, AssetPhase, AssetProblem, AssetStreamer, CriticalAssets, Decoders, StreamOutcome,
    Streamer, StreamerStats,
};
pub use manifest::{AssetRegistry, AssetStats, Preload};

use crate::cli::{AssetsCommand, GlobalArgs};
use crate::protocol::{self, AssetManifest};
use crate::transport::{ServerNet, SessionStarted, SignedBlobReceived};

/// Runs `bloxquarium assets ...`.
pub fn run_command(
    global: &GlobalArgs,
    action: &AssetsCommand,
) -> Result<String, crate::app::StartError> {
    let dir = &global.assets;
    match action {
        AssetsCommand::Generate => {
            let (files, bytes) = generate::write_tree(dir).map_err(|e| {
                crate::app::StartError::Tool(format!("cannot write {}: {e}", dir.display()))
            })?;
            Ok(format!(
                "wrote {files} files ({:.1} MiB) under {}",
                bytes as f64 / (1024.0 * 1024.0),
                dir.display()
            ))
        }
        AssetsCommand::Manifest => {
            let config = crate::config::load_server(&global.config)?;
            let (m, warnings) = manifest::scan(dir, &Preload::from_config(&config));
            let mut out = String::new();
            for e in &m.entries {
                let q: Vec<&str> = e
                    .variants
                    .iter()
                    .map(|v| {
                        if v.quality.is_empty() {
                            "-"
                        } else {
                            v.quality.as_str()
                        }
                    })
                    .collect();
                out.push_str(&format!(
                    "{} [{} {} {}] {} B {} {}\n",
                    e.path,
                    e.category,
                    e.kind,
                    e.priority,
                    e.variants.iter().map(|v| v.size).sum::<u64>(),
                    &e.variants[0].sha256[..12],
                    q.join(",")
                ));
            }
            for w in warnings {
                out.push_str(&format!("warning: {w}\n"));
            }
            out.push_str(&format!("{} assets", m.entries.len()));
            Ok(out)
        }
    }
}

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
pub struct AssetsServerPlugin;

impl Plugin for AssetsServerPlugin {
    fn build(&self, app: &mut App) {
        crate::health::register(
            app,
            crate::health::Integration {
                name: "assets",
                version: env!("CARGO_PKG_VERSION"),
                depends_on: &["transport", "config"],
                check: |world| match world.get_resource::<AssetRegistry>() {
                    None => crate::health::HealthStatus::Unhealthy("no asset manifest".into()),
                    Some(r) if r.manifest().entries.is_empty() => {
                        crate::health::HealthStatus::Degraded(
                            "the assets dir holds no assets (run `bloxquarium assets generate`)"
                                .into(),
                        )
                    }
                    Some(_) => crate::health::HealthStatus::Healthy,
                },
            },
        );
        app.add_systems(Update, send_manifest);
    }
}

fn send_manifest(
    mut joined: MessageReader<SessionStarted>,
    registry: Option<Res<AssetRegistry>>,
    net: Option<ResMut<ServerNet>>,
    mut encoded: Local<Option<Vec<u8>>>,
) {
    let (Some(registry), Some(mut net)) = (registry, net) else {
        return;
    };
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
        app.add_plugins(client::AssetLoadingPlugin)
            .add_systems(Update, receive_manifest);
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
