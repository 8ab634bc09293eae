//! `bloxquarium datastore ...`: maintenance on a stopped server's store.

use super::ToolError;
use crate::cli::{DatastoreCommand, GlobalArgs};
use crate::clock::now_ms;
use crate::datastore::{
    LockOwner, SaveRequest, back_up, backup_dir, list_backups, restore_backup, store_id,
    store_path, verify_backup,
};
use crate::game::{Aquarium, Profile};

/// The store of this binary's game (PostgreSQL with `--store`, else the embedded file).
fn open(
    paths: &crate::process::Paths,
    config: &crate::config::Config,
) -> Result<crate::datastore::Store, crate::datastore::OpenError> {
    crate::datastore::open_at::<Aquarium>(paths, config)
}

/// Runs one maintenance command; returns what to print.
pub fn run(global: &GlobalArgs, action: &DatastoreCommand) -> Result<String, ToolError> {
    let paths = global.paths();
    let config = crate::config::load_server(&paths.config, &crate::game::KEYS)?;
    let tool = |e: &dyn std::fmt::Display| ToolError::Failed(e.to_string());
    match action {
        DatastoreCommand::Restore { file } if paths.store.is_some() => {
            // Into an empty PostgreSQL database: a backup of any store, verified, copied in one
            // transaction.
            let url = paths.store.as_deref().unwrap_or_default();
            let r = verify_backup(file, None).map_err(|e| tool(&e))?;
            let db = crate::datastore::PostgresBackend::connect(url).map_err(|e| tool(&e))?;
            let rows = db.restore_from(file).map_err(|e| tool(&e))?;
            Ok(format!(
                "restored {} (sha256 {}, store {}) into {}: {rows} rows",
                r.file.display(),
                r.sha256,
                r.store_id,
                db.shown()
            ))
        }
        DatastoreCommand::Restore { file } => {
            // Verify against this store's id when it can be read, then swap the file.
            let ours = match open(&paths, &config) {
                Ok(store) => Some(store_id(store.backend()).map_err(|e| tool(&e))?),
                Err(_) => None,
            };
            let r = restore_backup(file, &store_path(&paths.data), ours.as_deref(), now_ms())
                .map_err(|e| tool(&e))?;
            Ok(format!(
                "restored {} (sha256 {}) into {}",
                r.file.display(),
                r.sha256,
                store_path(&paths.data).display()
            ))
        }
        DatastoreCommand::Verify { file } => {
            let ours = open(&paths, &config)
                .ok()
                .and_then(|s| store_id(s.backend()).ok());
            let r = verify_backup(file, ours.as_deref()).map_err(|e| tool(&e))?;
            Ok(format!(
                "ok: {} ({} bytes, sha256 {}, store {})",
                r.file.display(),
                r.size,
                r.sha256,
                r.store_id
            ))
        }
        DatastoreCommand::ListBackups => {
            let files = list_backups(&paths.data).map_err(|e| tool(&e))?;
            if files.is_empty() {
                return Ok(format!(
                    "no backups in {}",
                    backup_dir(&paths.data).display()
                ));
            }
            Ok(files
                .iter()
                .map(|f| {
                    format!(
                        "{}  {} bytes",
                        f.display(),
                        std::fs::metadata(f).map_or(0, |m| m.len())
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"))
        }
        DatastoreCommand::Backup => {
            let store = open(&paths, &config)?;
            let retention = config.get::<usize>("datastore.backupRetention")?;
            let r =
                back_up(store.backend(), &paths.data, retention, now_ms()).map_err(|e| tool(&e))?;
            Ok(format!(
                "backup {} ({} bytes, sha256 {})",
                r.file.display(),
                r.size,
                r.sha256
            ))
        }
        DatastoreCommand::Versions { player } => {
            let v = open(&paths, &config)?
                .versions(*player)
                .map_err(|e| tool(&e))?;
            if v.is_empty() {
                return Ok(format!("player {player} has no saved versions"));
            }
            Ok(v.iter()
                .map(|(n, at)| format!("version {n}  saved at {at} ms"))
                .collect::<Vec<_>>()
                .join("\n"))
        }
        DatastoreCommand::Show { player, version } => {
            let store = open(&paths, &config)?;
            let p: Profile = match version {
                Some(v) => store.read_version(*player, *v).map_err(|e| tool(&e))?,
                None => match store.peek(*player).map_err(|e| tool(&e))? {
                    Some((_, p)) => p,
                    None => {
                        return Err(ToolError::Failed(format!("player {player} has no profile")));
                    }
                },
            };
            serde_json::to_string_pretty(&p).map_err(|e| tool(&e))
        }
        DatastoreCommand::RestoreVersion { player, version } => {
            let store = open(&paths, &config)?;
            // On a shared store, a server playing this player hands the profile over first.
            let new =
                crate::datastore::after_handoff(&store, *player, "datastore command line", || {
                    store.restore_version::<Aquarium>(*player, *version, now_ms())
                })
                .map_err(|e| tool(&e))?;
            Ok(format!(
                "player {player}: version {version} restored as version {new}"
            ))
        }
        DatastoreCommand::Erase { player } => {
            let at_ms = now_ms();
            let store = open(&paths, &config)?;
            // On a shared store, a server playing this player ends the session first; the
            // account goes in the same transaction as the profile.
            let n =
                crate::datastore::after_handoff(&store, *player, "datastore command line", || {
                    store.erase_player_with(*player, "cli", at_ms, |ops| {
                        crate::accounts::erase_in(ops, *player)
                    })
                })
                .map_err(|e| tool(&e))?;
            // The audit log beside the store (the store keeps its own erasure record too),
            // unless the operator switched audit logging off.
            if config.get::<bool>("security.enableLogging")? {
                let retention = config.get::<std::time::Duration>("security.auditRetention")?;
                let failed = |e: String| {
                    ToolError::Failed(format!(
                        "player {player} erased ({n} entries), but the audit log in {} could not be written: {e}",
                        paths.data.display()
                    ))
                };
                let mut log = crate::security::AuditLog::open(&paths.data, retention, at_ms)
                    .map_err(|e| failed(e.to_string()))?;
                log.record(crate::security::AuditRecord {
                    at_ms,
                    player: Some(*player),
                    session: None,
                    kind: crate::security::AuditKind::AdminAction,
                    details: format!("erased by the datastore command line: {n} entries"),
                });
                if log.failed > 0 {
                    return Err(failed("append failed".into()));
                }
            }
            Ok(format!("player {player} erased ({n} entries)"))
        }
        DatastoreCommand::Soak { player } => soak(&open(&paths, &config)?, *player),
    }
}

/// Saves `player`'s profile forever, coins = version, printing `acked N` after each durable
/// commit. The crash-safety test kills it with SIGKILL and checks every acked save survived.
fn soak(store: &crate::datastore::Store, player: u64) -> Result<String, ToolError> {
    use std::io::Write;
    let owner = LockOwner {
        server_id: format!("soak-{}", std::process::id()),
        session: 1,
    };
    let loaded = store
        .load::<Aquarium>(player, &owner, now_ms())
        .map_err(|e| ToolError::Failed(e.to_string()))?;
    let mut profile = loaded.profile;
    let mut version = loaded.version;
    let mut out = std::io::stdout();
    loop {
        profile.stats.coins = version as i64 + 1;
        profile.settings.insert("filler".into(), "x".repeat(900));
        let req = SaveRequest::new(profile.clone(), version, owner.clone());
        version = store
            .save(&req, now_ms())
            .map_err(|e| ToolError::Failed(e.to_string()))?
            .version;
        // Only after the durable commit returned.
        if writeln!(out, "acked {version}")
            .and_then(|()| out.flush())
            .is_err()
        {
            return Ok(String::new());
        }
    }
}

/// `bloxquarium servers`: the servers sharing this `--store`, from its directory.
pub fn list_servers(global: &GlobalArgs) -> Result<String, ToolError> {
    let paths = global.paths();
    let Some(url) = paths.store.as_deref() else {
        return Err(ToolError::Failed(
            "servers lists the servers sharing a --store (PostgreSQL); without --store each \
             server has its own embedded file"
                .into(),
        ));
    };
    let db = crate::datastore::PostgresBackend::connect(url)
        .map_err(|e| ToolError::Failed(e.to_string()))?;
    let servers = db.servers().map_err(|e| ToolError::Failed(e.to_string()))?;
    if servers.is_empty() {
        return Ok(format!("no servers on {}", db.shown()));
    }
    let mut out = format!(
        "{:<30} {:<22} {:>9}  heartbeat",
        "server", "address", "players"
    );
    for s in &servers {
        out.push_str(&format!(
            "\n{:<30} {:<22} {:>9}  {:.1} s ago",
            s.id,
            s.address,
            format!("{}/{}", s.players, s.capacity),
            s.heartbeat_age_ms as f64 / 1000.0
        ));
    }
    Ok(out)
}
