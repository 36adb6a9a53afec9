//! Plugin names: parsing `walker.plugins` and resolving a name to a library file the
//! way PostgreSQL resolves its own libraries (`dynamic_library_path`, `$libdir`).

use std::path::{Path, PathBuf};

/// Why a `walker.plugins` entry cannot name a plugin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The entry contains a path separator.
    #[error("plugin name \"{0}\" contains a path separator; walker.plugins takes library names only: install the library into the server's library directory (pg_config --pkglibdir) or a directory listed in dynamic_library_path, and list it by name")]
    PathSeparator(String),
    /// The entry is not a lower-case identifier.
    #[error("plugin name \"{0}\" is not valid: use lower-case letters, digits and underscores, starting with a letter (it becomes the prefix of the plugin's settings and views)")]
    Invalid(String),
    /// The same name appears twice.
    #[error("plugin \"{0}\" is listed twice in walker.plugins; list each plugin once")]
    Duplicate(String),
}

impl NameError {
    /// The entry as written in `walker.plugins`.
    pub fn name(&self) -> &str {
        match self {
            NameError::PathSeparator(n) | NameError::Invalid(n) | NameError::Duplicate(n) => n,
        }
    }
}

/// Longest plugin name: view names `<plugin>_<view>` must fit PostgreSQL's 63-byte identifiers.
pub const MAX_PLUGIN_NAME: usize = 31;

/// Checks one plugin name.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.contains('/') || name.contains('\\') {
        return Err(NameError::PathSeparator(name.to_string()));
    }
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !first_ok || !rest_ok || name.len() > MAX_PLUGIN_NAME {
        return Err(NameError::Invalid(name.to_string()));
    }
    Ok(())
}

/// Splits the `walker.plugins` value into entries: comma-separated, blanks trimmed,
/// empty entries ignored. Each entry is checked; bad ones come back as errors, in order,
/// so one bad name does not hide the good ones.
pub fn parse_plugin_list(value: &str) -> Vec<Result<String, NameError>> {
    let mut seen: Vec<String> = Vec::new();
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            validate_name(s)?;
            if seen.iter().any(|x| x == s) {
                return Err(NameError::Duplicate(s.to_string()));
            }
            seen.push(s.to_string());
            Ok(s.to_string())
        })
        .collect()
}

/// Candidate files for plugin `name`: each directory of `dynamic_library_path` (with
/// `$libdir` replaced by `pkglibdir`), in order, `name` plus the shared-library suffix.
pub fn candidate_paths(
    name: &str,
    dynamic_library_path: &str,
    pkglibdir: &Path,
    dlsuffix: &str,
) -> Vec<PathBuf> {
    let file = format!("{name}{dlsuffix}");
    let mut dirs: Vec<PathBuf> = dynamic_library_path
        .split(':')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            if let Some(rest) = d.strip_prefix("$libdir") {
                let mut p = pkglibdir.as_os_str().to_os_string();
                p.push(rest);
                PathBuf::from(p)
            } else {
                PathBuf::from(d)
            }
        })
        .collect();
    if dirs.is_empty() {
        dirs.push(pkglibdir.to_path_buf());
    }
    dirs.into_iter().map(|d| d.join(&file)).collect()
}

/// First candidate that exists, per `exists`.
pub fn resolve(
    name: &str,
    dynamic_library_path: &str,
    pkglibdir: &Path,
    dlsuffix: &str,
    exists: impl Fn(&Path) -> bool,
) -> Option<PathBuf> {
    candidate_paths(name, dynamic_library_path, pkglibdir, dlsuffix)
        .into_iter()
        .find(|p| exists(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lower_case_identifiers() {
        assert!(validate_name("rmgr_stats").is_ok());
        assert!(validate_name("a1").is_ok());
        assert_eq!(
            validate_name("../x"),
            Err(NameError::PathSeparator("../x".into()))
        );
        assert_eq!(
            validate_name("/usr/lib/x"),
            Err(NameError::PathSeparator("/usr/lib/x".into()))
        );
        assert_eq!(
            validate_name("Upper"),
            Err(NameError::Invalid("Upper".into()))
        );
        assert_eq!(
            validate_name("1abc"),
            Err(NameError::Invalid("1abc".into()))
        );
        assert_eq!(validate_name("a-b"), Err(NameError::Invalid("a-b".into())));
        assert!(validate_name(&"a".repeat(31)).is_ok());
        assert!(validate_name(&"a".repeat(32)).is_err());
    }

    #[test]
    fn list_keeps_good_entries_beside_bad_ones() {
        let got = parse_plugin_list(" rmgr_stats, ,bad/one,garbagemap,rmgr_stats ");
        assert_eq!(got.len(), 4);
        assert_eq!(got[0], Ok("rmgr_stats".into()));
        assert!(matches!(got[1], Err(NameError::PathSeparator(_))));
        assert_eq!(got[2], Ok("garbagemap".into()));
        assert_eq!(got[3], Err(NameError::Duplicate("rmgr_stats".into())));
        assert_eq!(got[1].as_ref().unwrap_err().name(), "bad/one");
        assert!(parse_plugin_list("").is_empty());
    }

    #[test]
    fn resolution_follows_dynamic_library_path() {
        let lib = Path::new("/usr/lib/postgresql/15/lib");
        let c = candidate_paths("x", "$libdir:/opt/extra", lib, ".so");
        assert_eq!(
            c,
            vec![
                PathBuf::from("/usr/lib/postgresql/15/lib/x.so"),
                PathBuf::from("/opt/extra/x.so")
            ]
        );
        // An empty path means $libdir.
        assert_eq!(
            candidate_paths("x", "", lib, ".so"),
            vec![PathBuf::from("/usr/lib/postgresql/15/lib/x.so")]
        );
        // `$libdir/sub` keeps the suffix after the macro.
        assert_eq!(
            candidate_paths("x", "$libdir/sub", lib, ".so"),
            vec![PathBuf::from("/usr/lib/postgresql/15/lib/sub/x.so")]
        );
        let found = resolve("x", "$libdir:/opt/extra", lib, ".so", |p| {
            p.starts_with("/opt")
        });
        assert_eq!(found, Some(PathBuf::from("/opt/extra/x.so")));
        assert_eq!(resolve("x", "$libdir", lib, ".so", |_| false), None);
    }
}
