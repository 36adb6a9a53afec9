//! The command line: `pg_walker walk ...`, `pg_walker follow ...` and `pg_walker show ...`.

use std::path::PathBuf;
use walker_walfile::format::parse_lsn;

/// Usage text, printed with `--help` and after a usage error.
pub const USAGE: &str = "usage:
  pg_walker walk --wal-dir DIR [--plugins NAME[,NAME...]] [--start LSN] [--end LSN]
                 [--plugin-dir DIR] [--state-dir DIR] [--config FILE.toml] [--set PLUGIN.NAME=VALUE]...
  pg_walker follow 'host=... port=... user=...' --plugins NAME[,NAME...] [--slot NAME] [--create-slot]
                 [--start LSN] [--end LSN] [--metrics-addr HOST:PORT] [--plugin-dir DIR] [--state-dir DIR] [--config FILE.toml]
                 [--set PLUGIN.NAME=VALUE]...
  pg_walker show PLUGIN VIEW [--format table|csv|json] [--svg-dir DIR] [--state-dir DIR]
                 [--plugin-dir DIR] [--config FILE.toml] [--set PLUGIN.NAME=VALUE]...
walk without --plugins reads and counts the records (records, bytes, page-image bytes),
keeping no state. --set server.NAME=VALUE gives a server setting plugins would read from
a server (server.max_wal_size=1GB, server.checkpoint_timeout=5min, ...).";

/// How `show` prints rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns with a header line.
    Table,
    /// RFC 4180 CSV with a header line.
    Csv,
    /// A JSON array of objects, one per row.
    Json,
}

/// Options both commands take.
#[derive(Debug, Default)]
pub struct Common {
    /// Where plugin libraries are found (default: `pg_config --pkglibdir`).
    pub plugin_dir: Option<PathBuf>,
    /// Where plugin snapshots and the walk's position are kept.
    pub state_dir: PathBuf,
    /// TOML file of plugin settings (`[plugin] name = value`).
    pub config: Option<PathBuf>,
    /// `PLUGIN.NAME=VALUE` overrides, in order.
    pub sets: Vec<(String, String)>,
}

/// A parsed command.
#[derive(Debug)]
pub enum Command {
    /// Walk WAL files.
    Walk {
        /// The WAL directory.
        wal_dir: PathBuf,
        /// First LSN (default: the saved position, else the first record of the files).
        start: Option<u64>,
        /// Last LSN (default: the end of the files).
        end: Option<u64>,
        /// Plugin names, in order.
        plugins: Vec<String>,
        /// Shared options.
        common: Common,
    },
    /// Follow a server over the replication protocol.
    Follow {
        /// What to follow and how far.
        request: crate::follow::Request,
        /// Plugin names, in order.
        plugins: Vec<String>,
        /// Shared options.
        common: Common,
    },
    /// Print a view.
    Show {
        /// Plugin name.
        plugin: String,
        /// View name.
        view: String,
        /// Output format.
        format: Format,
        /// Draw each relation of the view with the plugin's `svg` function into
        /// files here (one per row).
        svg_dir: Option<PathBuf>,
        /// Shared options.
        common: Common,
    },
    /// Print the usage.
    Help,
}

fn lsn(flag: &str, v: &str) -> Result<u64, String> {
    parse_lsn(v).ok_or_else(|| format!("{flag} {v}: not an LSN (write it like 0/1A2B3C8)"))
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Command, String> {
    let Some(cmd) = args.first() else {
        return Err("no command given (walk, follow or show)".into());
    };
    if cmd == "--help" || cmd == "-h" || cmd == "help" {
        return Ok(Command::Help);
    }
    let mut common = Common {
        state_dir: PathBuf::from("pg_walker_state"),
        ..Common::default()
    };
    let (mut wal_dir, mut start, mut end, mut plugins) = (None, None, None, Vec::new());
    let mut format = Format::Table;
    let (mut slot, mut create_slot) = (None, false);
    let (mut metrics_addr, mut svg_dir) = (None, None);
    let mut positional = Vec::new();
    let mut it = args[1..].iter();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        if !flag.starts_with("--") {
            positional.push(a.clone());
            continue;
        }
        if flag == "--help" {
            return Ok(Command::Help);
        }
        if (cmd.as_str(), flag) == ("follow", "--create-slot") {
            create_slot = true;
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => it
                .next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))?,
        };
        match (cmd.as_str(), flag) {
            ("walk", "--wal-dir") => wal_dir = Some(PathBuf::from(value)),
            ("walk" | "follow", "--start") => start = Some(lsn(flag, &value)?),
            ("walk" | "follow", "--end") => end = Some(lsn(flag, &value)?),
            ("follow", "--slot") => slot = Some(value),
            ("follow", "--metrics-addr") => metrics_addr = Some(value),
            ("show", "--svg-dir") => svg_dir = Some(PathBuf::from(value)),
            ("walk" | "follow", "--plugins") => plugins.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from),
            ),
            ("show", "--format") => {
                format = match value.as_str() {
                    "table" => Format::Table,
                    "csv" => Format::Csv,
                    "json" => Format::Json,
                    other => {
                        return Err(format!("--format {other}: use table, csv or json"));
                    }
                }
            }
            (_, "--plugin-dir") => common.plugin_dir = Some(PathBuf::from(value)),
            (_, "--state-dir") => common.state_dir = PathBuf::from(value),
            (_, "--config") => common.config = Some(PathBuf::from(value)),
            (_, "--set") => {
                let Some((k, v)) = value.split_once('=') else {
                    return Err(format!("--set {value}: write it as PLUGIN.NAME=VALUE"));
                };
                common.sets.push((k.trim().to_string(), v.to_string()));
            }
            (c, f) => return Err(format!("{c}: unknown option {f}")),
        }
    }
    match cmd.as_str() {
        "walk" => {
            if let Some(p) = positional.first() {
                return Err(format!("walk: unexpected argument {p}"));
            }
            let wal_dir = wal_dir.ok_or("walk: --wal-dir DIR is required")?;
            if let (Some(s), Some(e)) = (start, end) {
                if e < s {
                    return Err("walk: --end is before --start".into());
                }
            }
            Ok(Command::Walk {
                wal_dir,
                start,
                end,
                plugins,
                common,
            })
        }
        "follow" => {
            let [conninfo] = &positional[..] else {
                return Err(
                    "follow: give one connection string, e.g. 'host=db1 port=5432 user=walker'"
                        .into(),
                );
            };
            if plugins.is_empty() {
                return Err("follow: --plugins NAME[,NAME...] is required".into());
            }
            if create_slot && slot.is_none() {
                return Err("follow: --create-slot needs --slot NAME".into());
            }
            if let (Some(s), Some(e)) = (start, end) {
                if e < s {
                    return Err("follow: --end is before --start".into());
                }
            }
            Ok(Command::Follow {
                request: crate::follow::Request {
                    conninfo: conninfo.clone(),
                    slot,
                    create_slot,
                    start,
                    end,
                    metrics_addr,
                },
                plugins,
                common,
            })
        }
        "show" => match &positional[..] {
            [plugin, view] => Ok(Command::Show {
                plugin: plugin.clone(),
                view: view.clone(),
                format,
                svg_dir,
                common,
            }),
            _ => Err("show: give PLUGIN and VIEW".into()),
        },
        other => Err(format!("unknown command {other} (walk, follow or show)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Command, String> {
        parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    #[test]
    fn walk_options() {
        let Command::Walk {
            wal_dir,
            start,
            end,
            plugins,
            common,
        } = p("walk --wal-dir /w --start 0/10 --end=1/0 --plugins a,b --set a.x=1").unwrap()
        else {
            panic!("not walk")
        };
        assert_eq!(wal_dir, PathBuf::from("/w"));
        assert_eq!((start, end), (Some(0x10), Some(1 << 32)));
        assert_eq!(plugins, ["a", "b"]);
        assert_eq!(common.sets, [("a.x".to_string(), "1".to_string())]);
    }

    #[test]
    fn follow_options() {
        let Command::Follow {
            request, plugins, ..
        } = p("follow host=/tmp --plugins rmgr_stats --slot s1 --create-slot --end 0/20").unwrap()
        else {
            panic!("not follow")
        };
        assert_eq!(request.conninfo, "host=/tmp");
        assert_eq!(request.slot.as_deref(), Some("s1"));
        assert!(request.create_slot);
        assert_eq!(request.end, Some(0x20));
        assert_eq!(plugins, ["rmgr_stats"]);
        assert!(p("follow host=x --plugins a --create-slot")
            .unwrap_err()
            .contains("--slot"));
        assert!(p("follow --plugins a")
            .unwrap_err()
            .contains("connection string"));
    }

    #[test]
    fn errors_name_the_fix() {
        assert!(p("walk --plugins a").unwrap_err().contains("--wal-dir"));
        assert!(p("walk --wal-dir d --plugins a --start zz")
            .unwrap_err()
            .contains("LSN"));
        assert!(p("show a").unwrap_err().contains("PLUGIN and VIEW"));
        assert!(p("show a b --format xml")
            .unwrap_err()
            .contains("table, csv or json"));
    }
}
