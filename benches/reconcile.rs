//! Reconciliation costs: a three-way merge of one profile-sized record (Automatic and plain
//! Merge), and snapshot checksum throughput next to `sha256sum` over the same bytes.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};

use bloxquarium::reconcile::{Policy, Strategy, checksum, resolve};

fn profile(player: u64, coins: i64, hunger: f32) -> Value {
    let mut p = bloxquarium::game::Profile::new(player, bloxquarium::game::Aquarium::new(coins));
    for i in 0..36 {
        p.inventory.insert(
            format!("decoration_{i:02}_{}", player % 7),
            (i * 3 + 1) as u32,
        );
    }
    for id in 1..=8 {
        p.fish.push(bloxquarium::game::Fish {
            id,
            species: (id % 6) as u8,
            name: format!("fish {id}"),
            hunger,
            from_trade: None,
        });
    }
    serde_json::to_value(&p).unwrap_or(Value::Null)
}

fn merge(c: &mut Criterion) {
    let base = profile(1, 100, 10.0);
    let mut ours = profile(1, 150, 0.0);
    ours["inventory"]["decoration_00_1"] = json!(9);
    let mut theirs = profile(1, 90, 20.0);
    theirs["tank"]["level"] = json!(2);
    let policy = bloxquarium::datastore::policy_of::<bloxquarium::game::Aquarium>();
    eprintln!(
        "record: {} bytes of JSON",
        serde_json::to_vec(&base).map_or(0, |v| v.len())
    );
    let mut group = c.benchmark_group("merge_per_record");
    group.throughput(Throughput::Elements(1));
    group.bench_function("automatic_profile", |b| {
        b.iter(|| {
            black_box(resolve(
                black_box(&base),
                &ours,
                &theirs,
                Strategy::Automatic,
                &policy,
            ))
        })
    });
    group.bench_function("plain_merge_profile", |b| {
        b.iter(|| {
            black_box(resolve(
                black_box(&base),
                &ours,
                &theirs,
                Strategy::Merge,
                &Policy::new(),
            ))
        })
    });
    group.finish();
}

fn snapshots(c: &mut Criterion) {
    // About 1 MiB of profiles, as a snapshot of a busy server's live state.
    let data = Value::Array((0..600).map(|p| profile(p, 100 + p as i64, 5.0)).collect());
    let bytes = serde_json::to_vec(&data).unwrap_or_default();
    let mut group = c.benchmark_group("snapshot_checksum");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("canonical_encode_and_sha256", |b| {
        b.iter(|| black_box(checksum(black_box(&data))))
    });
    group.bench_function("sha256_of_the_bytes_only", |b| {
        use sha2::Digest;
        b.iter(|| black_box(sha2::Sha256::digest(black_box(&bytes))))
    });
    group.finish();

    // sha256sum over the same bytes (repeated to 64 copies so process start-up is noise), and
    // our snapshot checksum over the same volume, side by side.
    let file = std::env::temp_dir().join(format!("bq-bench-snap-{}.json", std::process::id()));
    let copies = 64;
    let mut big = Vec::with_capacity(bytes.len() * copies);
    for _ in 0..copies {
        big.extend_from_slice(&bytes);
    }
    if std::fs::write(&file, &big).is_err() {
        return;
    }
    let t = Instant::now();
    let ok = std::process::Command::new("sha256sum")
        .arg(&file)
        .output()
        .is_ok_and(|o| o.status.success());
    let tool = t.elapsed();
    let t = Instant::now();
    for _ in 0..copies {
        black_box(checksum(&data));
    }
    let ours = t.elapsed();
    let _ = std::fs::remove_file(&file);
    if ok {
        let rate = |d: Duration| big.len() as f64 / d.as_secs_f64() / 1e6;
        eprintln!(
            "snapshot checksum {:.0} MB/s, sha256sum {:.0} MB/s over the same {} MiB: {:.2} of sha256sum",
            rate(ours),
            rate(tool),
            big.len() >> 20,
            tool.as_secs_f64() / ours.as_secs_f64()
        );
    }
}

criterion_group!(benches, merge, snapshots);
criterion_main!(benches);
