//! Data reconciliation (the seed's DataReconciliation), in part: the three-way merge and the
//! resolution strategies ([`merge`]), the operation log and checksummed snapshots ([`log`]).
//!
//! Not built yet (issue #7): the `ReconcilePlugin` (conflict detection on the datastore's
//! compare-and-swap and the integrity sweep, the manual-resolution queue and its admin remote
//! function, strategies per record type from config) and client prediction.

pub mod log;
pub mod merge;

pub use log::{Operation, OperationLog, ReconcileStats, Snapshot};
pub use merge::{Conflict, Policy, Resolution, Rule, Strategy, resolve};
