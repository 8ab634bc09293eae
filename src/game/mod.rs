//! The aquarium, a game on the framework: it declares its player data ([`data`]), its config
//! keys (`keys.ron`) and its remote messages ([`protocol`]) through [`AquariumGame`], like any
//! game, and splits into
//! - [`rules`]: the economy and how an operation changes a profile (plain functions, shared by
//!   the server and the client's prediction);
//! - [`server`]: the shop, feeding, gifts and visits against the live profile, income and hunger
//!   every second, the player's state pushed to them, the income watch, its admin command;
//! - [`client`]: prediction of the player's own operations, the leaderboard, visits.
//!
//! Its looks (species, tank sizes, flocking) are here too, for the window (`crate::client`).

mod art;
mod boids;
pub mod food;
pub mod client;
pub mod data;
mod health;
pub mod protocol;
pub mod rules;
pub mod server;
mod species;

use bevy::prelude::*;

pub use art::{GameSound, SOUND_RATE, SOUNDS, tank_half_extents};
pub use boids::{Boid, Flock, step as flock_step, step_all_pairs as flock_step_all_pairs};
pub use client::{
    DailyClaims, GameClientPlugin, Leaderboard, Notices, Prediction, Predictor, ScriptedOps,
    TradeBook, TradeScript, Visit,
};
pub use data::{Aquarium, DataStoreState, Fish, LiveProfile, OfflineGift, Profile, Stats, Tank};
pub use rules::{
    Catalog, DECORATIONS, EconomyError, GameOp, Receipt, advance as advance_economy, state_of,
    to_profile,
};
pub use server::{GameServerPlugin, GameServerState, IncomeWatch, leaderboard};
pub use species::{DECORATION_KEYS, SPECIES, Species, species_model};

use crate::config::Config;
use crate::security::Suspicion;

/// A purchase costing more than the balance (a client that knows its balance never asks).
pub const OVERSPEND: Suspicion = Suspicion("overspend");
/// Coins rose faster than the player's fish can earn plus what was credited.
pub const IMPOSSIBLE_INCOME: Suspicion = Suspicion("impossible_income");

/// The aquarium, as the framework sees it: its player data, config keys and messages.
pub struct AquariumGame;

/// The aquarium's own config keys (`src/game/keys.ron`).
pub const KEYS: crate::config::GameKeys = crate::config::GameKeys {
    name: "aquarium keys (src/game/keys.ron)",
    schema: include_str!("keys.ron"),
    derived: species::derived_defaults,
};

impl crate::definition::Game for AquariumGame {
    const NAME: &'static str = "aquarium";
    const KEYS: crate::config::GameKeys = KEYS;
    type Data = Aquarium;

    fn protocol(app: &mut App) {
        protocol::register(app);
    }
}

/// The shop's catalog, built from the `game.*` config once per config version instead of for
/// every request and every frame.
#[derive(Resource, Debug)]
pub struct Shop {
    version: Option<u64>,
    catalog: Result<Catalog, String>,
}

impl Default for Shop {
    fn default() -> Self {
        Self {
            version: None,
            catalog: Err("no config yet".into()),
        }
    }
}

impl Shop {
    /// The catalog, unless the config's `game.*` values cannot make one.
    pub fn catalog(&self) -> Option<&Catalog> {
        self.catalog.as_ref().ok()
    }

    /// Why there is no catalog.
    pub fn error(&self) -> Option<&str> {
        self.catalog.as_ref().err().map(String::as_str)
    }

    fn refresh(&mut self, config: &Config) {
        if self.version == Some(config.version()) {
            return;
        }
        self.version = Some(config.version());
        self.catalog = Catalog::from_config(config).map_err(|e| {
            error!("the shop's catalog is unreadable: {e}");
            e.to_string()
        });
    }
}
