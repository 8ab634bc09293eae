//! Bloxquarium: a multiplayer aquarium game and the server/client framework under it.
//!
//! One binary runs as a dedicated `server`, a `client`, or `play` (both in one process). Each mode
//! is an App built by a function in [`app`] from plugin groups; each subsystem is a folder with one
//! plugin as its door.

pub mod app;
pub mod assets;
pub mod cli;
pub mod client;
pub mod config;
pub mod datastore;
pub mod game;
pub mod health;
pub mod keys;
pub mod loadtest;
pub mod protocol;
pub mod reconcile;
pub mod security;
pub mod server;
pub mod shutdown;
pub mod transport;

#[cfg(feature = "client")]
pub use app::ClientRenderPlugins;
pub use app::{
    ClientPlugins, Paths, ProcessOptions, RunMode, ServerPlugins, SharedPlugins, StartError,
    client_app, play_app, server_app,
};
pub use protocol::PROTOCOL_VERSION;
