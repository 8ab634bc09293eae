//! The client's way back after a lost link: it logs in again with its refresh token (no
//! password) and dials the server the service names, trying again after 1, 2, 4, 8, 8 s. It gives
//! up on a refused refresh token (expired, password changed, account disabled) or after the last
//! try; a headless client then exits 1 with the reason, a window shows it. A kick (other than the
//! server's shutting down) and the client's own leaving are not reconnected.

use std::net::SocketAddr;
use std::time::Duration;

use bevy::prelude::*;
use bevy::tasks::{IoTaskPool, Task};

use super::{Grant, LoginClient, LoginError};
use crate::shutdown::{Shutdown, ShutdownPhase, ShutdownReason};
use crate::transport::{
    ClientNet, ConnectionState, Redial, RedialAbandoned, RedialPending, SHUTTING_DOWN,
};

/// The waits before each try after the first (which goes at once).
pub const RETRY_DELAYS: [Duration; 5] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
    Duration::from_secs(8),
];

/// Reconnects through the login service (added by `client --login`).
pub struct ReconnectPlugin {
    /// The login service.
    pub client: LoginClient,
    /// The `--server` asked for, if any.
    pub asked: Option<SocketAddr>,
    /// Exit 1 when giving up (headless).
    pub exit_on_giving_up: bool,
}

/// The reconnect state.
#[derive(Resource)]
pub struct Reconnect {
    client: LoginClient,
    asked: Option<SocketAddr>,
    exit_on_giving_up: bool,
    /// The waits between tries (tests shorten them).
    pub delays: Vec<Duration>,
    attempt: u32,
    next_try: Option<Duration>,
    task: Option<Task<Result<Grant, LoginError>>>,
    given_up: bool,
}

impl Plugin for ReconnectPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(Reconnect {
            client: self.client.clone(),
            asked: self.asked,
            exit_on_giving_up: self.exit_on_giving_up,
            delays: RETRY_DELAYS.to_vec(),
            attempt: 0,
            next_try: None,
            task: None,
            given_up: false,
        })
        .add_message::<RedialPending>()
        .add_message::<Redial>()
        .add_message::<RedialAbandoned>()
        .add_systems(
            Update,
            reconnect.in_set(crate::stages::ClientSystems::Handle),
        );
    }
}

impl Reconnect {
    fn give_up(
        &mut self,
        reason: String,
        abandoned: &mut MessageWriter<RedialAbandoned>,
        shutdown: &mut Shutdown,
    ) {
        self.given_up = true;
        self.next_try = None;
        abandoned.write(RedialAbandoned {
            reason: reason.clone(),
        });
        if self.exit_on_giving_up {
            shutdown.request(ShutdownReason::Requested(format!(
                "gave up reconnecting: {reason}"
            )));
            shutdown.set_exit_code(1);
        }
    }

    /// Schedules the next try, or gives up after the last.
    fn retry_later(
        &mut self,
        now: Duration,
        why: String,
        pending: &mut MessageWriter<RedialPending>,
        abandoned: &mut MessageWriter<RedialAbandoned>,
        shutdown: &mut Shutdown,
    ) {
        let Some(wait) = self.delays.get(self.attempt as usize - 1).copied() else {
            let tries = self.attempt;
            return self.give_up(format!("{why} (after {tries} tries)"), abandoned, shutdown);
        };
        self.attempt += 1;
        self.next_try = Some(now + wait);
        pending.write(RedialPending {
            attempt: self.attempt,
        });
    }
}

#[allow(clippy::too_many_arguments)]
fn reconnect(
    mut r: ResMut<Reconnect>,
    state: Res<ConnectionState>,
    net: Res<ClientNet>,
    time: Res<Time<Real>>,
    mut shutdown: ResMut<Shutdown>,
    mut pending: MessageWriter<RedialPending>,
    mut dials: MessageWriter<Redial>,
    mut abandoned: MessageWriter<RedialAbandoned>,
) {
    if shutdown.phase() != ShutdownPhase::Running || r.given_up {
        return;
    }
    let now = time.elapsed();
    match &*state {
        ConnectionState::Connected => {
            if r.attempt > 0 {
                info!("reconnected after {} tries", r.attempt);
            }
            r.attempt = 0;
            r.next_try = None;
            return;
        }
        ConnectionState::Disconnected { reason } if r.task.is_none() && r.next_try.is_none() => {
            if r.attempt == 0 {
                if net.0.kicked().is_some_and(|k| k != SHUTTING_DOWN) {
                    return;
                }
                info!("lost the server ({reason}): logging in again with the refresh token");
                r.attempt = 1;
                r.next_try = Some(now);
                pending.write(RedialPending { attempt: 1 });
            } else {
                // A dial with a fresh token failed too.
                let why = reason.clone();
                r.retry_later(now, why, &mut pending, &mut abandoned, &mut shutdown);
            }
        }
        _ => {}
    }
    if r.task.is_none() && r.next_try.is_some_and(|t| now >= t) {
        r.next_try = None;
        let Some(saved) = r.client.saved_refresh() else {
            let reason = "no refresh token kept: log in again with your password".to_string();
            return r.give_up(reason, &mut abandoned, &mut shutdown);
        };
        let client = r.client.clone();
        r.task = Some(IoTaskPool::get().spawn(async move { client.refresh(&saved.refresh_token) }));
    }
    let Some(result) = crate::process::take_if_finished(&mut r.task) else {
        return;
    };
    let grant = match result {
        Ok(grant) => grant,
        // The service refused the token itself: trying again cannot help.
        Err(
            e @ LoginError::Refused {
                status: 401 | 403, ..
            },
        ) => {
            return r.give_up(e.to_string(), &mut abandoned, &mut shutdown);
        }
        Err(e) => {
            let why = e.to_string();
            warn!("logging in again failed: {why}");
            return r.retry_later(now, why, &mut pending, &mut abandoned, &mut shutdown);
        }
    };
    match r.client.take_grant(&grant, r.asked) {
        Ok((server, token)) => {
            dials.write(Redial {
                server,
                token: Box::new(token),
            });
        }
        Err(e) => r.give_up(e.to_string(), &mut abandoned, &mut shutdown),
    }
}
