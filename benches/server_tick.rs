//! Cost of one tick of an idle dedicated server App, built exactly as `bloxquarium server` builds
//! it. The floor that every subsystem's per-tick work adds to.

use criterion::{Criterion, criterion_group, criterion_main};

use bloxquarium::ProcessOptions;
use bloxquarium::cli::{Cli, Command};

fn idle_server_tick(c: &mut Criterion) {
    let cli = match Cli::parse_from_args(["bloxquarium", "server"]) {
        Ok(cli) => cli,
        Err(e) => panic!("default command line must parse: {e:?}"),
    };
    let Command::Server(args) = cli.mode() else {
        panic!("`server` parses to server mode");
    };
    let mut app = bloxquarium::server_app(&cli.global, &args, ProcessOptions::EMBEDDED);
    app.update();
    c.bench_function("idle_server_tick", |b| b.iter(|| app.update()));
}

criterion_group!(benches, idle_server_tick);
criterion_main!(benches);
