//! The assets' integration: the server's manifest check and figures, and the client loader's
//! figures (play mode serves them beside the server's).

use bevy::prelude::*;

use super::{AssetRegistry, AssetStreamer};
use crate::integration::{Figure, HealthStatus, Integration, rule_figures};

/// Registered by [`super::AssetsServerPlugin`].
pub(super) const INTEGRATION: Integration = Integration {
    name: "assets",
    version: env!("CARGO_PKG_VERSION"),
    depends_on: &["transport", "config"],
    check,
    figures: manifest_figures,
};

/// Unhealthy without a manifest, degraded with an empty one.
fn check(world: &World) -> HealthStatus {
    match world.get_resource::<AssetRegistry>() {
        None => HealthStatus::Unhealthy("no asset manifest".into()),
        Some(r) if r.manifest().entries.is_empty() => HealthStatus::Degraded(
            "the assets dir holds no assets (run `bloxquarium assets generate`)".into(),
        ),
        Some(_) => HealthStatus::Healthy,
    }
}

fn manifest_figures(world: &World, out: &mut Vec<Figure>) {
    let Some(reg) = world.get_resource::<AssetRegistry>() else {
        return;
    };
    let s = reg.stats();
    out.push(Figure::gauge(
        "bloxquarium_assets_manifest_entries",
        "Assets in the manifest.",
        s.total as f64,
    ));
    out.push(Figure::gauge(
        "bloxquarium_assets_manifest_bytes",
        "Total size of the assets in the manifest, bytes.",
        s.bytes as f64,
    ));
    for (category, n) in s.per_category {
        out.push(
            Figure::gauge(
                "bloxquarium_assets_per_category",
                "Assets in the manifest, by category.",
                n as f64,
            )
            .label("category", category),
        );
    }
}

/// The client loader's figures: loads, cache, streaming, quality.
pub(super) fn loader_figures(world: &World, out: &mut Vec<Figure>) {
    let Some(streamer) = world.get_resource::<AssetStreamer>() else {
        return;
    };
    let s = streamer.stats();
    out.extend([
        Figure::counter(
            "bloxquarium_assets_loaded_total",
            "Assets loaded by the client.",
            s.loads.loaded,
        ),
        Figure::counter(
            "bloxquarium_assets_failed_total",
            "Asset loads that failed.",
            s.loads.failed,
        ),
        Figure::counter(
            "bloxquarium_assets_integrity_failures_total",
            "Asset files refused for not matching the manifest's sha256.",
            s.loads.integrity_failures,
        ),
        Figure::counter(
            "bloxquarium_assets_fallbacks_total",
            "Assets replaced by their fallback.",
            s.loads.fallbacks,
        ),
        Figure::gauge(
            "bloxquarium_assets_load_average_seconds",
            "Average time to load an asset, seconds.",
            s.loads.average_ms() / 1000.0,
        ),
        Figure::gauge(
            "bloxquarium_assets_cache_hit_ratio",
            "Share of asset cache lookups that hit (0 to 1).",
            s.cache.hit_rate(),
        ),
        Figure::gauge(
            "bloxquarium_assets_cache_entries",
            "Assets held in the cache.",
            s.cache.entries as f64,
        ),
        Figure::gauge(
            "bloxquarium_assets_cache_bytes",
            "Bytes held in the asset cache.",
            s.cache.bytes as f64,
        ),
        Figure::gauge(
            "bloxquarium_assets_cache_max_bytes",
            "The asset cache's bound, bytes.",
            s.cache.max_bytes as f64,
        ),
        Figure::gauge(
            "bloxquarium_assets_streaming_queue",
            "Asset requests waiting to stream.",
            s.queued as f64,
        ),
        Figure::gauge(
            "bloxquarium_assets_quality_level",
            "Quality level in use (0 lowest).",
            f64::from(s.quality),
        ),
    ]);
    rule_figures(streamer.cache().rule(), out);
}
