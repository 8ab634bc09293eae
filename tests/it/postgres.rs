//! A throwaway PostgreSQL for the tests that need one, and the tests of the PostgreSQL backend
//! itself (the data store's conformance suite runs on it from `datastore.rs`).
//!
//! One cluster per test process, from the installed binaries (`initdb` + `pg_ctl`, as the
//! `postgres` user when the tests run as root), on a free port of 127.0.0.1, with fsync and
//! synchronous commit on; a watchdog stops it and removes its folder when this process exits,
//! however it exits. Each test takes its own database. Without the binaries these tests say
//! they are skipped and pass, unless `BLOXQUARIUM_REQUIRE_POSTGRES=1` (which `.ci/run` sets).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// The running cluster.
pub struct Cluster {
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    /// Its folder (data, log, socket).
    dir: PathBuf,
    bin: PathBuf,
    creating: Mutex<()>,
}

static CLUSTER: OnceLock<Option<Cluster>> = OnceLock::new();

/// The cluster, started on first use; `None` (after saying so) where PostgreSQL is not
/// installed and not required.
pub fn cluster() -> Option<&'static Cluster> {
    CLUSTER.get_or_init(start).as_ref()
}

fn required() -> bool {
    std::env::var("BLOXQUARIUM_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// The folder of `initdb` and `pg_ctl`: the newest `/usr/lib/postgresql/N/bin`, else `PATH`.
fn find_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let n = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").exists().then_some((n, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .find(|d| d.join("initdb").exists() && d.join("pg_ctl").exists())
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `program args…`, as the `postgres` user when we are root (PostgreSQL refuses to run as root).
fn as_owner(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(mut cmd: Command, what: &str) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn start() -> Option<Cluster> {
    let Some(bin) = find_bin() else {
        assert!(
            !required(),
            "BLOXQUARIUM_REQUIRE_POSTGRES=1, but PostgreSQL's initdb and pg_ctl are not installed \
             (install the postgresql package)"
        );
        eprintln!(
            "skipped: the PostgreSQL tests need initdb and pg_ctl (install the postgresql \
             package; BLOXQUARIUM_REQUIRE_POSTGRES=1 makes their absence a failure)"
        );
        return None;
    };
    match start_with(&bin, "shared") {
        Ok(c) => Some(c),
        Err(e) => panic!("a throwaway PostgreSQL from {}: {e}", bin.display()),
    }
}

/// A cluster of this test's own (one it may restart without disturbing the others), if
/// PostgreSQL is installed.
pub fn private_cluster(tag: &str) -> Option<Cluster> {
    cluster()?;
    let bin = find_bin()?;
    Some(start_with(&bin, tag).unwrap_or_else(|e| panic!("a private PostgreSQL: {e}")))
}

fn start_with(bin: &Path, tag: &str) -> Result<Cluster, String> {
    let dir = std::env::temp_dir().join(format!("bloxquarium-pg-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    if is_root() {
        let mut chown = Command::new("chown");
        chown.arg("postgres").arg(&dir);
        run(chown, "chown postgres")?;
    }
    let db = dir.join("db");
    let mut initdb = as_owner(&bin.join("initdb"));
    initdb.arg("-D").arg(&db).args([
        "-A",
        "trust",
        "-U",
        "bq",
        "-E",
        "UTF8",
        "--locale=C",
        "--no-sync",
    ]);
    run(initdb, "initdb")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    pg_ctl_start(bin, &dir, port)?;
    // The watchdog: when this process is gone, stop the cluster and remove its folder.
    let owner = if is_root() {
        "runuser -u postgres -- "
    } else {
        ""
    };
    let script = format!(
        "while [ -d /proc/{pid} ]; do sleep 1; done; \
         {owner}'{pg_ctl}' -D '{db}' stop -m immediate >/dev/null 2>&1; rm -rf '{dir}'",
        pid = std::process::id(),
        pg_ctl = bin.join("pg_ctl").display(),
        db = db.display(),
        dir = dir.display()
    );
    Command::new("setsid")
        .args(["sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("the watchdog: {e}"))?;
    Ok(Cluster {
        port,
        dir,
        bin: bin.to_path_buf(),
        creating: Mutex::new(()),
    })
}

/// Starts the cluster in `dir` on `port` (its log in `dir/log`, its socket in `dir`).
fn pg_ctl_start(bin: &Path, dir: &Path, port: u16) -> Result<(), String> {
    let mut pg_ctl = as_owner(&bin.join("pg_ctl"));
    pg_ctl
        .arg("-D")
        .arg(dir.join("db"))
        .arg("-l")
        .arg(dir.join("log"))
        .args(["-w", "-t", "60", "-o"])
        .arg(format!(
            "-k {} -p {port} -c listen_addresses=127.0.0.1 -c max_connections=400 \
             -c fsync=on -c synchronous_commit=on",
            dir.display()
        ))
        .arg("start");
    run(pg_ctl, "pg_ctl start")
}

impl Cluster {
    /// The URL of the database `name`, created empty if it does not exist yet.
    pub fn database(&self, name: &str) -> String {
        let _one_at_a_time = self.creating.lock().unwrap_or_else(|p| p.into_inner());
        let mut admin = self.admin("postgres");
        match admin.batch_execute(&format!("CREATE DATABASE \"{name}\"")) {
            Ok(()) => {}
            Err(e) if e.code() == Some(&postgres::error::SqlState::DUPLICATE_DATABASE) => {}
            Err(e) => panic!("CREATE DATABASE {name}: {e:?}"),
        }
        self.url(name)
    }

    /// A fresh database named after `tag` and this test's thread.
    pub fn fresh(&self, tag: &str) -> String {
        let name = format!("t_{}_{:?}", tag, std::thread::current().id())
            .to_lowercase()
            .replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "_");
        self.drop_database(&name);
        self.database(&name)
    }

    /// Drops the database `name` (ending its connections).
    pub fn drop_database(&self, name: &str) {
        let _one_at_a_time = self.creating.lock().unwrap_or_else(|p| p.into_inner());
        let mut admin = self.admin("postgres");
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .unwrap_or_else(|e| panic!("DROP DATABASE {name}: {e:?}"));
    }

    /// The URL of database `name` (user `bq`, no password: the cluster trusts local users).
    pub fn url(&self, name: &str) -> String {
        format!("postgres://bq@127.0.0.1:{}/{name}", self.port)
    }

    /// A superuser connection to database `name`.
    pub fn admin(&self, name: &str) -> postgres::Client {
        postgres::Client::connect(
            &format!("host=127.0.0.1 port={} user=bq dbname={name}", self.port),
            postgres::NoTls,
        )
        .unwrap_or_else(|e| panic!("connecting to the test cluster: {e:?}"))
    }

    /// Stops the cluster and starts it again on the same port and data (a database restart).
    pub fn restart(&self) {
        self.stop();
        self.start();
    }

    /// Stops the cluster (fast: open transactions are rolled back, connections dropped).
    pub fn stop(&self) {
        let mut stop = as_owner(&self.bin.join("pg_ctl"));
        stop.arg("-D")
            .arg(self.dir.join("db"))
            .args(["-w", "-t", "60", "-m", "fast", "stop"]);
        run(stop, "pg_ctl stop").unwrap_or_else(|e| panic!("{e}"));
    }

    /// Starts the stopped cluster again.
    pub fn start(&self) {
        pg_ctl_start(&self.bin, &self.dir, self.port).unwrap_or_else(|e| panic!("{e}"));
    }
}

mod backend {
    use std::sync::Arc;

    use bloxquarium::datastore::{
        Backend, BackendError, PostgresBackend, StoreBackend, Table, schema_version,
    };

    use super::cluster;

    #[test]
    fn migrations_apply_once_and_a_newer_incompatible_schema_is_refused() {
        let Some(c) = cluster() else { return };
        let url = c.fresh("migrate");
        let first = PostgresBackend::connect(&url).unwrap();
        // A second server on the same database applies nothing again.
        let second = PostgresBackend::connect(&url).unwrap();
        drop((first, second));
        let mut admin = c.admin(url.rsplit('/').next().unwrap());
        let n: i64 = admin
            .query_one("SELECT count(*) FROM bq_schema", &[])
            .unwrap()
            .get(0);
        assert_eq!(n, i64::from(schema_version()));

        // A newer release added an expanding migration: this build still runs beside it.
        let next = schema_version() + 1;
        admin
            .execute(
                "INSERT INTO bq_schema (version, name, oldest_reader) VALUES ($1, 'a new column', $2)",
                &[&next, &schema_version()],
            )
            .unwrap();
        PostgresBackend::connect(&url).expect("expand-only: still compatible");

        // Then a contracting one: this build is refused, in one line that says what to do.
        admin
            .execute(
                "INSERT INTO bq_schema (version, name, oldest_reader) VALUES ($1, 'drop a column', $1)",
                &[&(next + 1)],
            )
            .unwrap();
        let e = PostgresBackend::connect(&url).err().expect("refused").0;
        assert!(!e.contains('\n'), "{e}");
        assert!(
            e.contains(&format!("needs a release that knows version {}", next + 1)),
            "{e}"
        );
        assert!(
            e.contains(&format!("this build knows up to {}", schema_version())),
            "{e}"
        );
        assert!(!e.contains("password"), "{e}");
    }

    #[test]
    fn a_password_in_the_store_url_is_refused_and_never_echoed() {
        let Some(c) = cluster() else { return };
        let url = format!("postgres://bq:s3cret@127.0.0.1:{}/postgres", c.port);
        let e = PostgresBackend::connect(&url).err().expect("refused").0;
        assert!(e.contains("PGPASSWORD or a PGPASSFILE"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
        // And the binary says so in one line before doing anything else.
        let mut cmd = crate::harness::bin();
        let data = crate::harness::Scratch::new("pg-url-password");
        cmd.args([
            "--data",
            data.path(),
            "--store",
            &url,
            "datastore",
            "list-backups",
        ]);
        let out = crate::harness::output_within(cmd, std::time::Duration::from_secs(60));
        let text = crate::harness::text(&out);
        assert!(!out.status.success(), "{text}");
        assert!(text.contains("PGPASSWORD"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
    }

    #[test]
    fn an_unreachable_database_is_named_in_the_error() {
        // Nothing listens on port 1.
        let e = PostgresBackend::connect("postgres://bq@127.0.0.1:1/game")
            .err()
            .expect("refused")
            .0;
        assert!(e.contains("postgres://bq@127.0.0.1:1/game"), "{e}");
    }

    /// Two connections (two servers) race to take one row in many transactions at once: every
    /// increment lands exactly once, because a serialization failure runs the transaction again.
    #[test]
    fn racing_writers_are_serialized_and_retried_not_lost() {
        let Some(c) = cluster() else { return };
        let url = c.fresh("race");
        let a = Arc::new(StoreBackend::Postgres(Box::new(
            PostgresBackend::connect(&url).unwrap(),
        )));
        let b = Arc::new(StoreBackend::Postgres(Box::new(
            PostgresBackend::connect(&url).unwrap(),
        )));
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let backend = if i % 2 == 0 { a.clone() } else { b.clone() };
                std::thread::spawn(move || {
                    for _ in 0..25 {
                        backend
                            .write(true, |ops| {
                                let n = ops
                                    .get(Table::Meta, b"counter")?
                                    .map_or(0, |v| u64::from_be_bytes(v.try_into().unwrap()));
                                ops.put(Table::Meta, b"counter", &(n + 1).to_be_bytes())?;
                                Ok::<_, BackendError>(())
                            })
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let n = a
            .read(|ops| ops.get(Table::Meta, b"counter"))
            .unwrap()
            .unwrap();
        assert_eq!(u64::from_be_bytes(n.try_into().unwrap()), 200);
    }

    /// The database restarts under a server: the pooled connections are dead, and the next
    /// transaction opens a new one instead of failing.
    #[test]
    fn a_database_restart_costs_no_transaction() {
        let Some(c) = super::private_cluster("restart") else {
            return;
        };
        let url = c.database("game");
        let db = PostgresBackend::connect(&url).unwrap();
        let put = |n: u8| {
            db.write(true, |ops| ops.put(Table::Meta, b"n", &[n]))
                .map_err(|e: BackendError| e.0)
        };
        put(1).unwrap();
        c.restart();
        put(2).expect("the next write after the restart");
        let got = db.read(|ops| ops.get(Table::Meta, b"n")).unwrap();
        assert_eq!(got, Some(vec![2]));
    }

    #[test]
    fn prefix_scans_keep_byte_order_across_the_ff_boundary() {
        let Some(c) = cluster() else { return };
        let url = c.fresh("scan");
        let db = PostgresBackend::connect(&url).unwrap();
        let keys: [&[u8]; 6] = [
            &[1, 0xFF],
            &[1, 0xFF, 0],
            &[2],
            &[1],
            &[1, 0],
            &[0xFF, 0xFF],
        ];
        db.write(true, |ops| {
            for k in keys {
                ops.put(Table::Inbox, k, b"v")?;
            }
            Ok::<_, BackendError>(())
        })
        .unwrap();
        let scan = |p: &[u8]| -> Vec<Vec<u8>> {
            db.read(|ops| ops.scan(Table::Inbox, p))
                .unwrap()
                .into_iter()
                .map(|(k, _)| k)
                .collect()
        };
        assert_eq!(
            scan(&[1]),
            vec![vec![1], vec![1, 0], vec![1, 0xFF], vec![1, 0xFF, 0]]
        );
        assert_eq!(scan(&[1, 0xFF]), vec![vec![1, 0xFF], vec![1, 0xFF, 0]]);
        assert_eq!(scan(&[0xFF]), vec![vec![0xFF, 0xFF]]);
        assert_eq!(scan(&[]).len(), 6);
    }
}

mod servers {
    use bloxquarium::datastore::DataStore;
    use bloxquarium::game::{Aquarium, DataStoreState};

    use crate::harness::{self, Scratch};

    fn server_on(data: &Scratch, keys: &Scratch, url: &str) -> bevy::prelude::App {
        harness::app(&[
            "--data",
            data.path(),
            "--keys",
            keys.path(),
            "--store",
            url,
            "server",
            "--bind",
            "127.0.0.1:0",
        ])
    }

    fn leave(server: &mut bevy::prelude::App, client: &mut bevy::prelude::App, player: u64) {
        client
            .world_mut()
            .resource_mut::<bloxquarium::shutdown::Shutdown>()
            .request(bloxquarium::shutdown::ShutdownReason::Requested(
                "leave".into(),
            ));
        harness::pump_until(&mut [server, client], 300, "save on leave", |a| {
            let s = a[0].world().resource::<DataStoreState>();
            s.profile(player).is_none() && s.busy() == 0
        });
    }

    /// Two servers, each with its own data folder, on one database and one keys folder: a
    /// player plays on the first, leaves, and finds coins and fish on the second.
    #[test]
    fn a_player_moves_between_two_servers_on_one_database() {
        let Some(c) = super::cluster() else { return };
        let url = c.fresh("two_servers");
        let keys = Scratch::new("pg-two-keys");
        let (da, db) = (Scratch::new("pg-two-a"), Scratch::new("pg-two-b"));
        let mut a = server_on(&da, &keys, &url);
        let mut b = server_on(&db, &keys, &url);

        let (mut client, _) = harness::join_loaded(&mut a, &da, 31, "Coral");
        harness::edit_profile(&mut a, 31, |p| {
            p.stats.coins = 777;
            p.fish.push(bloxquarium::game::Fish {
                id: 1,
                species: 2,
                name: "Dory".into(),
                hunger: 0.0,
                from_trade: None,
            });
        });
        leave(&mut a, &mut client, 31);

        // The second server's own token (the same netcode key) and its own load.
        let (_client, _) = harness::join_loaded(&mut b, &db, 31, "Coral");
        let state = b.world().resource::<DataStoreState>();
        let p = &state
            .profile(31)
            .expect("loaded on the second server")
            .profile;
        assert_eq!(p.stats.coins, 777);
        assert_eq!(p.fish.len(), 1);
        assert_eq!(p.fish[0].name, "Dory");
        let held = b
            .world()
            .resource::<DataStore>()
            .peek::<Aquarium>(31)
            .unwrap();
        assert_eq!(held.unwrap().1.stats.coins, 777, "the stored profile too");
    }

    /// A player hops between two live servers: each time they turn up on the other server while
    /// the first still holds their profile, the new server asks the holder over the store's
    /// channel; the holder ends the session, saves and releases; the new server loads. Never two
    /// owners at once, nothing lost (a coin added on each server before each hop), and the
    /// handoff times are printed.
    #[test]
    fn a_player_hops_between_two_live_servers_by_handoff() {
        let Some(c) = super::cluster() else { return };
        let url = c.fresh("hops");
        let keys = Scratch::new("pg-hop-keys");
        let (da, db) = (Scratch::new("pg-hop-a"), Scratch::new("pg-hop-b"));
        let mut servers = [server_on(&da, &keys, &url), server_on(&db, &keys, &url)];
        let scratch = [&da, &db];
        const PLAYER: u64 = 51;
        const HOPS: usize = 12;
        let (first, _) = harness::join_loaded(&mut servers[0], &da, PLAYER, "Finn");
        let mut client = first;
        harness::edit_profile(&mut servers[0], PLAYER, |p| p.stats.coins = 1000);
        let mut times = Vec::new();
        for hop in 0..HOPS {
            let (from, to) = (hop % 2, (hop + 1) % 2);
            harness::edit_profile(&mut servers[from], PLAYER, |p| p.stats.coins += 1);
            let token = harness::issue(&servers[to], PLAYER, "Finn");
            let addr = harness::server_addr(&servers[to]);
            let mut next = harness::client(scratch[to], addr, &token);
            let started = std::time::Instant::now();
            let [a, b] = &mut servers;
            harness::pump_until(
                &mut [a, b, &mut client, &mut next],
                3000,
                &format!("hop {hop}: handed over"),
                |apps| {
                    let live = |i: usize| {
                        apps[i]
                            .world()
                            .resource::<DataStoreState>()
                            .profile(PLAYER)
                            .is_some()
                    };
                    assert!(!(live(0) && live(1)), "hop {hop}: two owners at once");
                    live(to)
                },
            );
            times.push(started.elapsed());
            client = next;
        }
        let state = servers[HOPS % 2].world().resource::<DataStoreState>();
        let coins = state.profile(PLAYER).unwrap().profile.stats.coins;
        assert_eq!(
            coins,
            1000 + HOPS as i64,
            "a coin from every server before every hop"
        );
        let handed: u64 = servers
            .iter()
            .map(|s| s.world().resource::<DataStoreState>().handoffs)
            .sum();
        assert_eq!(handed, HOPS as u64);
        times.sort();
        let pct = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
        eprintln!(
            "handoff over {HOPS} hops: p50 {:?}, p99 {:?} (the tests' pumping included)",
            pct(0.5),
            pct(0.99)
        );
    }

    /// `datastore restore-version` on a shared store while the player plays: the command asks
    /// the server over the channel to end the session (which saves and releases), then
    /// restores.
    #[test]
    fn restoring_a_version_while_the_player_plays_elsewhere_ends_their_session_first() {
        let Some(c) = super::cluster() else { return };
        let url = c.fresh("restore_live");
        let keys = Scratch::new("pg-rv-keys");
        let da = Scratch::new("pg-rv-a");
        let mut a = server_on(&da, &keys, &url);
        let (mut client, _) = harness::join_loaded(&mut a, &da, 61, "Pearl");
        harness::edit_profile(&mut a, 61, |p| p.stats.coins = 500);
        leave(&mut a, &mut client, 61); // version 1: 500 coins
        let (mut client, _) = harness::join_loaded(&mut a, &da, 61, "Pearl");
        harness::edit_profile(&mut a, 61, |p| p.stats.coins = 9);
        let mut cmd = harness::bin();
        cmd.args(["--data", da.path(), "--keys", keys.path(), "--store", &url])
            .args([
                "datastore",
                "restore-version",
                "--player",
                "61",
                "--version",
                "1",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut status = None;
        harness::pump_until(
            &mut [&mut a, &mut client],
            20_000,
            "the command ends",
            |_| {
                status = child.try_wait().unwrap();
                status.is_some()
            },
        );
        let out = child.wait_with_output().unwrap();
        let text = harness::text(&out);
        assert!(status.unwrap().success(), "{text}");
        assert!(text.contains("version 1 restored as version"), "{text}");
        assert!(
            a.world().resource::<DataStoreState>().profile(61).is_none(),
            "the session ended"
        );
        let (_, p) = a
            .world()
            .resource::<DataStore>()
            .peek::<Aquarium>(61)
            .unwrap()
            .unwrap();
        assert_eq!(p.stats.coins, 500, "the restored version is current");
    }

    /// The database goes away under a server with players and comes back: the players keep
    /// playing, the auto-saves fail and are retried, and once the database is back every
    /// change is saved without anyone touching anything.
    #[test]
    fn a_database_outage_under_players_loses_nothing_and_recovers_by_itself() {
        let Some(c) = super::private_cluster("outage") else {
            return;
        };
        let url = c.database("game");
        let (d, keys) = (Scratch::new("pg-outage"), Scratch::new("pg-outage-keys"));
        let cfg = harness::config_dir(&d, r#"{"datastore.autosaveInterval": 5}"#);
        let mut server =
            harness::server_with_config_args(&d, &cfg, &["--store", &url, "--keys", keys.path()]);
        let players = [71u64, 72, 73, 74];
        let mut clients: Vec<_> = players
            .iter()
            .map(|&p| harness::join_loaded(&mut server, &d, p, "Reef").0)
            .collect();
        let stored = |server: &bevy::prelude::App, p: u64| {
            server
                .world()
                .resource::<DataStore>()
                .peek::<Aquarium>(p)
                .ok()
                .flatten()
                .map(|(_, prof)| prof.stats.coins)
        };
        let mut pump_until =
            |server: &mut bevy::prelude::App,
             what: &str,
             frames: usize,
             done: &dyn Fn(&bevy::prelude::App) -> bool| {
                let mut apps: Vec<&mut bevy::prelude::App> = vec![server];
                apps.extend(clients.iter_mut());
                harness::pump_until(&mut apps, frames, what, |a| done(a[0]));
            };
        for (i, &p) in players.iter().enumerate() {
            harness::edit_profile(&mut server, p, |prof| prof.stats.coins = 100 + i as i64);
        }
        pump_until(&mut server, "saved before the outage", 600, &|s| {
            players
                .iter()
                .enumerate()
                .all(|(i, &p)| stored(s, p) == Some(100 + i as i64))
        });

        c.stop();
        for (i, &p) in players.iter().enumerate() {
            harness::edit_profile(&mut server, p, |prof| prof.stats.coins = 200 + i as i64);
        }
        // Five seconds of play without a database: every player stays.
        pump_until(&mut server, "failed saves retried", 600, &|s| {
            s.world().resource::<DataStoreState>().save_retries >= players.len() as u64
        });
        for &p in &players {
            assert!(
                server
                    .world()
                    .resource::<DataStoreState>()
                    .profile(p)
                    .is_some(),
                "player {p} still playing"
            );
        }

        c.start();
        pump_until(&mut server, "saved after the outage", 3000, &|s| {
            players
                .iter()
                .enumerate()
                .all(|(i, &p)| stored(s, p) == Some(200 + i as i64))
        });
        for &p in &players {
            assert!(
                server
                    .world()
                    .resource::<DataStoreState>()
                    .profile(p)
                    .is_some()
            );
        }
    }

    /// A server whose data key is not the store's is refused at start, in one line naming
    /// both keys and the fix.
    #[test]
    fn a_server_with_another_data_key_is_refused() {
        let Some(c) = super::cluster() else { return };
        let url = c.fresh("other_key");
        let (k1, k2, data) = (
            Scratch::new("pg-key-1"),
            Scratch::new("pg-key-2"),
            Scratch::new("pg-key-data"),
        );
        let paths = |k: &Scratch| {
            bloxquarium::process::Paths::new(&data.0, &data.0, &data.0)
                .with_store(Some(url.clone()))
                .with_keys(Some(&k.0))
        };
        let config = bloxquarium::config::load_server(
            std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config")),
            &bloxquarium::game::KEYS,
        )
        .unwrap();
        bloxquarium::datastore::open_at::<Aquarium>(&paths(&k1), &config).unwrap();
        let e = bloxquarium::datastore::open_at::<Aquarium>(&paths(&k2), &config)
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains("--keys"), "{e}");
        assert!(
            e.contains(&k2.0.join("data.key").display().to_string()),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
        // The same key in a copied folder is the same key.
        let k3 = Scratch::new("pg-key-3");
        std::fs::copy(k1.0.join("data.key"), k3.0.join("data.key")).unwrap();
        bloxquarium::datastore::open_at::<Aquarium>(&paths(&k3), &config).unwrap();
    }
}
