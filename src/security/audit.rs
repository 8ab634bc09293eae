//! The audit log: every security event as a structured record, appended to
//! `<data>/audit.jsonl` (one JSON object a line), kept for `security.auditRetention`, queryable
//! with `bloxquarium audit`.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
#[value(rename_all = "kebab-case")]
pub enum AuditKind {
    /// Input the transport refused (tampered, replayed, undecodable, invalid).
    AuthFailure,
    /// A strike.
    Strike,
    /// A kick.
    Kick,
    /// A ban.
    Ban,
    /// A banned player refused at connect.
    BanEnforced,
    /// A permission check refused.
    PermissionDenied,
    /// An admin action (role change, ...).
    AdminAction,
    /// A config value changed.
    ConfigChange,
    /// A session ended for inactivity.
    SessionExpired,
    /// Suspicious activity (impossible economy action, clock skew, connection flood).
    Suspicious,
    /// An account registered at the login service.
    Registration,
    /// A failed login, registration or refresh at the login service.
    LoginFailure,
    /// An address backing off from an account after failed logins (started, or a login refused
    /// inside one).
    LoginBackoff,
    /// A trade between two players committed.
    Trade,
    /// An admin reversed a trade.
    TradeReversed,
}

/// One record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Wall clock, ms since the Unix epoch.
    pub at_ms: u64,
    /// The player, when there is one.
    pub player: Option<u64>,
    /// The session id (hex), when there is one.
    pub session: Option<String>,
    /// What happened.
    pub kind: AuditKind,
    /// Details.
    pub details: String,
}

/// The append-only log file.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    /// Records written since start.
    pub written: u64,
    /// Records that could not be written.
    pub failed: u64,
}

fn read_records(path: &Path) -> std::io::Result<Vec<AuditRecord>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line?;
        // A torn last line (a crash mid-write) is skipped, not fatal.
        if let Ok(r) = serde_json::from_str::<AuditRecord>(&line) {
            out.push(r);
        }
    }
    Ok(out)
}

impl AuditLog {
    /// Opens `<data>/audit.jsonl`, dropping records older than `retention` (rewritten atomically).
    pub fn open(data: &Path, retention: Duration, now_ms: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(data)?;
        let path = data.join("audit.jsonl");
        let records = read_records(&path)?;
        let cutoff = now_ms.saturating_sub(retention.as_millis() as u64);
        if records.iter().any(|r| r.at_ms < cutoff) {
            let tmp = path.with_extension("jsonl.tmp");
            let mut f = std::fs::File::create(&tmp)?;
            for r in records.iter().filter(|r| r.at_ms >= cutoff) {
                serde_json::to_writer(&mut f, r)?;
                f.write_all(b"\n")?;
            }
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
        }
        Ok(Self {
            path,
            written: 0,
            failed: 0,
        })
    }

    /// Appends one record (and logs it to the `audit` tracing target).
    pub fn record(&mut self, rec: AuditRecord) {
        tracing::info!(target: "audit", player = rec.player, kind = ?rec.kind, "{}", rec.details);
        let line = match serde_json::to_string(&rec) {
            Ok(l) => l,
            Err(_) => {
                self.failed += 1;
                return;
            }
        };
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
        match written {
            Ok(()) => self.written += 1,
            Err(e) => {
                self.failed += 1;
                tracing::error!(
                    "cannot append to the audit log {}: {e}",
                    self.path.display()
                );
            }
        }
    }
}

/// A query over the log.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only this player.
    pub player: Option<u64>,
    /// Only this kind.
    pub kind: Option<AuditKind>,
    /// Only records at or after this time (ms since the Unix epoch).
    pub since_ms: Option<u64>,
}

/// The records of `<data>/audit.jsonl` matching `q`, oldest first.
pub fn query(data: &Path, q: &AuditQuery) -> std::io::Result<Vec<AuditRecord>> {
    Ok(read_records(&data.join("audit.jsonl"))?
        .into_iter()
        .filter(|r| q.player.is_none_or(|p| r.player == Some(p)))
        .filter(|r| q.kind.is_none_or(|k| r.kind == k))
        .filter(|r| q.since_ms.is_none_or(|t| r.at_ms >= t))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(at_ms: u64, player: u64, kind: AuditKind) -> AuditRecord {
        AuditRecord {
            at_ms,
            player: Some(player),
            session: None,
            kind,
            details: "d".into(),
        }
    }

    #[test]
    fn append_query_and_retention() {
        let d = std::env::temp_dir().join(format!("bq-audit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let mut log = AuditLog::open(&d, Duration::from_secs(100), 1_000_000).unwrap();
        log.record(rec(900_000, 1, AuditKind::Strike));
        log.record(rec(950_000, 2, AuditKind::Kick));
        log.record(rec(990_000, 1, AuditKind::Ban));
        // A torn line from a crash is skipped.
        std::fs::OpenOptions::new()
            .append(true)
            .open(d.join("audit.jsonl"))
            .unwrap()
            .write_all(b"{\"at_ms\":")
            .unwrap();
        let q = |player, kind, since_ms| {
            query(
                &d,
                &AuditQuery {
                    player,
                    kind,
                    since_ms,
                },
            )
            .unwrap()
            .len()
        };
        assert_eq!(q(None, None, None), 3);
        assert_eq!(q(Some(1), None, None), 2);
        assert_eq!(q(None, Some(AuditKind::Kick), None), 1);
        assert_eq!(q(None, None, Some(950_000)), 2);
        // Reopened later: records older than 100 s are dropped.
        drop(AuditLog::open(&d, Duration::from_secs(100), 1_060_000).unwrap());
        assert_eq!(q(None, None, None), 1);
        let _ = std::fs::remove_dir_all(&d);
    }
}
