//! Command-line arguments.

use crate::sizes::Size;
use std::path::PathBuf;

/// What to run and where to write it.
#[derive(Debug, Clone, PartialEq)]
pub struct Args {
    /// The run size.
    pub size: Size,
    /// Output directory (default: `bench/results`, or `bench/results/smoke` for smoke).
    pub out: Option<PathBuf>,
    /// "All shipped plugins", comma-separated (else `WALKER_BENCH_PLUGINS`, else
    /// every known installed one).
    pub plugins: Option<String>,
    /// Build profile of the installed walker (as the `walker` script says).
    pub build_profile: String,
    /// Figures to run (1-8); empty: all.
    pub only: Vec<u8>,
}

/// The number of figures.
pub const FIGURES: u8 = 8;

/// The help text.
pub const USAGE: &str = "\
usage: walker-bench [--smoke | --size smoke|medium|full] [options]

Measures the walker extension installed in the server's library directory and
writes the results to bench/results/ (Markdown and JSON).

  --smoke              the CI size (seconds): same as --size smoke
  --size NAME          smoke, medium or full (default full)
  --reps N             repetitions of each side-by-side measurement
  --plugins A,B        the shipped plugins (default: $WALKER_BENCH_PLUGINS, else
                       every known plugin whose .so is installed)
  --build-profile P    how the installed walker was built (release, debug)
  --out DIR            where to write the results
  --only 1,2           run only these figures (1-8; 2, 3, 6 and 8 share their
                       clusters, 7 takes its walk series from 1)
  -h, --help           this text
";

fn value<'a>(it: &mut impl Iterator<Item = &'a String>, flag: &str) -> Result<&'a String, String> {
    it.next().ok_or_else(|| format!("{flag} needs a value"))
}

/// Parses the arguments (without the program name). `Err` carries the message;
/// `--help` is `Err(USAGE)`.
pub fn parse(argv: &[String], env_plugins: Option<String>) -> Result<Args, String> {
    let mut size = Size::named("full").expect("full size");
    let mut reps = None;
    let mut args = Args {
        size: size.clone(),
        out: None,
        plugins: env_plugins.filter(|p| !p.trim().is_empty()),
        build_profile: "unknown".to_string(),
        only: Vec::new(),
    };
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--smoke" => size = Size::named("smoke").expect("smoke size"),
            "--size" => {
                let name = value(&mut it, arg)?;
                size = Size::named(name).ok_or_else(|| {
                    format!("unknown size {name:?} (one of {})", Size::NAMES.join(", "))
                })?;
            }
            "--reps" => {
                let n = value(&mut it, arg)?;
                reps = Some(
                    n.parse::<usize>()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or_else(|| format!("--reps {n:?}: a positive number"))?,
                );
            }
            "--plugins" => args.plugins = Some(value(&mut it, arg)?.clone()),
            "--build-profile" => args.build_profile = value(&mut it, arg)?.clone(),
            "--out" => args.out = Some(PathBuf::from(value(&mut it, arg)?)),
            "--only" => {
                for f in value(&mut it, arg)?.split(',') {
                    let n = f
                        .trim()
                        .parse::<u8>()
                        .ok()
                        .filter(|n| (1..=FIGURES).contains(n))
                        .ok_or_else(|| format!("--only: {f:?} is not a figure (1-{FIGURES})"))?;
                    args.only.push(n);
                }
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}\n\n{USAGE}")),
        }
    }
    if let Some(n) = reps {
        size.reps = n;
    }
    args.size = size;
    Ok(args)
}

impl Args {
    /// Whether figure `n` runs.
    pub fn runs(&self, n: u8) -> bool {
        self.only.is_empty() || self.only.contains(&n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Args, String> {
        parse(
            &args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            None,
        )
    }

    #[test]
    fn defaults_to_full() {
        let a = p(&[]).unwrap();
        assert_eq!(a.size.name, "full");
        assert!(a.runs(1) && a.runs(5));
    }

    #[test]
    fn smoke_with_options() {
        let a = p(&[
            "--smoke",
            "--reps",
            "2",
            "--only",
            "1,5",
            "--plugins",
            "a,b",
            "--build-profile",
            "debug",
        ])
        .unwrap();
        assert_eq!((a.size.name, a.size.reps), ("smoke", 2));
        assert!(a.runs(1) && !a.runs(2) && a.runs(5));
        assert_eq!(a.plugins.as_deref(), Some("a,b"));
        assert_eq!(a.build_profile, "debug");
    }

    #[test]
    fn environment_plugins_and_errors() {
        let a = parse(&[], Some("rmgr_stats".to_string())).unwrap();
        assert_eq!(a.plugins.as_deref(), Some("rmgr_stats"));
        assert!(p(&["--size", "huge"]).is_err());
        assert!(p(&["--reps", "0"]).is_err());
        assert!(p(&["--only", "9"]).is_err());
        assert!(p(&["--only", "0"]).is_err());
        assert!(p(&["--only", "6,7,8"]).unwrap().runs(8));
        assert!(p(&["--bogus"]).is_err());
        assert!(p(&["--help"]).unwrap_err().starts_with("usage"));
    }
}
