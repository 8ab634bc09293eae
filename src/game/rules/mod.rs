//! The aquarium's rules as plain functions: the shop's catalog and the economy ([`economy`]),
//! and how each operation changes a profile ([`ops`]). The server applies them to the live
//! profile; the client's prediction applies the same functions to its copy.

mod economy;
mod ops;

pub use economy::{
    Catalog, DECORATIONS, EconomyError, Receipt, advance, decoration_kinds, feed, give,
};
pub use ops::{GameOp, apply, state_of, to_profile};
