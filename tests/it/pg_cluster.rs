//! A throwaway PostgreSQL cluster for tests and benchmarks (included by `postgres.rs` and by
//! `benches/datastore.rs`).
//!
//! One cluster per process, from the installed binaries (`initdb` + `pg_ctl`, as the `postgres`
//! user when running as root), on a free port of 127.0.0.1, with fsync and synchronous commit
//! on; a watchdog stops it and removes its folder when this process exits, however it exits.
//! Without the binaries [`cluster`] says so and returns `None`, unless
//! `BLOXQUARIUM_REQUIRE_POSTGRES=1` (which `.ci/run` sets): then it fails.

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

    /// Turns TLS on with this certificate and key, refuses every connection over TCP without
    /// it, and restarts. (Create the databases first: [`Cluster::admin`] speaks plain TCP.)
    pub fn require_tls(&self, cert_pem: &str, key_pem: &str) {
        let db = self.dir.join("db");
        let write = |name: &str, text: &str, mode: u32| {
            let path = db.join(name);
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if is_root() {
                let mut chown = Command::new("chown");
                chown.arg("postgres").arg(&path);
                run(chown, "chown postgres").unwrap_or_else(|e| panic!("{e}"));
            }
        };
        write("server.crt", cert_pem, 0o644);
        write("server.key", key_pem, 0o600);
        write(
            "pg_hba.conf",
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
            0o600,
        );
        let conf = db.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap_or_default();
        text.push_str("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        std::fs::write(&conf, text).unwrap_or_else(|e| panic!("{}: {e}", conf.display()));
        self.restart();
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
