//! Durable saves of 1 KiB profiles, side by side: our store one commit per save, our store with
//! a group commit of 64 saves, and SQLite (WAL, synchronous=FULL) one commit per save; the same
//! on PostgreSQL (a throwaway cluster, fsync and synchronous_commit on; skipped where it is not
//! installed); load latency; zstd against lz4 on a profile.

#[allow(dead_code)]
#[path = "../tests/it/pg_cluster.rs"]
mod pg_cluster;

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use bloxquarium::clock::now_ms;
use bloxquarium::datastore::{self, Codec, LockOwner, SaveRequest, Store};
use bloxquarium::game::{Aquarium, Profile};

const BATCH: usize = 1024;

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bq-bench-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    let _ = std::fs::create_dir_all(&d);
    d
}

fn profile(player: u64) -> Profile {
    let mut p = Profile::new(player, bloxquarium::game::Aquarium::new(100));
    // About 1 KiB of JSON that compresses like real data: names and counts.
    for i in 0..36 {
        p.inventory.insert(
            format!("decoration_{i:02}_{}", player % 7),
            (i * 3 + 1) as u32,
        );
    }
    p
}

/// `BATCH` profiles loaded under `owner`'s lock, and their versions.
fn loaded(store: &Store, owner: &LockOwner) -> (Vec<Profile>, Vec<u64>) {
    let mut versions = vec![0u64; BATCH];
    let mut profiles: Vec<Profile> = (0..BATCH as u64).map(|p| profile(p + 1)).collect();
    for (i, p) in profiles.iter_mut().enumerate() {
        if let Ok(l) = store.load::<Aquarium>(p.player_id, owner, now_ms()) {
            *p = l.profile;
            versions[i] = l.version;
        }
    }
    (profiles, versions)
}

/// The next profile in turn saved on its own (one commit).
fn save_next(
    store: &Store,
    owner: &LockOwner,
    (profiles, versions): (&[Profile], &mut [u64]),
    i: &mut usize,
) {
    let k = *i % BATCH;
    *i += 1;
    let req = SaveRequest::new(profiles[k].clone(), versions[k], owner.clone());
    if let Ok(saved) = store.save(&req, now_ms()) {
        versions[k] = saved.version;
    }
}

/// The first `size` profiles saved in one group commit.
fn save_group(
    store: &Store,
    owner: &LockOwner,
    (profiles, versions): (&[Profile], &mut [u64]),
    size: usize,
    durable: bool,
) {
    let reqs: Vec<SaveRequest<Aquarium>> = (0..size)
        .map(|k| SaveRequest::new(profiles[k].clone(), versions[k], owner.clone()))
        .collect();
    for (k, r) in store
        .save_batch(&reqs, durable, now_ms())
        .into_iter()
        .enumerate()
    {
        if let Ok(saved) = r {
            versions[k] = saved.version;
        }
    }
}

/// A load under a lock, and a peek, of the loaded profiles in turn.
fn loads(c: &mut Criterion, (group, backend): (&str, &str), store: &Store, owner: &LockOwner) {
    let mut group = c.benchmark_group(group);
    group.sample_size(20);
    let mut n = 0u64;
    group.bench_function(format!("{backend}_load_with_lock"), |b| {
        b.iter(|| {
            n += 1;
            let p = n % BATCH as u64 + 1;
            black_box(store.load::<Aquarium>(p, owner, now_ms()).is_ok());
        })
    });
    group.bench_function(format!("{backend}_peek"), |b| {
        b.iter(|| {
            n += 1;
            black_box(store.peek::<Aquarium>(n % BATCH as u64 + 1).is_ok());
        })
    });
    group.finish();
}

fn open_store(dir: &Path) -> Store {
    open_store_at(dir, None)
}

fn open_store_at(dir: &Path, url: Option<String>) -> Store {
    let config = match bloxquarium::config::load_server(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config")),
        &bloxquarium::game::KEYS,
    ) {
        Ok(c) => c,
        Err(e) => panic!("config: {e}"),
    };
    let paths = bloxquarium::process::Paths::new(dir, dir, dir).with_store(url);
    match datastore::open_at::<Aquarium>(&paths, &config) {
        Ok(s) => s,
        Err(e) => panic!("store: {e}"),
    }
}

fn saves(c: &mut Criterion) {
    let plain = match serde_json::to_vec(&profile(1)) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    };
    eprintln!("profile JSON: {} bytes", plain.len());
    let mut group = c.benchmark_group("durable_saves");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));

    let dir = scratch("single");
    let store = open_store(&dir);
    let owner = LockOwner {
        server_id: "bench".into(),
        session: 1,
    };
    let (profiles, mut versions) = loaded(&store, &owner);
    group.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    group.bench_function("redb_one_commit_per_save", |b| {
        b.iter(|| save_next(&store, &owner, (&profiles, &mut versions), &mut i))
    });
    for (name, size, durable) in [
        ("redb_group_commit_64", 64usize, true),
        ("redb_group_commit_256", 256, true),
        ("redb_group_commit_1024", 1024, true),
        ("redb_group_commit_256_no_fsync_reference", 256, false),
    ] {
        group.throughput(Throughput::Elements(size as u64));
        group.bench_function(name, |b| {
            b.iter(|| save_group(&store, &owner, (&profiles, &mut versions), size, durable))
        });
    }

    let sqlite_dir = scratch("sqlite");
    let conn = match rusqlite::Connection::open(sqlite_dir.join("bench.sqlite")) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let setup = "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; \
                 CREATE TABLE IF NOT EXISTS profiles (player INTEGER PRIMARY KEY, version INTEGER, blob BLOB);";
    if let Err(e) = conn.execute_batch(setup) {
        panic!("{e}");
    }
    // Same work per save: compress, then one durable commit (no encryption on this side, which
    // only flatters SQLite).
    group.throughput(Throughput::Elements(1));
    let mut j = 0u64;
    group.bench_function("sqlite_wal_full_one_commit_per_save", |b| {
        b.iter(|| {
            j += 1;
            let player = (j % BATCH as u64) as i64 + 1;
            let blob = Codec::Zstd.compress(&plain).unwrap_or_default();
            let r = conn.execute(
                "INSERT INTO profiles (player, version, blob) VALUES (?1, 1, ?2) \
                 ON CONFLICT(player) DO UPDATE SET version = version + 1, blob = excluded.blob",
                rusqlite::params![player, blob],
            );
            black_box(r.is_ok());
        })
    });
    group.finish();

    postgres_saves(c);

    loads(c, ("load", "redb"), &store, &owner);

    let mut group = c.benchmark_group("compression");
    group.throughput(Throughput::Bytes(plain.len() as u64));
    for (name, codec) in [("zstd", Codec::Zstd), ("lz4", Codec::Lz4)] {
        let packed = codec.compress(&plain).unwrap_or_default();
        eprintln!(
            "{name}: {} -> {} bytes (ratio {:.2})",
            plain.len(),
            packed.len(),
            plain.len() as f64 / packed.len().max(1) as f64
        );
        group.bench_function(format!("compress_{name}"), |b| {
            b.iter(|| black_box(codec.compress(black_box(&plain))))
        });
        group.bench_function(format!("decompress_{name}"), |b| {
            b.iter_batched(
                || packed.clone(),
                |p| black_box(codec.decompress(&p, 1 << 22)),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&sqlite_dir);
}

/// The same saves and loads on PostgreSQL, one commit per save against group commits.
fn postgres_saves(c: &mut Criterion) {
    let Some(cluster) = pg_cluster::cluster() else {
        return;
    };
    let dir = scratch("pg");
    let store = open_store_at(&dir, Some(cluster.database("bench")));
    let owner = LockOwner {
        server_id: "bench".into(),
        session: 1,
    };
    let (profiles, mut versions) = loaded(&store, &owner);
    let mut group = c.benchmark_group("durable_saves_postgres");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    group.bench_function("postgres_one_commit_per_save", |b| {
        b.iter(|| save_next(&store, &owner, (&profiles, &mut versions), &mut i))
    });
    for (name, size) in [
        ("postgres_group_commit_64", 64usize),
        ("postgres_group_commit_256", 256),
    ] {
        group.throughput(Throughput::Elements(size as u64));
        group.bench_function(name, |b| {
            b.iter(|| save_group(&store, &owner, (&profiles, &mut versions), size, true))
        });
    }
    group.finish();
    loads(c, ("load_postgres", "postgres"), &store, &owner);
}

criterion_group!(benches, saves);
criterion_main!(benches);
