//! Everything that differs between PostgreSQL majors for the host, in one place
//! (the executor hook signatures differ too; `hooks.c` handles them with
//! `PG_VERSION_NUM`). Built once per major with the `pg15` .. `pg18` feature.
//!
//! | what | 15 | 16 | 17 | 18 |
//! |---|---|---|---|---|
//! | block reference relation | `rnode{spcNode,dbNode,relNode}` | `rlocator{spcOid,dbOid,relNumber}` | as 16 | as 16 |
//! | `ReplicationSlotCreate` | 4 arguments | 4 | 6 (+failover, +synced) | 6 |
//! | `ReplicationSlotAcquire` | (name, nowait) | same | same | (name, nowait, error_if_invalid) |
//! | checkpointer counters | `pg_stat_bgwriter` | same | `pg_stat_checkpointer` | same; counts include skipped checkpoints, `num_done` added |

use pgrx::pg_sys;
use std::ffi::CStr;

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
#[cfg(any(feature = "pg16", feature = "pg17", feature = "pg18"))]
pub fn block_relation(b: &pg_sys::DecodedBkpBlock) -> (u32, u32, u32) {
    (
        b.rlocator.spcOid.to_u32(),
        b.rlocator.dbOid.to_u32(),
        b.rlocator.relNumber.to_u32(),
    )
}

/// Creates a persistent physical slot named `name` (not two-phase, no failover) and
/// makes it this process's `MyReplicationSlot`.
///
/// # Safety
/// Main thread of a process with shared-memory access; raises the server's ERROR on
/// failure (the caller catches it).
pub unsafe fn create_physical_slot(name: &CStr) {
    let persistent = pg_sys::ReplicationSlotPersistency::RS_PERSISTENT;
    // SAFETY: as the caller guarantees; the arguments are the server's own types.
    #[cfg(any(feature = "pg15", feature = "pg16"))]
    unsafe {
        pg_sys::ReplicationSlotCreate(name.as_ptr(), false, persistent, false)
    };
    // SAFETY: as above; failover = false, synced = false.
    #[cfg(any(feature = "pg17", feature = "pg18"))]
    unsafe {
        pg_sys::ReplicationSlotCreate(name.as_ptr(), false, persistent, false, false, false)
    };
}

/// Acquires the existing slot `name` for this process (without waiting for another
/// holder).
///
/// # Safety
/// As [`create_physical_slot`].
pub unsafe fn acquire_slot(name: &CStr) {
    // SAFETY: as the caller guarantees.
    #[cfg(any(feature = "pg15", feature = "pg16", feature = "pg17"))]
    unsafe {
        pg_sys::ReplicationSlotAcquire(name.as_ptr(), true)
    };
    // SAFETY: as above; an invalidated slot raises an ERROR, as before 18.
    #[cfg(feature = "pg18")]
    unsafe {
        pg_sys::ReplicationSlotAcquire(name.as_ptr(), true, true)
    };
}

/// The checkpointer's counters (timed, requested) as SQL: `pg_stat_bgwriter` up to
/// PostgreSQL 16.
#[cfg(any(feature = "pg15", feature = "pg16"))]
pub const CHECKPOINTER_COUNTS: &str =
    "SELECT checkpoints_timed::pg_catalog.int8, checkpoints_req::pg_catalog.int8 FROM pg_catalog.pg_stat_bgwriter";

/// The checkpointer's counters (timed, requested) as SQL: `pg_stat_checkpointer` on
/// PostgreSQL 17.
#[cfg(feature = "pg17")]
pub const CHECKPOINTER_COUNTS: &str =
    "SELECT num_timed::pg_catalog.int8, num_requested::pg_catalog.int8 FROM pg_catalog.pg_stat_checkpointer";

/// The checkpointer's counters (timed, requested) as SQL on PostgreSQL 18, where
/// `num_timed` also counts timed checkpoints skipped because nothing happened: timed
/// checkpoints that ran are those done that were not requested.
#[cfg(feature = "pg18")]
pub const CHECKPOINTER_COUNTS: &str =
    "SELECT pg_catalog.int8larger(num_done OPERATOR(pg_catalog.-) num_requested, 0::pg_catalog.int8), num_requested::pg_catalog.int8 FROM pg_catalog.pg_stat_checkpointer";

/// A planned statement's query id as the ABI carries it (`uint64` up to 17, `int64`
/// from 18; the bits are the same).
#[cfg(any(feature = "pg15", feature = "pg16", feature = "pg17"))]
pub fn query_id(p: &pg_sys::PlannedStmt) -> u64 {
    p.queryId
}

/// A planned statement's query id as the ABI carries it (`uint64` up to 17, `int64`
/// from 18; the bits are the same).
#[cfg(feature = "pg18")]
pub fn query_id(p: &pg_sys::PlannedStmt) -> u64 {
    p.queryId as u64
}
