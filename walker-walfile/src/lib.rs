//! PostgreSQL WAL files read in plain Rust: no server, no PostgreSQL headers.
//!
//! [`WalReader`] reads the segment files of a directory (a `pg_wal`, an archive,
//! `.partial` segments) along a timeline history (`<tli>.history`), checks every page
//! header (magic of PostgreSQL 15 to 18, addresses, timelines, the long header's
//! segment size and system identifier) and every record (length, resource manager,
//! link to the previous record, CRC-32C), assembles records across page and segment
//! boundaries, decodes their block references and restores full-page images to whole
//! pages (hole, pglz, LZ4, zstd). It fills the same [`walker_core::batch`] batches
//! the in-server host fills, so plugins see the same `WalkerRecord`s. Bad bytes are
//! [`WalError`]s naming the WAL position and the file, never panics.

pub mod crc;
pub mod error;
pub mod format;
pub mod image;
pub mod pglz;
pub mod reader;
pub mod record;
pub mod segment;

pub use error::{Fault, WalError};
pub use format::Major;
pub use reader::{Options, RecordPos, WalReader};
pub use segment::WalDir;
