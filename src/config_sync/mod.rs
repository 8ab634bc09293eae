//! Configuration over the network (the seed's ConfigBridge and ClientConfigBridge): the server
//! sends each client a signed snapshot of the ClientSafe and Shared values at join, then signed
//! deltas as they change, and answers change requests (a Shared key needs `config.write.shared`);
//! the client applies what it receives to its [`ClientConfig`].

use std::collections::BTreeSet;

use bevy::prelude::*;

use crate::config::{ClientConfig, Config, ConfigChanged, Side, Tier};
use crate::protocol::builtin::SetConfig;
use crate::protocol::{self, ConfigSnapshot, RemoteError};
use crate::stages::{ClientSystems, ServerRequests, ServerSystems};
use crate::transport::{Call, ServerNet, SessionStarted, SignedBlobReceived};

/// The reason a change a client asked for (an admin's, at run time) carries.
pub const CLIENT_REQUEST: &str = "client request";

/// What a client has received from the server's config.
#[derive(Resource, Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigReplication {
    /// Snapshots applied (one per join).
    pub snapshots: u64,
    /// Deltas applied.
    pub deltas: u64,
    /// The server's config version in the last snapshot or delta.
    pub server_version: u64,
}

/// The server half: snapshots at join, deltas on change, change requests.
pub struct ConfigSyncServerPlugin;

impl Plugin for ConfigSyncServerPlugin {
    fn build(&self, app: &mut App) {
        crate::stages::server(app);
        app.add_systems(Update, replicate.in_set(ServerSystems::Handle))
            .add_systems(ServerRequests, answer_config_requests);
    }
}

/// The client half: the server's snapshot and deltas applied.
pub struct ConfigSyncClientPlugin;

impl Plugin for ConfigSyncClientPlugin {
    fn build(&self, app: &mut App) {
        crate::stages::client(app);
        app.init_resource::<ConfigReplication>()
            .add_systems(PreUpdate, receive_replication.in_set(ClientSystems::Sync));
    }
}

fn encode_signed(snapshot: &ConfigSnapshot) -> Option<Vec<u8>> {
    protocol::encode(snapshot)
        .map_err(|e| error!("cannot encode a config snapshot: {e}"))
        .ok()
}

fn replicate(
    config: Res<Config>,
    mut net: ResMut<ServerNet>,
    mut joined: MessageReader<SessionStarted>,
    mut changed: MessageReader<ConfigChanged>,
) {
    for s in joined.read() {
        if let Some(bytes) = encode_signed(&config.snapshot()) {
            net.send_signed(s.client, protocol::CONFIG_SNAPSHOT, bytes);
        }
    }
    let paths: BTreeSet<String> = changed
        .read()
        .filter(|c| c.side == Side::Server)
        .filter(|c| {
            config
                .schema()
                .key(&c.path)
                .is_some_and(|k| k.spec.tier.replicated())
        })
        .map(|c| c.path.clone())
        .collect();
    if paths.is_empty() {
        return;
    }
    let delta = config.delta(&paths.into_iter().collect::<Vec<_>>());
    if let Some(bytes) = encode_signed(&delta) {
        let clients: Vec<u64> = net.sessions().map(|s| s.client_id).collect();
        for c in clients {
            net.send_signed(c, protocol::CONFIG_DELTA, bytes.clone());
        }
    }
}

fn answer_config_requests(
    mut requests: MessageReader<Call<SetConfig>>,
    mut net: ResMut<ServerNet>,
    mut config: ResMut<Config>,
    mut security: ResMut<crate::security::Security>,
    time: Res<Time<Real>>,
) {
    let now = time.elapsed();
    for r in requests.read() {
        let SetConfig { path, value } = &r.request;
        let player = net.session(r.client).map_or(0, |s| s.player_id);
        // Rate limiting (`security.rateLimits.config`) happened at the security gate.
        let permission = match config.schema().key(path).map(|k| k.spec.tier) {
            None => Err(format!("unknown config key {path}")),
            Some(Tier::ClientSafe) => Err(format!(
                "{path} is ClientSafe: set it in your own preferences"
            )),
            Some(Tier::Shared) => Ok("config.write.shared"),
            Some(Tier::ServerOnly) => Ok("config.write.server"),
        };
        // Nothing is allowed that a role does not grant.
        let result = permission
            .and_then(|perm| {
                let granted = security.has_permission(player, perm);
                if granted {
                    Ok(())
                } else {
                    Err(format!("permission denied: {perm}"))
                }
            })
            .and_then(|()| {
                config
                    .set(
                        path,
                        value.clone(),
                        &format!("player {player}"),
                        CLIENT_REQUEST,
                        now,
                    )
                    .map_err(|e| e.to_string())
            })
            .map_err(RemoteError::Rejected);
        info!(
            target: "audit",
            "config change request by player {player} (client {}): {path} = {value}: {}",
            r.client,
            match &result {
                Ok(v) => format!("applied as version {v}"),
                Err(e) => e.to_string(),
            }
        );
        net.reply(r, result);
    }
}

fn receive_replication(
    mut config: ResMut<ClientConfig>,
    mut blobs: MessageReader<SignedBlobReceived>,
    mut seen: ResMut<ConfigReplication>,
    time: Res<Time<Real>>,
) {
    for b in blobs.read() {
        let replace = match b.purpose.as_str() {
            protocol::CONFIG_SNAPSHOT => true,
            protocol::CONFIG_DELTA => false,
            _ => continue,
        };
        let snap: ConfigSnapshot = match protocol::decode(&b.blob) {
            Ok(s) => s,
            Err(e) => {
                warn!("undecodable config {}: {e}", b.purpose);
                continue;
            }
        };
        let (good, bad) = config.accept_snapshot(&snap);
        for problem in bad {
            warn!("config from the server refused: {problem}");
        }
        config.apply_base(
            good,
            replace,
            "server",
            &format!("replicated v{}", snap.version),
            time.elapsed(),
        );
        if replace {
            seen.snapshots += 1;
        } else {
            seen.deltas += 1;
        }
        seen.server_version = snap.version;
    }
}
