//! The PostgreSQL backend: many servers on one store.
//!
//! Chosen with `--store postgres://…` (or `BLOXQUARIUM_STORE`), never from a config file. The
//! client is rust-postgres (`postgres`, the synchronous face of `tokio-postgres`): the most used
//! PostgreSQL client in Rust, maintained, pure Rust (no libpq to install), and synchronous, which
//! fits this store's work on Bevy's IO task pool (a transaction is a closure run on one pooled
//! connection; the tick never waits on it).
//!
//! Each [`Table`] is one table `bq_<name> (key bytea primary key, value bytea not null)`. A write
//! transaction is `SERIALIZABLE` and is run again from scratch on a serialization failure (that
//! is how two servers racing for one session lock end: the second commit fails, runs again and
//! sees the first one's lock). `durable = false` maps to `SET LOCAL synchronous_commit = off`.
//! Reads run `READ ONLY, REPEATABLE READ` (one snapshot).
//!
//! **Passwords** never come from the URL (a command line is visible to every user of the
//! machine): `PGPASSWORD`, else the `PGPASSFILE` (default `~/.pgpass`) line that matches host,
//! port, database and user. **TLS** when the URL says `sslmode=require`, verified against the
//! certificate authority in `PGSSLROOTCERT` (rustls with ring); otherwise plain TCP or a Unix
//! socket.
//!
//! **Migrations** are versioned ([`MIGRATIONS`]) and applied at start under an advisory lock, so
//! servers starting together apply each once. Each is written expand-then-contract: a migration
//! that only adds (tables, columns with defaults) leaves `oldest_reader` where it was, so the
//! previous release keeps running beside the new one during a rolling upgrade; one that removes
//! or changes what an older release reads raises `oldest_reader` to its own version. A database
//! whose `oldest_reader` is newer than this build's newest migration is refused with one line.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

use postgres::error::SqlState;
use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, IsolationLevel, NoTls, Statement, Transaction};

use super::backend::{
    ALL, Backend, BackendError, Entries, Faults, RankRow, ReadOps, RedbBackend, Table, WriteOps,
};

/// One schema change.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Its number; applied in order.
    pub version: i32,
    /// What it does, in a few words.
    pub name: &'static str,
    /// The oldest schema version a release must know to run on a database with this migration
    /// applied (its own version for a contracting change, the previous value for an expanding
    /// one).
    pub oldest_reader: i32,
    /// The statements.
    pub sql: &'static str,
}

/// Every migration this build knows, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "byte tables",
        oldest_reader: 1,
        sql: "CREATE TABLE bq_profiles (key bytea PRIMARY KEY, value bytea NOT NULL);
              CREATE TABLE bq_locks (key bytea PRIMARY KEY, value bytea NOT NULL);
              CREATE TABLE bq_versions (key bytea PRIMARY KEY, value bytea NOT NULL);
              CREATE TABLE bq_blobs (key bytea PRIMARY KEY, value bytea NOT NULL);
              CREATE TABLE bq_inbox (key bytea PRIMARY KEY, value bytea NOT NULL);
              CREATE TABLE bq_meta (key bytea PRIMARY KEY, value bytea NOT NULL);
              CREATE TABLE bq_erasures (key bytea PRIMARY KEY, value bytea NOT NULL);
              CREATE TABLE bq_accounts (key bytea PRIMARY KEY, value bytea NOT NULL);",
    },
    // Expanding: a release that knows only version 1 never reads it and keeps running.
    Migration {
        version: 2,
        name: "server directory",
        oldest_reader: 1,
        sql: "CREATE TABLE bq_servers (
                  id text PRIMARY KEY,
                  address text NOT NULL,
                  players integer NOT NULL,
                  capacity integer NOT NULL,
                  started_at timestamptz NOT NULL DEFAULT now(),
                  heartbeat timestamptz NOT NULL DEFAULT now());",
    },
    // Expanding: written beside each save; a release that knows only version 2 never reads it.
    Migration {
        version: 3,
        name: "leaderboard",
        oldest_reader: 1,
        sql: "CREATE TABLE bq_ranks (
                  player bigint PRIMARY KEY,
                  name text NOT NULL,
                  score bigint NOT NULL);
              CREATE INDEX bq_ranks_order ON bq_ranks (score DESC, player);",
    },
    // Expanding: every server's audit records; a release that knows only version 3 never
    // reads it.
    Migration {
        version: 4,
        name: "audit log",
        oldest_reader: 1,
        sql: "CREATE TABLE bq_audit (key bytea PRIMARY KEY, value bytea NOT NULL);",
    },
];

/// The newest schema version this build knows.
pub fn schema_version() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Any advisory-lock key of ours: "bqschema" in ASCII.
const MIGRATION_LOCK: i64 = 0x6271_7363_6865_6d61;

/// Connections kept idle for reuse.
const POOL_IDLE: usize = 16;

/// Runs of one write transaction before a serialization conflict is reported.
const CONFLICT_RUNS: u32 = 30;

impl Table {
    fn pg(self) -> &'static str {
        match self {
            Table::Profiles => "bq_profiles",
            Table::Locks => "bq_locks",
            Table::Versions => "bq_versions",
            Table::Blobs => "bq_blobs",
            Table::Inbox => "bq_inbox",
            Table::Meta => "bq_meta",
            Table::Erasures => "bq_erasures",
            Table::Accounts => "bq_accounts",
            Table::Audit => "bq_audit",
        }
    }
}

/// A PostgreSQL error with its SQLSTATE and the server's message.
fn pg_err(e: &postgres::Error) -> BackendError {
    match e.as_db_error() {
        Some(db) => BackendError(format!("PostgreSQL {}: {}", db.code().code(), db.message())),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            BackendError(format!("PostgreSQL: {text}"))
        }
    }
}

fn is_conflict(e: &postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// Where a store URL points, without its secrets (for messages and logs).
pub fn describe(config: &postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            postgres::config::Host::Tcp(name) => name.clone(),
            postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        config.get_user().unwrap_or("?"),
        config.get_dbname().unwrap_or("?")
    )
}

/// One pooled connection and its prepared statements.
struct Conn {
    client: Client,
    statements: HashMap<String, Statement>,
}

/// How to open a connection: the pool, the channel's listener and the jobs election each
/// dial with it.
#[derive(Clone)]
struct Dialer {
    config: postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

impl Dialer {
    fn dial(&self) -> Result<Client, BackendError> {
        match &self.tls {
            Some(tls) => self.config.connect(tls.clone()),
            None => self.config.connect(NoTls),
        }
        .map_err(|e| pg_err(&e))
    }
}

/// The backend: a pool of connections to one database.
pub struct PostgresBackend {
    dialer: Dialer,
    idle: Mutex<Vec<Conn>>,
    faults: Faults,
    shown: String,
}

/// The password for a connection from `PGPASSWORD` or a pgpass file, as libpq finds it.
fn password_for(config: &postgres::Config) -> Result<Option<String>, BackendError> {
    if let Ok(p) = std::env::var("PGPASSWORD") {
        return Ok(Some(p));
    }
    let file = match std::env::var_os("PGPASSFILE") {
        Some(f) => PathBuf::from(f),
        None => match std::env::var_os("HOME") {
            Some(home) => PathBuf::from(home).join(".pgpass"),
            None => return Ok(None),
        },
    };
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(BackendError(format!("{}: {e}", file.display()))),
    };
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "localhost".into(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let db = config.get_dbname().or(config.get_user()).unwrap_or("");
    let user = config.get_user().unwrap_or("");
    Ok(pgpass_lookup(&text, [&host, &port, db, user]))
}

/// The password of the first pgpass line whose host, port, database and user match (`*`
/// matches anything; `\:` and `\\` are escapes).
pub fn pgpass_lookup(text: &str, wanted: [&str; 4]) -> Option<String> {
    for line in text.lines() {
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => field.extend(chars.next()),
                ':' if fields.len() < 4 => fields.push(std::mem::take(&mut field)),
                c => field.push(c),
            }
        }
        fields.push(field);
        if fields.len() != 5 {
            continue;
        }
        if fields[..4]
            .iter()
            .zip(wanted)
            .all(|(f, w)| f == "*" || f == w)
        {
            return fields.pop();
        }
    }
    None
}

/// A rustls client configuration trusting the certificates in `PGSSLROOTCERT`.
fn tls_config() -> Result<tokio_postgres_rustls::MakeRustlsConnect, BackendError> {
    let Some(file) = std::env::var_os("PGSSLROOTCERT") else {
        return Err(BackendError(
            "the store URL asks for TLS (sslmode=require): set PGSSLROOTCERT to the PEM file of \
             the database's certificate authority"
                .into(),
        ));
    };
    let file = PathBuf::from(file);
    let pem = std::fs::read(&file).map_err(|e| BackendError(format!("{}: {e}", file.display())))?;
    let mut roots = rustls::RootCertStore::empty();
    let mut reader = std::io::BufReader::new(pem.as_slice());
    for cert in rustls::pki_types::pem::PemObject::pem_reader_iter(&mut reader) {
        let cert: rustls::pki_types::CertificateDer<'static> =
            cert.map_err(|e| BackendError(format!("{}: {e}", file.display())))?;
        roots
            .add(cert)
            .map_err(|e| BackendError(format!("{}: {e}", file.display())))?;
    }
    if roots.is_empty() {
        return Err(BackendError(format!(
            "{}: no certificate in the file",
            file.display()
        )));
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| BackendError(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// Parses a store URL (or libpq key=value string) into a connection configuration: no password
/// in it, the password from the environment, TLS only when asked for.
pub fn parse_url(url: &str) -> Result<postgres::Config, BackendError> {
    let mut config: postgres::Config = url
        .parse()
        .map_err(|e: postgres::Error| BackendError(format!("the store URL: {e}")))?;
    if config.get_password().is_some() {
        return Err(BackendError(
            "the store URL carries a password: give it in PGPASSWORD or a PGPASSFILE instead \
             (a command line is visible to every user of the machine)"
                .into(),
        ));
    }
    if config.get_user().is_none() {
        let user = std::env::var("PGUSER")
            .or_else(|_| std::env::var("USER"))
            .map_err(|_| {
                BackendError("the store URL names no user (and PGUSER is unset)".into())
            })?;
        config.user(&user);
    }
    if config.get_dbname().is_none()
        && let Ok(db) = std::env::var("PGDATABASE")
    {
        config.dbname(&db);
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    if config.get_ssl_mode() != postgres::config::SslMode::Require {
        config.ssl_mode(postgres::config::SslMode::Disable);
    }
    config.application_name("bloxquarium");
    if let Some(password) = password_for(&config)? {
        config.password(password);
    }
    Ok(config)
}

/// Checks a store URL without connecting: it parses, names no password, and its password and
/// TLS settings can be found.
pub fn check_store_url(url: &str) -> Result<(), BackendError> {
    let config = parse_url(url)?;
    if config.get_ssl_mode() == postgres::config::SslMode::Require {
        tls_config()?;
    }
    Ok(())
}

impl PostgresBackend {
    /// Connects to the database at `url` and brings its schema up to date (refusing a newer,
    /// incompatible one).
    pub fn connect(url: &str) -> Result<Self, BackendError> {
        let config = parse_url(url)?;
        let tls = match config.get_ssl_mode() {
            postgres::config::SslMode::Require => Some(tls_config()?),
            _ => None,
        };
        let backend = Self {
            shown: describe(&config),
            dialer: Dialer { config, tls },
            idle: Mutex::new(Vec::new()),
            faults: Faults::default(),
        };
        let mut conn = backend.checkout()?;
        backend.migrate(&mut conn.client)?;
        backend.give_back(conn);
        Ok(backend)
    }

    /// Where this backend points, without secrets.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Fault injection for failure drills and tests, as [`RedbBackend::inject_write_failures`].
    pub fn inject_write_failures(&self, n: u32) {
        self.faults.set(n);
    }

    fn open_client(&self) -> Result<Client, BackendError> {
        self.dialer
            .dial()
            .map_err(|e| BackendError(format!("{}: {}", self.shown, e.0)))
    }

    fn checkout(&self) -> Result<Conn, BackendError> {
        let pooled = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        match pooled {
            Some(conn) if !conn.client.is_closed() => Ok(conn),
            _ => Ok(Conn {
                client: self.open_client()?,
                statements: HashMap::new(),
            }),
        }
    }

    fn give_back(&self, conn: Conn) {
        if conn.client.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < POOL_IDLE
        {
            idle.push(conn);
        }
    }

    /// Forgets every idle connection (after one was found dead, the others are too).
    fn drop_idle(&self) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }

    /// Applies the migrations this database lacks, under an advisory lock; refuses a database
    /// that needs a newer release.
    fn migrate(&self, client: &mut Client) -> Result<(), BackendError> {
        let mut tx = client.transaction().map_err(|e| pg_err(&e))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .map_err(|e| pg_err(&e))?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS bq_schema (
                 version integer PRIMARY KEY,
                 name text NOT NULL,
                 oldest_reader integer NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .map_err(|e| pg_err(&e))?;
        let rows = tx
            .query("SELECT version, oldest_reader FROM bq_schema", &[])
            .map_err(|e| pg_err(&e))?;
        let applied: Vec<(i32, i32)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let newest = applied.iter().map(|a| a.0).max().unwrap_or(0);
        let needs = applied.iter().map(|a| a.1).max().unwrap_or(0);
        let ours = schema_version();
        if needs > ours {
            return Err(BackendError(format!(
                "{}: the database's schema is version {newest} and needs a release that knows \
                 version {needs}; this build knows up to {ours}: run a newer bloxquarium",
                self.shown
            )));
        }
        for m in MIGRATIONS {
            if applied.iter().any(|a| a.0 == m.version) {
                continue;
            }
            tx.batch_execute(m.sql).map_err(|e| {
                BackendError(format!(
                    "migration {} ({}): {}",
                    m.version,
                    m.name,
                    pg_err(&e).0
                ))
            })?;
            tx.execute(
                "INSERT INTO bq_schema (version, name, oldest_reader) VALUES ($1, $2, $3)",
                &[&m.version, &m.name, &m.oldest_reader],
            )
            .map_err(|e| pg_err(&e))?;
            tracing::info!(
                version = m.version,
                "applied migration {:?} to {}",
                m.name,
                self.shown
            );
        }
        if newest > ours {
            tracing::warn!(
                "{}: the database's schema is version {newest}, newer than this build's {ours}, \
                 and still compatible with it (a rolling upgrade in progress?)",
                self.shown
            );
        }
        tx.commit().map_err(|e| pg_err(&e))
    }

    /// Copies a backup file (see [`Backend::backup_to`]) into this database, which must hold
    /// no data yet. One transaction: all of it or nothing.
    pub fn restore_from(&self, file: &Path) -> Result<usize, BackendError> {
        let source = RedbBackend::open_existing(file)?;
        let mut rows = Vec::new();
        let ranks = source.read(|ops| {
            for table in ALL {
                for (k, v) in ops.scan(table, &[])? {
                    rows.push((table, k, v));
                }
            }
            ops.top_ranks(usize::MAX)
        })?;
        let n = rows.len();
        self.write(true, |ops| {
            for table in ALL {
                if !ops.scan(table, &[])?.is_empty() {
                    return Err(BackendError(format!(
                        "{}: the database already holds data (table {}): restore only into an \
                         empty database",
                        self.shown,
                        table.pg()
                    )));
                }
            }
            for (table, k, v) in &rows {
                ops.put(*table, k, v)?;
            }
            for r in &ranks {
                ops.set_rank(r.player, Some(&r.name), r.score)?;
            }
            Ok(())
        })?;
        Ok(n)
    }
}

/// A transaction's view. Writes are buffered and sent at commit, a few statements per table
/// for the whole transaction ([`PgOps::flush`]); rows read in bulk ahead of time
/// ([`ReadOps::prefetch`]) are answered from memory. So a group commit of many saves costs a
/// few round trips, not several per save.
struct PgOps<'a, 'c> {
    tx: RefCell<Transaction<'c>>,
    statements: &'a RefCell<&'a mut HashMap<String, Statement>>,
    /// The serialization failure that aborted this transaction, if one did.
    conflict: RefCell<Option<postgres::Error>>,
    overlay: RefCell<Overlay>,
}

/// What a transaction knows of rows beyond the database: rows it fetched ahead and rows it
/// wrote (not yet sent).
#[derive(Default)]
struct Overlay {
    /// Per table: key → value (`None`: absent or deleted), as this transaction sees it.
    rows: HashMap<Table, std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>>>,
    /// Per table: prefixes whose every row is in `rows`.
    complete: HashMap<Table, Vec<Vec<u8>>>,
    /// Per table: keys written and not yet sent.
    dirty: HashMap<Table, std::collections::BTreeSet<Vec<u8>>>,
    /// Leaderboard rows written and not yet sent: player → (name, score), or `None`: deleted.
    ranks: std::collections::BTreeMap<u64, Option<(Option<String>, i64)>>,
}

impl<'a, 'c> PgOps<'a, 'c> {
    fn new(
        tx: Transaction<'c>,
        statements: &'a RefCell<&'a mut HashMap<String, Statement>>,
    ) -> Self {
        Self {
            tx: RefCell::new(tx),
            statements,
            conflict: RefCell::new(None),
            overlay: RefCell::new(Overlay::default()),
        }
    }
}

/// The smallest key greater than every key that starts with `prefix` (none when the prefix is
/// empty or all 0xFF).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

impl PgOps<'_, '_> {
    fn statement(&self, sql: String) -> Result<Statement, BackendError> {
        if let Some(s) = self.statements.borrow().get(&sql) {
            return Ok(s.clone());
        }
        let prepared = self
            .tx
            .borrow_mut()
            .prepare(&sql)
            .map_err(|e| self.failed(e))?;
        self.statements.borrow_mut().insert(sql, prepared.clone());
        Ok(prepared)
    }

    fn failed(&self, e: postgres::Error) -> BackendError {
        let out = pg_err(&e);
        if is_conflict(&e) {
            *self.conflict.borrow_mut() = Some(e);
        }
        out
    }
}

impl ReadOps for PgOps<'_, '_> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        if let Some(known) = self
            .overlay
            .borrow()
            .rows
            .get(&table)
            .and_then(|r| r.get(key))
        {
            return Ok(known.clone());
        }
        let s = self.statement(format!("SELECT value FROM {} WHERE key = $1", table.pg()))?;
        let row = self
            .tx
            .borrow_mut()
            .query_opt(&s, &[&key])
            .map_err(|e| self.failed(e))?;
        Ok(row.map(|r| r.get::<_, Vec<u8>>(0)))
    }

    fn scan(&self, table: Table, prefix: &[u8]) -> Result<Entries, BackendError> {
        let known_whole = self
            .overlay
            .borrow()
            .complete
            .get(&table)
            .is_some_and(|c| c.iter().any(|p| prefix.starts_with(p)));
        let mut merged: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = if known_whole {
            Default::default()
        } else {
            let rows = match prefix_end(prefix) {
                Some(end) => {
                    let s = self.statement(format!(
                        "SELECT key, value FROM {} WHERE key >= $1 AND key < $2 ORDER BY key",
                        table.pg()
                    ))?;
                    self.tx.borrow_mut().query(&s, &[&prefix, &end])
                }
                None => {
                    let s = self.statement(format!(
                        "SELECT key, value FROM {} WHERE key >= $1 ORDER BY key",
                        table.pg()
                    ))?;
                    self.tx.borrow_mut().query(&s, &[&prefix])
                }
            }
            .map_err(|e| self.failed(e))?;
            rows.iter().map(|r| (r.get(0), r.get(1))).collect()
        };
        // What this transaction knows wins: rows it wrote (or deleted), and rows it fetched.
        if let Some(rows) = self.overlay.borrow().rows.get(&table) {
            for (k, v) in rows.range::<[u8], _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            )) {
                if !k.starts_with(prefix) {
                    break;
                }
                match v {
                    Some(v) => merged.insert(k.clone(), v.clone()),
                    None => merged.remove(k),
                };
            }
        }
        Ok(merged.into_iter().collect())
    }

    fn prefetch(&self, table: Table, keys: &[Vec<u8>]) -> Result<(), BackendError> {
        let wanted: Vec<&[u8]> = {
            let overlay = self.overlay.borrow();
            let known = overlay.rows.get(&table);
            keys.iter()
                .filter(|k| !known.is_some_and(|r| r.contains_key(k.as_slice())))
                .map(Vec::as_slice)
                .collect()
        };
        if wanted.is_empty() {
            return Ok(());
        }
        let s = self.statement(format!(
            "SELECT key, value FROM {} WHERE key = ANY($1)",
            table.pg()
        ))?;
        let found = self
            .tx
            .borrow_mut()
            .query(&s, &[&wanted])
            .map_err(|e| self.failed(e))?;
        let mut overlay = self.overlay.borrow_mut();
        let rows = overlay.rows.entry(table).or_default();
        for k in wanted {
            rows.entry(k.to_vec()).or_insert(None);
        }
        for r in &found {
            let (k, v): (Vec<u8>, Vec<u8>) = (r.get(0), r.get(1));
            // Fetched rows are entered before any write of them (see above).
            rows.insert(k, Some(v));
        }
        Ok(())
    }

    fn prefetch_prefixes(&self, table: Table, prefixes: &[Vec<u8>]) -> Result<(), BackendError> {
        let (mut lo, mut hi): (Vec<&[u8]>, Vec<Vec<u8>>) = (Vec::new(), Vec::new());
        {
            let overlay = self.overlay.borrow();
            let complete = overlay.complete.get(&table);
            let dirty = overlay.dirty.get(&table);
            for p in prefixes {
                // A prefix with writes of this transaction in it is left to `scan`, which
                // merges them with what the database has.
                let written = dirty.is_some_and(|d| d.iter().any(|k| k.starts_with(p)));
                let known = complete.is_some_and(|c| c.iter().any(|c| p.starts_with(c)));
                if let (false, false, Some(end)) = (written, known, prefix_end(p)) {
                    lo.push(p.as_slice());
                    hi.push(end);
                }
            }
        }
        if lo.is_empty() {
            return Ok(());
        }
        let s = self.statement(format!(
            "SELECT t.key, t.value FROM unnest($1::bytea[], $2::bytea[]) AS r(lo, hi) \
             JOIN {} t ON t.key >= r.lo AND t.key < r.hi",
            table.pg()
        ))?;
        let found = self
            .tx
            .borrow_mut()
            .query(&s, &[&lo, &hi])
            .map_err(|e| self.failed(e))?;
        let mut overlay = self.overlay.borrow_mut();
        let rows = overlay.rows.entry(table).or_default();
        for r in &found {
            let (k, v): (Vec<u8>, Vec<u8>) = (r.get(0), r.get(1));
            rows.entry(k).or_insert(Some(v));
        }
        overlay
            .complete
            .entry(table)
            .or_default()
            .extend(lo.into_iter().map(<[u8]>::to_vec));
        Ok(())
    }

    fn top_ranks(&self, n: usize) -> Result<Vec<RankRow>, BackendError> {
        self.flush_ranks()?;
        let s = self.statement(
            "SELECT player, name, score FROM bq_ranks ORDER BY score DESC, player LIMIT $1".into(),
        )?;
        let limit = i64::try_from(n).unwrap_or(i64::MAX);
        let rows = self
            .tx
            .borrow_mut()
            .query(&s, &[&limit])
            .map_err(|e| self.failed(e))?;
        Ok(rows.iter().map(rank_of_row).collect())
    }

    fn rank_row(&self, player: u64) -> Result<Option<RankRow>, BackendError> {
        self.flush_ranks()?;
        let s =
            self.statement("SELECT player, name, score FROM bq_ranks WHERE player = $1".into())?;
        let row = self
            .tx
            .borrow_mut()
            .query_opt(&s, &[&(player as i64)])
            .map_err(|e| self.failed(e))?;
        Ok(row.as_ref().map(rank_of_row))
    }

    fn clock_ms(&self) -> Result<Option<u64>, BackendError> {
        let s =
            self.statement("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint".into())?;
        let row = self
            .tx
            .borrow_mut()
            .query_one(&s, &[])
            .map_err(|e| self.failed(e))?;
        Ok(Some(row.get::<_, i64>(0).max(0) as u64))
    }

    fn ranked_above(&self, score: i64) -> Result<u64, BackendError> {
        self.flush_ranks()?;
        let s = self.statement("SELECT count(*) FROM bq_ranks WHERE score > $1".into())?;
        let row = self
            .tx
            .borrow_mut()
            .query_one(&s, &[&score])
            .map_err(|e| self.failed(e))?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }
}

fn rank_of_row(r: &postgres::Row) -> RankRow {
    RankRow {
        player: r.get::<_, i64>(0) as u64,
        name: r.get(1),
        score: r.get(2),
    }
}

impl PgOps<'_, '_> {
    /// Sends the buffered writes: per table one upsert of every row written and one delete of
    /// every row deleted; then the leaderboard's.
    fn flush(&self) -> Result<(), BackendError> {
        let mut dirty: Vec<_> = std::mem::take(&mut self.overlay.borrow_mut().dirty)
            .into_iter()
            .collect();
        // The lock rows go first, so that the profiles' fence (below) compares with the lock
        // rows as this transaction leaves them.
        dirty.sort_by_key(|(table, _)| *table != Table::Locks);
        for (table, keys) in dirty {
            let (mut put_k, mut put_v, mut del) = (Vec::new(), Vec::new(), Vec::new());
            {
                let overlay = self.overlay.borrow();
                let rows = overlay.rows.get(&table);
                for k in keys {
                    match rows.and_then(|r| r.get(&k)) {
                        Some(Some(v)) => {
                            put_k.push(k);
                            put_v.push(v.clone());
                        }
                        _ => del.push(k),
                    }
                }
            }
            if !del.is_empty() {
                let s =
                    self.statement(format!("DELETE FROM {} WHERE key = ANY($1)", table.pg()))?;
                self.tx
                    .borrow_mut()
                    .execute(&s, &[&del])
                    .map_err(|e| self.failed(e))?;
            }
            if table == Table::Profiles && !put_k.is_empty() {
                self.put_profiles_fenced(put_k, put_v)?;
            } else if !put_k.is_empty() {
                let s = self.statement(format!(
                    "INSERT INTO {} (key, value) SELECT * FROM unnest($1::bytea[], $2::bytea[]) \
                     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                    table.pg()
                ))?;
                self.tx
                    .borrow_mut()
                    .execute(&s, &[&put_k, &put_v])
                    .map_err(|e| self.failed(e))?;
            }
        }
        self.flush_ranks()
    }

    /// Writes profile rows, each **fenced in the same statement**: a row is written only if
    /// its player's lock row is what this transaction read (and, for a save, checked: owner and
    /// fencing token) or wrote. A row whose lock changed meanwhile is not written, and the whole
    /// transaction fails. Under the serializable isolation every write transaction uses, a
    /// concurrent takeover already makes one of the two fail at commit; the fence keeps that
    /// true inside the statement itself. Rows whose lock row the transaction never read (an
    /// erasure's, an admin's transaction over stored profiles) are not fenced.
    fn put_profiles_fenced(
        &self,
        keys: Vec<Vec<u8>>,
        values: Vec<Vec<u8>>,
    ) -> Result<(), BackendError> {
        let (locks, fenced): (Vec<Option<Vec<u8>>>, Vec<bool>) = {
            let overlay = self.overlay.borrow();
            let known = overlay.rows.get(&Table::Locks);
            keys.iter()
                .map(|k| match known.and_then(|r| r.get(k)) {
                    Some(lock) => (lock.clone(), true),
                    None => (None, false),
                })
                .unzip()
        };
        let s = self.statement(format!(
            "INSERT INTO {profiles} (key, value) \
             SELECT u.k, u.v FROM unnest($1::bytea[], $2::bytea[], $3::bytea[], $4::bool[]) \
               AS u(k, v, lock, fenced) \
             WHERE NOT u.fenced \
               OR (SELECT l.value FROM {locks} l WHERE l.key = u.k) IS NOT DISTINCT FROM u.lock \
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            profiles = Table::Profiles.pg(),
            locks = Table::Locks.pg(),
        ))?;
        let written = self
            .tx
            .borrow_mut()
            .execute(&s, &[&keys, &values, &locks, &fenced])
            .map_err(|e| self.failed(e))?;
        if written != keys.len() as u64 {
            return Err(BackendError(format!(
                "{} of {} profile writes were fenced off: a session lock changed under them",
                keys.len() as u64 - written,
                keys.len()
            )));
        }
        Ok(())
    }

    fn flush_ranks(&self) -> Result<(), BackendError> {
        let ranks = std::mem::take(&mut self.overlay.borrow_mut().ranks);
        if ranks.is_empty() {
            return Ok(());
        }
        let (mut named, mut names, mut named_scores) = (Vec::new(), Vec::new(), Vec::new());
        let (mut unnamed, mut unnamed_scores, mut gone) = (Vec::new(), Vec::new(), Vec::new());
        for (player, row) in ranks {
            let player = player as i64;
            match row {
                Some((Some(name), score)) => {
                    named.push(player);
                    names.push(name);
                    named_scores.push(score);
                }
                Some((None, score)) => {
                    unnamed.push(player);
                    unnamed_scores.push(score);
                }
                None => gone.push(player),
            }
        }
        if !gone.is_empty() {
            let s = self.statement("DELETE FROM bq_ranks WHERE player = ANY($1)".into())?;
            self.tx
                .borrow_mut()
                .execute(&s, &[&gone])
                .map_err(|e| self.failed(e))?;
        }
        if !named.is_empty() {
            let s = self.statement(
                "INSERT INTO bq_ranks (player, name, score) \
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[]) \
                 ON CONFLICT (player) DO UPDATE SET score = EXCLUDED.score, name = EXCLUDED.name"
                    .into(),
            )?;
            self.tx
                .borrow_mut()
                .execute(&s, &[&named, &names, &named_scores])
                .map_err(|e| self.failed(e))?;
        }
        if !unnamed.is_empty() {
            // A row without a name keeps the one it has (a new row: "player N").
            let s = self.statement(
                "INSERT INTO bq_ranks (player, name, score) \
                 SELECT p, 'player ' || p::text, s FROM unnest($1::bigint[], $2::bigint[]) AS r(p, s) \
                 ON CONFLICT (player) DO UPDATE SET score = EXCLUDED.score"
                    .into(),
            )?;
            self.tx
                .borrow_mut()
                .execute(&s, &[&unnamed, &unnamed_scores])
                .map_err(|e| self.failed(e))?;
        }
        Ok(())
    }

    fn buffer(&self, table: Table, key: &[u8], value: Option<&[u8]>) {
        let mut overlay = self.overlay.borrow_mut();
        overlay
            .rows
            .entry(table)
            .or_default()
            .insert(key.to_vec(), value.map(<[u8]>::to_vec));
        overlay.dirty.entry(table).or_default().insert(key.to_vec());
    }
}

impl WriteOps for PgOps<'_, '_> {
    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<(), BackendError> {
        self.buffer(table, key, Some(value));
        Ok(())
    }

    fn delete(&mut self, table: Table, key: &[u8]) -> Result<(), BackendError> {
        self.buffer(table, key, None);
        Ok(())
    }

    fn set_rank(
        &mut self,
        player: u64,
        name: Option<&str>,
        score: i64,
    ) -> Result<(), BackendError> {
        let mut overlay = self.overlay.borrow_mut();
        // A later write without a name keeps a name written earlier in this transaction.
        let name = name.map(str::to_string).or_else(|| {
            overlay
                .ranks
                .get(&player)
                .and_then(|r| r.as_ref().and_then(|(n, _)| n.clone()))
        });
        overlay.ranks.insert(player, Some((name, score)));
        Ok(())
    }

    fn delete_rank(&mut self, player: u64) -> Result<(), BackendError> {
        self.overlay.borrow_mut().ranks.insert(player, None);
        Ok(())
    }
}

/// One run of a write transaction.
enum Run<T, E> {
    Done(Result<T, E>),
    Conflict(BackendError),
    /// The connection was found dead before anything was sent (a pooled connection after a
    /// database restart): safe to run again on a new one.
    Dead(BackendError),
}

impl PostgresBackend {
    fn run_write<T, E: From<BackendError>>(
        &self,
        conn: &mut Conn,
        durable: bool,
        f: &mut impl FnMut(&mut dyn WriteOps) -> Result<T, E>,
    ) -> Run<T, E> {
        let Conn { client, statements } = conn;
        let mut tx = match client
            .build_transaction()
            .isolation_level(IsolationLevel::Serializable)
            .start()
        {
            Ok(tx) => tx,
            // No answer, or the server's farewell (57P01 shutdown, 57P02 crash): BEGIN never ran.
            Err(e)
                if e.as_db_error().is_none()
                    || e.code().is_some_and(|c| c.code().starts_with("57P")) =>
            {
                return Run::Dead(pg_err(&e));
            }
            Err(e) => return Run::Done(Err(pg_err(&e).into())),
        };
        if !durable && let Err(e) = tx.batch_execute("SET LOCAL synchronous_commit = off") {
            return Run::Done(Err(pg_err(&e).into()));
        }
        let statements = RefCell::new(statements);
        let mut ops = PgOps::new(tx, &statements);
        let result = f(&mut ops).and_then(|v| ops.flush().map(|()| v).map_err(E::from));
        let conflict = ops.conflict.take();
        let tx = ops.tx.into_inner();
        match result {
            Ok(v) => match tx.commit() {
                Ok(()) => Run::Done(Ok(v)),
                Err(e) if is_conflict(&e) => Run::Conflict(pg_err(&e)),
                Err(e) => Run::Done(Err(pg_err(&e).into())),
            },
            Err(e) => {
                let _ = tx.rollback();
                match conflict {
                    Some(c) => Run::Conflict(pg_err(&c)),
                    None => Run::Done(Err(e)),
                }
            }
        }
    }
}

impl Backend for PostgresBackend {
    fn write<T, E: From<BackendError>>(
        &self,
        durable: bool,
        mut f: impl FnMut(&mut dyn WriteOps) -> Result<T, E>,
    ) -> Result<T, E> {
        self.faults.check()?;
        let mut conn = self.checkout()?;
        let mut last = None;
        for run in 0..CONFLICT_RUNS {
            match self.run_write(&mut conn, durable, &mut f) {
                Run::Done(r) => {
                    self.give_back(conn);
                    return r;
                }
                Run::Dead(e) => {
                    tracing::info!(
                        "{}: a pooled connection was closed ({e}); reconnecting",
                        self.shown
                    );
                    self.drop_idle();
                    conn = Conn {
                        client: self.open_client()?,
                        statements: HashMap::new(),
                    };
                }
                Run::Conflict(e) => {
                    last = Some(e);
                    // Back off a little, with jitter, so the racers do not meet again.
                    let mut b = [0u8; 1];
                    let _ = getrandom::fill(&mut b);
                    let ms = u64::from(run.min(6) + 1) * (1 + u64::from(b[0] % 4));
                    std::thread::sleep(Duration::from_millis(ms));
                }
            }
        }
        self.give_back(conn);
        Err(BackendError(format!(
            "gave up after {CONFLICT_RUNS} serialization conflicts: {}",
            last.map(|e| e.0).unwrap_or_default()
        ))
        .into())
    }

    fn read<T, E: From<BackendError>>(
        &self,
        f: impl FnOnce(&dyn ReadOps) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut conn = self.checkout()?;
        let result = {
            let Conn { client, statements } = &mut conn;
            let tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .map_err(|e| pg_err(&e))?;
            let statements = RefCell::new(statements);
            let ops = PgOps::new(tx, &statements);
            let r = f(&ops);
            let _ = ops.tx.into_inner().commit();
            r
        };
        self.give_back(conn);
        result
    }

    fn backup_to(&self, path: &Path) -> Result<(), BackendError> {
        let copy = RedbBackend::open(path)?;
        self.read(|ops| {
            for table in ALL {
                let rows = ops.scan(table, &[])?;
                copy.write(true, |to| {
                    for (k, v) in &rows {
                        to.put(table, k, v)?;
                    }
                    Ok::<_, BackendError>(())
                })?;
            }
            let ranks = ops.top_ranks(usize::MAX)?;
            copy.write(true, |to| {
                for r in &ranks {
                    to.set_rank(r.player, Some(&r.name), r.score)?;
                }
                Ok::<_, BackendError>(())
            })
        })
    }
}

/// One server in the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerEntry {
    /// Its id (as in session locks).
    pub id: String,
    /// Where players reach it.
    pub address: String,
    /// Players on it.
    pub players: i32,
    /// Most players it takes.
    pub capacity: i32,
    /// Since its last heartbeat, by the database's clock.
    pub heartbeat_age_ms: i64,
}

/// The advisory lock whose holder runs the store-wide jobs: "bqjobs" in ASCII.
const JOBS_LOCK: i64 = 0x0000_6271_6a6f_6273;

/// Whether this server runs the store-wide jobs (backups, directory expiry): it holds a session
/// advisory lock on a connection of its own, so exactly one live server does, and another takes
/// over when that connection goes (the server stopped, died or lost the database).
pub struct Leadership {
    leader: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Leadership {
    /// This server runs the store-wide jobs now.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::SeqCst)
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl PostgresBackend {
    fn with_client<T>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, BackendError> {
        let mut conn = self.checkout()?;
        let r = f(&mut conn.client).map_err(|e| pg_err(&e));
        self.give_back(conn);
        r
    }

    /// Adds or refreshes this server's directory entry (its heartbeat: the database's now).
    pub fn register_server(
        &self,
        id: &str,
        address: &str,
        players: u32,
        capacity: u32,
    ) -> Result<(), BackendError> {
        let (players, capacity) = (
            players.min(i32::MAX as u32) as i32,
            capacity.min(i32::MAX as u32) as i32,
        );
        self.with_client(|c| {
            c.execute(
                "INSERT INTO bq_servers (id, address, players, capacity) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (id) DO UPDATE SET address = EXCLUDED.address,
                     players = EXCLUDED.players, capacity = EXCLUDED.capacity, heartbeat = now()",
                &[&id, &address, &players, &capacity],
            )
        })
        .map(|_| ())
    }

    /// Removes this server's directory entry (on shutdown).
    pub fn leave_server(&self, id: &str) -> Result<(), BackendError> {
        self.with_client(|c| c.execute("DELETE FROM bq_servers WHERE id = $1", &[&id]))
            .map(|_| ())
    }

    /// Every server in the directory, by id.
    pub fn servers(&self) -> Result<Vec<ServerEntry>, BackendError> {
        let rows = self.with_client(|c| {
            c.query(
                "SELECT id, address, players, capacity,
                        (extract(epoch FROM (now() - heartbeat)) * 1000)::int8
                 FROM bq_servers ORDER BY id",
                &[],
            )
        })?;
        Ok(rows
            .iter()
            .map(|r| ServerEntry {
                id: r.get(0),
                address: r.get(1),
                players: r.get(2),
                capacity: r.get(3),
                heartbeat_age_ms: r.get(4),
            })
            .collect())
    }

    /// Removes the entries whose heartbeat is older than `after` (dead servers).
    pub fn expire_servers(&self, after: Duration) -> Result<u64, BackendError> {
        let secs = after.as_secs_f64();
        self.with_client(|c| {
            c.execute(
                "DELETE FROM bq_servers WHERE heartbeat < now() - make_interval(secs => $1)",
                &[&secs],
            )
        })
    }

    /// Stands for running the store-wide jobs (see [`Leadership`]).
    pub fn campaign(&self) -> Leadership {
        let leader = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (dialer, shown) = (self.dialer.clone(), self.shown.clone());
        let (is_leader, stopped) = (leader.clone(), stop.clone());
        let spawned = std::thread::Builder::new()
            .name("store-jobs-election".into())
            .spawn(move || {
                while !stopped.load(Ordering::SeqCst) {
                    let Ok(mut client) = dialer.dial() else {
                        std::thread::sleep(Duration::from_secs(1));
                        continue;
                    };
                    while !stopped.load(Ordering::SeqCst) {
                        let held = if is_leader.load(Ordering::SeqCst) {
                            client.simple_query("SELECT 1").map(|_| true)
                        } else {
                            client
                                .query_one("SELECT pg_try_advisory_lock($1)", &[&JOBS_LOCK])
                                .map(|r| r.get::<_, bool>(0))
                        };
                        match held {
                            Ok(held) => {
                                if held && !is_leader.swap(true, Ordering::SeqCst) {
                                    tracing::info!("{shown}: this server runs the store-wide jobs");
                                }
                            }
                            Err(_) => {
                                if is_leader.swap(false, Ordering::SeqCst) {
                                    tracing::warn!(
                                        "{shown}: lost the store-wide jobs (the connection failed)"
                                    );
                                }
                                break;
                            }
                        }
                        std::thread::sleep(Duration::from_millis(500));
                    }
                }
                is_leader.store(false, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            tracing::error!("{}: cannot start the jobs election: {e}", self.shown);
        }
        Leadership { leader, stop }
    }
}

/// The PostgreSQL channel every server on one database listens on (`LISTEN`/`NOTIFY`).
pub const CHANNEL: &str = "bq_channel";

/// A listener on [`CHANNEL`]: a thread with its own connection that hands each notification's
/// payload over; it connects again after the connection drops (a database restart), and stops
/// when this is dropped. Notifications sent while it was disconnected are lost: what is sent
/// on it must be asked again by its sender until answered.
pub struct ChannelListener {
    received: Mutex<std::sync::mpsc::Receiver<String>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl ChannelListener {
    /// Every payload received since the last call.
    pub fn drain(&self) -> Vec<String> {
        match self.received.lock() {
            Ok(rx) => rx.try_iter().collect(),
            Err(_) => Vec::new(),
        }
    }
}

impl Drop for ChannelListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Hands over notifications until `stop` is set or the receiver is gone (`Ok`), or the
/// connection fails (`Err`).
fn listen_on(
    client: &mut Client,
    tx: &std::sync::mpsc::Sender<String>,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<(), BackendError> {
    while !stop.load(Ordering::SeqCst) {
        {
            let mut notes = client.notifications();
            let mut it = notes.timeout_iter(Duration::from_millis(250));
            while let Some(n) = it.next().map_err(|e| pg_err(&e))? {
                if tx.send(n.payload().to_string()).is_err() {
                    return Ok(());
                }
            }
        }
        if client.is_closed() {
            return Err(BackendError("the connection closed".into()));
        }
    }
    Ok(())
}

impl PostgresBackend {
    /// Sends `payload` to every server listening on [`CHANNEL`] (this one included).
    pub fn notify(&self, payload: &str) -> Result<(), BackendError> {
        let mut conn = self.checkout()?;
        let r = conn
            .client
            .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])
            .map(|_| ())
            .map_err(|e| pg_err(&e));
        self.give_back(conn);
        r
    }

    /// Starts listening on [`CHANNEL`].
    pub fn listen(&self) -> ChannelListener {
        let (tx, rx) = std::sync::mpsc::channel();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let dialer = self.dialer.clone();
        let shown = self.shown.clone();
        let stopped = stop.clone();
        let spawned = std::thread::Builder::new()
            .name("store-channel".into())
            .spawn(move || {
                // Connection attempts failed in a row (one warning per outage).
                let mut failures = 0u32;
                while !stopped.load(Ordering::SeqCst) {
                    let client = dialer.dial().and_then(|mut c| {
                        c.batch_execute(&format!("LISTEN {CHANNEL}"))
                            .map_err(|e| pg_err(&e))?;
                        Ok(c)
                    });
                    let mut client = match client {
                        Ok(c) => c,
                        Err(e) => {
                            if failures == 0 {
                                tracing::warn!(
                                    "{shown}: the store channel is down ({}); trying every second",
                                    e.0
                                );
                            }
                            failures += 1;
                            std::thread::sleep(Duration::from_secs(1));
                            continue;
                        }
                    };
                    if failures > 0 {
                        tracing::info!("{shown}: the store channel is back");
                    }
                    failures = 0;
                    match listen_on(&mut client, &tx, &stopped) {
                        Ok(()) => return,
                        Err(e) => tracing::warn!(
                            "{shown}: the store channel dropped ({}); connecting again",
                            e.0
                        ),
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(
                "{}: cannot start the store channel's thread: {e}",
                self.shown
            );
        }
        ChannelListener {
            received: Mutex::new(rx),
            stop,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgpass_matches_fields_with_wildcards_and_escapes() {
        let text = "# comment\n\
                    db.example:5432:other:bq:wrong\n\
                    db.example:*:game:bq:s3cr\\:et\n\
                    *:*:*:*:fallback\n";
        assert_eq!(
            pgpass_lookup(text, ["db.example", "5432", "game", "bq"]).as_deref(),
            Some("s3cr:et")
        );
        assert_eq!(
            pgpass_lookup(text, ["elsewhere", "1", "x", "y"]).as_deref(),
            Some("fallback")
        );
        assert_eq!(pgpass_lookup("a:b:c\n", ["a", "b", "c", "d"]), None);
    }

    #[test]
    fn prefix_end_is_the_next_key_after_the_prefix() {
        assert_eq!(prefix_end(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(prefix_end(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xFF, 0xFF]), None);
        assert_eq!(prefix_end(&[]), None);
    }

    #[test]
    fn a_password_in_the_url_is_refused() {
        let e = parse_url("postgres://bq:hunter2@db.example/game").unwrap_err();
        assert!(e.0.contains("PGPASSWORD"), "{e}");
        assert!(
            !e.0.contains("hunter2"),
            "the message must not echo it: {e}"
        );
    }

    #[test]
    fn migrations_are_numbered_in_order_and_never_ask_for_a_future_reader() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i32 + 1, "{}", m.name);
            assert!(
                m.oldest_reader >= 1 && m.oldest_reader <= m.version,
                "{}",
                m.name
            );
        }
    }
}
