//! A persistent `psql` connection: one process for many queries, so polling every
//! few milliseconds costs a round trip, not a process start and a login.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use walker_tests::client_command;

/// What psql prints after each query's rows, so we know the rows are complete.
const END: &str = "__walker_bench_end__";
/// What psql prints, followed by the message, when the query failed.
const FAILED: &str = "__walker_bench_error__";

/// A `psql` process connected to one database over TCP, as user `postgres`.
pub struct Session {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    what: String,
}

impl Session {
    /// Connects to database `db` on 127.0.0.1:`port`; `what` names the server in errors.
    pub fn open(port: u16, db: &str, what: &str) -> Result<Session, String> {
        let mut child = client_command("psql", port, "postgres")
            .args(["-X", "-q", "-At", "-d", db])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{what}: cannot run psql: {e}"))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr_pipe = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr_pipe).lines() {
                let Ok(line) = line else { break };
                let mut s = sink.lock().unwrap_or_else(|e| e.into_inner());
                s.push_str(&line);
                s.push('\n');
            }
        });
        let mut session = Session {
            child,
            stdin,
            lines,
            stderr,
            what: what.to_string(),
        };
        session.query("SET statement_timeout = '10min'", Duration::from_secs(30))?;
        Ok(session)
    }

    /// Runs one statement (no trailing semicolon needed) and returns its rows as
    /// lines (fields separated by `|`); an error names the server and the statement.
    pub fn query(&mut self, sql: &str, timeout: Duration) -> Result<Vec<String>, String> {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        let fail = |why: String| format!("{}: {sql}: {why}", self.what);
        writeln!(
            self.stdin,
            "{};\n\\if :ERROR\n\\echo {FAILED} :LAST_ERROR_MESSAGE\n\\endif\n\\echo {END}",
            sql.trim_end_matches(';')
        )
        .and_then(|_| self.stdin.flush())
        .map_err(|e| fail(format!("psql is gone ({e})")))?;
        let deadline = Instant::now() + timeout;
        let mut rows = Vec::new();
        let mut failed = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line == END => break,
                Ok(line) if line.starts_with(FAILED) => {
                    failed = Some(line[FAILED.len()..].trim().to_string())
                }
                Ok(line) => rows.push(line),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(fail(format!("no answer within {timeout:?}")))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    thread::sleep(Duration::from_millis(50));
                    return Err(fail(format!("psql exited: {}", self.stderr_text())));
                }
            }
        }
        match failed {
            Some(message) => Err(fail(message)),
            None => Ok(rows),
        }
    }

    /// The single value of a one-row, one-column query.
    pub fn value(&mut self, sql: &str, timeout: Duration) -> Result<String, String> {
        let rows = self.query(sql, timeout)?;
        match rows.as_slice() {
            [one] => Ok(one.clone()),
            _ => Err(format!(
                "{}: {sql}: expected one row, got {rows:?}",
                self.what
            )),
        }
    }

    fn stderr_text(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .trim()
            .to_string()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "\\q");
        let _ = self.stdin.flush();
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
