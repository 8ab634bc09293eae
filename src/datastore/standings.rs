//! The store-wide leaderboard and looks at other players' saved profiles, off the tick.
//!
//! Every save writes its player's (player, name, score) row in the same transaction (see
//! `Store::rank`), on whichever server holds the player. Every [`REFRESH_EVERY`] this server
//! reads the first rows of that table and, for each of its live players, their rank by the
//! score they have now: [`Standings`]. A game ranks its live players by their live score (newer
//! than their row) against it.
//!
//! [`PeekProfile`] asks for a player's last saved profile without taking their lock (a visit to
//! a player who is on another server, or offline); the answer comes back as [`Peeked`].

use std::collections::HashMap;
use std::time::Duration;

use bevy::prelude::*;
use bevy::tasks::{IoTaskPool, Task};

use super::store::{Board, Glimpse};
use super::{DataStore, DataStoreState, PlayerData, RankRow, StoreError};

/// How often the leaderboard is read again.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5);

/// How many rows of the leaderboard are read.
pub const TOP_ROWS: usize = 10;

/// The store-wide leaderboard as last read.
#[derive(Resource, Debug, Default, Clone)]
pub struct Standings {
    /// Its first rows (highest score first), as stored.
    pub top: Vec<RankRow>,
    /// Each live player's rank by the score they had when it was read.
    pub ranks: HashMap<u64, u64>,
    /// When it was last read (the server's elapsed time), if ever.
    pub read_at: Option<Duration>,
}

impl Standings {
    /// The first `n` rows with this server's live players' scores (newer than their rows)
    /// put in: highest first, then lowest player id.
    pub fn merged(&self, live: &[RankRow], n: usize) -> Vec<RankRow> {
        let mut rows: Vec<RankRow> = self
            .top
            .iter()
            .filter(|r| !live.iter().any(|l| l.player == r.player))
            .cloned()
            .chain(live.iter().cloned())
            .collect();
        rows.sort_by(|a, b| b.score.cmp(&a.score).then(a.player.cmp(&b.player)));
        rows.truncate(n);
        rows
    }
}

/// Asks for `player`'s last saved profile and leaderboard row, without taking the lock; the
/// answer is a [`Peeked`] with the same `tag`.
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeekProfile {
    /// Whose.
    pub player: u64,
    /// The asker's reference.
    pub tag: u64,
}

/// The answer to a [`PeekProfile`]: the profile (`None`: no such player) and its row.
#[derive(Message, Debug, Clone)]
pub struct Peeked<D: PlayerData> {
    /// Whose.
    pub player: u64,
    /// The asker's reference.
    pub tag: u64,
    /// The profile and leaderboard row, or why not.
    pub result: Result<Option<Glimpse<D>>, StoreError>,
}

type Read = Result<Board, StoreError>;

/// Reads in flight.
#[derive(Resource)]
pub(super) struct StandingsTasks<D: PlayerData> {
    refresh: Option<Task<Read>>,
    peeks: Vec<Task<Peeked<D>>>,
}

impl<D: PlayerData> Default for StandingsTasks<D> {
    fn default() -> Self {
        Self {
            refresh: None,
            peeks: Vec::new(),
        }
    }
}

/// Every [`REFRESH_EVERY`], reads the leaderboard again (one read in flight at a time).
pub(super) fn refresh<D: PlayerData>(
    store: Res<DataStore>,
    state: Res<DataStoreState<D>>,
    mut standings: ResMut<Standings>,
    mut tasks: ResMut<StandingsTasks<D>>,
    time: Res<Time<Real>>,
) {
    let now = time.elapsed();
    if tasks.refresh.is_some() {
        let Some(result) = crate::process::take_if_finished(&mut tasks.refresh) else {
            return;
        };
        match result {
            Ok((top, ranks)) => {
                standings.top = top;
                standings.ranks = ranks.into_iter().collect();
                standings.read_at = Some(now);
            }
            // Kept as it was: the leaderboard is a few seconds older, nothing else.
            Err(e) => debug!("leaderboard not read: {e}"),
        }
        return;
    }
    if standings
        .read_at
        .is_some_and(|at| now.saturating_sub(at) < REFRESH_EVERY)
    {
        return;
    }
    let live: Vec<(u64, i64)> = state
        .players()
        .filter_map(|p| Some((p, state.profile(p)?.profile.data.score()?)))
        .collect();
    let store = store.0.clone();
    tasks.refresh = Some(IoTaskPool::get().spawn(async move { store.standings(TOP_ROWS, &live) }));
    // Counted from when it was asked, so a slow read does not ask again at once.
    standings.read_at = Some(now);
}

/// Reads the profiles asked for, and answers each when it lands.
pub(super) fn peek<D: PlayerData>(
    store: Res<DataStore>,
    mut asked: MessageReader<PeekProfile>,
    mut tasks: ResMut<StandingsTasks<D>>,
    mut answers: MessageWriter<Peeked<D>>,
) {
    for a in asked.read() {
        let store = store.0.clone();
        let PeekProfile { player, tag } = *a;
        tasks.peeks.push(IoTaskPool::get().spawn(async move {
            Peeked {
                player,
                tag,
                result: store.peek_named::<D>(player),
            }
        }));
    }
    answers.write_batch(crate::process::take_finished(&mut tasks.peeks));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(player: u64, score: i64) -> RankRow {
        RankRow {
            player,
            name: format!("p{player}"),
            score,
        }
    }

    #[test]
    fn live_scores_replace_stored_rows_and_are_ranked_again() {
        let s = Standings {
            top: vec![row(1, 50), row(2, 40), row(3, 30)],
            ..Default::default()
        };
        // Player 3 earned since its last save; player 9 is live and not in the top rows.
        let merged = s.merged(&[row(3, 45), row(9, 10)], 3);
        assert_eq!(merged, vec![row(1, 50), row(3, 45), row(2, 40)]);
        // Ties: the lower player id first.
        let merged = s.merged(&[row(0, 40)], 4);
        assert_eq!(merged, vec![row(1, 50), row(0, 40), row(2, 40), row(3, 30)]);
    }
}
