//! What the servers of a shared store tell each other besides handoff and delivery: a player's
//! session to end (a kick, a ban, a disabled account: security and accounts announce
//! `EndSessionsElsewhere`); bans and role assignments (security announces `SecurityChanged`);
//! and Shared config keys changed at run time (an admin's `SetConfig`). Bans, roles and config
//! changes are also kept in the store, so that a server started later applies them too.

use bevy::prelude::*;
use bevy::tasks::{IoTaskPool, Task};

use super::handoff::{self, Note, SHARED_CONFIG};
use super::{Backend, DataStore, DataStoreState, PlayerData, Store, StoreError, Table};
use crate::config::{Config, ConfigChanged, Side, Tier};
use crate::protocol::ConfigValue;
use crate::security::{
    ApplySecurityChange, AuditQuery, AuditRecord, AuditRecorded, EndSessionsElsewhere,
    SecurityChange, SecurityChanged,
};

/// The [`Table::Meta`] rows of bans (‖ player → until, Unix ms) and role assignments (‖ player →
/// role).
const BAN_PREFIX: &[u8] = b"ban/";
const ROLE_PREFIX: &[u8] = b"role/";

/// The [`Table::Meta`] rows of Shared config keys changed at run time: this prefix ‖ the key.
const CONFIG_PREFIX: &[u8] = b"config/";

/// A stored config change.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredChange {
    value: ConfigValue,
    actor: String,
}

impl super::Datastore<super::StoreBackend> {
    fn put_shared_config(&self, path: &str, change: &[u8]) -> Result<(), StoreError> {
        let mut key = CONFIG_PREFIX.to_vec();
        key.extend_from_slice(path.as_bytes());
        Ok(self
            .backend()
            .write(true, |ops| ops.put(Table::Meta, &key, change))?)
    }

    fn keep_security(&self, change: &SecurityChange) -> Result<(), StoreError> {
        let key = |prefix: &[u8], player: u64| {
            let mut k = prefix.to_vec();
            k.extend_from_slice(&player.to_be_bytes());
            k
        };
        Ok(self.backend().write(true, |ops| match change {
            SecurityChange::Ban { player, until_ms } => ops.put(
                Table::Meta,
                &key(BAN_PREFIX, *player),
                &until_ms.to_be_bytes(),
            ),
            SecurityChange::Unban { player } => ops.delete(Table::Meta, &key(BAN_PREFIX, *player)),
            SecurityChange::Role { player, role } => {
                ops.put(Table::Meta, &key(ROLE_PREFIX, *player), role.as_bytes())
            }
        })?)
    }

    /// The bans and role assignments kept in the store.
    fn kept_security(&self) -> Result<Vec<SecurityChange>, StoreError> {
        let (bans, roles) = self.backend().read(|ops| {
            Ok::<_, super::BackendError>((
                ops.scan(Table::Meta, BAN_PREFIX)?,
                ops.scan(Table::Meta, ROLE_PREFIX)?,
            ))
        })?;
        let id = |k: &[u8], prefix: &[u8]| {
            let mut b = [0u8; 8];
            let tail = &k[prefix.len()..];
            (tail.len() == 8).then(|| {
                b.copy_from_slice(tail);
                u64::from_be_bytes(b)
            })
        };
        let mut out = Vec::new();
        for (k, v) in bans {
            if let (Some(player), Ok(until)) =
                (id(&k, BAN_PREFIX), <[u8; 8]>::try_from(v.as_slice()))
            {
                out.push(SecurityChange::Ban {
                    player,
                    until_ms: u64::from_be_bytes(until),
                });
            }
        }
        for (k, v) in roles {
            if let Some(player) = id(&k, ROLE_PREFIX) {
                out.push(SecurityChange::Role {
                    player,
                    role: String::from_utf8_lossy(&v).into_owned(),
                });
            }
        }
        Ok(out)
    }

    /// Appends audit records to the store's audit log (one transaction).
    pub fn append_audit(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        let rows: Vec<(Vec<u8>, Vec<u8>)> = records
            .iter()
            .map(|r| {
                let mut key = r.at_ms.to_be_bytes().to_vec();
                let mut salt = [0u8; 8];
                getrandom::fill(&mut salt).map_err(|e| StoreError::Aborted(e.to_string()))?;
                key.extend_from_slice(&salt);
                let value =
                    serde_json::to_vec(r).map_err(|e| StoreError::Aborted(e.to_string()))?;
                Ok((key, value))
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(self.backend().write(true, |ops| {
            for (k, v) in &rows {
                ops.put(Table::Audit, k, v)?;
            }
            Ok::<_, super::BackendError>(())
        })?)
    }

    /// The store's audit records matching `q`, oldest first (every server's, on a shared store).
    pub fn audit_records(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = self.backend().read(|ops| ops.scan(Table::Audit, &[]))?;
        Ok(rows
            .iter()
            .filter_map(|(_, v)| serde_json::from_slice::<AuditRecord>(v).ok())
            .filter(|r| q.player.is_none_or(|p| r.player == Some(p)))
            .filter(|r| q.kind.is_none_or(|k| r.kind == k))
            .filter(|r| q.since_ms.is_none_or(|t| r.at_ms >= t))
            .collect())
    }

    /// Removes the audit records older than `cutoff_ms` (retention); how many.
    pub fn expire_audit(&self, cutoff_ms: u64) -> Result<usize, StoreError> {
        Ok(self.backend().write(true, |ops| {
            let old: Vec<Vec<u8>> = ops
                .scan(Table::Audit, &[])?
                .into_iter()
                .map(|(k, _)| k)
                .take_while(|k| {
                    k.get(..8)
                        .is_some_and(|t| t < cutoff_ms.to_be_bytes().as_slice())
                })
                .collect();
            for k in &old {
                ops.delete(Table::Audit, k)?;
            }
            Ok::<_, super::BackendError>(old.len())
        })?)
    }

    fn shared_config(&self) -> Result<Rows, StoreError> {
        let rows = self
            .backend()
            .read(|ops| ops.scan(Table::Meta, CONFIG_PREFIX))?;
        Ok(rows
            .into_iter()
            .map(|(k, v)| {
                let path = String::from_utf8_lossy(&k[CONFIG_PREFIX.len()..]).into_owned();
                (path, v)
            })
            .collect())
    }
}

/// Stored config changes: (key, change).
type Rows = Vec<(String, Vec<u8>)>;

/// What is kept in the store and read at start: config changes, bans and roles.
type Kept = (Rows, Vec<SecurityChange>);

/// The stored changes being read at start.
#[derive(Resource, Default)]
pub(super) struct StoredConfig {
    read: Option<Task<Result<Kept, StoreError>>>,
    done: bool,
}

/// Bans and roles changed here by an admin: kept in the store, and every other server told.
pub(super) fn forward_security<D: PlayerData>(
    mut changes: MessageReader<SecurityChanged>,
    store: Res<DataStore>,
    state: Res<DataStoreState<D>>,
) {
    if store.backend().postgres().is_none() {
        changes.clear();
        return;
    }
    for SecurityChanged(change) in changes.read() {
        let note = Note::Security {
            change: change.clone(),
            from: state.server_id.clone(),
        };
        let (store, change) = (store.0.clone(), change.clone());
        IoTaskPool::get()
            .spawn(async move {
                if let Err(e) = store.keep_security(&change) {
                    warn!("{change:?} not kept in the store: {e}");
                }
                handoff::send(&store, &note);
            })
            .detach();
    }
}

/// Sessions ended here that may run on another server: ended there too.
pub(super) fn forward_ends<D: PlayerData>(
    mut ends: MessageReader<EndSessionsElsewhere>,
    store: Res<DataStore>,
    state: Res<DataStoreState<D>>,
) {
    for e in ends.read() {
        handoff::send(
            &store.0,
            &Note::End {
                player: e.player,
                reason: e.reason.clone(),
                from: state.server_id.clone(),
            },
        );
    }
}

/// A Shared key an admin changed here, or an edit of this server's config files changed: kept
/// in the store, and every other server told (the last change wins everywhere).
pub(super) fn forward_config<D: PlayerData>(
    mut changes: MessageReader<ConfigChanged>,
    store: Res<DataStore>,
    state: Res<DataStoreState<D>>,
    config: Res<Config>,
) {
    for c in changes.read() {
        let shared = config
            .schema()
            .key(&c.path)
            .is_some_and(|k| k.spec.tier == Tier::Shared);
        // An admin's run-time change and an edit of the config files are carried on; a change
        // that came from another server carries neither reason, so none loops.
        let carried = c.reason == crate::config_sync::CLIENT_REQUEST
            || (c.actor.as_str(), c.reason.as_str()) == crate::config::RELOAD;
        if c.side != Side::Server || !shared || !carried {
            continue;
        }
        if store.backend().postgres().is_none() {
            continue;
        }
        let (path, value, actor) = (c.path.clone(), c.new.clone(), c.actor.clone());
        let note = Note::Config {
            path: path.clone(),
            value: value.clone(),
            actor: actor.clone(),
            from: state.server_id.clone(),
        };
        let store = store.0.clone();
        IoTaskPool::get()
            .spawn(
                async move { keep_and_tell(&store, &path, StoredChange { value, actor }, &note) },
            )
            .detach();
    }
}

fn keep_and_tell(store: &std::sync::Arc<Store>, path: &str, change: StoredChange, note: &Note) {
    let kept = serde_json::to_vec(&change)
        .map_err(|e| e.to_string())
        .and_then(|bytes| {
            store
                .put_shared_config(path, &bytes)
                .map_err(|e| e.to_string())
        });
    if let Err(e) = kept {
        warn!("config change of {path} not kept in the store: {e}");
    }
    handoff::send(store, note);
}

/// At start, on a shared store: the Shared keys changed at run time on any server apply here.
pub(super) fn apply_stored_config(
    store: Res<DataStore>,
    mut stored: ResMut<StoredConfig>,
    mut config: ResMut<Config>,
    time: Res<Time<Real>>,
    mut security: MessageWriter<ApplySecurityChange>,
) {
    if stored.done || store.backend().postgres().is_none() {
        return;
    }
    if stored.read.is_none() {
        let store = store.0.clone();
        stored.read = Some(
            IoTaskPool::get()
                .spawn(async move { Ok((store.shared_config()?, store.kept_security()?)) }),
        );
        return;
    }
    let Some(rows) = crate::process::take_if_finished(&mut stored.read) else {
        return;
    };
    stored.done = true;
    let (rows, kept) = match rows {
        Ok(r) => r,
        Err(e) => {
            warn!("the config changes, bans and roles kept in the store could not be read: {e}");
            return;
        }
    };
    for change in kept {
        security.write(ApplySecurityChange {
            change,
            from: "the shared store".into(),
        });
    }
    for (path, bytes) in rows {
        let applied = serde_json::from_slice::<StoredChange>(&bytes)
            .map_err(|e| e.to_string())
            .and_then(|c| {
                if config.value(&path).is_ok_and(|v| v == c.value) {
                    return Ok(());
                }
                config
                    .set(&path, c.value, &c.actor, SHARED_CONFIG, time.elapsed())
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = applied {
            warn!("the stored config change of {path} does not apply here: {e}");
        }
    }
}

/// This server's audit records, kept in the shared store (one transaction a frame).
pub(super) fn forward_audit(mut records: MessageReader<AuditRecorded>, store: Res<DataStore>) {
    let batch: Vec<AuditRecord> = records.read().map(|r| r.0.clone()).collect();
    if batch.is_empty() || store.backend().postgres().is_none() {
        return;
    }
    let store = store.0.clone();
    IoTaskPool::get()
        .spawn(async move {
            if let Err(e) = store.append_audit(&batch) {
                warn!(
                    "{} audit record(s) not kept in the store (they are in this server's own \
                     log): {e}",
                    batch.len()
                );
            }
        })
        .detach();
}
