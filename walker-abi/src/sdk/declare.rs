//! What a plugin declares about itself: [`PluginInfo`], its views and its SQL functions.

use crate::types::*;

/// A view the plugin declares: `walker.<plugin>_<name>`.
#[derive(Debug, Clone)]
pub struct ViewDef {
    /// Lower-case SQL identifier.
    pub name: &'static str,
    /// One-line description.
    pub description: &'static str,
    /// Column names and types, in order.
    pub columns: Vec<(&'static str, WalkerType)>,
}

/// A SQL function the plugin answers: `walker.<plugin>_<name>(args jsonb DEFAULT '{}')`
/// (ABI 1.2), through [`Plugin::call`](super::Plugin::call).
#[derive(Debug, Clone)]
pub struct FunctionDef {
    /// Lower-case SQL identifier.
    pub name: &'static str,
    /// One-line description.
    pub description: &'static str,
    /// Result type: [`WalkerType::JSONB`] or [`WalkerType::TEXT`].
    pub result: WalkerType,
    /// Who may call it: [`WalkerAccess::MONITOR`], [`WalkerAccess::ADMIN`], or
    /// [`WalkerAccess::ROLE`] (the plugin's own role, [`PluginInfo::role`]).
    pub access: WalkerAccess,
}

/// What a plugin declares about itself.
#[derive(Debug, Clone)]
pub struct PluginInfo {
    /// Version, free text.
    pub version: &'static str,
    /// One-line description.
    pub description: &'static str,
    /// Resource managers whose records the plugin receives (see [`mask_of`], [`ALL_RMGRS`]).
    pub rmgrs: [u64; WALKER_RMGR_MASK_WORDS],
    /// Views.
    pub views: Vec<ViewDef>,
    /// The plugin keeps state across restarts through snapshots: the host calls
    /// [`Plugin::save_state`](super::Plugin::save_state) and
    /// [`Plugin::load_state`](super::Plugin::load_state) (ABI 1.1).
    pub snapshots: bool,
    /// SQL functions, answered by [`Plugin::call`](super::Plugin::call) (ABI 1.2).
    pub functions: Vec<FunctionDef>,
    /// The host calls [`Plugin::on_backend`](super::Plugin::on_backend) in processes
    /// running SQL (ABI 1.3).
    pub backend_events: bool,
    /// SQL the host runs after creating the plugin's views and functions; idempotent
    /// (ABI 1.3, [`WalkerPluginDescriptor::sql`]).
    pub sql: Option<&'static str>,
    /// The plugin's own role, created by the host; [`WalkerAccess::ROLE`] functions
    /// are granted to it (ABI 1.3).
    pub role: Option<&'static str>,
}

impl Default for PluginInfo {
    /// Nothing declared: no version or description, no resource managers (no
    /// records), no views, snapshots, functions, backend events, SQL or role. A plugin
    /// sets what it offers and takes the rest with `..PluginInfo::default()`, so
    /// fields added to `PluginInfo` later need no change to it.
    fn default() -> Self {
        PluginInfo {
            version: "",
            description: "",
            rmgrs: [0; WALKER_RMGR_MASK_WORDS],
            views: Vec::new(),
            snapshots: false,
            functions: Vec::new(),
            backend_events: false,
            sql: None,
            role: None,
        }
    }
}
