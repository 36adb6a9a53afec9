//! Writes what plugins logged (queued from any thread) to the server log. Runs only on
//! a process's main thread.

use walker_abi::WalkerLogLevel;
use walker_core::host_api::drain_logs;

/// Writes queued plugin log lines.
pub fn drain() {
    let (lines, dropped) = drain_logs();
    for l in lines {
        match l.level {
            WalkerLogLevel::WARNING => {
                pgrx::warning!("walker plugin \"{}\": {}", l.plugin, l.message)
            }
            WalkerLogLevel::DEBUG => pgrx::debug1!("walker plugin \"{}\": {}", l.plugin, l.message),
            _ => pgrx::log!("walker plugin \"{}\": {}", l.plugin, l.message),
        }
    }
    if dropped > 0 {
        pgrx::warning!(
            "walker: {dropped} plugin log lines were dropped because the log queue was full"
        );
    }
}
