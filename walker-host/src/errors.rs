//! Errors at the SQL boundary: each carries a SQLSTATE and a hint, and is raised with
//! `ereport` by [`WalkerError::raise`].

use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::PgLogLevel;
use walker_core::functions::{CallError, Failure};

/// What a walker SQL function can fail with.
#[derive(Debug, thiserror::Error)]
pub enum WalkerError {
    /// The library was not preloaded, so no plugin or worker exists.
    #[error("walker is not loaded through shared_preload_libraries")]
    NotPreloaded,
    /// No plugin of that name is listed.
    #[error("walker plugin \"{0}\" is not listed in walker.plugins")]
    UnknownPlugin(String),
    /// The plugin is listed but unusable.
    #[error("walker plugin \"{name}\" is not usable: {reason}")]
    PluginUnusable { name: String, reason: String },
    /// The plugin declares no such view.
    #[error("walker plugin \"{plugin}\" has no view \"{view}\"")]
    UnknownView {
        plugin: String,
        view: String,
        available: Vec<String>,
    },
    /// A plugin's SQL function failed.
    #[error("{0}")]
    Call(walker_core::functions::CallError),
    /// The function is for members of another role.
    #[error("permission denied for walker plugin function \"{function}\"")]
    NotAllowed {
        /// `<plugin>_<function>`.
        function: String,
        /// The role whose members may call it.
        role: String,
    },
    /// The plugin failed while producing rows.
    #[error("walker plugin \"{plugin}\" could not produce view \"{view}\": {reason}")]
    ViewFailed {
        plugin: String,
        view: String,
        reason: String,
    },
    /// A plugin's shared-memory lock stayed held past `walker.lock_timeout`.
    #[error("walker plugin \"{plugin}\" cannot be read now: {reason}")]
    LockBusy { plugin: String, reason: String },
    /// Used by `walker.drop_slot()`: something could not be removed.
    #[error("{0}")]
    DropSlot(String),
}

impl WalkerError {
    fn code(&self) -> PgSqlErrorCode {
        match self {
            WalkerError::NotPreloaded => PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            WalkerError::UnknownPlugin(_) | WalkerError::UnknownView { .. } => {
                PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT
            }
            WalkerError::PluginUnusable { .. } => {
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE
            }
            WalkerError::ViewFailed { .. } => PgSqlErrorCode::ERRCODE_EXTERNAL_ROUTINE_EXCEPTION,
            WalkerError::LockBusy { .. } => PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE,
            WalkerError::DropSlot(_) => PgSqlErrorCode::ERRCODE_OBJECT_IN_USE,
            WalkerError::NotAllowed { .. } => PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            WalkerError::Call(CallError::Unknown { .. }) => {
                PgSqlErrorCode::ERRCODE_UNDEFINED_FUNCTION
            }
            WalkerError::Call(CallError::Interrupted) => PgSqlErrorCode::ERRCODE_QUERY_CANCELED,
            WalkerError::Call(CallError::Failed { kind, .. }) => match kind {
                Failure::InvalidArgument => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                Failure::Failed => PgSqlErrorCode::ERRCODE_EXTERNAL_ROUTINE_EXCEPTION,
            },
        }
    }

    fn hint(&self) -> String {
        match self {
            WalkerError::NotPreloaded => "Add walker to shared_preload_libraries in postgresql.conf and restart the server.".into(),
            WalkerError::UnknownPlugin(name) => {
                format!("Add \"{name}\" to walker.plugins and restart the server; SELECT name FROM walker.plugins lists the plugins loaded.")
            }
            WalkerError::PluginUnusable { .. } => "Fix the cause named in the message and restart the server; walker.plugins shows each plugin's state.".into(),
            WalkerError::UnknownView { available, .. } => {
                if available.is_empty() {
                    "The plugin declares no views.".into()
                } else {
                    format!("Its views are: {}.", available.join(", "))
                }
            }
            WalkerError::ViewFailed { .. } => "This is a bug in the plugin; its other views and the walker keep working.".into(),
            WalkerError::LockBusy { .. } => "The plugin breaks the lock rule (hold the lock only briefly; see the README). Retry later; if it persists, remove the plugin from walker.plugins and restart. walker.lock_timeout bounds the wait.".into(),
            WalkerError::DropSlot(_) => "Stop the walker worker first: set walker.enabled = off, or remove walker from shared_preload_libraries and restart, then call walker.drop_slot() again.".into(),
            WalkerError::NotAllowed { role, .. } => format!("Only members of {role} may call it: GRANT {role} TO <role>."),
            WalkerError::Call(CallError::Unknown { available, .. }) => {
                if available.is_empty() {
                    "The plugin declares no functions.".into()
                } else {
                    format!("Its functions are: {}.", available.join(", "))
                }
            }
            WalkerError::Call(CallError::Interrupted) => "The wait was cancelled.".into(),
            WalkerError::Call(CallError::Failed { .. }) => "The message names the cause; the plugin keeps running.".into(),
        }
    }

    /// Raises the error with `ereport(ERROR)`.
    pub fn raise(self) -> ! {
        let hint = self.hint();
        ErrorReport::new(self.code(), self.to_string(), "walker")
            .set_hint(hint)
            .report(PgLogLevel::ERROR);
        unreachable!("ereport(ERROR) returned")
    }
}
