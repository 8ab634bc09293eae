//! The aquarium game, server side: the shop (sealed `Purchase` requests against the live
//! profile) and the income watch that feeds the security detectors. The economy's rules are
//! plain functions in [`economy`].

pub mod economy;

use std::time::Duration;

use bevy::prelude::*;

pub use economy::{Catalog, EconomyError, Receipt};

use crate::config::Config;
use crate::datastore::DataStoreState;
use crate::protocol::{RemoteError, SealedRequest, SealedResponse};
use crate::security::{Security, Suspicion, SuspiciousActivity};
use crate::transport::{SealedRequestReceived, ServerNet};

/// How often the income watch looks at every live balance.
const INCOME_CHECK_EVERY: Duration = Duration::from_secs(1);

/// The game's server plugin.
pub struct GameServerPlugin;

impl Plugin for GameServerPlugin {
    fn build(&self, app: &mut App) {
        app.add_message::<SuspiciousActivity>()
            .add_systems(Update, (answer_purchases, watch_income).chain());
    }
}

/// Purchases against the buyer's live profile; a purchase over the balance is suspicious (a
/// client knows its balance and never asks).
fn answer_purchases(
    mut requests: MessageReader<SealedRequestReceived>,
    net: Option<ResMut<ServerNet>>,
    config: Option<Res<Config>>,
    profiles: Option<ResMut<DataStoreState>>,
    mut suspicious: MessageWriter<SuspiciousActivity>,
) {
    let (Some(mut net), Some(config), Some(mut profiles)) = (net, config, profiles) else {
        return;
    };
    for r in requests.read() {
        let SealedRequest::Purchase {
            op_id,
            item,
            quantity,
        } = r.body
        else {
            continue;
        };
        let Some(player) = net.session(r.client).map(|s| s.player_id) else {
            continue;
        };
        let catalog = match Catalog::from_config(&config) {
            Ok(c) => c,
            Err(e) => {
                error!("the shop's catalog is unreadable: {e}");
                net.respond_sealed(
                    r.client,
                    r.id,
                    Err(RemoteError::Rejected("the shop is closed".into())),
                );
                continue;
            }
        };
        let result = match profiles.profile(player).map(|l| l.profile.clone()) {
            None => Err(RemoteError::Rejected(
                "your profile is still loading; try again in a moment".into(),
            )),
            Some(mut profile) => match catalog.buy(&mut profile, item, quantity) {
                Ok(receipt) => {
                    let answer = SealedResponse::Purchased {
                        op_id,
                        coins: profile.stats.coins,
                        fish: profile.fish.len() as u32,
                        tank_level: receipt.tank_level,
                    };
                    if let Some(live) = profiles.profile_mut(player) {
                        *live = profile;
                    }
                    Ok(answer)
                }
                Err(e) => {
                    if let EconomyError::InsufficientCoins { price, balance } = e {
                        suspicious.write(SuspiciousActivity {
                            client: Some(r.client),
                            player: Some(player),
                            kind: Suspicion::Overspend,
                            detail: format!(
                                "asked to buy {quantity} x {item:?} for {price} with {balance} coins"
                            ),
                        });
                    }
                    Err(RemoteError::Rejected(e.to_string()))
                }
            },
        };
        net.respond_sealed(r.client, r.id, result);
    }
}

/// Every second, each live balance against what that player's fish could have earned.
fn watch_income(
    config: Option<Res<Config>>,
    profiles: Option<Res<DataStoreState>>,
    security: Option<ResMut<Security>>,
    time: Res<Time<Real>>,
    mut last: Local<Duration>,
    mut suspicious: MessageWriter<SuspiciousActivity>,
) {
    let (Some(config), Some(profiles), Some(mut security)) = (config, profiles, security) else {
        return;
    };
    let now = time.elapsed();
    if now.saturating_sub(*last) < INCOME_CHECK_EVERY {
        return;
    }
    *last = now;
    let Ok(catalog) = Catalog::from_config(&config) else {
        return;
    };
    for player in profiles.players().collect::<Vec<_>>() {
        let Some(live) = profiles.profile(player) else {
            continue;
        };
        let rate = catalog.max_income_per_second(&live.profile);
        if let Some(detail) = security
            .income
            .observe(player, live.profile.stats.coins, rate, now)
        {
            suspicious.write(SuspiciousActivity {
                client: None,
                player: Some(player),
                kind: Suspicion::ImpossibleIncome,
                detail,
            });
        }
    }
}
