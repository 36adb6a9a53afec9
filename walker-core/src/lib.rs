//! # walker-core
//!
//! Everything the walker host does that needs no PostgreSQL server: plugin names and
//! library resolution, ABI negotiation, loading, the shared-memory layout and its
//! locks, setting snapshots, the host API table, record batches, dispatch threads,
//! view rows, and the queue of requests to the services worker. `walker-host` (the pgrx extension) wires these to the server.

pub mod backend;
pub mod batch;
pub mod clock;
pub mod crash;
pub mod dispatch;
pub mod functions;
pub mod host_api;
pub mod host_context;
pub mod loader;
pub mod local;
pub mod locks;
pub mod names;
pub mod negotiate;
pub mod pacing;
pub mod persistence;
pub mod recycle;
pub mod registry;
pub mod retention;
pub mod rows;
pub mod services;
pub mod settings;
pub mod shared;
pub mod snapshot;
pub mod spinlock;
pub mod timeline;
pub mod utility_class;
