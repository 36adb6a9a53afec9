//! # walker-abi
//!
//! The contract between the walker host (a PostgreSQL extension) and its plugins:
//! `#[repr(C)]` types with a version handshake ([`types`]), the C header generated
//! from them (`include/walker_plugin.h`), and a safe Rust SDK ([`sdk`]) with an
//! export macro. A plugin needs nothing else: no PostgreSQL headers, no pgrx.

pub mod dates;
pub mod envelope;
pub mod metrics;
pub mod sdk;
pub mod svg;
pub mod tables;
pub mod text;
pub mod types;

pub use abi_stable;
pub use envelope::{Envelope, EnvelopeError};
pub use sdk::{
    Admission, BackendEvent, ErrorKind, FunctionDef, Host, Plugin, PluginError, PluginInfo,
    PluginResult, Record, Records, RecordsError, Rejection, RowSink, ServiceOutcome, Setting,
    SettingValue, SharedState, Value, ViewDef,
};
pub use tables::{RegionLayout, SharedTable, Tables, TablesRef};
pub use types::*;
