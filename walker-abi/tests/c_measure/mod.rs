//! Compiles a small C program against walker's headers and runs it: how the layout
//! tests have the C compiler (`$CC`, else `cc`) measure a header independently of
//! cbindgen and of the Rust types.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Compiles `program` (C11, warnings as errors) with `include` on the include path,
/// runs it and returns what it printed. `name` names the files in the test's
/// scratch directory and the failures; tests running in parallel each get their own
/// file pair.
pub fn compile_and_run(name: &str, program: &str, include: &Path) -> String {
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let name = format!("{name}_{}", CALLS.fetch_add(1, Ordering::Relaxed));
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let src = dir.join(format!("{name}.c"));
    let exe = dir.join(&name);
    std::fs::write(&src, program).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Werror", "-I"])
        .arg(include)
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler {cc}: {e}"));
    assert!(
        out.status.success(),
        "{name}: the header does not compile: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&exe).output().unwrap();
    assert!(run.status.success(), "{name} failed");
    String::from_utf8(run.stdout).unwrap()
}

/// The `<what> <number>` lines such a program prints, in order (blank lines skipped).
pub fn parse_table(text: &str) -> Vec<(String, usize)> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}
