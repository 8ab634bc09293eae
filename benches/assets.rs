//! Asset costs: the manifest scan of the whole committed tree next to `sha256sum` over the same
//! files, LRU get/put, and a cold load of the critical set through the client's loader
//! (verifying reader, loading state) in a headless App.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy::state::app::StatesPlugin;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use bloxquarium::assets::{AssetLoadingPlugin, LruCache, install_verifying_source};
use bloxquarium::assets::{AssetPhase, AssetRegistry, Preload, scan_manifest};

fn assets_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets")
}

fn preload() -> Preload {
    bloxquarium::config::load_server(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("config"),
        &bloxquarium::game::KEYS,
    )
    .map(|c| Preload::from_config(&c))
    .unwrap_or_default()
}

fn scan(c: &mut Criterion) {
    let dir = assets_dir();
    let preload = preload();
    // The files the scan hashes, as the scan itself lists them.
    let (m, _) = scan_manifest(&dir, &preload);
    let variants = m.entries.iter().flat_map(|e| e.variants.iter());
    let all: Vec<PathBuf> = variants.clone().map(|v| dir.join(&v.file)).collect();
    let bytes: u64 = variants.map(|v| v.size).sum();
    eprintln!("tree: {} files, {bytes} bytes", all.len());
    let mut group = c.benchmark_group("manifest_scan");
    group.throughput(Throughput::Bytes(bytes));
    group.sample_size(30);
    group.bench_function("scan_whole_tree", |b| {
        b.iter(|| black_box(scan_manifest(&dir, &preload)))
    });
    // The same files through `sha256sum` (one process for all of them, as a script would).
    group.bench_function("sha256sum_same_files", |b| {
        b.iter(|| {
            let out = std::process::Command::new("sha256sum")
                .args(&all)
                .output()
                .map(|o| o.status.success());
            black_box(out)
        })
    });
    group.finish();
}

fn lru(c: &mut Criterion) {
    let keys: Vec<String> = (0..2000)
        .map(|i| format!("Models/Props/Item_{i}.glb"))
        .collect();
    let mut group = c.benchmark_group("lru");
    group.throughput(Throughput::Elements(1));
    group.bench_function("get_hit", |b| {
        let mut cache = LruCache::new(1000, u64::MAX / 4, u64::MAX / 2);
        for k in &keys[..1000] {
            cache.put(k, 0u32, 1024);
        }
        let mut i = 0;
        b.iter(|| {
            i = (i + 7) % 1000;
            black_box(cache.get(&keys[i]).is_some())
        })
    });
    group.bench_function("put_with_eviction", |b| {
        let mut cache = LruCache::new(1000, u64::MAX / 4, u64::MAX / 2);
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(cache.put(&keys[i], 0u32, 1024).len())
        })
    });
    group.finish();
}

/// A fresh headless client loader over the real tree: returns once the critical set is in.
fn cold_load(registry: &AssetRegistry) -> Duration {
    let dir = assets_dir();
    let mut app = App::new();
    install_verifying_source(&mut app, &dir);
    app.add_plugins((
        MinimalPlugins,
        StatesPlugin,
        AssetPlugin {
            file_path: dir.to_string_lossy().into_owned(),
            ..default()
        },
        AssetLoadingPlugin,
    ));
    app.insert_resource(registry.clone());
    let t = Instant::now();
    for _ in 0..100_000 {
        app.update();
        if *app.world().resource::<State<AssetPhase>>().get() == AssetPhase::Playing {
            return t.elapsed();
        }
    }
    panic!("the critical set did not load");
}

fn critical(c: &mut Criterion) {
    let (m, _) = scan_manifest(&assets_dir(), &preload());
    let registry = AssetRegistry::new(m);
    let n = registry
        .manifest()
        .entries
        .iter()
        .filter(|e| e.priority == "critical")
        .count();
    eprintln!("critical set: {n} assets");
    let mut group = c.benchmark_group("critical_set");
    group.sample_size(10);
    group.bench_function("cold_load", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| cold_load(&registry)).sum())
    });
    group.finish();
}

criterion_group!(benches, scan, lru, critical);
criterion_main!(benches);
