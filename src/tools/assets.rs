//! `bloxquarium assets generate | manifest`.

use super::ToolError;
use crate::cli::{AssetsCommand, GlobalArgs};

/// Runs `bloxquarium assets ...`.
pub fn run_command(global: &GlobalArgs, action: &AssetsCommand) -> Result<String, ToolError> {
    let dir = &global.assets;
    match action {
        AssetsCommand::Generate => {
            let (files, bytes) = crate::assetgen::write_tree(dir)
                .map_err(|e| ToolError::Failed(format!("cannot write {}: {e}", dir.display())))?;
            Ok(format!(
                "wrote {files} files ({:.1} MiB) under {}",
                bytes as f64 / (1024.0 * 1024.0),
                dir.display()
            ))
        }
        AssetsCommand::Manifest => {
            let config = crate::config::load_server(&global.config, &crate::game::KEYS)?;
            let (m, warnings) =
                crate::assets::scan_manifest(dir, &crate::assets::Preload::from_config(&config));
            let mut out = String::new();
            for e in &m.entries {
                let q: Vec<&str> = e
                    .variants
                    .iter()
                    .map(|v| {
                        if v.quality.is_empty() {
                            "-"
                        } else {
                            v.quality.as_str()
                        }
                    })
                    .collect();
                out.push_str(&format!(
                    "{} [{} {} {}] {} B {} {}\n",
                    e.path,
                    e.category,
                    e.kind,
                    e.priority,
                    e.variants.iter().map(|v| v.size).sum::<u64>(),
                    &e.variants[0].sha256[..12],
                    q.join(",")
                ));
            }
            for w in warnings {
                out.push_str(&format!("warning: {w}\n"));
            }
            out.push_str(&format!("{} assets", m.entries.len()));
            Ok(out)
        }
    }
}
