//! Errors a plugin callback returns, and the SQLSTATE kind they carry.

use crate::types::WalkerStatus;
use std::fmt;

/// What kind of failure a [`PluginError`] is; it decides the SQLSTATE a failing SQL
/// function raises ([`Plugin::call`](super::Plugin::call)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorKind {
    /// The callback failed for a reason other than its arguments (SQLSTATE 38000,
    /// external_routine_exception). What [`PluginError::new`] and the `From`
    /// conversions make.
    #[default]
    Failed,
    /// The caller passed wrong arguments (SQLSTATE 22023, invalid_parameter_value);
    /// [`PluginError::invalid_argument`].
    InvalidArgument,
}

impl ErrorKind {
    /// The status `call` returns for an error of this kind: `INVALID` for an invalid
    /// argument, `ERROR` otherwise.
    pub(super) fn status(self) -> WalkerStatus {
        match self {
            ErrorKind::InvalidArgument => WalkerStatus::INVALID,
            ErrorKind::Failed => WalkerStatus::ERROR,
        }
    }
}

/// Error a plugin callback returns; its message reaches `walker.plugins.last_error`
/// (or the caller of a SQL function). The second field is its [`ErrorKind`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginError(pub String, pub ErrorKind);

impl PluginError {
    /// An error with this message, of kind [`ErrorKind::Failed`].
    pub fn new(msg: impl fmt::Display) -> Self {
        PluginError(msg.to_string(), ErrorKind::Failed)
    }

    /// An error saying the caller's arguments are wrong ([`ErrorKind::InvalidArgument`]).
    pub fn invalid_argument(msg: impl fmt::Display) -> Self {
        PluginError(msg.to_string(), ErrorKind::InvalidArgument)
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.0
    }

    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.1
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PluginError {}

impl From<String> for PluginError {
    fn from(s: String) -> Self {
        PluginError(s, ErrorKind::Failed)
    }
}

impl From<&str> for PluginError {
    fn from(s: &str) -> Self {
        PluginError(s.to_string(), ErrorKind::Failed)
    }
}

/// Result of a plugin callback.
pub type PluginResult<T = ()> = Result<T, PluginError>;
