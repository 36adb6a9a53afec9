//! A replication connection to a PostgreSQL server over its wire protocol (version
//! 3), synchronous over a TCP or Unix socket: startup with `replication=true`,
//! password authentication (SCRAM-SHA-256, MD5, cleartext; messages built by the
//! `postgres-protocol` crate), simple queries for the replication commands, and the
//! CopyBoth stream `START_REPLICATION` opens. Backend messages are framed here.

use crate::conninfo::{Address, ConnInfo};
use bytes::BytesMut;
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};
use postgres_protocol::message::frontend;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// The socket.
enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.read(buf),
            Socket::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.write(buf),
            Socket::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Socket::Tcp(s) => s.flush(),
            Socket::Unix(s) => s.flush(),
        }
    }
}

impl Socket {
    fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        match self {
            Socket::Tcp(s) => s.set_read_timeout(t),
            Socket::Unix(s) => s.set_read_timeout(t),
        }
    }
}

/// One backend message: its type byte and body (after the length).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Type byte (`b'R'`, `b'D'`, ...).
    pub tag: u8,
    /// Body.
    pub body: Vec<u8>,
}

/// Largest backend message accepted (a WAL chunk is at most 128 kB; rows are small).
const MAX_MESSAGE: usize = 64 << 20;

/// The first whole message at the start of `buf` and its length on the wire; `None`
/// until one arrived whole. A length below 4 or above [`MAX_MESSAGE`] is an error.
pub fn frame(buf: &[u8]) -> Result<Option<(Message, usize)>, String> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if !(4..=MAX_MESSAGE).contains(&len) {
        return Err(format!(
            "the server sent a message of type '{}' with length {len}: this is not a PostgreSQL server speaking protocol 3 (check host and port)",
            buf[0].escape_ascii()
        ));
    }
    if buf.len() < 1 + len {
        return Ok(None);
    }
    Ok(Some((
        Message {
            tag: buf[0],
            body: buf[5..1 + len].to_vec(),
        },
        1 + len,
    )))
}

/// The fields of an ErrorResponse or NoticeResponse body: (code, value).
pub fn error_fields(body: &[u8]) -> Vec<(u8, String)> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some((&code, tail)) = rest.split_first() {
        if code == 0 {
            break;
        }
        let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        out.push((code, String::from_utf8_lossy(&tail[..end]).into_owned()));
        rest = tail.get(end + 1..).unwrap_or(&[]);
    }
    out
}

/// A server error: SQLSTATE, message and, when given, detail and hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    /// SQLSTATE (`C`).
    pub code: String,
    /// Message (`M`).
    pub message: String,
    /// Detail (`D`) and hint (`H`) joined, when there are any.
    pub more: String,
}

impl ServerError {
    /// From an ErrorResponse body.
    pub fn parse(body: &[u8]) -> ServerError {
        let f = error_fields(body);
        let get = |c: u8| {
            f.iter()
                .find(|(k, _)| *k == c)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let more = [get(b'D'), get(b'H')]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        ServerError {
            code: get(b'C'),
            message: get(b'M'),
            more,
        }
    }
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (SQLSTATE {})", self.message, self.code)?;
        if !self.more.is_empty() {
            write!(f, " {}", self.more)?;
        }
        Ok(())
    }
}

/// The columns of a DataRow body (`None`: NULL).
pub fn data_row(body: &[u8]) -> Result<Vec<Option<String>>, String> {
    let bad = || "the server sent a malformed DataRow".to_string();
    let n = u16::from_be_bytes([
        *body.first().ok_or_else(bad)?,
        *body.get(1).ok_or_else(bad)?,
    ]);
    let mut at = 2usize;
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let l = body.get(at..at + 4).ok_or_else(bad)?;
        let len = i32::from_be_bytes([l[0], l[1], l[2], l[3]]);
        at += 4;
        if len < 0 {
            out.push(None);
            continue;
        }
        let v = body.get(at..at + len as usize).ok_or_else(bad)?;
        out.push(Some(String::from_utf8_lossy(v).into_owned()));
        at += len as usize;
    }
    Ok(out)
}

/// How a server error during start-up is fixed, from its SQLSTATE.
fn startup_fix(e: &ServerError) -> &'static str {
    match e.code.as_str() {
        "28000" if e.message.contains("role") => {
            "check user= in the conninfo: the server has no such role"
        }
        "28000" => "allow the connection with a pg_hba.conf line for the database \"replication\" (physical replication connections match only that), then reload the server",
        "28P01" => "check the password (password=... in the conninfo, or PGPASSWORD)",
        "42501" => "give the role the REPLICATION attribute (ALTER ROLE ... REPLICATION) or connect as a superuser",
        "53300" => "raise max_wal_senders on the server (it must be above 0 and above the walsenders in use) and restart it",
        "57P03" => "the server is starting up or shutting down: try again once it accepts connections",
        _ => "check the conninfo and the server's log",
    }
}

/// A connection in replication mode.
pub struct Conn {
    sock: Socket,
    buf: Vec<u8>,
    out: BytesMut,
    /// `server_version` as the server reported it.
    pub server_version: String,
    what: String,
}

impl Conn {
    /// Connects and logs in with `replication=true`.
    pub fn connect(ci: &ConnInfo) -> Result<Conn, String> {
        let addr = ci.address();
        let what = match &addr {
            Address::Unix(p) => format!("the Unix socket {}", p.display()),
            Address::Tcp(h, p) => format!("{h}:{p}"),
        };
        let sock = match &addr {
            Address::Unix(p) => UnixStream::connect(p).map(Socket::Unix),
            Address::Tcp(h, p) => TcpStream::connect((h.as_str(), *p)).map(|s| {
                let _ = s.set_nodelay(true);
                Socket::Tcp(s)
            }),
        }
        .map_err(|e| {
            format!(
                "cannot connect to {what}: {e} (check host and port in the conninfo, and that the server is running and listens there)"
            )
        })?;
        let mut c = Conn {
            sock,
            buf: Vec::with_capacity(1 << 20),
            out: BytesMut::new(),
            server_version: String::new(),
            what,
        };
        frontend::startup_message(
            [
                ("user", ci.user.as_str()),
                ("replication", "true"),
                ("application_name", ci.application_name.as_str()),
            ],
            &mut c.out,
        )
        .map_err(|e| format!("cannot build the startup message: {e}"))?;
        c.send()?;
        c.authenticate(ci)?;
        loop {
            let m = c.recv()?;
            match m.tag {
                b'S' => {
                    let f: Vec<&[u8]> = m.body.split(|&b| b == 0).collect();
                    if f.first() == Some(&&b"server_version"[..]) {
                        c.server_version =
                            String::from_utf8_lossy(f.get(1).copied().unwrap_or_default())
                                .into_owned();
                    }
                }
                b'K' | b'N' => {}
                b'Z' => return Ok(c),
                b'E' => {
                    let e = ServerError::parse(&m.body);
                    return Err(format!(
                        "{} refused the replication connection: {e}: {}",
                        c.what,
                        startup_fix(&e)
                    ));
                }
                t => return Err(c.unexpected(t, "logging in")),
            }
        }
    }

    fn unexpected(&self, tag: u8, when: &str) -> String {
        format!(
            "{} sent an unexpected message '{}' while {when}",
            self.what,
            tag.escape_ascii()
        )
    }

    fn authenticate(&mut self, ci: &ConnInfo) -> Result<(), String> {
        let password = || {
            ci.password.clone().ok_or_else(|| {
                "the server asks for a password: add password=... to the conninfo or set PGPASSWORD".to_string()
            })
        };
        let mut scram: Option<ScramSha256> = None;
        loop {
            let m = self.recv()?;
            if m.tag == b'E' {
                let e = ServerError::parse(&m.body);
                return Err(format!(
                    "{} refused the replication connection: {e}: {}",
                    self.what,
                    startup_fix(&e)
                ));
            }
            if m.tag != b'R' || m.body.len() < 4 {
                return Err(self.unexpected(m.tag, "authenticating"));
            }
            let code = u32::from_be_bytes([m.body[0], m.body[1], m.body[2], m.body[3]]);
            let data = &m.body[4..];
            let io = |e: std::io::Error| format!("authentication failed: {e}");
            match code {
                0 => return Ok(()),
                3 => frontend::password_message(password()?.as_bytes(), &mut self.out).map_err(io)?,
                5 if data.len() >= 4 => {
                    let salt = [data[0], data[1], data[2], data[3]];
                    let hash = md5_hash(ci.user.as_bytes(), password()?.as_bytes(), salt);
                    frontend::password_message(hash.as_bytes(), &mut self.out).map_err(io)?;
                }
                10 => {
                    let offers: Vec<&[u8]> = data.split(|&b| b == 0).collect();
                    if !offers.contains(&SCRAM_SHA_256.as_bytes()) {
                        return Err("the server offers no SASL mechanism pg_walker speaks (SCRAM-SHA-256): allow scram-sha-256, md5 or password for it in pg_hba.conf".into());
                    }
                    let s = ScramSha256::new(password()?.as_bytes(), ChannelBinding::unsupported());
                    frontend::sasl_initial_response(SCRAM_SHA_256, s.message(), &mut self.out)
                        .map_err(io)?;
                    scram = Some(s);
                }
                11 => {
                    let s = scram.as_mut().ok_or_else(|| self.unexpected(b'R', "authenticating"))?;
                    s.update(data).map_err(io)?;
                    frontend::sasl_response(s.message(), &mut self.out).map_err(io)?;
                }
                12 => {
                    let s = scram.as_mut().ok_or_else(|| self.unexpected(b'R', "authenticating"))?;
                    s.finish(data).map_err(|e| {
                        format!("the server's SCRAM proof did not verify ({e}): it does not know this password")
                    })?;
                    continue;
                }
                other => {
                    return Err(format!(
                        "the server asks for authentication method {other}, which pg_walker does not speak: allow scram-sha-256, md5, password or trust for it in pg_hba.conf"
                    ))
                }
            }
            self.send()?;
        }
    }

    fn send(&mut self) -> Result<(), String> {
        let r = self
            .sock
            .write_all(&self.out)
            .and_then(|_| self.sock.flush());
        self.out.clear();
        r.map_err(|e| format!("lost the connection to {}: {e}", self.what))
    }

    /// The next message, waiting as long as it takes.
    fn recv(&mut self) -> Result<Message, String> {
        self.sock
            .set_read_timeout(None)
            .map_err(|e| e.to_string())?;
        loop {
            if let Some(m) = self.try_frame()? {
                return Ok(m);
            }
            self.fill()?;
        }
    }

    fn try_frame(&mut self) -> Result<Option<Message>, String> {
        Ok(frame(&self.buf)?.map(|(m, n)| {
            self.buf.drain(..n);
            m
        }))
    }

    /// Reads what arrives; `Ok(false)` when the read timed out.
    fn fill(&mut self) -> Result<bool, String> {
        let mut chunk = [0u8; 64 * 1024];
        match self.sock.read(&mut chunk) {
            Ok(0) => Err(format!("{} closed the connection", self.what)),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(false),
            Err(e) if e.kind() == ErrorKind::Interrupted => Ok(true),
            Err(e) => Err(format!("lost the connection to {}: {e}", self.what)),
        }
    }

    /// The next message, or `None` when none arrived within `wait`.
    pub fn recv_within(&mut self, wait: Duration) -> Result<Option<Message>, String> {
        if let Some(m) = self.try_frame()? {
            return Ok(Some(m));
        }
        self.sock
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
            .map_err(|e| e.to_string())?;
        if !self.fill()? {
            return Ok(None);
        }
        self.try_frame()
    }

    /// Runs a replication command and returns its rows (`Err` with the server's
    /// message when it fails).
    pub fn query(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, QueryError> {
        frontend::query(sql, &mut self.out).map_err(|e| QueryError::Io(e.to_string()))?;
        self.send().map_err(QueryError::Io)?;
        self.rows_until_ready(sql)
    }

    /// Reads a command's results up to ReadyForQuery.
    fn rows_until_ready(&mut self, what: &str) -> Result<Vec<Vec<Option<String>>>, QueryError> {
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            let m = self.recv().map_err(QueryError::Io)?;
            match m.tag {
                b'D' => rows.push(data_row(&m.body).map_err(QueryError::Io)?),
                b'E' => error = Some(ServerError::parse(&m.body)),
                b'T' | b'C' | b'N' | b'S' | b'I' => {}
                b'Z' => {
                    return match error {
                        Some(e) => Err(QueryError::Server(e)),
                        None => Ok(rows),
                    }
                }
                t => return Err(QueryError::Io(self.unexpected(t, what))),
            }
        }
    }

    /// Sends `START_REPLICATION ...` and waits for CopyBothResponse.
    pub fn start_copy(&mut self, sql: &str) -> Result<(), QueryError> {
        frontend::query(sql, &mut self.out).map_err(|e| QueryError::Io(e.to_string()))?;
        self.send().map_err(QueryError::Io)?;
        loop {
            let m = self.recv().map_err(QueryError::Io)?;
            match m.tag {
                b'W' => return Ok(()),
                b'N' | b'S' => {}
                b'E' => {
                    let e = ServerError::parse(&m.body);
                    // ReadyForQuery follows the error.
                    let _ = self.rows_until_ready(sql);
                    return Err(QueryError::Server(e));
                }
                t => return Err(QueryError::Io(self.unexpected(t, sql))),
            }
        }
    }

    /// Sends a CopyData message.
    pub fn copy_data(&mut self, payload: &[u8]) -> Result<(), String> {
        self.out.extend_from_slice(b"d");
        self.out
            .extend_from_slice(&(payload.len() as u32 + 4).to_be_bytes());
        self.out.extend_from_slice(payload);
        self.send()
    }

    /// Ends the copy from this side (after the server's CopyDone, or to stop) and
    /// reads the results up to ReadyForQuery: the rows (after the end of a timeline,
    /// one row: the next timeline and where it starts). Messages still streaming in
    /// before the server's CopyDone are skipped.
    pub fn end_copy(&mut self, server_done: bool) -> Result<Vec<Vec<Option<String>>>, QueryError> {
        frontend::copy_done(&mut self.out);
        self.send().map_err(QueryError::Io)?;
        if !server_done {
            loop {
                let m = self.recv().map_err(QueryError::Io)?;
                match m.tag {
                    b'c' => break,
                    b'd' | b'N' => {}
                    b'E' => {
                        let e = ServerError::parse(&m.body);
                        let _ = self.rows_until_ready("ending the stream");
                        return Err(QueryError::Server(e));
                    }
                    t => return Err(QueryError::Io(self.unexpected(t, "ending the stream"))),
                }
            }
        }
        self.rows_until_ready("ending the stream")
    }

    /// Says goodbye.
    pub fn terminate(mut self) {
        frontend::terminate(&mut self.out);
        let _ = self.send();
    }
}

/// A command that failed.
#[derive(Debug)]
pub enum QueryError {
    /// The server answered with an error.
    Server(ServerError),
    /// The connection failed or the server said something unexpected.
    Io(String),
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryError::Server(e) => write!(f, "{e}"),
            QueryError::Io(s) => write!(f, "{s}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![tag];
        m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn frames_whole_messages_only() {
        let mut wire = msg(b'Z', b"I");
        wire.extend(msg(b'd', &[1, 2, 3]));
        let (m, n) = frame(&wire).unwrap().unwrap();
        assert_eq!((m.tag, m.body.as_slice(), n), (b'Z', &b"I"[..], 6));
        let (m, n2) = frame(&wire[n..]).unwrap().unwrap();
        assert_eq!((m.tag, m.body, n2), (b'd', vec![1, 2, 3], 8));
        for cut in 0..wire.len() - n {
            if cut < 8 {
                assert_eq!(frame(&wire[n..n + cut]).unwrap(), None, "cut {cut}");
            }
        }
        // Not PostgreSQL: an HTTP server's "HTTP/1.1" reads as a huge length.
        assert!(frame(b"HTTP/1.1 400")
            .unwrap_err()
            .contains("host and port"));
        assert!(frame(&[b'Z', 0, 0, 0, 3]).is_err());
    }

    #[test]
    fn rows_and_errors_by_hand() {
        // Two columns: "6", NULL.
        let body = [0, 2, 0, 0, 0, 1, b'6', 0xff, 0xff, 0xff, 0xff];
        assert_eq!(data_row(&body).unwrap(), [Some("6".into()), None]);
        assert!(data_row(&body[..8]).is_err());
        let mut e = Vec::new();
        for (c, v) in [
            (b'S', "FATAL"),
            (b'C', "28000"),
            (b'M', "no pg_hba.conf entry"),
        ] {
            e.push(c);
            e.extend_from_slice(v.as_bytes());
            e.push(0);
        }
        e.push(0);
        let se = ServerError::parse(&e);
        assert_eq!(
            (se.code.as_str(), se.message.as_str()),
            ("28000", "no pg_hba.conf entry")
        );
        assert!(startup_fix(&se).contains("replication"));
    }
}
