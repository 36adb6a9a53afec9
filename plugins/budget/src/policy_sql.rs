//! The SQL the host runs for this plugin (ABI 1.3 `sql`): the durable policies table
//! and the functions that manage it. Every change is checked by the plugin's own
//! validator first (so SQL and shared memory agree on what is valid), written to the
//! table in the caller's transaction, and the transaction announced to the plugin
//! (`policy_changed`). Nothing is loaded in the caller's transaction: the walker side
//! has the services worker load the committed table (`budget_reload()`, which reads
//! the table and `pg_current_snapshot()` in one statement) until a load's snapshot
//! sees the announcing transaction ended, so an uncommitted or rolled-back change is
//! never loaded and a committed one always is; `budget_sync()` waits for that.
//!
//! Policies live in the database named by `walker.database`, where the services
//! worker reloads them at server start; the functions refuse to run elsewhere.

/// The SQL (idempotent; `@extschema@` is walker's schema), in `sql/policies.sql`.
pub const SQL: &str = include_str!("../sql/policies.sql");
