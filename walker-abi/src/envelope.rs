//! The envelope a plugin's snapshot starts with ([`Plugin::save_state`]): a tag naming
//! the plugin, then the version of the format that follows, as one text line:
//! `<TAG><version>\n`, e.g. `BUDGET2\n`. Reading it tells a snapshot of this plugin
//! from anything else, and which version wrote the rest, so a plugin reads the
//! formats of earlier releases and refuses later ones with a clear error.
//!
//! [`Plugin::save_state`]: crate::Plugin::save_state

use std::fmt;

/// A plugin's snapshot format: its tag and the versions it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope {
    /// Upper-case ASCII letters naming the plugin (no digits: the version follows).
    pub tag: &'static str,
    /// The version this release writes.
    pub current: u32,
    /// The oldest version this release still reads.
    pub oldest: u32,
}

/// Why [`Envelope::open`] refused a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvelopeError {
    /// The bytes do not start with `<tag><version>\n`.
    NotThisPlugin {
        /// The tag looked for.
        tag: &'static str,
    },
    /// A version this release does not read.
    Version {
        /// The tag.
        tag: &'static str,
        /// The version the snapshot has.
        found: u32,
        /// The oldest version read.
        oldest: u32,
        /// The newest version read.
        current: u32,
    },
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvelopeError::NotThisPlugin { tag } => write!(
                f,
                "not a {tag} snapshot (it does not start with \"{tag}<version>\"): the \
                 snapshot is damaged or was written by another plugin; the plugin starts empty"
            ),
            EnvelopeError::Version {
                tag,
                found,
                oldest,
                current,
            } if found > current => write!(
                f,
                "{tag} snapshot format {found} was written by a newer release (this one reads \
                 {oldest} to {current}): install that release again, or start empty"
            ),
            EnvelopeError::Version {
                tag,
                found,
                oldest,
                current,
            } => write!(
                f,
                "{tag} snapshot format {found} is older than this release reads ({oldest} to \
                 {current}): start empty"
            ),
        }
    }
}

impl std::error::Error for EnvelopeError {}

/// Most digits a version may have (`u32::MAX` has 10).
const MAX_DIGITS: usize = 10;

impl Envelope {
    /// Appends the envelope of the current version to `out`; the body follows.
    pub fn begin(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.tag.as_bytes());
        out.extend_from_slice(self.current.to_string().as_bytes());
        out.push(b'\n');
    }

    /// The version of a snapshot this release reads, and its body (what follows the
    /// envelope).
    pub fn open<'a>(&self, bytes: &'a [u8]) -> Result<(u32, &'a [u8]), EnvelopeError> {
        let not_ours = EnvelopeError::NotThisPlugin { tag: self.tag };
        let rest = bytes
            .strip_prefix(self.tag.as_bytes())
            .ok_or(not_ours.clone())?;
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits > MAX_DIGITS || rest.get(digits) != Some(&b'\n') {
            return Err(not_ours);
        }
        let found: u32 = std::str::from_utf8(&rest[..digits])
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or(not_ours)?;
        if !(self.oldest..=self.current).contains(&found) {
            return Err(EnvelopeError::Version {
                tag: self.tag,
                found,
                oldest: self.oldest,
                current: self.current,
            });
        }
        Ok((found, &rest[digits + 1..]))
    }

    /// True when `bytes` start with this plugin's tag (any version): a snapshot in
    /// this envelope rather than in a format from before it.
    pub fn is_enveloped(&self, bytes: &[u8]) -> bool {
        bytes.starts_with(self.tag.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const E: Envelope = Envelope {
        tag: "DEMO",
        current: 3,
        oldest: 2,
    };

    #[test]
    fn golden_bytes() {
        let mut out = vec![0xAA];
        E.begin(&mut out);
        out.extend_from_slice(b"{}");
        assert_eq!(out, b"\xAADEMO3\n{}");
        let big = Envelope {
            tag: "X",
            current: u32::MAX,
            oldest: 0,
        };
        let mut out = Vec::new();
        big.begin(&mut out);
        assert_eq!(out, b"X4294967295\n");
        assert_eq!(big.open(&out), Ok((u32::MAX, &b""[..])));
    }

    #[test]
    fn opens_what_it_reads() {
        assert_eq!(E.open(b"DEMO3\n{}"), Ok((3, &b"{}"[..])));
        assert_eq!(E.open(b"DEMO2\n"), Ok((2, &b""[..])));
        assert!(E.is_enveloped(b"DEMO9\n"));
        assert!(!E.is_enveloped(b"\x03\0\0\0"));
    }

    #[test]
    fn refuses_the_rest() {
        let not = Err(EnvelopeError::NotThisPlugin { tag: "DEMO" });
        for bad in [
            &b""[..],
            b"DEM",
            b"OTHER3\n",
            b"DEMO\n",
            b"DEMO3",
            b"DEMO3 \n",
            b"DEMOx\n",
            b"DEMO99999999999\n",
            b"DEMO4294967296\n",
        ] {
            assert_eq!(E.open(bad), not, "{bad:?}");
        }
        let newer = E.open(b"DEMO4\n").unwrap_err();
        assert_eq!(
            newer,
            EnvelopeError::Version {
                tag: "DEMO",
                found: 4,
                oldest: 2,
                current: 3
            }
        );
        assert!(newer.to_string().contains("newer release"), "{newer}");
        let older = E.open(b"DEMO1\n").unwrap_err();
        assert!(older.to_string().contains("older than"), "{older}");
    }
}
