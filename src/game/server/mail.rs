//! Gifts through the data store's inbox, one design whichever store is in use:
//!
//! 1. The sender's debit is an operation on their live profile, and the coins go into their
//!    outbox ([`ProfileDoor::send`]). Their next save (due at once) writes the debited profile
//!    and the recipient's inbox row in one transaction.
//! 2. Only when that has committed is the sender answered ([`finish_gifts`]).
//! 3. Delivery: the recipient's next save (at once if they play here) or load applies the row
//!    and deletes it in one transaction, exactly once; then [`receive_mail`] keeps the
//!    operation in their profile, tells the income watch and pushes their state.
//!
//! A crash before step 1 commits loses neither side (nothing of the gift was saved, and the
//! sender was not told it happened); after it, the row waits for the recipient. A gift to a
//! player the store does not know comes back to the sender the same way.

use std::collections::HashMap;

use bevy::prelude::*;

use super::GameServerState;
use super::door::{Operation, ProfileDoor};
use crate::datastore::{Delivery, InboxDelivered, MessageSent};
use crate::game::data::OfflineGift;
use crate::game::protocol::{Applied, Gift, GiftReceived};
use crate::game::rules as economy;
use crate::protocol::{RemoteError, RequestId};

/// A gift call waiting for its commit.
#[derive(Debug, Clone, Copy)]
struct PendingGift {
    client: u64,
    id: RequestId,
    op_id: u64,
    player: u64,
}

/// Gift calls waiting for their commit, by ticket.
#[derive(Resource, Debug, Default)]
pub(super) struct GiftTasks {
    next: u64,
    pending: HashMap<u64, PendingGift>,
}

/// Debits happened in `player`'s live profile: the coins go out with their next save, and the
/// call is answered when it commits.
pub(super) fn send_gift(
    door: &mut ProfileDoor,
    tasks: &mut GiftTasks,
    (client, id, op_id): (u64, RequestId, u64),
    (player, to, coins): (u64, u64, i64),
) -> bool {
    tasks.next += 1;
    let ticket = tasks.next;
    let message = OfflineGift::Coins {
        amount: coins,
        from: player,
    };
    if !door.send(player, to, ticket, message) {
        return false;
    }
    tasks.pending.insert(
        ticket,
        PendingGift {
            client,
            id,
            op_id,
            player,
        },
    );
    true
}

/// A gift committed (the call is answered with the sender's state), came back (no such
/// player: answered with why; the coins return through the inbox), or was not saved (the
/// sender's profile left this server without it, the debit with it).
pub(super) fn finish_gifts(
    mut sent: MessageReader<MessageSent>,
    mut tasks: ResMut<GiftTasks>,
    game: Res<GameServerState>,
    mut door: ProfileDoor,
) {
    for s in sent.read() {
        let Some(p) = tasks.pending.remove(&s.ticket) else {
            continue;
        };
        let answer = match s.result {
            Ok(Delivery::Queued { .. }) => {
                info!(from = p.player, to = s.to, "gift committed");
                let state = door
                    .profiles()
                    .profile(p.player)
                    .map(|live| economy::state_of(&live.profile, game.last_op(p.player)));
                match state {
                    Some(state) => Ok(Applied {
                        op_id: p.op_id,
                        state,
                    }),
                    // The sender left meanwhile; the gift stands.
                    None => continue,
                }
            }
            Ok(Delivery::Returned { .. } | Delivery::Held { .. }) => Err(RemoteError::Rejected(
                format!("there is no player {}; the coins come back to you", s.to),
            )),
            Err(ref why) => Err(RemoteError::Rejected(format!(
                "the gift was not sent: {why}"
            ))),
        };
        door.net().reply_to::<Gift>(p.client, p.id, answer);
    }
}

/// Messages delivered to a player here: each is kept as an operation of theirs (the coins were
/// applied by the store, in the transaction that took the message), told to the income watch,
/// and their client gets its state and a [`GiftReceived`].
pub(super) fn receive_mail(
    mut delivered: MessageReader<InboxDelivered<OfflineGift>>,
    game: Res<GameServerState>,
    mut door: ProfileDoor,
) {
    for d in delivered.read() {
        for (id, message) in &d.messages {
            let (kind, payload, actor, coins) = match message {
                OfflineGift::Coins { amount, from } => (
                    "gift_received",
                    serde_json::json!({ "message": id, "from": from, "coins": amount }),
                    *from,
                    *amount,
                ),
                OfflineGift::Item { item, count, from } => (
                    "item_received",
                    serde_json::json!({ "message": id, "from": from, "item": item, "count": count }),
                    *from,
                    0,
                ),
                OfflineGift::Parcel {
                    from,
                    trade,
                    parcel,
                } => (
                    "trade_received",
                    serde_json::json!({ "message": id, "from": from, "trade": trade, "got": parcel }),
                    *from,
                    parcel.coins,
                ),
            };
            let op = Operation {
                player: d.player,
                actor,
                kind,
                payload,
                last_op: game.last_op(d.player),
                push: true,
            };
            // Already applied: only the record, the income watch and the push.
            let kept = door.change(op, |_| Ok::<i64, std::convert::Infallible>(coins));
            let gift = matches!(message, OfflineGift::Coins { .. });
            if kept.is_some() && gift && coins > 0 {
                info!(player = d.player, from = actor, coins, "gift delivered");
                if let Some(client) = door.profiles().profile(d.player).map(|l| l.client) {
                    let returned = actor == d.player;
                    let event = GiftReceived {
                        from: actor,
                        coins,
                        returned,
                    };
                    door.net().send(client, &event);
                }
            }
        }
    }
}
