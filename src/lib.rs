//! Bloxquarium: a multiplayer aquarium game and the server/client framework under it.
//!
//! One binary runs as a dedicated `server`, a `client`, or `play` (both in one process). Each mode
//! is an App built by a function in [`app`] from plugin groups; each subsystem is a folder with one
//! plugin as its door. The modules below are listed by layer, lowest first; a module imports only
//! from modules listed above it (`ARCHITECTURE.md`; the layer check in `tests/it/layers.rs`
//! enforces it).

// Ground: wire types, time, keys, the process, the integration registry, shutdown.
pub mod clock;
pub mod process;
pub mod keys;
pub mod protocol;
pub mod integration;
pub mod stages;
pub mod shutdown;

// Framework, in this order.
pub mod server;
pub mod config;
pub mod transport;
pub mod health;
pub mod security;
pub mod config_sync;
pub mod reconcile;
pub mod datastore;
pub mod accounts;
pub mod assets;
pub mod definition;

// The game: rules and server (`game`), and its window (`client`).
pub mod game;
pub mod client;

// Modes and tools.
pub mod cli;
pub mod assetgen;
pub mod tools;
pub mod loadtest;
pub mod app;

/// What most code built on the crate needs: the plugin groups, the frame's stages, the config
/// and the network services.
pub mod prelude {
    pub use crate::app::{ClientPlugins, ServerPlugins, SharedPlugins};
    pub use crate::config::{ClientConfig, Config, ConfigChanged, GameKeys};
    pub use crate::datastore::{DataStoreState, PlayerData, Profile, ProfileLoaded};
    pub use crate::definition::Game;
    pub use crate::process::{Paths, RunMode};
    pub use crate::protocol::{Delivery, Remote, RemoteError, RemoteFunction};
    pub use crate::stages::{BetweenTicks, ClientSystems, ServerRequests, ServerSystems};
    pub use crate::transport::{Answer, Call, FromClient, FromServer, RemoteApp};
    pub use crate::transport::{ClientNet, ServerNet};
}

#[cfg(feature = "client")]
pub use app::ClientRenderPlugins;
pub use app::{
    ClientPlugins, ProcessOptions, ServerPlugins, SharedPlugins, StartError, client_app, play_app,
    server_app,
};
pub use process::{Paths, RunMode};
pub use protocol::PROTOCOL_VERSION;
