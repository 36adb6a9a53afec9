//! `pg_walker follow --metrics-addr HOST:PORT`: the Prometheus text of the run over
//! HTTP (`GET /metrics`), written with walker-abi's one exposition writer: the host's
//! counters (records read, WAL received, the received, read and saved positions, the
//! timeline), each plugin's counters and state, and each plugin's own `metrics`
//! function, as the server's `walker.metrics()` gives them.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use walker_abi::metrics::MetricsWriter;
use walker_abi::WalkerType;
use walker_core::registry::PluginSlot;
use walker_core::shared::{PluginShared, PluginState};

/// The run's counters, updated by the main loop, read by the metrics thread.
#[derive(Debug, Default)]
pub struct Counters {
    /// Records read and handed to the plugins.
    pub records: AtomicU64,
    /// Bytes of WAL received from the server.
    pub received_bytes: AtomicU64,
    /// End of the WAL received.
    pub received_lsn: AtomicU64,
    /// Where the reader stands (the next record's start).
    pub read_lsn: AtomicU64,
    /// The state directory's position (what the slot is told is kept).
    pub saved_lsn: AtomicU64,
    /// The timeline streamed.
    pub timeline: AtomicU32,
    /// Timeline switches followed.
    pub switches: AtomicU64,
}

/// The exposition of `c` and `slots`.
pub fn render(c: &Counters, slots: &[&'static PluginSlot]) -> String {
    let mut out = MetricsWriter::new();
    let g = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
    out.metric(
        "pg_walker_records_total",
        "counter",
        "Records read from the WAL received and handed to the plugins.",
        &[(vec![], g(&c.records))],
    );
    out.metric(
        "pg_walker_received_bytes_total",
        "counter",
        "Bytes of WAL received from the server.",
        &[(vec![], g(&c.received_bytes))],
    );
    out.metric(
        "pg_walker_received_lsn",
        "gauge",
        "End of the WAL received (an LSN as a number).",
        &[(vec![], g(&c.received_lsn))],
    );
    out.metric(
        "pg_walker_read_lsn",
        "gauge",
        "Where the reader stands: the next record's start.",
        &[(vec![], g(&c.read_lsn))],
    );
    out.metric(
        "pg_walker_saved_lsn",
        "gauge",
        "The state directory's position: the plugins' state reflects the WAL up to here (the slot keeps what follows).",
        &[(vec![], g(&c.saved_lsn))],
    );
    out.metric(
        "pg_walker_timeline",
        "gauge",
        "The timeline streamed.",
        &[(vec![], f64::from(c.timeline.load(Ordering::Relaxed)))],
    );
    out.metric(
        "pg_walker_timeline_switches_total",
        "counter",
        "Timeline switches followed.",
        &[(vec![], g(&c.switches))],
    );
    let per = |f: fn(&PluginShared) -> u64| -> Vec<(Vec<(&str, &str)>, f64)> {
        slots
            .iter()
            .map(|s| {
                (
                    vec![("plugin", s.name.as_str())],
                    s.shared().map(f).unwrap_or(0) as f64,
                )
            })
            .collect()
    };
    out.metric(
        "walker_plugin_records_total",
        "counter",
        "Records delivered to each plugin.",
        &per(|x| x.records.load(Ordering::Relaxed)),
    );
    out.metric(
        "walker_plugin_errors_total",
        "counter",
        "Errors each plugin returned.",
        &per(|x| x.errors.load(Ordering::Relaxed)),
    );
    out.metric(
        "walker_plugin_processed_lsn",
        "gauge",
        "End of the last record each plugin processed.",
        &per(|x| x.processed_lsn.load(Ordering::Relaxed)),
    );
    out.metric(
        "walker_plugin_running",
        "gauge",
        "1 when the plugin is receiving records, else 0.",
        &slots
            .iter()
            .map(|s| {
                let running = s.state() == PluginState::Running;
                (
                    vec![("plugin", s.name.as_str())],
                    f64::from(u8::from(running)),
                )
            })
            .collect::<Vec<_>>(),
    );
    for s in slots.iter().filter(|s| s.usable()) {
        let Some(i) = s
            .functions
            .iter()
            .position(|f| f.name == "metrics" && f.result == WalkerType::TEXT)
        else {
            continue;
        };
        match walker_core::functions::call(s, i, "{}") {
            Ok(text) => {
                out.append(&text);
            }
            Err(e) => {
                out.comment(&format!("walker plugin \"{}\" metrics failed: {e}", s.name));
            }
        }
    }
    out.finish()
}

/// The HTTP answer to `request` (its first line is enough).
pub fn answer(request: &str, body: impl FnOnce() -> String) -> String {
    let first = request.lines().next().unwrap_or("");
    let mut parts = first.split(' ');
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, kind, text) = match (method, path.split('?').next().unwrap_or("")) {
        ("GET", "/metrics" | "/") => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", body()),
        ("GET", _) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "pg_walker serves /metrics\n".to_string(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "GET /metrics\n".to_string(),
        ),
    };
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )
}

fn serve_one(mut s: TcpStream, c: &Counters, slots: &[&'static PluginSlot]) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 16 * 1024 {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    let text = answer(&String::from_utf8_lossy(&req), || render(c, slots));
    let _ = s.write_all(text.as_bytes());
}

/// Listens on `addr` and serves the metrics from a thread of its own.
pub fn serve(addr: &str, c: Arc<Counters>, slots: Vec<&'static PluginSlot>) -> Result<(), String> {
    let l = TcpListener::bind(addr).map_err(|e| {
        format!("--metrics-addr {addr}: cannot listen there: {e} (pick a free address and port, e.g. 127.0.0.1:9187)")
    })?;
    std::thread::Builder::new()
        .name("pg_walker:metrics".into())
        .spawn(move || {
            for s in l.incoming().flatten() {
                serve_one(s, &c, &slots);
            }
        })
        .map_err(|e| format!("cannot start the metrics thread: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_answers_by_hand() {
        let ok = answer("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", || {
            "a 1\n".into()
        });
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("Content-Length: 4\r\n") && ok.ends_with("\r\n\r\na 1\n"));
        assert!(answer("GET /x HTTP/1.1\r\n\r\n", String::new).starts_with("HTTP/1.1 404"));
        assert!(answer("POST /metrics HTTP/1.1\r\n\r\n", String::new).starts_with("HTTP/1.1 405"));
    }

    #[test]
    fn host_counters_render() {
        let c = Counters::default();
        c.records.store(7, Ordering::Relaxed);
        c.timeline.store(2, Ordering::Relaxed);
        let t = render(&c, &[]);
        assert!(
            t.contains("# TYPE pg_walker_records_total counter\npg_walker_records_total 7\n"),
            "{t}"
        );
        assert!(t.contains("pg_walker_timeline 2\n"), "{t}");
    }
}
