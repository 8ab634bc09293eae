//! The server's 32-byte secret keys under `<data>/keys/`: `netcode.key` (connect tokens) and
//! `data.key` (profiles at rest).
//!
//! Created on first start (mode 0600, in a 0700 folder). The server refuses to start if a file
//! is not exactly 32 bytes or if its group or others may read it.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why the key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading, creating or inspecting the file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The file is not 32 bytes.
    #[error(
        "key file {path} is malformed: {len} bytes, expected 32 (it was damaged or replaced: restore it from a backup, or delete it to make a new one)"
    )]
    Malformed {
        /// The key file.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
    /// Group or others may read or write it.
    #[error(
        "key file {path} has mode {mode:o}: it must be readable by its owner only (chmod 600 {path})"
    )]
    TooOpen {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The OS random source failed.
    #[error("cannot generate a key: {0}")]
    Random(String),
}

/// Where the netcode key lives in a keys directory (`--keys`, default `<data>/keys`).
pub fn key_path(keys_dir: &Path) -> PathBuf {
    keys_dir.join("netcode.key")
}

/// Where the at-rest data key lives in a keys directory.
pub fn data_key_path(keys_dir: &Path) -> PathBuf {
    keys_dir.join("data.key")
}

/// Reads the netcode key of a keys directory, creating it (mode 0600) if it does not exist.
pub fn load_or_create(keys_dir: &Path) -> Result<[u8; 32], KeyError> {
    load_or_create_at(&key_path(keys_dir))
}

/// A short public name of a key (the first 8 bytes of its SHA-256, hex): which key sealed a
/// store, without revealing it.
pub fn fingerprint(key: &[u8; 32]) -> String {
    hex::encode(key_id(key))
}

/// A key's id: the first 8 bytes of its sha256 ([`fingerprint`] is its hex). Sealed profile
/// blobs carry it.
pub fn key_id(key: &[u8; 32]) -> [u8; 8] {
    use sha2::Digest;
    let mut id = [0u8; 8];
    id.copy_from_slice(&sha2::Sha256::digest(key)[..8]);
    id
}

/// Reads the key at `path`, creating it (mode 0600, folder 0700) if it does not exist.
pub fn load_or_create_at(path: &Path) -> Result<[u8; 32], KeyError> {
    let path = path.to_path_buf();
    let data_dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let io = |source| KeyError::Io {
        path: path.clone(),
        source,
    };
    match fs::metadata(&path) {
        Ok(_) => load(&path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = data_dir.as_path();
            fs::create_dir_all(dir).map_err(io)?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io)?;
            let mut key = [0u8; 32];
            getrandom::fill(&mut key).map_err(|e| KeyError::Random(e.to_string()))?;
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(io)?;
            file.write_all(&key).map_err(io)?;
            file.sync_all().map_err(io)?;
            tracing::info!("created key {}", path.display());
            Ok(key)
        }
        Err(e) => Err(io(e)),
    }
}

/// Reads an existing key, checking its size and permissions.
pub fn load(path: &Path) -> Result<[u8; 32], KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = fs::metadata(path).map_err(io)?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::TooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    if meta.len() != 32 {
        return Err(KeyError::Malformed {
            path: path.to_path_buf(),
            len: meta.len(),
        });
    }
    let bytes = fs::read(path).map_err(io)?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| KeyError::Malformed {
        path: path.to_path_buf(),
        len: bytes.len() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("bq-keys-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn creates_once_with_owner_only_mode_then_reads_the_same_key() {
        let d = scratch("create");
        let k1 = load_or_create(&d).unwrap();
        let mode = fs::metadata(key_path(&d)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load_or_create(&d).unwrap(), k1);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn refuses_malformed_and_readable_keys() {
        let d = scratch("bad");
        load_or_create(&d).unwrap();
        let p = key_path(&d);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(load_or_create(&d), Err(KeyError::TooOpen { .. })));
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&p, b"short").unwrap();
        assert!(matches!(
            load_or_create(&d),
            Err(KeyError::Malformed { len: 5, .. })
        ));
        let _ = fs::remove_dir_all(&d);
    }
}
