//! Handoff between servers on one shared store: a server that needs a profile another live
//! server holds asks it, over the store's channel (PostgreSQL `LISTEN`/`NOTIFY`), to save and
//! release it, and loads it again every [`RETRY`] until it can (or [`GIVE_UP_AFTER`] has
//! passed: then the player is told, as before, that the profile is open elsewhere). The holder
//! ends that player's session, so the usual leave path saves and releases the lock.
//!
//! The ask is repeated every [`ASK_AGAIN`] while the wait lasts: a notification sent while the
//! holder's listener was reconnecting is lost, not queued.
//!
//! The same channel carries [`Note::Deliver`]: a save that left a message in another player's
//! inbox tells every server, and the one that player plays on saves them at once (which takes
//! the message, exactly once, in the same transaction as the credit). A lost note only delays
//! the delivery to that player's next auto-save.

use std::time::Duration;

use bevy::prelude::*;
use bevy::tasks::IoTaskPool;
use serde::{Deserialize, Serialize};

use super::postgres::ChannelListener;
use super::{DataStore, PlayerData, Store};
use crate::transport::KickRequested;

/// Between a refused load and the next try.
pub const RETRY: Duration = Duration::from_millis(50);
/// How often the holder is asked again while the wait lasts.
pub const ASK_AGAIN: Duration = Duration::from_secs(1);
/// How long a load waits for the holder before the player is told to try later.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(5);

/// What one server says to another over the store's channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Note {
    /// Server `from` needs `player`'s profile, which `to` holds: save and release it.
    Release {
        /// The holder.
        to: String,
        /// The server asking.
        from: String,
        /// The player.
        player: u64,
    },
    /// A message for `player` waits in the store (a gift, a trade's parcel): the server they
    /// play on, if any, saves them at once, which delivers it.
    Deliver {
        /// The recipient.
        player: u64,
    },
    /// `player`'s session is to end wherever it runs (a kick, a ban, a disabled account on
    /// server `from`).
    End {
        /// The player.
        player: u64,
        /// Shown to the player.
        reason: String,
        /// The server that ended it.
        from: String,
    },
    /// A ban or role changed on server `from`: every other server applies it too.
    Security {
        /// The change.
        change: crate::security::SecurityChange,
        /// The server it was made on.
        from: String,
    },
    /// A Shared config key was changed on server `from`; every other server applies it too
    /// (and a server that starts later reads it from the store).
    Config {
        /// The key.
        path: String,
        /// Its new value.
        value: crate::protocol::ConfigValue,
        /// Who changed it.
        actor: String,
        /// The server it was changed on.
        from: String,
    },
    /// Something the game on server `from` tells the game on server `to` (on every other
    /// server when `None`): a trade between players on two servers. The data store only
    /// carries it (see [`GameNote`]).
    Game {
        /// The server it comes from.
        from: String,
        /// The server it is for; `None`: every other.
        to: Option<String>,
        /// The game's note (its own JSON).
        body: String,
    },
}

/// A note the game on another server of the shared store sent to this one (see
/// [`send_game_note`]).
#[derive(Message, Debug, Clone, PartialEq, Eq)]
pub struct GameNote {
    /// The server it comes from.
    pub from: String,
    /// The game's note.
    pub body: String,
}

/// Sends the game's note `body` from server `from` to server `to` (every other server when
/// `None`) over `store`'s channel, from the IO pool. `false`, and nothing sent, on a store
/// without a channel (the embedded one: one server only).
pub fn send_game_note(
    store: &super::DataStore,
    from: &str,
    to: Option<&str>,
    body: String,
) -> bool {
    if !store.is_shared() {
        return false;
    }
    send(
        &store.0,
        &Note::Game {
            from: from.to_string(),
            to: to.map(str::to_string),
            body,
        },
    );
    true
}

/// The reason a config change applied from the store carries (it is not sent on again).
pub const SHARED_CONFIG: &str = "shared store";

/// This server's end of the store's channel (none on the embedded store: one server only).
#[derive(Resource, Default)]
pub struct StoreChannel {
    pub(super) listener: Option<ChannelListener>,
}

impl StoreChannel {
    /// Listens on `store`'s channel if it has one.
    pub fn open(store: &Store) -> Self {
        Self {
            listener: store.backend().postgres().map(|pg| pg.listen()),
        }
    }
}

/// A load refused because another live server holds the profile, waiting for its handoff.
#[derive(Debug, Clone)]
pub(super) struct Waiting {
    pub client: u64,
    pub player: u64,
    pub name: String,
    pub session: u128,
    pub holder: String,
    /// When the first load was refused.
    pub since: Duration,
    /// When to load again.
    pub due: Duration,
    /// When the holder was last asked.
    pub asked: Duration,
    /// A load is in flight for it.
    pub loading: bool,
}

impl Note {
    /// The note as the channel carries it.
    fn payload(&self) -> Result<String, super::BackendError> {
        serde_json::to_string(self)
            .map_err(|e| super::BackendError(format!("a note for the store channel: {e}")))
    }
}

/// Asks server `holder`, over `store`'s channel, to hand `player`'s profile over to `asker`.
pub(super) fn ask_release(store: &std::sync::Arc<Store>, holder: &str, asker: &str, player: u64) {
    send(
        store,
        &Note::Release {
            to: holder.to_string(),
            from: asker.to_string(),
            player,
        },
    );
}

/// A message waits in the store for `player`, who does not play here: on a shared store, every
/// server is told, and the one they play on saves them at once (which delivers it).
pub(super) fn deliver_elsewhere(store: &std::sync::Arc<Store>, player: u64) {
    if store.backend().postgres().is_some() {
        send(store, &Note::Deliver { player });
    }
}

/// Sends `note` on `store`'s channel from the IO pool (the tick never waits on it).
pub(super) fn send(store: &std::sync::Arc<Store>, note: &Note) {
    let payload = match note.payload() {
        Ok(p) => p,
        Err(e) => {
            warn!("{e}");
            return;
        }
    };
    let store = store.clone();
    IoTaskPool::get()
        .spawn(async move {
            if let Some(pg) = store.backend().postgres()
                && let Err(e) = pg.notify(&payload)
            {
                warn!("store channel: {e}");
            }
        })
        .detach();
}

/// Runs `op`, a store operation on `player` (restoring a version), outside a server: while a
/// live server's lock refuses it, that server is asked over the channel to hand the profile
/// over (its player's session ends first), and `op` runs again every 100 ms until
/// [`GIVE_UP_AFTER`]. Blocks; for command-line tools. On the embedded store `op` runs once.
pub fn after_handoff<T>(
    store: &Store,
    player: u64,
    asker: &str,
    mut op: impl FnMut() -> Result<T, super::StoreError>,
) -> Result<T, super::StoreError> {
    let started = std::time::Instant::now();
    let mut asked: Option<std::time::Instant> = None;
    loop {
        match op() {
            Err(super::StoreError::Locked { holder, .. })
                if started.elapsed() < GIVE_UP_AFTER && store.backend().postgres().is_some() =>
            {
                if asked.is_none_or(|t| t.elapsed() >= ASK_AGAIN)
                    && let Some(pg) = store.backend().postgres()
                {
                    let note = Note::Release {
                        to: holder,
                        from: asker.to_string(),
                        player,
                    };
                    pg.notify(&note.payload()?)?;
                    asked = Some(std::time::Instant::now());
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

/// Reads the channel: a release asked of this server ends that player's session here (the
/// leave path saves and releases). Anything unreadable is logged and dropped.
pub(super) fn answer_notes<D: PlayerData>(
    channel: Res<StoreChannel>,
    mut state: ResMut<super::DataStoreState<D>>,
    mut kicks: MessageWriter<KickRequested>,
    mut config: ResMut<crate::config::Config>,
    time: Res<Time<Real>>,
    mut security: MessageWriter<crate::security::ApplySecurityChange>,
    mut game: MessageWriter<GameNote>,
) {
    let Some(listener) = &channel.listener else {
        return;
    };
    for payload in listener.drain() {
        match serde_json::from_str::<Note>(&payload) {
            Ok(Note::Release { to, from, player }) if to == state.server_id => {
                match state.live.get(&player) {
                    Some(live) => {
                        info!(player, "handing the profile over to server {from}");
                        kicks.write(KickRequested {
                            client: live.client,
                            reason: "your game moved to another server".into(),
                        });
                    }
                    None => debug!(player, "asked to release a profile not live here"),
                }
            }
            Ok(Note::Deliver { player }) => state.deliver_soon(player),
            Ok(Note::End {
                player,
                reason,
                from,
            }) if from != state.server_id => {
                if let Some(live) = state.live.get(&player) {
                    info!(
                        player,
                        "ending the session, as server {from} asks: {reason}"
                    );
                    kicks.write(KickRequested {
                        client: live.client,
                        reason,
                    });
                }
            }
            Ok(Note::Config {
                path,
                value,
                actor,
                from,
            }) if from != state.server_id => {
                let reason = format!("{SHARED_CONFIG} (changed on server {from})");
                if let Err(e) = config.set(&path, value, &actor, &reason, time.elapsed()) {
                    warn!("config change from server {from} not applied: {e}");
                }
            }
            Ok(Note::Security { change, from }) if from != state.server_id => {
                security.write(crate::security::ApplySecurityChange {
                    change,
                    from: format!("server {from}"),
                });
            }
            Ok(Note::Game { from, to, body })
                if from != state.server_id
                    && to.as_ref().is_none_or(|to| *to == state.server_id) =>
            {
                game.write(GameNote { from, body });
            }
            Ok(
                Note::Release { .. }
                | Note::End { .. }
                | Note::Config { .. }
                | Note::Security { .. }
                | Note::Game { .. },
            ) => {}
            Err(e) => warn!("store channel: an unreadable note ({e}): {payload:.200}"),
        }
    }
}

/// Loads again each waiting profile that is due (and asks its holder again now and then).
pub(super) fn retry_waiting<D: PlayerData>(
    store: Res<DataStore>,
    mut state: ResMut<super::DataStoreState<D>>,
    time: Res<Time<Real>>,
) {
    let now = time.elapsed();
    let due: Vec<usize> = (0..state.waiting.len())
        .filter(|&i| !state.waiting[i].loading && state.waiting[i].due <= now)
        .collect();
    for i in due {
        let w = state.waiting[i].clone();
        if now.saturating_sub(w.asked) >= ASK_AGAIN {
            ask_release(&store.0, &w.holder, &state.server_id, w.player);
            state.waiting[i].asked = now;
        }
        state.waiting[i].loading = true;
        super::jobs::spawn_load(
            &mut state,
            &store.0,
            (w.client, w.player, w.session),
            w.name,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_read_back_and_strangers_are_refused() {
        let note = Note::Release {
            to: "server-1".into(),
            from: "server-2".into(),
            player: 42,
        };
        let text = serde_json::to_string(&note).unwrap();
        assert!(text.contains("\"kind\":\"release\""), "{text}");
        assert_eq!(serde_json::from_str::<Note>(&text).unwrap(), note);
        assert!(serde_json::from_str::<Note>(r#"{"kind":"explode"}"#).is_err());
        assert!(serde_json::from_str::<Note>("not json").is_err());
    }
}
