//! Loading one plugin library: find it, open it, find its entry symbol, negotiate the
//! ABI, verify the Rust layout, read its views. Every failure becomes a [`LoadError`]
//! whose message names the cause and the fix; nothing here can stop the server.

use crate::names::{self, NameError};
use crate::negotiate::{self, AbiError};
use crate::registry::PluginSlot;
use std::path::{Path, PathBuf};
use walker_abi::sdk::c_str;
use walker_abi::*;

/// Why a plugin is not loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Bad name in `walker.plugins`.
    #[error("{0}")]
    Name(#[from] NameError),
    /// No such file.
    #[error("plugin library \"{name}{suffix}\" not found (searched {searched}); install it into the server's library directory or a directory in dynamic_library_path, or remove \"{name}\" from walker.plugins", searched = .searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    NotFound {
        /// The name as listed in walker.plugins.
        name: String,
        /// The library suffix tried.
        suffix: String,
        /// The directories searched, in order.
        searched: Vec<PathBuf>,
    },
    /// The dynamic loader refused it.
    #[error("could not load plugin library \"{path}\": {reason}; rebuild the plugin for this server and platform", path = .path.display())]
    Open {
        /// The library's path.
        path: PathBuf,
        /// The dynamic loader's message.
        reason: String,
    },
    /// No entry symbol.
    #[error("\"{path}\" has no symbol {symbol}: it is not a walker plugin; build it with walker_abi::export_plugin! (Rust) or export `const WalkerPluginDescriptor *walker_plugin_entry(void)` (C, walker_plugin.h)", path = .path.display(), symbol = WALKER_PLUGIN_ENTRY_SYMBOL)]
    NoEntry {
        /// The library's path.
        path: PathBuf,
    },
    /// Version or size refused.
    #[error("{0}")]
    Abi(#[from] AbiError),
    /// The Rust layout check failed.
    #[error("the plugin's walker-abi types do not match this walker's (abi_stable layout check: {detail}); rebuild the plugin against walker-abi {host}")]
    Layout {
        /// What differs, as the layout check reports it.
        detail: String,
        /// This walker's walker-abi version.
        host: String,
    },
}

/// What loading needs to know about the server.
#[derive(Debug, Clone)]
pub struct LibraryPaths {
    /// The server's `dynamic_library_path` setting.
    pub dynamic_library_path: String,
    /// The server's package library directory (`$libdir`).
    pub pkglibdir: PathBuf,
    /// Shared-library suffix (`.so`).
    pub dlsuffix: String,
}

/// The loaded parts of a plugin, before registration.
pub struct Loaded {
    /// Library path.
    pub path: PathBuf,
    /// Negotiated descriptor.
    pub desc: WalkerPluginDescriptor,
    /// Declared views.
    pub views: Vec<negotiate::ViewInfo>,
    /// Declared SQL functions.
    pub functions: Vec<negotiate::FunctionInfo>,
    /// The plugin's own SQL (ABI 1.3).
    pub sql: Option<String>,
    /// The plugin's own role (ABI 1.3).
    pub role: Option<String>,
    /// Declared version.
    pub version: String,
    /// The open library (kept open for the life of the process).
    pub library: libloading::Library,
}

/// Compares a Rust plugin's layout with the host's.
pub fn check_layout(plugin: &'static abi_stable::type_layout::TypeLayout) -> Result<(), LoadError> {
    let host = walker_abi::sdk::descriptor_layout();
    abi_stable::abi_stability::abi_checking::check_layout_compatibility(host, plugin).map_err(|e| {
        let full = e.to_string();
        let mut detail: String = full.split_whitespace().collect::<Vec<_>>().join(" ");
        if detail.len() > 400 {
            detail.truncate(walker_abi::text::cut_utf8(&detail, 400).len());
            detail.push_str(" ...");
        }
        LoadError::Layout {
            detail,
            host: format!("{WALKER_ABI_MAJOR}.{WALKER_ABI_MINOR}"),
        }
    })
}

/// Loads the library at `path`.
pub fn load_path(name: &str, path: &Path) -> Result<Loaded, (LoadError, Option<(u32, u32)>)> {
    // SAFETY: opening a library runs its initialisers; the operator chose to load it by
    // listing it in walker.plugins. RTLD_NOW makes missing symbols fail here, not later.
    let lib = unsafe {
        libloading::os::unix::Library::open(
            Some(path),
            libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_LOCAL,
        )
    }
    .map_err(|e| {
        (
            LoadError::Open {
                path: path.to_path_buf(),
                reason: e.to_string(),
            },
            None,
        )
    })?;
    let library: libloading::Library = lib.into();
    // SAFETY: the symbol's type is fixed by the ABI.
    let entry: WalkerPluginEntryFn = match unsafe {
        library.get::<WalkerPluginEntryFn>(WALKER_PLUGIN_ENTRY_SYMBOL.as_bytes())
    } {
        Ok(f) => *f,
        Err(_) => {
            return Err((
                LoadError::NoEntry {
                    path: path.to_path_buf(),
                },
                None,
            ))
        }
    };
    // SAFETY: calling the plugin's entry point, as the ABI prescribes.
    let raw = unsafe { entry() };
    // SAFETY: a non-null descriptor has at least its header; `read_descriptor` checks
    // the size before copying more.
    let desc = unsafe { negotiate::read_descriptor(raw) }.map_err(|e| {
        let abi = if raw.is_null() {
            None
        } else {
            // SAFETY: non-null descriptors start with major and minor.
            unsafe {
                Some((
                    (raw as *const u32).read_unaligned(),
                    (raw as *const u32).add(1).read_unaligned(),
                ))
            }
        };
        (LoadError::Abi(e), abi)
    })?;
    let abi = Some((desc.abi_major, desc.abi_minor));
    // A Rust plugin also tells its layout; compare it when the plugin was built for
    // this very minor (older minors' layouts lack later fields by design).
    if let Ok(layout_fn) =
        // SAFETY: the symbol's type is fixed by the ABI.
        unsafe {
            library.get::<WalkerPluginLayoutFn>(WALKER_PLUGIN_LAYOUT_SYMBOL.as_bytes())
        }
    {
        if desc.abi_minor == WALKER_ABI_MINOR {
            check_layout(layout_fn()).map_err(|e| (e, abi))?;
        }
    }
    // SAFETY: the descriptor passed negotiation; its views follow the ABI.
    let views =
        unsafe { negotiate::read_views(name, &desc) }.map_err(|e| (LoadError::Abi(e), abi))?;
    // SAFETY: as for the views.
    let functions =
        unsafe { negotiate::read_functions(name, &desc) }.map_err(|e| (LoadError::Abi(e), abi))?;
    // SAFETY: as for the views.
    let (sql, role) = unsafe { negotiate::read_sql_and_role(name, &desc) }
        .map_err(|e| (LoadError::Abi(e), abi))?;
    // SAFETY: NUL-terminated or null per the ABI.
    let version = unsafe { c_str(desc.version) }.unwrap_or("").to_string();
    Ok(Loaded {
        path: path.to_path_buf(),
        desc,
        views,
        functions,
        sql,
        role,
        version,
        library,
    })
}

/// Resolves and loads plugin `name`, returning its slot (never failing: an unusable
/// plugin gets a slot that says why).
pub fn load_plugin(index: usize, name: &str, paths: &LibraryPaths) -> PluginSlot {
    if let Err(e) = names::validate_name(name) {
        return PluginSlot::not_loaded(index, name, None, None, LoadError::from(e).to_string());
    }
    let found = names::resolve(
        name,
        &paths.dynamic_library_path,
        &paths.pkglibdir,
        &paths.dlsuffix,
        |p| p.is_file(),
    );
    let Some(path) = found else {
        let searched = names::candidate_paths(
            name,
            &paths.dynamic_library_path,
            &paths.pkglibdir,
            &paths.dlsuffix,
        );
        let e = LoadError::NotFound {
            name: name.to_string(),
            suffix: paths.dlsuffix.clone(),
            searched,
        };
        return PluginSlot::not_loaded(index, name, None, None, e.to_string());
    };
    match load_path(name, &path) {
        Ok(l) => PluginSlot::new(
            index,
            name,
            Some(l.path),
            Some(l.desc),
            l.views,
            l.version,
            Some(l.library),
        )
        .with_functions(l.functions)
        .with_sql_and_role(l.sql, l.role),
        Err((e, abi)) => PluginSlot::not_loaded(index, name, Some(path), abi, e.to_string()),
    }
}
