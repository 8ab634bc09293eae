//! The aquarium's rules as plain functions: the shop's catalog and the economy ([`economy`]),
//! how each operation changes a profile ([`ops`]), and coming back ([`away`]: earnings while
//! away, the daily reward). The server applies them to the live
//! profile; the client's prediction applies the same functions to its copy.

mod away;
mod economy;
mod ops;
mod trade;

pub use away::{
    Away, AwayRules, MIN_AWAY_SECS, claim_daily, day_of, earn_while_away, until_next_day,
};
pub use economy::{
    Catalog, DECORATIONS, EconomyError, Receipt, advance, decoration_kinds, feed, give,
};
pub use ops::{GameOp, apply, state_of, to_profile};
pub use trade::{
    Parcel, Returned, TradeError, put as put_parcel, reverse as reverse_trade, take as take_goods,
};
