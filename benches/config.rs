//! Typed config get and client snapshot encoding, on the shipped schema.

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

use bloxquarium::protocol;

fn config(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let config = match bloxquarium::config::load_server(&dir, &bloxquarium::game::KEYS) {
        Ok(c) => c,
        Err(e) => panic!("shipped config must load: {e}"),
    };
    let mut group = c.benchmark_group("config");
    group.bench_function("get_u32", |b| {
        b.iter(|| black_box(config.get::<u32>(black_box("network.maxConcurrentConnections"))))
    });
    group.bench_function("get_duration", |b| {
        b.iter(|| black_box(config.get::<Duration>(black_box("security.sessionTimeout"))))
    });
    group.bench_function("get_list_i64", |b| {
        b.iter(|| black_box(config.get::<Vec<i64>>(black_box("game.fishPrices"))))
    });
    group.bench_function("snapshot_build_and_encode", |b| {
        b.iter(|| black_box(protocol::encode(&config.snapshot())))
    });
    let snap = config.snapshot();
    group.bench_function("snapshot_encode", |b| {
        b.iter(|| black_box(protocol::encode(black_box(&snap))))
    });
    group.finish();
}

criterion_group!(benches, config);
criterion_main!(benches);
