//! All integration tests, in one binary (each extra test binary links all of Bevy again).
//! Subsystem tests live in `<subsystem>.rs`; `harness` builds the apps they drive.

mod assets;
mod config;
mod datastore;
mod foundation;
mod fuzz_seeds;
mod game;
mod harness;
mod health;
mod key_effects;
mod keys;
mod layers;
mod pg_cluster;
mod postgres;
mod login;
mod reconcile;
mod room;
mod schedule;
mod security;
mod transport;
#[cfg(feature = "client")]
mod ui;
