//! The envelope of garbagemap's snapshots: `GARBAGEMAP<format>\n`, then the map as
//! [`Tracker::encode`](crate::tracker::Tracker::encode) lays it out in that format.
//! Snapshots from before the envelope start with the format as a little-endian u32
//! instead (formats 1 to 3); they still read.

use crate::tracker::SNAPSHOT_FORMAT;
use walker_abi::Envelope;

/// garbagemap's snapshot envelope: the versions are the map's layout formats.
pub const ENVELOPE: Envelope = Envelope {
    tag: "GARBAGEMAP",
    current: SNAPSHOT_FORMAT,
    oldest: 1,
};

/// The newest format written before the envelope (a u32 header).
const LAST_BARE_FORMAT: u32 = 3;

/// The layout format of a snapshot and the map's bytes that follow its header.
pub fn open(bytes: &[u8]) -> Result<(u32, &[u8]), String> {
    if ENVELOPE.is_enveloped(bytes) {
        return ENVELOPE.open(bytes).map_err(|e| e.to_string());
    }
    let (head, body) = bytes
        .split_first_chunk::<4>()
        .ok_or("garbagemap snapshot ends early")?;
    let format = u32::from_le_bytes(*head);
    if !(1..=LAST_BARE_FORMAT).contains(&format) {
        return Err(format!(
            "not a garbagemap snapshot: no GARBAGEMAP<format> line, and {format} is not a \
             format from before it (1 to {LAST_BARE_FORMAT}); the map starts empty"
        ));
    }
    Ok((format, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enveloped_and_bare_headers() {
        let mut out = Vec::new();
        ENVELOPE.begin(&mut out);
        assert_eq!(out, b"GARBAGEMAP3\n");
        out.push(7);
        assert_eq!(open(&out), Ok((3, &[7u8][..])));
        assert_eq!(open(&[2, 0, 0, 0, 7]), Ok((2, &[7u8][..])));
        assert!(open(&[4, 0, 0, 0])
            .unwrap_err()
            .contains("not a garbagemap"));
        assert!(open(&[1, 0]).unwrap_err().contains("ends early"));
        assert!(open(b"GARBAGEMAP9\n")
            .unwrap_err()
            .contains("newer release"));
    }
}
