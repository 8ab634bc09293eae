//! `bloxquarium audit`: query the audit log.

use super::ToolError;
use crate::cli::GlobalArgs;

/// `bloxquarium audit`: the matching records of the audit log.
pub fn report(global: &GlobalArgs, args: &crate::cli::AuditArgs) -> Result<String, ToolError> {
    let paths = global.paths();
    let now_ms = crate::clock::now_ms();
    let q = crate::security::AuditQuery {
        player: args.player,
        kind: args.kind,
        since_ms: args
            .since
            .map(|d| now_ms.saturating_sub(d.as_millis() as u64)),
    };
    // On a shared store, every server's records are in the store; else this server's file.
    let records = if paths.store.is_some() {
        let config = crate::config::load_server(&paths.config, &crate::game::KEYS)?;
        crate::datastore::open_at::<crate::game::Aquarium>(&paths, &config)
            .map_err(|e| ToolError::Failed(e.to_string()))?
            .audit_records(&q)
            .map_err(|e| ToolError::Failed(format!("the store's audit log: {e}")))?
    } else {
        crate::security::query_audit(&paths.data, &q)
            .map_err(|e| ToolError::Failed(format!("audit log in {}: {e}", paths.data.display())))?
    };
    let lines: Vec<String> = records
        .iter()
        .map(|r| {
            if args.json {
                serde_json::to_string(r).unwrap_or_default()
            } else {
                format!(
                    "{} {:?} player={} {}",
                    r.at_ms,
                    r.kind,
                    r.player.map_or_else(|| "-".to_string(), |p| p.to_string()),
                    r.details
                )
            }
        })
        .collect();
    Ok(if lines.is_empty() && !args.json {
        "no matching audit records".to_string()
    } else {
        lines.join("\n")
    })
}
