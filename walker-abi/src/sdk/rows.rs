//! Rows of a plugin's views: [`Value`] and the [`RowSink`] they are written to.

use super::{PluginError, PluginResult};
use crate::types::*;

/// A column value for [`RowSink::row`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// SQL NULL.
    Null,
    /// `int8`.
    Int8(i64),
    /// `float8`.
    Float8(f64),
    /// `text`.
    Text(&'a str),
    /// `bool`.
    Bool(bool),
    /// `pg_lsn`.
    Lsn(u64),
    /// `timestamptz`, microseconds since the Unix epoch.
    TimestampTz(i64),
    /// `jsonb`, as JSON text.
    Jsonb(&'a str),
}

impl Value<'_> {
    fn to_abi(self) -> WalkerValue {
        let mut v = WalkerValue::default();
        match self {
            Value::Null => v.is_null = true,
            Value::Int8(i) => {
                v.ty = WalkerType::INT8;
                v.int_value = i;
            }
            Value::Float8(f) => {
                v.ty = WalkerType::FLOAT8;
                v.float_value = f;
            }
            Value::Text(s) => {
                v.ty = WalkerType::TEXT;
                v.str_ptr = s.as_ptr();
                v.str_len = s.len();
            }
            Value::Bool(b) => {
                v.ty = WalkerType::BOOL;
                v.bool_value = b;
            }
            Value::Lsn(l) => {
                v.ty = WalkerType::LSN;
                v.lsn_value = l;
            }
            Value::TimestampTz(t) => {
                v.ty = WalkerType::TIMESTAMPTZ;
                v.int_value = t;
            }
            Value::Jsonb(s) => {
                v.ty = WalkerType::JSONB;
                v.str_ptr = s.as_ptr();
                v.str_len = s.len();
            }
        }
        v
    }
}

/// Where [`Plugin::view_rows`](super::Plugin::view_rows) writes rows.
pub struct RowSink<'a> {
    pub(super) sink: &'a WalkerRowSink,
}

impl RowSink<'_> {
    /// Adds one row; the values must match the declared columns in number and type.
    pub fn row(&mut self, values: &[Value<'_>]) -> PluginResult {
        let abi: Vec<WalkerValue> = values.iter().map(|v| v.to_abi()).collect();
        let emit = self
            .sink
            .emit
            .ok_or_else(|| PluginError::new("the host's row sink has no emit function"))?;
        // SAFETY: `abi` holds `abi.len()` initialised values whose string pointers
        // borrow from `values`, alive for the duration of the call.
        let status = unsafe { emit(self.sink.ctx, abi.as_ptr(), abi.len() as u32) };
        if status.is_ok() {
            Ok(())
        } else {
            Err(PluginError::new(
                "the host refused the row: the values do not match the view's declared columns",
            ))
        }
    }
}
