//! The storage backend behind the data store: a few byte tables and atomic transactions.
//!
//! [`RedbBackend`] (one embedded file, `<data>/bloxquarium.redb`) is the default. The trait is
//! small on purpose so that a shared, networked backend for many servers can implement it. How
//! each operation maps onto PostgreSQL:
//!
//! | here | PostgreSQL |
//! |---|---|
//! | a [`Table`] | one table `(key bytea primary key, value bytea)` per variant |
//! | [`Backend::write`] | `BEGIN ISOLATION LEVEL SERIALIZABLE` … `COMMIT`, retried on serialization failure; `durable = false` maps to `SET LOCAL synchronous_commit = off` |
//! | [`ReadOps::get`] | `SELECT value … WHERE key = $1` (`FOR UPDATE` inside a write) |
//! | [`ReadOps::scan`] | `SELECT key, value … WHERE key >= $1 AND key < $1‖0xFF… ORDER BY key` |
//! | [`WriteOps::put`] / [`WriteOps::delete`] | `INSERT … ON CONFLICT (key) DO UPDATE` / `DELETE` |
//! | [`Backend::read`] | `BEGIN READ ONLY ISOLATION LEVEL REPEATABLE READ` |
//! | [`Backend::backup_to`] | `pg_dump --snapshot` of an exported snapshot (or base backups) |
//!
//! The session lock is a row in [`Table::Locks`] read and written inside the same serializable
//! transaction as the save it guards, so two servers cannot both pass the fencing check: under
//! PostgreSQL the second commit fails with a serialization error and is retried, then sees the
//! other server's lock. The statement that writes the profile rows is fenced on the lock rows
//! too (see `PgOps::put_profiles_fenced`). Lock ages are measured by the database's clock on
//! PostgreSQL, so servers' clocks may differ; on the embedded store by the one server's.
//!
//! The blob sequence number (the `next_seq` row of [`Table::Meta`]) would make every save of
//! every server touch one row; under PostgreSQL it maps to a `SEQUENCE` (`nextval`), which never
//! takes part in serialization conflicts (gaps are harmless).

use std::path::Path;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, TableError};

/// The tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// player → version ‖ sealed profile.
    Profiles,
    /// player → session lock.
    Locks,
    /// player ‖ version → blob sequence number ‖ saved-at (the index of a player's versions).
    Versions,
    /// blob sequence number → saved-at ‖ sealed profile. Sequence numbers grow with every save,
    /// so a group commit's new blobs land side by side on a few pages (and so do the old ones it
    /// prunes), instead of one page per player.
    Blobs,
    /// player ‖ message id → offline message.
    Inbox,
    /// name → value (store id, counters).
    Meta,
    /// time ‖ player → erasure record.
    Erasures,
    /// lowercase username → account (see `crate::accounts`); `#next_player` → the next id.
    Accounts,
    /// time ‖ random → audit record (JSON), on a shared store: every server's audit log.
    Audit,
}

pub(super) const ALL: [Table; 9] = [
    Table::Profiles,
    Table::Locks,
    Table::Versions,
    Table::Blobs,
    Table::Inbox,
    Table::Meta,
    Table::Erasures,
    Table::Accounts,
    Table::Audit,
];

impl Table {
    fn def(self) -> TableDefinition<'static, &'static [u8], &'static [u8]> {
        TableDefinition::new(match self {
            Table::Profiles => "profiles",
            Table::Locks => "locks",
            Table::Versions => "versions",
            Table::Blobs => "blobs",
            Table::Inbox => "inbox",
            Table::Meta => "meta",
            Table::Erasures => "erasures",
            Table::Accounts => "accounts",
            Table::Audit => "audit",
        })
    }
}

/// redb's leaderboard: player → score ‖ name, and its order (see [`rank_order_key`]) → ().
const RANKS: TableDefinition<'static, &'static [u8], &'static [u8]> = TableDefinition::new("ranks");
const RANK_ORDER: TableDefinition<'static, &'static [u8], &'static [u8]> =
    TableDefinition::new("rank_order");

/// The key that sorts redb's leaderboard: highest score first, then lowest player id.
fn rank_order_key(score: i64, player: u64) -> [u8; 16] {
    // Flipping the sign bit makes the byte order the numeric order; inverting makes it
    // descending.
    let order = !((score as u64) ^ (1 << 63));
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&order.to_be_bytes());
    k[8..].copy_from_slice(&player.to_be_bytes());
    k
}

fn rank_value(score: i64, name: &str) -> Vec<u8> {
    let mut v = score.to_be_bytes().to_vec();
    v.extend_from_slice(name.as_bytes());
    v
}

fn decode_rank(player: u64, value: &[u8]) -> Result<RankRow, BackendError> {
    let (score, name) = value
        .split_at_checked(8)
        .ok_or_else(|| BackendError(format!("leaderboard row of player {player} is cut short")))?;
    let mut b = [0u8; 8];
    b.copy_from_slice(score);
    Ok(RankRow {
        player,
        name: String::from_utf8_lossy(name).into_owned(),
        score: i64::from_be_bytes(b),
    })
}

fn redb_rank_row(
    ranks: &impl ReadableTable<&'static [u8], &'static [u8]>,
    player: u64,
) -> Result<Option<RankRow>, BackendError> {
    match ranks.get(player.to_be_bytes().as_slice()).map_err(err)? {
        Some(v) => decode_rank(player, v.value()).map(Some),
        None => Ok(None),
    }
}

fn redb_top(
    ranks: &impl ReadableTable<&'static [u8], &'static [u8]>,
    order: &impl ReadableTable<&'static [u8], &'static [u8]>,
    n: usize,
) -> Result<Vec<RankRow>, BackendError> {
    let mut out = Vec::new();
    for entry in order.iter().map_err(err)?.take(n) {
        let (k, _) = entry.map_err(err)?;
        let mut b = [0u8; 8];
        b.copy_from_slice(k.value().get(8..16).unwrap_or(&[0; 8]));
        let player = u64::from_be_bytes(b);
        if let Some(row) = redb_rank_row(ranks, player)? {
            out.push(row);
        }
    }
    Ok(out)
}

fn redb_above(
    order: &impl ReadableTable<&'static [u8], &'static [u8]>,
    score: i64,
) -> Result<u64, BackendError> {
    let end = rank_order_key(score, 0);
    let mut n = 0u64;
    for entry in order.range::<&[u8]>(..&end[..8]).map_err(err)? {
        entry.map_err(err)?;
        n += 1;
    }
    Ok(n)
}

/// A backend failure (I/O, corruption of the store file, a conflict).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("storage: {0}")]
pub struct BackendError(pub String);

fn err(e: impl std::fmt::Display) -> BackendError {
    BackendError(e.to_string())
}

/// Key-value pairs in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// One player's line on the store-wide leaderboard: a plain (player, name, score) row, written
/// in the same transaction as each save of the player.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankRow {
    /// The player.
    pub player: u64,
    /// The name shown.
    pub name: String,
    /// What the game ranks by (its `PlayerData::score`).
    pub score: i64,
}

/// Reads inside a transaction.
pub trait ReadOps {
    /// The value at `key`.
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError>;
    /// Every entry whose key starts with `prefix`, in key order.
    fn scan(&self, table: Table, prefix: &[u8]) -> Result<Entries, BackendError>;
    /// The leaderboard's first `n` rows: highest score first, then lowest player id.
    fn top_ranks(&self, n: usize) -> Result<Vec<RankRow>, BackendError>;
    /// `player`'s leaderboard row.
    fn rank_row(&self, player: u64) -> Result<Option<RankRow>, BackendError>;
    /// How many players score more than `score`.
    fn ranked_above(&self, score: i64) -> Result<u64, BackendError>;
    /// A hint: the transaction is about to read these keys. A networked backend fetches them
    /// in one round trip; the embedded one does nothing.
    fn prefetch(&self, table: Table, keys: &[Vec<u8>]) -> Result<(), BackendError> {
        let _ = (table, keys);
        Ok(())
    }
    /// A hint: the transaction is about to scan these prefixes (see [`Self::prefetch`]).
    fn prefetch_prefixes(&self, table: Table, prefixes: &[Vec<u8>]) -> Result<(), BackendError> {
        let _ = (table, prefixes);
        Ok(())
    }
    /// The backend's own clock (ms since the Unix epoch), when it has one that every server
    /// sharing it reads alike (a database server's); `None` for an embedded file.
    fn clock_ms(&self) -> Result<Option<u64>, BackendError> {
        Ok(None)
    }
}

/// Writes inside a transaction.
pub trait WriteOps: ReadOps {
    /// Inserts or replaces.
    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<(), BackendError>;
    /// Removes (no error if absent).
    fn delete(&mut self, table: Table, key: &[u8]) -> Result<(), BackendError>;
    /// Writes `player`'s leaderboard row; `name: None` keeps the name it has (a new row is
    /// named "player N").
    fn set_rank(&mut self, player: u64, name: Option<&str>, score: i64)
    -> Result<(), BackendError>;
    /// Removes `player`'s leaderboard row (no error if absent).
    fn delete_rank(&mut self, player: u64) -> Result<(), BackendError>;
}

/// Atomic transactions over the tables.
pub trait Backend: Send + Sync + 'static {
    /// Runs `f` in one write transaction: committed if `f` returns `Ok`, rolled back otherwise
    /// (nothing partial is ever visible). `durable`: the commit is on disk when this returns.
    /// A backend shared by many servers may run `f` again after a serialization conflict, so
    /// `f` must start from scratch each time (it is `FnMut` for that).
    fn write<T, E: From<BackendError>>(
        &self,
        durable: bool,
        f: impl FnMut(&mut dyn WriteOps) -> Result<T, E>,
    ) -> Result<T, E>;
    /// Runs `f` over a consistent snapshot.
    fn read<T, E: From<BackendError>>(
        &self,
        f: impl FnOnce(&dyn ReadOps) -> Result<T, E>,
    ) -> Result<T, E>;
    /// Writes a consistent copy of the whole store to a new file at `path`.
    fn backup_to(&self, path: &Path) -> Result<(), BackendError>;
}

/// Write transactions still to fail on purpose: fault injection for failure drills and tests.
#[derive(Default)]
pub(super) struct Faults(std::sync::atomic::AtomicU32);

impl Faults {
    /// The next `n` write transactions fail.
    pub(super) fn set(&self, n: u32) {
        self.0.store(n, std::sync::atomic::Ordering::SeqCst);
    }

    /// Fails this write transaction, before it touches anything, if one is still due to fail
    /// (as a full disk or a lost connection would).
    pub(super) fn check(&self) -> Result<(), BackendError> {
        let due = self
            .0
            .fetch_update(
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
                |n| n.checked_sub(1),
            )
            .is_ok();
        if due {
            return Err(BackendError(
                "injected write failure (fault injection)".into(),
            ));
        }
        Ok(())
    }
}

/// The embedded backend.
pub struct RedbBackend {
    db: Database,
    /// Write transactions still to fail on purpose (see [`RedbBackend::inject_write_failures`]).
    faults: Faults,
}

impl RedbBackend {
    /// Opens (or creates) the store file.
    pub fn open(path: &Path) -> Result<Self, BackendError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let db =
            Database::create(path).map_err(|e| BackendError(format!("{}: {e}", path.display())))?;
        Ok(Self {
            db,
            faults: Default::default(),
        })
    }

    /// Opens an existing file read-write without creating it (backup verification).
    pub fn open_existing(path: &Path) -> Result<Self, BackendError> {
        let db =
            Database::open(path).map_err(|e| BackendError(format!("{}: {e}", path.display())))?;
        Ok(Self {
            db,
            faults: Default::default(),
        })
    }

    /// Fault injection for failure drills and tests: the next `n` write transactions fail with
    /// a transient storage error before touching the file, as a full disk or an I/O error would.
    pub fn inject_write_failures(&self, n: u32) {
        self.faults.set(n);
    }

    /// redb's own integrity check of the file.
    pub fn check_integrity(&mut self) -> Result<bool, BackendError> {
        self.db.check_integrity().map_err(err)
    }
}

type RedbTable<'a> = redb::Table<'a, &'static [u8], &'static [u8]>;

/// A write transaction's view: each table is opened once and kept for the transaction.
struct RedbWrite<'a> {
    txn: &'a redb::WriteTransaction,
    open: std::cell::RefCell<Vec<(Table, RedbTable<'a>)>>,
}

impl<'a> RedbWrite<'a> {
    fn with<T>(
        &self,
        table: Table,
        f: impl FnOnce(&mut RedbTable<'a>) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        let mut open = self.open.borrow_mut();
        let idx = match open.iter().position(|(t, _)| *t == table) {
            Some(i) => i,
            None => {
                open.push((table, self.txn.open_table(table.def()).map_err(err)?));
                open.len() - 1
            }
        };
        f(&mut open[idx].1)
    }
}

impl ReadOps for RedbWrite<'_> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        self.with(table, |t| {
            Ok(t.get(key).map_err(err)?.map(|v| v.value().to_vec()))
        })
    }

    fn scan(&self, table: Table, prefix: &[u8]) -> Result<Entries, BackendError> {
        self.with(table, |t| collect_prefix(t, prefix))
    }

    fn top_ranks(&self, n: usize) -> Result<Vec<RankRow>, BackendError> {
        let ranks = self.txn.open_table(RANKS).map_err(err)?;
        let order = self.txn.open_table(RANK_ORDER).map_err(err)?;
        redb_top(&ranks, &order, n)
    }

    fn rank_row(&self, player: u64) -> Result<Option<RankRow>, BackendError> {
        redb_rank_row(&self.txn.open_table(RANKS).map_err(err)?, player)
    }

    fn ranked_above(&self, score: i64) -> Result<u64, BackendError> {
        redb_above(&self.txn.open_table(RANK_ORDER).map_err(err)?, score)
    }
}

impl WriteOps for RedbWrite<'_> {
    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<(), BackendError> {
        self.with(table, |t| {
            t.insert(key, value).map_err(err)?;
            Ok(())
        })
    }

    fn delete(&mut self, table: Table, key: &[u8]) -> Result<(), BackendError> {
        self.with(table, |t| {
            t.remove(key).map_err(err)?;
            Ok(())
        })
    }

    fn set_rank(
        &mut self,
        player: u64,
        name: Option<&str>,
        score: i64,
    ) -> Result<(), BackendError> {
        let mut ranks = self.txn.open_table(RANKS).map_err(err)?;
        let mut order = self.txn.open_table(RANK_ORDER).map_err(err)?;
        let old = redb_rank_row(&ranks, player)?;
        if let Some(old) = &old {
            order
                .remove(rank_order_key(old.score, player).as_slice())
                .map_err(err)?;
        }
        let name = match (name, &old) {
            (Some(n), _) => n.to_string(),
            (None, Some(old)) => old.name.clone(),
            (None, None) => format!("player {player}"),
        };
        ranks
            .insert(
                player.to_be_bytes().as_slice(),
                rank_value(score, &name).as_slice(),
            )
            .map_err(err)?;
        order
            .insert(rank_order_key(score, player).as_slice(), [].as_slice())
            .map_err(err)?;
        Ok(())
    }

    fn delete_rank(&mut self, player: u64) -> Result<(), BackendError> {
        let mut ranks = self.txn.open_table(RANKS).map_err(err)?;
        let mut order = self.txn.open_table(RANK_ORDER).map_err(err)?;
        if let Some(old) = redb_rank_row(&ranks, player)? {
            order
                .remove(rank_order_key(old.score, player).as_slice())
                .map_err(err)?;
            ranks.remove(player.to_be_bytes().as_slice()).map_err(err)?;
        }
        Ok(())
    }
}

fn collect_prefix(
    t: &impl ReadableTable<&'static [u8], &'static [u8]>,
    prefix: &[u8],
) -> Result<Entries, BackendError> {
    let mut out = Vec::new();
    for entry in t.range::<&[u8]>(prefix..).map_err(err)? {
        let (k, v) = entry.map_err(err)?;
        if !k.value().starts_with(prefix) {
            break;
        }
        out.push((k.value().to_vec(), v.value().to_vec()));
    }
    Ok(out)
}

struct RedbRead {
    txn: redb::ReadTransaction,
}

impl ReadOps for RedbRead {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        match self.txn.open_table(table.def()) {
            Ok(t) => Ok(t.get(key).map_err(err)?.map(|v| v.value().to_vec())),
            Err(TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(err(e)),
        }
    }

    fn scan(&self, table: Table, prefix: &[u8]) -> Result<Entries, BackendError> {
        match self.txn.open_table(table.def()) {
            Ok(t) => collect_prefix(&t, prefix),
            Err(TableError::TableDoesNotExist(_)) => Ok(Vec::new()),
            Err(e) => Err(err(e)),
        }
    }

    fn top_ranks(&self, n: usize) -> Result<Vec<RankRow>, BackendError> {
        match (self.txn.open_table(RANKS), self.txn.open_table(RANK_ORDER)) {
            (Ok(ranks), Ok(order)) => redb_top(&ranks, &order, n),
            (Err(TableError::TableDoesNotExist(_)), _)
            | (_, Err(TableError::TableDoesNotExist(_))) => Ok(Vec::new()),
            (Err(e), _) | (_, Err(e)) => Err(err(e)),
        }
    }

    fn rank_row(&self, player: u64) -> Result<Option<RankRow>, BackendError> {
        match self.txn.open_table(RANKS) {
            Ok(t) => redb_rank_row(&t, player),
            Err(TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(err(e)),
        }
    }

    fn ranked_above(&self, score: i64) -> Result<u64, BackendError> {
        match self.txn.open_table(RANK_ORDER) {
            Ok(t) => redb_above(&t, score),
            Err(TableError::TableDoesNotExist(_)) => Ok(0),
            Err(e) => Err(err(e)),
        }
    }
}

impl Backend for RedbBackend {
    fn write<T, E: From<BackendError>>(
        &self,
        durable: bool,
        mut f: impl FnMut(&mut dyn WriteOps) -> Result<T, E>,
    ) -> Result<T, E> {
        self.faults.check()?;
        let mut txn = self.db.begin_write().map_err(err)?;
        if !durable {
            txn.set_durability(Durability::None).map_err(err)?;
        }
        let result = {
            let mut ops = RedbWrite {
                txn: &txn,
                open: std::cell::RefCell::new(Vec::new()),
            };
            f(&mut ops)
        };
        match result {
            Ok(v) => {
                txn.commit().map_err(err)?;
                Ok(v)
            }
            Err(e) => {
                txn.abort().map_err(err)?;
                Err(e)
            }
        }
    }

    fn read<T, E: From<BackendError>>(
        &self,
        f: impl FnOnce(&dyn ReadOps) -> Result<T, E>,
    ) -> Result<T, E> {
        let txn = self.db.begin_read().map_err(err)?;
        f(&RedbRead { txn })
    }

    fn backup_to(&self, path: &Path) -> Result<(), BackendError> {
        let src = self.db.begin_read().map_err(err)?;
        let copy = Database::create(path).map_err(err)?;
        let dst = copy.begin_write().map_err(err)?;
        for table in ALL {
            let from = match src.open_table(table.def()) {
                Ok(t) => t,
                Err(TableError::TableDoesNotExist(_)) => continue,
                Err(e) => return Err(err(e)),
            };
            let mut to = dst.open_table(table.def()).map_err(err)?;
            for entry in from.iter().map_err(err)? {
                let (k, v) = entry.map_err(err)?;
                to.insert(k.value(), v.value()).map_err(err)?;
            }
        }
        for def in [RANKS, RANK_ORDER] {
            let from = match src.open_table(def) {
                Ok(t) => t,
                Err(TableError::TableDoesNotExist(_)) => continue,
                Err(e) => return Err(err(e)),
            };
            let mut to = dst.open_table(def).map_err(err)?;
            for entry in from.iter().map_err(err)? {
                let (k, v) = entry.map_err(err)?;
                to.insert(k.value(), v.value()).map_err(err)?;
            }
        }
        dst.commit().map_err(err)?;
        drop(copy);
        Ok(())
    }
}

/// The backend a store runs on: the embedded file or a shared PostgreSQL database.
pub enum StoreBackend {
    /// `<data>/bloxquarium.redb`.
    Redb(RedbBackend),
    /// `--store postgres://…`.
    Postgres(Box<super::postgres::PostgresBackend>),
}

impl StoreBackend {
    /// Fault injection: the next `n` write transactions fail (see
    /// [`RedbBackend::inject_write_failures`]).
    pub fn inject_write_failures(&self, n: u32) {
        match self {
            Self::Redb(b) => b.inject_write_failures(n),
            Self::Postgres(b) => b.inject_write_failures(n),
        }
    }

    /// The PostgreSQL backend, if this is one.
    pub fn postgres(&self) -> Option<&super::postgres::PostgresBackend> {
        match self {
            Self::Postgres(b) => Some(b),
            Self::Redb(_) => None,
        }
    }
}

impl Backend for StoreBackend {
    fn write<T, E: From<BackendError>>(
        &self,
        durable: bool,
        f: impl FnMut(&mut dyn WriteOps) -> Result<T, E>,
    ) -> Result<T, E> {
        match self {
            Self::Redb(b) => b.write(durable, f),
            Self::Postgres(b) => b.write(durable, f),
        }
    }

    fn read<T, E: From<BackendError>>(
        &self,
        f: impl FnOnce(&dyn ReadOps) -> Result<T, E>,
    ) -> Result<T, E> {
        match self {
            Self::Redb(b) => b.read(f),
            Self::Postgres(b) => b.read(f),
        }
    }

    fn backup_to(&self, path: &Path) -> Result<(), BackendError> {
        match self {
            Self::Redb(b) => b.backup_to(path),
            Self::Postgres(b) => b.backup_to(path),
        }
    }
}
