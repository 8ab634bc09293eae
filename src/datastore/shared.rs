//! What the servers of a shared store tell each other besides handoff and delivery: a player's
//! session to end (a kick, a ban, a disabled account: security and accounts announce
//! `EndSessionsElsewhere`), and Shared config keys changed at run time (an admin's `SetConfig`),
//! which are also kept in the store so that a server started later applies them too.

use bevy::prelude::*;
use bevy::tasks::{IoTaskPool, Task};

use super::handoff::{self, Note, SHARED_CONFIG};
use super::{Backend, DataStore, DataStoreState, PlayerData, Store, StoreError, Table};
use crate::config::{Config, ConfigChanged, Side, Tier};
use crate::protocol::ConfigValue;
use crate::security::EndSessionsElsewhere;

/// The [`Table::Meta`] rows of Shared config keys changed at run time: this prefix ‖ the key.
const CONFIG_PREFIX: &[u8] = b"config/";

/// The reason a run-time change by an admin carries (`config_sync`): the ones carried on.
const ADMIN_CHANGE: &str = "client request";

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

/// The stored changes being read at start.
#[derive(Resource, Default)]
pub(super) struct StoredConfig {
    read: Option<Task<Result<Rows, StoreError>>>,
    done: bool,
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

/// A Shared key an admin changed here: kept in the store, and every other server told.
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
        if c.side != Side::Server || !shared || c.reason != ADMIN_CHANGE {
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
) {
    if stored.done || store.backend().postgres().is_none() {
        return;
    }
    let Some(task) = &mut stored.read else {
        let store = store.0.clone();
        stored.read = Some(IoTaskPool::get().spawn(async move { store.shared_config() }));
        return;
    };
    let Some(rows) = bevy::tasks::block_on(bevy::tasks::futures_lite::future::poll_once(task))
    else {
        return;
    };
    stored.done = true;
    stored.read = None;
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => {
            warn!("the config changes kept in the store could not be read: {e}");
            return;
        }
    };
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
