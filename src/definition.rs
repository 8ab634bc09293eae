//! What a game built on the framework gives it: its per-player data, its own config keys and its
//! remote messages. The mode functions and plugin groups (`app`) are generic over a [`Game`]; the
//! game adds its own server and client plugins beside them.

use bevy::prelude::App;

use crate::config::GameKeys;
use crate::datastore::PlayerData;

/// A game on the framework.
pub trait Game: Send + Sync + 'static {
    /// Its name, for logs.
    const NAME: &'static str;
    /// Its own config keys, beside the framework's.
    const KEYS: GameKeys;
    /// Its per-player saved data.
    type Data: PlayerData;

    /// Registers its remote events and functions (`RemoteApp`). Called on the server's and
    /// the client's App alike, and on a scratch App to learn the protocol id.
    fn protocol(app: &mut App);

    /// The netcode protocol id of a build of this game: the framing version and the
    /// fingerprint of the framework's messages and this game's.
    fn protocol_id() -> u64 {
        crate::transport::protocol_table(Self::protocol).protocol_id()
    }
}
