//! An admin reverses a committed trade (`ReverseTrade`, permission `admin.grant`): one store
//! transaction over both stored profiles (what waited in their inboxes applied first), neither
//! in play anywhere. A player in play here is sent off first and the admin asked to call again.
//! Each side gets back what the other still has of what it sent (read from the `trade` record
//! its own profile keeps) and the shop price of the rest ([`crate::game::rules::reverse_trade`]);
//! both profiles keep a `trade_reversed` record; the reversal is audited; a trade is reversed
//! at most once.

use bevy::prelude::*;
use bevy::tasks::{IoTaskPool, Task};

use super::door::ProfileDoor;
use crate::datastore::{DataStore, OpRecord};
use crate::game::Shop;
use crate::game::data::{Aquarium, Profile};
use crate::game::protocol::ReverseTrade;
use crate::game::rules::{Catalog, Parcel, Returned, reverse_trade};
use crate::protocol::{RemoteError, RequestId};
use crate::security::{AuditEntry, AuditKind};
use crate::transport::{Call, KickRequested};

/// The lock owner a reversal writes as: no server has this id, so any fresh lock refuses it.
const REVERSAL_OWNER: &str = "admin-trade-reversal";

/// A finished reversal: who asked, the answer, the audit record.
type Reversed = (
    u64,
    RequestId,
    Result<String, RemoteError>,
    Option<AuditEntry>,
);

/// Reversals in flight.
#[derive(Resource, Default)]
pub(super) struct Reversals(Vec<Task<Reversed>>);

/// What `profile` sent in `trade`, from its own `trade` record; an error names what is missing
/// or that the trade was reversed already.
fn sent_in(profile: &Profile, trade: u64) -> Result<Parcel, String> {
    let payload = |kind: &str| {
        profile
            .operations
            .iter()
            .filter(|o| o.kind == kind)
            .filter_map(|o| serde_json::from_str::<serde_json::Value>(&o.detail).ok())
            .find(|v| v.get("trade").and_then(serde_json::Value::as_u64) == Some(trade))
    };
    if payload("trade_reversed").is_some() {
        return Err(format!("trade {trade} was reversed already"));
    }
    if payload("trade_failed").is_some() {
        return Err(format!(
            "trade {trade} failed: nothing moved, so nothing to reverse"
        ));
    }
    let record = payload("trade").ok_or_else(|| {
        format!(
            "player {} keeps no record of trade {trade} (not theirs, or older than their last {} operations)",
            profile.player_id,
            crate::datastore::MAX_PROFILE_OPS
        )
    })?;
    serde_json::from_value(record.get("sent").cloned().unwrap_or_default())
        .map_err(|e| format!("trade {trade}'s record does not read: {e}"))
}

/// Reverses `trade` between the two stored profiles (inside the store's transaction).
fn reverse_in(
    profiles: &mut std::collections::BTreeMap<u64, Profile>,
    (trade, (a, b)): (u64, (u64, u64)),
    (catalog, admin, now): (&Catalog, u64, u64),
) -> Result<(Returned, Returned), String> {
    let (Some(mut pa), Some(mut pb)) = (profiles.remove(&a), profiles.remove(&b)) else {
        return Err("both profiles are needed".into());
    };
    let (sent_a, sent_b) = (sent_in(&pa, trade)?, sent_in(&pb, trade)?);
    let (to_a, to_b) = reverse_trade(
        (&mut pa.data, &sent_a),
        (&mut pb.data, &sent_b),
        trade,
        catalog,
    );
    for (p, got) in [(&mut pa, &to_a), (&mut pb, &to_b)] {
        p.remember(OpRecord {
            id: 0,
            at_ms: now,
            actor: admin.to_string(),
            kind: "trade_reversed".into(),
            detail: serde_json::json!({ "trade": trade, "got_back": got }).to_string(),
        });
    }
    profiles.insert(a, pa);
    profiles.insert(b, pb);
    Ok((to_a, to_b))
}

pub(super) fn reverse_trades(
    mut calls: MessageReader<Call<ReverseTrade>>,
    store: Res<DataStore>,
    shop: Res<Shop>,
    mut door: ProfileDoor,
    mut kicks: MessageWriter<KickRequested>,
    mut tasks: ResMut<Reversals>,
) {
    for call in calls.read() {
        let ReverseTrade { trade, players } = call.request;
        let (a, b) = players;
        let here: Vec<(u64, u64)> = [a, b]
            .into_iter()
            .filter_map(|p| door.profiles().profile(p).map(|l| (p, l.client)))
            .collect();
        if !here.is_empty() {
            for (_, client) in &here {
                kicks.write(KickRequested {
                    client: *client,
                    reason: "an admin is reversing one of your trades; rejoin in a moment".into(),
                });
            }
            let who: Vec<String> = here.iter().map(|(p, _)| p.to_string()).collect();
            let why = format!(
                "player {} was in play here and was sent off so that the trade can be reversed; ask again in a few seconds",
                who.join(" and ")
            );
            door.net().reply(call, Err(RemoteError::Rejected(why)));
            continue;
        }
        let Some(catalog) = shop.catalog().cloned() else {
            let closed = Err(RemoteError::Rejected("the shop is closed".into()));
            door.net().reply(call, closed);
            continue;
        };
        let admin = door.net().session(call.client).map_or(0, |s| s.player_id);
        let store = store.0.clone();
        let (client, id) = (call.client, call.id);
        tasks.0.push(IoTaskPool::get().spawn(async move {
            let now = crate::clock::now_ms();
            // A trade between players on two servers that was called off moved nothing (its
            // decision is written once, so reading it first is safe).
            match store.trade_decision(trade) {
                Ok(Some(crate::datastore::Settlement::Void)) => {
                    let why = format!(
                        "trade {trade} was called off: nothing moved, so nothing to reverse"
                    );
                    return (client, id, Err(RemoteError::Rejected(why)), None);
                }
                Ok(_) => {}
                Err(e) => return (client, id, Err(RemoteError::Rejected(e.to_string())), None),
            }
            let mut outcome = None;
            let result = store.transact::<Aquarium>(&[a, b], REVERSAL_OWNER, now, |profiles| {
                let got = reverse_in(profiles, (trade, players), (&catalog, admin, now))?;
                outcome = Some(got);
                Ok(())
            });
            match (result, outcome) {
                (Ok(_), Some((to_a, to_b))) => {
                    let details = serde_json::json!({
                        "trade": trade, "by": admin, "players": [a, b],
                        "returned_to": { a.to_string(): &to_a, b.to_string(): &to_b },
                    });
                    let text = format!(
                        "trade {trade} reversed: player {a} got {}; player {b} got {}",
                        describe(&to_a),
                        describe(&to_b)
                    );
                    let audit = AuditEntry {
                        player: Some(a),
                        kind: AuditKind::TradeReversed,
                        details: details.to_string(),
                    };
                    (client, id, Ok(text), Some(audit))
                }
                (Err(e), _) => (client, id, Err(RemoteError::Rejected(e.to_string())), None),
                (Ok(_), None) => {
                    let e = "the reversal did not run".to_string();
                    (client, id, Err(RemoteError::Rejected(e)), None)
                }
            }
        }));
    }
}

fn describe(r: &Returned) -> String {
    format!(
        "{} coins, {} fish and {} decorations back, and {} coins for what was gone",
        r.coins, r.fish, r.decorations, r.compensation
    )
}

/// Answers reversals that finished, and audits them.
pub(super) fn finish_reversals(
    mut tasks: ResMut<Reversals>,
    mut door: ProfileDoor,
    mut audit: MessageWriter<AuditEntry>,
) {
    for (client, id, result, entry) in crate::process::take_finished(&mut tasks.0) {
        if let Some(entry) = entry {
            info!(target: "audit", "{}", entry.details);
            audit.write(entry);
        }
        door.net().reply_to::<ReverseTrade>(client, id, result);
    }
}
