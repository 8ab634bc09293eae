//! Client prediction: the client applies its own purchases and feedings at once as pending
//! operations with ids; the server answers with its authoritative state and the last operation
//! it processed; acknowledged operations are dropped, rejected ones rolled back with their
//! reason, and the rest replayed on the authoritative state. The operations themselves are the
//! game's rules ([`crate::game::rules`]).

use crate::game::protocol::PlayerState;
use crate::game::rules::{Catalog, GameOp, apply, state_of, to_profile};

/// The client's predicted game state.
#[derive(Debug, Default)]
pub struct Predictor {
    authoritative: Option<PlayerState>,
    pending: Vec<(u64, GameOp)>,
    next_op: u64,
    /// The last refusals (at most 32), newest last: operation id (0 when refused before it
    /// was sent) and reason.
    pub rejections: Vec<(u64, String)>,
    /// Every refusal so far, local or from the server (the UI's toasts follow it: the list
    /// above stops growing at its bound).
    pub refusals: u64,
    /// Acknowledged operations.
    pub acknowledged: u64,
    /// Authoritative states that differed from what the client had predicted for them.
    pub mispredictions: u64,
}

impl Predictor {
    /// The last state the server sent.
    pub fn authoritative(&self) -> Option<&PlayerState> {
        self.authoritative.as_ref()
    }

    /// Operations sent and not yet answered.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The authoritative state with every pending operation replayed on it (operations that no
    /// longer apply are skipped).
    pub fn predicted(&self, catalog: &Catalog) -> Option<PlayerState> {
        let auth = self.authoritative.as_ref()?;
        let mut p = to_profile(auth);
        for (_, op) in &self.pending {
            let _ = apply(&mut p, *op, catalog);
        }
        Some(state_of(&p, auth.last_op))
    }

    /// Predicts `op`: refused at once (with the reason) if it cannot apply to the predicted
    /// state; otherwise pending, with the id to send it under.
    pub fn predict(&mut self, op: GameOp, catalog: &Catalog) -> Result<u64, String> {
        let applied = self
            .predicted(catalog)
            .ok_or_else(|| "not in the game yet".to_string())
            .and_then(|state| {
                let mut p = to_profile(&state);
                apply(&mut p, op, catalog).map_err(|e| e.to_string())
            });
        if let Err(why) = applied {
            self.refuse(0, why.clone());
            return Err(why);
        }
        self.next_op += 1;
        self.pending.push((self.next_op, op));
        Ok(self.next_op)
    }

    /// Records a refusal: `op_id` (0 for an action refused before it was sent) and why.
    pub fn refuse(&mut self, op_id: u64, reason: String) {
        self.refusals += 1;
        self.rejections.push((op_id, reason));
        if self.rejections.len() > 32 {
            self.rejections.remove(0);
        }
    }

    /// Takes the server's state: operations up to `state.last_op` are settled; the rest are
    /// replayed on it.
    pub fn on_state(&mut self, state: PlayerState, catalog: &Catalog) {
        let settled: Vec<(u64, GameOp)> = self
            .pending
            .iter()
            .filter(|(id, _)| *id <= state.last_op)
            .copied()
            .collect();
        if !settled.is_empty() {
            self.acknowledged += settled.len() as u64;
            // What we expected once those applied, against what the server says.
            if let Some(auth) = &self.authoritative {
                let mut p = to_profile(auth);
                for (_, op) in &settled {
                    let _ = apply(&mut p, *op, catalog);
                }
                let expected = state_of(&p, state.last_op);
                if expected.tank_level != state.tank_level
                    || expected.fish.len() != state.fish.len()
                {
                    self.mispredictions += 1;
                }
            }
        }
        self.pending.retain(|(id, _)| *id > state.last_op);
        if state.last_op > self.next_op {
            self.next_op = state.last_op;
        }
        self.authoritative = Some(state);
    }

    /// The server refused `op_id`: it is rolled back and its reason kept.
    pub fn on_rejected(&mut self, op_id: u64, reason: String) {
        self.pending.retain(|(id, _)| *id != op_id);
        self.refuse(op_id, reason);
    }

    /// Forgets everything (a new session).
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::data::{Aquarium, Profile};
    use crate::game::protocol::ShopItem;
    use proptest::prelude::{Strategy as Gen, prop_assert_eq, proptest};

    fn catalog() -> Catalog {
        Catalog {
            fish_prices: vec![10, 25, 60],
            fish_income: vec![0.5, 1.0, 2.0],
            tank_prices: vec![0, 100, 300],
            tank_capacity: vec![3, 6, 9],
            sell_refund: 0.5,
            decoration_prices: vec![30, 40, 150],
        }
    }

    #[test]
    fn a_rejected_purchase_rolls_back_and_the_rest_replays() {
        let c = catalog();
        let mut client = Predictor::default();
        let start = state_of(&Profile::new(1, Aquarium::new(100)), 0);
        client.on_state(start, &c);
        let a = client
            .predict(
                GameOp::Purchase {
                    item: ShopItem::Fish { species: 1 },
                    quantity: 2,
                },
                &c,
            )
            .unwrap();
        let b = client.predict(GameOp::Feed { fish: None }, &c).unwrap();
        assert_eq!(client.predicted(&c).unwrap().coins, 50);
        // The server refuses the purchase (someone took its coins meanwhile): rolled back; the
        // feeding now has no fish to feed and is skipped in the replay.
        client.on_rejected(a, "costs 50 coins, balance is 20".into());
        let p = client.predicted(&c).unwrap();
        assert_eq!(p.coins, 100);
        assert!(p.fish.is_empty());
        assert_eq!(
            client.rejections,
            vec![(a, "costs 50 coins, balance is 20".into())]
        );
        // Then the server's state settles everything.
        let mut server = Profile::new(1, Aquarium::new(20));
        server.stats.coins = 20;
        client.on_state(state_of(&server, b), &c);
        assert_eq!(client.pending(), 0);
        assert_eq!(client.predicted(&c).unwrap(), state_of(&server, b));
        // An operation the predicted state cannot take is refused locally.
        assert!(
            client
                .predict(
                    GameOp::Purchase {
                        item: ShopItem::TankUpgrade,
                        quantity: 1
                    },
                    &c
                )
                .is_err()
        );
    }

    #[test]
    fn a_server_state_unlike_the_prediction_is_counted() {
        let c = catalog();
        let mut client = Predictor::default();
        let start = Profile::new(1, Aquarium::new(100));
        client.on_state(state_of(&start, 0), &c);
        let op = GameOp::Purchase {
            item: ShopItem::Fish { species: 0 },
            quantity: 1,
        };
        let id = client.predict(op, &c).unwrap();
        // The server applied it as predicted: no misprediction.
        let mut server = start.clone();
        apply(&mut server, op, &c).unwrap();
        client.on_state(state_of(&server, id), &c);
        assert_eq!((client.acknowledged, client.mispredictions), (1, 0));
        // The server's state differs from what the client expected (a fish it did not see
        // coming): detected and counted, and the server's state wins.
        let id = client.predict(op, &c).unwrap();
        apply(&mut server, op, &c).unwrap();
        apply(&mut server, op, &c).unwrap();
        client.on_state(state_of(&server, id), &c);
        assert_eq!((client.acknowledged, client.mispredictions), (2, 1));
        assert_eq!(client.predicted(&c), Some(state_of(&server, id)));
    }

    fn op() -> impl Gen<Value = GameOp> {
        proptest::prop_oneof![
            (0u8..3, 1u32..3).prop_map(|(s, q)| GameOp::Purchase {
                item: ShopItem::Fish { species: s },
                quantity: q
            }),
            proptest::strategy::Just(GameOp::Purchase {
                item: ShopItem::TankUpgrade,
                quantity: 1
            }),
            proptest::option::of(1u64..6).prop_map(|fish| GameOp::Feed { fish }),
            (1u64..6).prop_map(|fish| GameOp::Sell { fish }),
        ]
    }

    /// Something the server does on its own between the client's operations.
    #[derive(Debug, Clone)]
    enum ServerSide {
        Income(i64),
        Take(i64),
        Hunger,
    }

    fn server_side() -> impl Gen<Value = ServerSide> {
        proptest::prop_oneof![
            (0i64..80).prop_map(ServerSide::Income),
            (0i64..80).prop_map(ServerSide::Take),
            proptest::strategy::Just(ServerSide::Hunger),
        ]
    }

    proptest! {
        #[test]
        fn the_client_converges_once_every_operation_is_answered(
            coins in 0i64..400,
            steps in proptest::collection::vec((op(), proptest::option::of(server_side()), 0u8..3), 1..25),
        ) {
            let c = catalog();
            let mut server = Profile::new(1, Aquarium::new(coins));
            let mut last_op = 0u64;
            let mut client = Predictor::default();
            client.on_state(state_of(&server, 0), &c);
            // Messages from the server, in order, not yet delivered.
            let mut wire: Vec<Result<PlayerState, (u64, String)>> = Vec::new();
            let mut sent: Vec<(u64, GameOp)> = Vec::new();
            for (op, side, deliver) in steps {
                if let Ok(id) = client.predict(op, &c) {
                    sent.push((id, op));
                }
                if let Some(side) = side {
                    match side {
                        ServerSide::Income(n) => server.stats.coins += n,
                        ServerSide::Take(n) => server.stats.coins = (server.stats.coins - n).max(0),
                        ServerSide::Hunger => {
                            for f in &mut server.fish { f.hunger = (f.hunger + 10.0).min(100.0); }
                        }
                    }
                    wire.push(Ok(state_of(&server, last_op)));
                }
                // The server processes what has arrived.
                for (id, op) in sent.drain(..) {
                    last_op = id;
                    match apply(&mut server, op, &c) {
                        Ok(()) => wire.push(Ok(state_of(&server, last_op))),
                        Err(why) => wire.push(Err((id, why.to_string()))),
                    }
                }
                // Some of the answers arrive now.
                let n = (deliver as usize).min(wire.len());
                for m in wire.drain(..n) {
                    match m {
                        Ok(s) => client.on_state(s, &c),
                        Err((id, why)) => client.on_rejected(id, why),
                    }
                }
            }
            for m in wire.drain(..) {
                match m {
                    Ok(s) => client.on_state(s, &c),
                    Err((id, why)) => client.on_rejected(id, why),
                }
            }
            prop_assert_eq!(client.pending(), 0);
            // The same coins, tank and fish (a rejection carries no state, so the last op id
            // the client saw may be older).
            let seen = client.predicted(&c).map(|s| PlayerState { last_op: 0, ..s });
            prop_assert_eq!(seen, Some(state_of(&server, 0)));
        }
    }
}
