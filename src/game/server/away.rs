//! Coming back, on the server: when a profile with fish loads, what the fish earned while the
//! player was away is credited (an operation through the profile door: logged, told to the
//! income watch, the new state pushed) and the client is told; `ClaimDaily` credits the daily
//! reward the same way, once a day.

use bevy::prelude::*;

use super::GameServerState;
use super::door::{Operation, ProfileDoor};
use crate::config::Config;
use crate::datastore::ProfileLoaded;
use crate::game::Shop;
use crate::game::protocol::{ClaimDaily, DailyReward, WelcomeBack};
use crate::game::rules::{AwayRules, claim_daily, earn_while_away, until_next_day};
use crate::protocol::RemoteError;
use crate::transport::Call;

/// Replaces the player's live profile with `after` (the rules applied to a copy) as the
/// player's own operation `kind`, crediting `coins` the fish did not earn online.
fn credit(
    door: &mut ProfileDoor,
    (player, last_op): (u64, u64),
    kind: &'static str,
    payload: serde_json::Value,
    after: crate::game::Profile,
    coins: i64,
) {
    let op = Operation {
        player,
        actor: player,
        kind,
        payload,
        last_op,
        push: true,
    };
    door.change(op, |p| {
        *p = after;
        Ok::<i64, std::convert::Infallible>(coins)
    });
}

pub(super) fn welcome_back(
    mut loaded: MessageReader<ProfileLoaded>,
    config: Res<Config>,
    shop: Res<Shop>,
    game: Res<GameServerState>,
    mut door: ProfileDoor,
) {
    let players: Vec<u64> = loaded.read().map(|l| l.player).collect();
    if players.is_empty() {
        return;
    }
    let (Some(catalog), Ok(rules)) = (shop.catalog(), AwayRules::from_config(&config)) else {
        return;
    };
    let now = crate::clock::now_ms();
    for player in players {
        let Some(live) = door.profiles().profile(player) else {
            continue;
        };
        // Without fish nothing was earned, and nothing changes.
        if live.profile.fish.is_empty() {
            continue;
        }
        let client = live.client;
        let mut after = live.profile.clone();
        let (away_secs, earned) = earn_while_away(&mut after, catalog, &rules, now);
        if earned <= 0 {
            // Only the time seen (and the fish's hunger while away) change: no operation.
            door.simulate(player, |p| *p = after);
            continue;
        }
        let payload = serde_json::json!({ "away_s": away_secs, "coins": earned });
        let who = (player, game.last_op(player));
        credit(&mut door, who, "earned_while_away", payload, after, earned);
        info!(player, away_secs, earned, "earned while away");
        door.net().send(
            client,
            &WelcomeBack {
                away_secs,
                coins: earned,
            },
        );
    }
}

pub(super) fn answer_daily_claims(
    mut calls: MessageReader<Call<ClaimDaily>>,
    config: Res<Config>,
    game: Res<GameServerState>,
    mut door: ProfileDoor,
) {
    let now = crate::clock::now_ms();
    for call in calls.read() {
        let player = door.net().session(call.client).map(|s| s.player_id);
        let rules = AwayRules::from_config(&config);
        let answer = match (player, rules) {
            (None, _) => Err(RemoteError::Rejected("not in session".into())),
            (_, Err(e)) => Err(RemoteError::Rejected(format!("daily reward: {e}"))),
            (Some(player), Ok(rules)) => {
                let claimed = door.profiles().profile(player).map(|live| {
                    let mut after = live.profile.clone();
                    claim_daily(&mut after, &rules, now).map(|got| (after, got))
                });
                match claimed {
                    None => Err(RemoteError::Rejected(
                        "your aquarium is not loaded yet".into(),
                    )),
                    Some(None) => {
                        let left = until_next_day(now, rules.reset_hour) / 60_000;
                        Err(RemoteError::Rejected(format!(
                            "today's reward is claimed: the next one in {} h {} min",
                            left / 60,
                            left % 60
                        )))
                    }
                    Some(Some((after, (coins, streak)))) => {
                        let payload = serde_json::json!({ "coins": coins, "streak": streak });
                        let who = (player, game.last_op(player));
                        credit(&mut door, who, "daily_reward", payload, after, coins);
                        info!(player, coins, streak, "daily reward");
                        Ok(DailyReward { coins, streak })
                    }
                }
            }
        };
        door.net().reply(call, answer);
    }
}
