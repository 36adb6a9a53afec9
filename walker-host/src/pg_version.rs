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
