//! `bloxquarium token`: a connect token file signed with the server's key.

use super::ToolError;
use crate::cli::GlobalArgs;
use crate::transport::{TransportError, TransportSettings};

/// `bloxquarium token`: writes a token file signed with the key under `--data`.
pub fn write(global: &GlobalArgs, args: &crate::cli::TokenArgs) -> Result<String, ToolError> {
    let paths = global.paths();
    let key =
        crate::keys::load(&crate::keys::key_path(&paths.keys)).map_err(TransportError::from)?;
    let config = crate::config::load_server(&paths.config, &crate::game::KEYS)?;
    let settings = TransportSettings::from_config(&config)?;
    let mut issuer = crate::transport::TokenIssuer::new(
        key,
        <crate::game::AquariumGame as crate::definition::Game>::protocol_id(),
        vec![args.server],
    );
    issuer.expire_secs = settings.token_expire_secs;
    issuer.timeout_secs = settings.token_timeout_secs;
    let issued = issuer
        .issue(args.player, &args.name)
        .map_err(TransportError::from)?;
    issued.write_file(&args.out).map_err(TransportError::from)?;
    Ok(format!(
        "token for player {} ({}) written to {}; valid for {} s",
        args.player,
        args.name,
        args.out.display(),
        issuer.expire_secs
    ))
}
