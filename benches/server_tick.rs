//! Cost of one tick of an idle dedicated server App, built exactly as `bloxquarium server` builds
//! it (socket bound on an ephemeral loopback port, key in a scratch data dir). The floor that
//! every subsystem's per-tick work adds to.

use criterion::{Criterion, criterion_group, criterion_main};

use bloxquarium::ProcessOptions;
use bloxquarium::cli::{Cli, Command};

fn idle_server_tick(c: &mut Criterion) {
    let data = std::env::temp_dir().join(format!("bloxquarium-bench-{}", std::process::id()));
    let data_arg = data.to_string_lossy().into_owned();
    let argv = [
        "bloxquarium",
        "--data",
        &data_arg,
        "server",
        "--bind",
        "127.0.0.1:0",
    ];
    let cli = match Cli::parse_from_args(argv) {
        Ok(cli) => cli,
        Err(e) => panic!("bench command line must parse: {e:?}"),
    };
    let Command::Server(args) = cli.mode() else {
        panic!("`server` parses to server mode");
    };
    let mut app = match bloxquarium::server_app(&cli.global, &args, ProcessOptions::EMBEDDED) {
        Ok(app) => app,
        Err(e) => panic!("server app: {e}"),
    };
    app.update();
    c.bench_function("idle_server_tick", |b| b.iter(|| app.update()));
    let _ = std::fs::remove_dir_all(&data);
}

criterion_group!(benches, idle_server_tick);
criterion_main!(benches);
