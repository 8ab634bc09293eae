//! The command-line tools beside the modes: `token`, `audit`, `admin …` (commands to a running
//! server), `datastore …` (maintenance of the store), `servers` and `assets …`. Top layer: each is a thin function over the public
//! doors of the subsystems; `app::run` dispatches to them.

mod admin;
mod assets;
mod audit;
mod datastore;
mod token;

pub use admin::run as run_admin;
pub use assets::run_command as run_assets;
pub use audit::report as audit_report;
pub use datastore::{list_servers, run as run_datastore};
pub use token::write as write_token;

/// Why a tool failed.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The configuration is invalid (exit status 2).
    #[error("{0}")]
    Config(#[from] crate::config::LoadError),
    /// A setting could not be read from the configuration.
    #[error("{0}")]
    ConfigKey(#[from] crate::config::ConfigError),
    /// The data store could not open.
    #[error("{0}")]
    Store(#[from] crate::datastore::OpenError),
    /// A key or token file.
    #[error("{0}")]
    Transport(#[from] crate::transport::TransportError),
    /// Anything else, said in words.
    #[error("{0}")]
    Failed(String),
    /// The server answered no: refused, or the command failed there (exit status 1).
    #[error("{0}")]
    Refused(String),
    /// No answer came: a bad token file, no connection, a timeout (exit status 2).
    #[error("{0}")]
    NoAnswer(String),
}
