//! `pg_walker`: walker's plugins run outside the server. `walk` reads WAL files (a
//! pg_wal, an archive) and hands every record to the plugins named, loaded and
//! negotiated exactly as the server does; their state is kept in a state directory in
//! walker's snapshot format, so the next walk resumes where this one stopped. `show`
//! prints any plugin view from that state. `follow` feeds the plugins from a server's
//! WAL as it is written, over the physical replication protocol.

mod args;
mod config;
mod conninfo;
mod follow;
mod host;
mod metrics;
mod pgwire;
mod position;
mod progress;
mod received;
mod show;
mod stop;
mod stream;
mod units;
mod walk;

use args::Command;
use walker_core::rows::format_lsn;

/// Prints each failed plugin with why; the exit status: 0, or 3 when one failed.
fn failures_code(failed: &[(String, String)]) -> i32 {
    for (name, why) in failed {
        eprintln!("pg_walker: plugin \"{name}\" failed: {why}");
    }
    if failed.is_empty() {
        0
    } else {
        3
    }
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let code = match args::parse(&argv) {
        Err(e) => {
            eprintln!("pg_walker: {e}\n{}", args::USAGE);
            2
        }
        Ok(Command::Help) => {
            println!("{}", args::USAGE);
            0
        }
        Ok(Command::Walk {
            wal_dir,
            start,
            end,
            plugins,
            ..
        }) if plugins.is_empty() => match walk::count(&wal_dir, start, end) {
            Ok(c) => {
                println!(
                    "{} records, {} bytes of which {} bytes of full-page images, from {} to {}",
                    c.records,
                    c.bytes,
                    c.fpi_bytes,
                    format_lsn(c.start),
                    format_lsn(c.end)
                );
                0
            }
            Err(e) => {
                eprintln!("pg_walker: {e}");
                1
            }
        },
        Ok(Command::Walk {
            wal_dir,
            start,
            end,
            plugins,
            common,
        }) => match walk::run(&wal_dir, start, end, &plugins, &common) {
            Ok(o) => {
                eprintln!(
                    "pg_walker: walked {} records from {} to {}; state in {}",
                    o.records,
                    format_lsn(o.start),
                    format_lsn(o.end),
                    common.state_dir.display()
                );
                failures_code(&o.failed)
            }
            Err(e) => {
                eprintln!("pg_walker: {e}");
                1
            }
        },
        Ok(Command::Follow {
            request,
            plugins,
            common,
        }) => match follow::run(&request, &plugins, &common) {
            Ok(o) => {
                eprintln!(
                    "pg_walker: followed {} records from {} to {} ({} timeline switches); state in {}",
                    o.records,
                    format_lsn(o.start),
                    format_lsn(o.end),
                    o.switches,
                    common.state_dir.display()
                );
                failures_code(&o.failed)
            }
            Err(e) => {
                eprintln!("pg_walker: {e}");
                1
            }
        },
        Ok(Command::Show {
            plugin,
            view,
            format,
            svg_dir,
            common,
        }) => match show::collect(&plugin, &view, &common, svg_dir.as_deref()) {
            Ok(t) => {
                print!("{}", show::render(&t, format));
                0
            }
            Err(e) => {
                eprintln!("pg_walker: {e}");
                1
            }
        },
    };
    std::process::exit(code);
}
