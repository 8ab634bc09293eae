//! Password hashing and a whole login (find + verify) at the shipped `login.argon2*`
//! parameters: its inverse is the logins per second one core serves.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};

use bloxquarium::accounts::{self, HashParams};
use bloxquarium::datastore::RedbBackend;

fn accounts(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let config = match bloxquarium::config::load_server(&dir, &bloxquarium::game::KEYS) {
        Ok(c) => c,
        Err(e) => panic!("shipped config must load: {e}"),
    };
    let params = match HashParams::from_config(&config) {
        Ok(p) => p,
        Err(e) => panic!("shipped login keys: {e}"),
    };
    let scratch = std::env::temp_dir().join(format!("bq-bench-accounts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let store = match RedbBackend::open(&scratch.join("store.redb")) {
        Ok(s) => s,
        Err(e) => panic!("a scratch store: {e}"),
    };
    if let Err(e) = accounts::register(&store, &params, "bencher", "a fine password", 0) {
        panic!("register: {e}");
    }
    let mut group = c.benchmark_group("accounts");
    group.sample_size(20);
    group.bench_function("hash_shipped_params", |b| {
        b.iter(|| black_box(params.hash(black_box("a fine password"))))
    });
    group.bench_function("log_in_shipped_params", |b| {
        b.iter(|| {
            black_box(accounts::log_in(
                &store,
                &params,
                "Bencher",
                black_box("a fine password"),
            ))
        })
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&scratch);
}

criterion_group!(benches, accounts);
criterion_main!(benches);
