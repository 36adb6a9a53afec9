//! Everything that differs between PostgreSQL majors, in one place.
//!
//! PostgreSQL 15 is what CI builds and tests. PostgreSQL 16 renamed `RelFileNode`
//! (`spcNode`/`dbNode`/`relNode`) to `RelFileLocator` (`spcOid`/`dbOid`/`relNumber`)
//! in decoded block references; that is the only difference the host touches.

use pgrx::pg_sys;

/// (tablespace, database, relfilenode) of a decoded block reference.
#[cfg(feature = "pg15")]
pub fn block_relation(b: &pg_sys::DecodedBkpBlock) -> (u32, u32, u32) {
    (
        b.rnode.spcNode.to_u32(),
        b.rnode.dbNode.to_u32(),
        b.rnode.relNode.to_u32(),
    )
}

/// (tablespace, database, relfilenode) of a decoded block reference.
#[cfg(any(feature = "pg16", feature = "pg17"))]
pub fn block_relation(b: &pg_sys::DecodedBkpBlock) -> (u32, u32, u32) {
    (
        b.rlocator.spcOid.to_u32(),
        b.rlocator.dbOid.to_u32(),
        b.rlocator.relNumber.to_u32(),
    )
}

/// The checkpointer's counters (timed, requested) as SQL: `pg_stat_bgwriter` up to
/// PostgreSQL 16, `pg_stat_checkpointer` from 17.
#[cfg(any(feature = "pg15", feature = "pg16"))]
pub const CHECKPOINTER_COUNTS: &str =
    "SELECT checkpoints_timed::pg_catalog.int8, checkpoints_req::pg_catalog.int8 FROM pg_catalog.pg_stat_bgwriter";

/// The checkpointer's counters (timed, requested) as SQL.
#[cfg(feature = "pg17")]
pub const CHECKPOINTER_COUNTS: &str =
    "SELECT num_timed::pg_catalog.int8, num_requested::pg_catalog.int8 FROM pg_catalog.pg_stat_checkpointer";
