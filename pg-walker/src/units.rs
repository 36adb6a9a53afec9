//! Integer settings with units, read as PostgreSQL reads them in postgresql.conf:
//! `64MB`, `1.5GB`, `5min`, `300` (no unit: the setting's base unit). Memory units are
//! `B`, `kB`, `MB`, `GB`, `TB` (powers of 1024), time units `us`, `ms`, `s`, `min`,
//! `h`, `d`; like the server, unit names are case-sensitive and a fractional result is
//! rounded to the nearest base unit.

use walker_abi::WalkerSettingUnit;

const MEMORY: [(&str, f64); 5] = [
    ("B", 1.0),
    ("kB", 1024.0),
    ("MB", 1_048_576.0),
    ("GB", 1_073_741_824.0),
    ("TB", 1_099_511_627_776.0),
];

const TIME: [(&str, f64); 6] = [
    ("us", 1.0),
    ("ms", 1e3),
    ("s", 1e6),
    ("min", 60e6),
    ("h", 3_600e6),
    ("d", 86_400e6),
];

/// The units a setting of base unit `base` accepts, and the base unit's size in them.
fn family(base: WalkerSettingUnit) -> Option<(&'static [(&'static str, f64)], f64)> {
    match base {
        WalkerSettingUnit::BYTES => Some((&MEMORY, 1.0)),
        WalkerSettingUnit::KB => Some((&MEMORY, 1024.0)),
        WalkerSettingUnit::MB => Some((&MEMORY, 1_048_576.0)),
        WalkerSettingUnit::MS => Some((&TIME, 1e3)),
        WalkerSettingUnit::S => Some((&TIME, 1e6)),
        WalkerSettingUnit::MIN => Some((&TIME, 60e6)),
        _ => None,
    }
}

/// `text` as a whole number of `base` units (an error says which units are valid).
pub fn parse_int(text: &str, base: WalkerSettingUnit) -> Result<i64, String> {
    let t = text.trim();
    let split = t
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || (i == 0 && (c == '-' || c == '+'))))
        .map_or(t.len(), |(i, _)| i);
    let (num, unit) = (&t[..split], t[split..].trim());
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a number (with an optional unit)"))?;
    let scaled = if unit.is_empty() {
        value
    } else {
        let Some((units, base_size)) = family(base) else {
            return Err(format!("{text:?}: this setting takes no unit"));
        };
        let Some((_, size)) = units.iter().find(|(u, _)| *u == unit) else {
            let names: Vec<String> = units.iter().map(|(u, _)| format!("\"{u}\"")).collect();
            return Err(format!(
                "{text:?}: valid units for this setting are {}",
                names.join(", ")
            ));
        };
        value * size / base_size
    };
    let rounded = scaled.round();
    if !rounded.is_finite() || rounded.abs() > i64::MAX as f64 / 2.0 {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(rounded as i64)
}

/// The base unit of the server settings the shipped plugins read, for those given as
/// `server.NAME` (values are handed to plugins in the base unit, as the server's
/// `pg_settings.setting` shows them); other names are passed on as written.
pub fn server_setting_unit(name: &str) -> WalkerSettingUnit {
    match name {
        "max_wal_size" | "min_wal_size" => WalkerSettingUnit::MB,
        "checkpoint_timeout" => WalkerSettingUnit::S,
        "wal_segment_size" => WalkerSettingUnit::BYTES,
        _ => WalkerSettingUnit::NONE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use walker_abi::WalkerSettingUnit as U;

    #[test]
    fn memory_and_time_as_the_server_reads_them() {
        assert_eq!(parse_int("64MB", U::MB), Ok(64));
        assert_eq!(parse_int("1GB", U::MB), Ok(1024));
        assert_eq!(parse_int("1.5GB", U::MB), Ok(1536));
        assert_eq!(parse_int(" 2TB ", U::MB), Ok(2 * 1024 * 1024));
        assert_eq!(parse_int("16MB", U::BYTES), Ok(16 * 1024 * 1024));
        assert_eq!(parse_int("8kB", U::KB), Ok(8));
        // 1500 kB is 1.46 MB: rounded to the nearest MB.
        assert_eq!(parse_int("1500kB", U::MB), Ok(1));
        assert_eq!(parse_int("5min", U::S), Ok(300));
        assert_eq!(parse_int("1h", U::MIN), Ok(60));
        assert_eq!(parse_int("1d", U::S), Ok(86_400));
        assert_eq!(parse_int("250ms", U::S), Ok(0));
        assert_eq!(parse_int("1500ms", U::S), Ok(2));
        assert_eq!(parse_int("300", U::S), Ok(300));
        assert_eq!(parse_int("-1", U::MB), Ok(-1));
        assert_eq!(parse_int("7", U::NONE), Ok(7));
    }

    #[test]
    fn wrong_units_name_the_valid_ones() {
        let e = parse_int("64mb", U::MB).unwrap_err();
        assert!(e.contains("\"MB\"") && e.contains("\"kB\""), "{e}");
        let e = parse_int("5 minutes", U::S).unwrap_err();
        assert!(e.contains("\"min\""), "{e}");
        assert!(parse_int("64MB", U::S).unwrap_err().contains("valid units"));
        assert!(parse_int("3MB", U::NONE).unwrap_err().contains("no unit"));
        assert!(parse_int("MB", U::MB).unwrap_err().contains("not a number"));
    }
}
