//! Backups of the whole store: a consistent copy (one read transaction) in `<data>/backups/`,
//! with its sha256 and the store's id in a sidecar file; verification; restore.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::backend::{Backend, BackendError, RedbBackend, Table};

/// Why a backup operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackupError {
    /// Reading or writing files.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        reason: String,
    },
    /// The file's sha256 differs from the one recorded at backup time.
    #[error("backup {path} is corrupt: sha256 {actual} does not match the recorded {expected}")]
    Corrupt {
        /// The file.
        path: String,
        /// Recorded.
        expected: String,
        /// Now.
        actual: String,
    },
    /// No sidecar: not one of our backups.
    #[error(
        "backup {path} has no .sha256 record: not a Bloxquarium backup, or its record was lost"
    )]
    Unrecorded {
        /// The file.
        path: String,
    },
    /// A backup of another store.
    #[error("backup {path} is of another store (id {theirs}, this store is {ours})")]
    Foreign {
        /// The file.
        path: String,
        /// Its store id.
        theirs: String,
        /// Ours.
        ours: String,
    },
    /// The backup file does not open as a store.
    #[error("backup {path} does not open as a store: {reason}")]
    Unreadable {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

fn io(path: &Path, e: impl std::fmt::Display) -> BackupError {
    BackupError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// A made or verified backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupRecord {
    /// The file.
    pub file: PathBuf,
    /// Its sha256, hex.
    pub sha256: String,
    /// The store's id.
    pub store_id: String,
    /// Bytes.
    pub size: u64,
}

/// The store's id, created on first use (it tells our backups from others').
pub fn store_id(backend: &impl Backend) -> Result<String, BackendError> {
    let existing = backend.read(|ops| ops.get(Table::Meta, b"store_id"))?;
    if let Some(id) = existing {
        return Ok(hex::encode(id));
    }
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).map_err(|e| BackendError(e.to_string()))?;
    backend.write(true, |ops| {
        if let Some(existing) = ops.get(Table::Meta, b"store_id")? {
            return Ok(hex::encode(existing));
        }
        ops.put(Table::Meta, b"store_id", &id)?;
        Ok::<_, BackendError>(hex::encode(id))
    })
}

/// sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String, BackupError> {
    let mut f = std::fs::File::open(path).map_err(|e| io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(|e| io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

fn sidecar(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(".sha256");
    PathBuf::from(s)
}

/// The backups folder of a data dir.
pub fn backup_dir(data: &Path) -> PathBuf {
    data.join("backups")
}

/// Makes a backup now and keeps the newest `retention`.
pub fn backup(
    backend: &impl Backend,
    data: &Path,
    retention: usize,
    now_ms: u64,
) -> Result<BackupRecord, BackupError> {
    let dir = backup_dir(data);
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    let id = store_id(backend)?;
    let file = dir.join(format!("backup-{now_ms:013}.redb"));
    let tmp = dir.join(format!(".backup-{now_ms:013}.partial"));
    let _ = std::fs::remove_file(&tmp);
    backend.backup_to(&tmp)?;
    std::fs::rename(&tmp, &file).map_err(|e| io(&file, e))?;
    let sha = sha256_file(&file)?;
    std::fs::write(sidecar(&file), format!("{sha}  {id}\n")).map_err(|e| io(&file, e))?;
    let size = std::fs::metadata(&file).map_err(|e| io(&file, e))?.len();
    let all = list(data)?;
    if all.len() > retention {
        for old in &all[..all.len() - retention] {
            let _ = std::fs::remove_file(old);
            let _ = std::fs::remove_file(sidecar(old));
        }
    }
    Ok(BackupRecord {
        file,
        sha256: sha,
        store_id: id,
        size,
    })
}

/// The backup files of a data dir, oldest first.
pub fn list(data: &Path) -> Result<Vec<PathBuf>, BackupError> {
    let dir = backup_dir(data);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "redb"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io(&dir, e)),
    };
    files.sort();
    Ok(files)
}

/// Checks a backup: its recorded sha256, that it opens as a store and passes redb's integrity
/// check, and (with `ours`) that it is a backup of this store.
pub fn verify(file: &Path, ours: Option<&str>) -> Result<BackupRecord, BackupError> {
    let shown = file.display().to_string();
    let record = std::fs::read_to_string(sidecar(file)).map_err(|_| BackupError::Unrecorded {
        path: shown.clone(),
    })?;
    let mut parts = record.split_whitespace();
    let expected = parts.next().unwrap_or("").to_string();
    let recorded_id = parts.next().unwrap_or("").to_string();
    let actual = sha256_file(file)?;
    if actual != expected {
        return Err(BackupError::Corrupt {
            path: shown,
            expected,
            actual,
        });
    }
    // Open a scratch copy: opening may write recovery state, and a backup stays as it was.
    let scratch = std::env::temp_dir().join(format!(
        "bloxquarium-verify-{}-{actual}.redb",
        std::process::id()
    ));
    std::fs::copy(file, &scratch).map_err(|e| io(file, e))?;
    let checked = (|| {
        let mut db = RedbBackend::open_existing(&scratch).map_err(|e| BackupError::Unreadable {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        if !db.check_integrity().map_err(|e| BackupError::Unreadable {
            path: shown.clone(),
            reason: e.to_string(),
        })? {
            return Err(BackupError::Unreadable {
                path: shown.clone(),
                reason: "integrity check failed".into(),
            });
        }
        let id = db
            .read(|ops| ops.get(Table::Meta, b"store_id"))?
            .map(hex::encode)
            .unwrap_or_default();
        Ok(id)
    })();
    let _ = std::fs::remove_file(&scratch);
    let id = checked?;
    if id != recorded_id {
        return Err(BackupError::Corrupt {
            path: shown,
            expected: recorded_id,
            actual: id,
        });
    }
    if let Some(ours) = ours
        && ours != id
    {
        return Err(BackupError::Foreign {
            path: shown,
            theirs: id,
            ours: ours.to_string(),
        });
    }
    let size = std::fs::metadata(file).map_err(|e| io(file, e))?.len();
    Ok(BackupRecord {
        file: file.to_path_buf(),
        sha256: actual,
        store_id: id,
        size,
    })
}

/// Replaces the store file with a verified backup. Run with the server stopped. The current
/// file is kept beside it as `bloxquarium.redb.pre-restore-<ms>`.
pub fn restore(
    file: &Path,
    store_file: &Path,
    ours: Option<&str>,
    now_ms: u64,
) -> Result<BackupRecord, BackupError> {
    let record = verify(file, ours)?;
    if store_file.exists() {
        let aside = store_file.with_extension(format!("redb.pre-restore-{now_ms}"));
        std::fs::rename(store_file, &aside).map_err(|e| io(store_file, e))?;
    }
    let tmp = store_file.with_extension("redb.restoring");
    std::fs::copy(file, &tmp).map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, store_file).map_err(|e| io(store_file, e))?;
    Ok(record)
}
