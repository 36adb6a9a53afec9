//! The messages of the physical replication stream inside CopyData: XLogData (`w`)
//! and primary keepalive (`k`) from the server, standby status update (`r`) to it.

use std::time::{SystemTime, UNIX_EPOCH};

/// A message from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromServer<'a> {
    /// WAL starting at `start`.
    XLogData {
        /// LSN of the first byte.
        start: u64,
        /// The server's WAL end when it sent this.
        server_end: u64,
        /// The bytes.
        data: &'a [u8],
    },
    /// A keepalive.
    Keepalive {
        /// The server's WAL end.
        server_end: u64,
        /// The server wants a status update at once (it times out otherwise).
        reply_requested: bool,
    },
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

/// Parses a CopyData payload from the server.
pub fn parse(payload: &[u8]) -> Result<FromServer<'_>, String> {
    match payload.first() {
        Some(b'w') if payload.len() >= 25 => Ok(FromServer::XLogData {
            start: u64_at(payload, 1),
            server_end: u64_at(payload, 9),
            data: &payload[25..],
        }),
        Some(b'k') if payload.len() >= 18 => Ok(FromServer::Keepalive {
            server_end: u64_at(payload, 1),
            reply_requested: payload[17] != 0,
        }),
        Some(&t) => Err(format!(
            "the server sent a replication message '{}' of {} bytes, which is not XLogData or a keepalive",
            t.escape_ascii(),
            payload.len()
        )),
        None => Err("the server sent an empty replication message".into()),
    }
}

/// Microseconds from 2000-01-01 (PostgreSQL's epoch) to `now`.
pub fn pg_time(now: SystemTime) -> i64 {
    const PG_EPOCH_FROM_UNIX: i64 = 946_684_800;
    let us = now
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    us.saturating_sub(PG_EPOCH_FROM_UNIX * 1_000_000)
}

/// A standby status update: WAL received (`write`), kept for good (`flush`: the
/// state directory reflects the WAL up to here, so a slot keeps what comes after),
/// and applied by the plugins (`apply`).
pub fn status_update(write: u64, flush: u64, apply: u64, now: SystemTime) -> Vec<u8> {
    let mut m = Vec::with_capacity(34);
    m.push(b'r');
    m.extend_from_slice(&write.to_be_bytes());
    m.extend_from_slice(&flush.to_be_bytes());
    m.extend_from_slice(&apply.to_be_bytes());
    m.extend_from_slice(&pg_time(now).to_be_bytes());
    m.push(0);
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn xlogdata_and_keepalive_by_hand() {
        let mut w = vec![b'w'];
        w.extend_from_slice(&0x1_0000_2000u64.to_be_bytes());
        w.extend_from_slice(&0x1_0000_3000u64.to_be_bytes());
        w.extend_from_slice(&7i64.to_be_bytes());
        w.extend_from_slice(b"WAL");
        assert_eq!(
            parse(&w).unwrap(),
            FromServer::XLogData {
                start: 0x1_0000_2000,
                server_end: 0x1_0000_3000,
                data: b"WAL"
            }
        );
        let mut k = vec![b'k'];
        k.extend_from_slice(&0x5000u64.to_be_bytes());
        k.extend_from_slice(&0i64.to_be_bytes());
        k.push(1);
        assert_eq!(
            parse(&k).unwrap(),
            FromServer::Keepalive {
                server_end: 0x5000,
                reply_requested: true
            }
        );
        assert!(parse(&k[..10]).is_err());
        assert!(parse(b"x").unwrap_err().contains("'x'"));
        assert!(parse(b"").is_err());
    }

    #[test]
    fn status_update_layout() {
        let t = UNIX_EPOCH + Duration::from_secs(946_684_800 + 1);
        let m = status_update(0x30, 0x20, 0x10, t);
        assert_eq!(m.len(), 34);
        assert_eq!(m[0], b'r');
        assert_eq!(u64_at(&m, 1), 0x30);
        assert_eq!(u64_at(&m, 9), 0x20);
        assert_eq!(u64_at(&m, 17), 0x10);
        assert_eq!(u64_at(&m, 25), 1_000_000, "one second after 2000-01-01");
        assert_eq!(m[33], 0);
    }
}
