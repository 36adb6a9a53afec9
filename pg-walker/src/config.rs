//! Plugin settings outside a server: read from a TOML file (`[plugin]` tables of
//! `name = value`) and `--set plugin.name=value` (later wins), and handed to each
//! setting as the plugin defines it, in place of the server's configuration. Names
//! under `server.` (a `[server]` table) are the server settings plugins would read from
//! a server (`max_wal_size`, `checkpoint_timeout`, ...): the host hands them to
//! plugins' `server_setting` in the setting's base unit.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::path::Path;
use std::sync::OnceLock;
use walker_core::settings::{SettingDef, SettingKind, Storage};

/// Values by full name (`plugin.name`), as text.
static VALUES: OnceLock<BTreeMap<String, String>> = OnceLock::new();

/// Reads the TOML file (if any) and applies the `--set` overrides.
pub fn load(
    file: Option<&Path>,
    sets: &[(String, String)],
) -> Result<BTreeMap<String, String>, String> {
    let mut values = BTreeMap::new();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the settings file {}: {e}", path.display()))?;
        let doc: toml::Value = text.parse().map_err(|e| {
            format!(
                "the settings file {} is not valid TOML: {e}",
                path.display()
            )
        })?;
        let toml::Value::Table(plugins) = doc else {
            return Err(format!(
                "the settings file {} holds no table",
                path.display()
            ));
        };
        for (plugin, table) in plugins {
            let toml::Value::Table(table) = table else {
                return Err(format!(
                    "{}: `{plugin}` must be a table of settings ([{plugin}] then name = value lines)",
                    path.display()
                ));
            };
            for (name, v) in table {
                let text = match v {
                    toml::Value::String(s) => s,
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Float(f) => f.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    other => {
                        return Err(format!(
                        "{}: {plugin}.{name} = {other}: a setting is a string, number or boolean",
                        path.display()
                    ))
                    }
                };
                values.insert(format!("{plugin}.{name}"), text);
            }
        }
    }
    for (k, v) in sets {
        if !k.contains('.') {
            return Err(format!("--set {k}={v}: name the setting as PLUGIN.NAME"));
        }
        values.insert(k.clone(), v.clone());
    }
    Ok(values)
}

/// The prefix of server settings given in place of a server's.
pub const SERVER: &str = "server.";

/// Makes `values` the settings every plugin sees (once, before plugins load), and
/// returns the `server.` ones (by lower-case name, without the prefix) for
/// `server_setting`, converted to their base unit (`server.max_wal_size = 1GB` is
/// handed on as 1024, in MB).
pub fn install(values: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, String> {
    let (server, plugins) = split(values)?;
    let _ = VALUES.set(plugins);
    walker_core::host_api::set_definer(define);
    Ok(server)
}

/// Separates the `server.` settings (converted to their base unit, by lower-case name
/// without the prefix) from the plugins' (as given).
fn split(values: BTreeMap<String, String>) -> Result<Settings, String> {
    let (server, plugins): (BTreeMap<_, _>, BTreeMap<_, _>) =
        values.into_iter().partition(|(k, _)| k.starts_with(SERVER));
    let mut given = BTreeMap::new();
    for (k, v) in server {
        let name = k[SERVER.len()..].to_ascii_lowercase();
        let unit = crate::units::server_setting_unit(&name);
        let value = if unit == walker_abi::WalkerSettingUnit::NONE {
            v
        } else {
            crate::units::parse_int(&v, unit)
                .map_err(|e| format!("{k}: {e}"))?
                .to_string()
        };
        given.insert(name, value);
    }
    Ok((given, plugins))
}

/// Server settings and plugin settings, each by name.
type Settings = (BTreeMap<String, String>, BTreeMap<String, String>);

/// The names given that no loaded plugin defined (`plugins`: the loaded plugin names
/// with their settings).
pub fn unknown(plugins: &[(String, Vec<String>)]) -> Vec<String> {
    let Some(values) = VALUES.get() else {
        return Vec::new();
    };
    values
        .keys()
        .filter(|k| {
            let (p, n) = k.split_once('.').unwrap_or((k, ""));
            match plugins.iter().find(|(name, _)| name == p) {
                Some((_, settings)) => !settings.iter().any(|s| s == n),
                None => false,
            }
        })
        .cloned()
        .collect()
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Some(true),
        "off" | "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

/// The definer: writes the configured value (if any) into the setting's variable.
fn define(def: &SettingDef, storage: Storage) -> Result<(), String> {
    let Some(text) = VALUES.get().and_then(|v| v.get(&def.full_name)) else {
        return Ok(());
    };
    let bad = |what: &str| format!("{} = {text:?}: {what}", def.full_name);
    // SAFETY: `storage` points to the variable `Setting::new` leaked for this setting;
    // it is written here, on the main thread, before any thread reads it.
    unsafe {
        match (&def.kind, storage) {
            (SettingKind::Int { min, max, unit, .. }, Storage::Int(p)) => {
                let v = crate::units::parse_int(text, *unit).map_err(|e| bad(&e))?;
                if v < i64::from(*min) || v > i64::from(*max) {
                    return Err(bad(&format!("outside {min}..{max}")));
                }
                *p = v as i32;
            }
            (SettingKind::Real { min, max, .. }, Storage::Real(p)) => {
                let v: f64 = text.trim().parse().map_err(|_| bad("not a number"))?;
                if !(v >= *min && v <= *max) {
                    return Err(bad(&format!("outside {min}..{max}")));
                }
                *p = v;
            }
            (SettingKind::Bool { .. }, Storage::Bool(p)) => {
                *p = parse_bool(text).ok_or_else(|| bad("not a boolean (on/off)"))?;
            }
            (SettingKind::Str { .. }, Storage::Str(p)) => {
                let c = CString::new(text.as_str()).map_err(|_| bad("contains a NUL byte"))?;
                *p = c.into_raw();
            }
            (SettingKind::Enum { options, .. }, Storage::Enum(p)) => {
                let i = options
                    .iter()
                    .position(|o| o.eq_ignore_ascii_case(text.trim()))
                    .ok_or_else(|| bad(&format!("not one of {}", options.join(", "))))?;
                *p = i as i32;
            }
            _ => return Err(bad("the setting's type and storage disagree")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_then_sets() {
        let dir = std::env::temp_dir().join(format!("pgw-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.toml");
        std::fs::write(
            &f,
            "[garbagemap]\ntop = 5\nname = \"x\"\n[budget]\non = true\n",
        )
        .unwrap();
        let v = load(Some(&f), &[("garbagemap.top".into(), "7".into())]).unwrap();
        assert_eq!(v["garbagemap.top"], "7");
        assert_eq!(v["garbagemap.name"], "x");
        assert_eq!(v["budget.on"], "true");
        std::fs::write(&f, "top = 5\n").unwrap();
        assert!(load(Some(&f), &[]).unwrap_err().contains("must be a table"));
        assert!(load(None, &[("x".into(), "1".into())])
            .unwrap_err()
            .contains("PLUGIN.NAME"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn server_settings_are_given_in_their_base_unit() {
        let v: BTreeMap<String, String> = [
            ("server.max_wal_size", "1GB"),
            ("server.Checkpoint_Timeout", "5min"),
            ("server.checkpoint_completion_target", "0.9"),
            ("server.wal_segment_size", "16MB"),
            ("garbagemap.top", "5"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let (server, plugins) = split(v).unwrap();
        assert_eq!(server["max_wal_size"], "1024");
        assert_eq!(server["checkpoint_timeout"], "300");
        assert_eq!(server["checkpoint_completion_target"], "0.9");
        assert_eq!(server["wal_segment_size"], "16777216");
        assert_eq!(plugins.keys().collect::<Vec<_>>(), ["garbagemap.top"]);
        let bad: BTreeMap<String, String> =
            [("server.max_wal_size".to_string(), "1 gigabyte".to_string())].into();
        let e = split(bad).unwrap_err();
        assert!(
            e.starts_with("server.max_wal_size: ") && e.contains("\"GB\""),
            "{e}"
        );
    }
}
