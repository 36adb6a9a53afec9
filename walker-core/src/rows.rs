//! View rows: the row sink a plugin writes into, checking each value against the
//! declared column, and the text form PostgreSQL's input functions read back.

use std::ffi::c_void;
use walker_abi::dates::UtcTime;
use walker_abi::{WalkerRowSink, WalkerStatus, WalkerType, WalkerValue};

/// Formats an LSN as PostgreSQL does (`16/B374D848`).
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
}

/// Parses PostgreSQL's text form of an LSN (`16/B374D848`); `None` when malformed.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.trim().split_once('/')?;
    let hi = u32::from_str_radix(hi, 16).ok()?;
    let lo = u32::from_str_radix(lo, 16).ok()?;
    Some(((hi as u64) << 32) | lo as u64)
}

/// Formats microseconds since the Unix epoch as a UTC `timestamptz` literal.
pub fn format_timestamptz(micros: i64) -> String {
    let t = UtcTime::from_unix_micros(micros);
    let (bc, y) = if t.year <= 0 {
        (" BC", 1 - t.year)
    } else {
        ("", t.year)
    };
    format!(
        "{y:04}-{:02}-{:02} {}.{:06}+00{bc}",
        t.month,
        t.day,
        t.time_of_day(),
        t.micros
    )
}

/// Formats a float the way `float8in` reads it back exactly.
pub fn format_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        }
    } else {
        // Debug prints the shortest representation that round-trips.
        format!("{f:?}")
    }
}

/// Why a row was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    /// Wrong number of values.
    #[error("row has {got} values, the view declares {want} columns")]
    Count {
        /// What the row has (values, or the value's `WalkerType` number).
        got: usize,
        /// What the view declares (columns, or the column's `WalkerType` number).
        want: usize,
    },
    /// Type differs from the declaration.
    #[error("value {index} has type {got}, column \"{column}\" is declared as {want}")]
    Type {
        /// Index of the value in the row (0-based).
        index: usize,
        /// Name of its column.
        column: String,
        /// What the row has (values, or the value's `WalkerType` number).
        got: u32,
        /// What the view declares (columns, or the column's `WalkerType` number).
        want: u32,
    },
    /// Text that PostgreSQL cannot store.
    #[error("value {index} (column \"{column}\") is not valid UTF-8 text without NUL bytes")]
    Text {
        /// Index of the value in the row (0-based).
        index: usize,
        /// Name of its column.
        column: String,
    },
}

/// Collects a view's rows as text values (`None` = NULL).
pub struct RowCollector {
    columns: Vec<(String, WalkerType)>,
    /// Rows collected so far.
    pub rows: Vec<Vec<Option<String>>>,
    /// First refused row's reason.
    pub error: Option<RowError>,
}

impl RowCollector {
    /// A collector for these columns.
    pub fn new(columns: Vec<(String, WalkerType)>) -> Self {
        RowCollector {
            columns,
            rows: Vec::new(),
            error: None,
        }
    }

    /// Checks and adds one row.
    pub fn push(&mut self, values: &[WalkerValue]) -> Result<(), RowError> {
        if values.len() != self.columns.len() {
            return Err(RowError::Count {
                got: values.len(),
                want: self.columns.len(),
            });
        }
        let mut row = Vec::with_capacity(values.len());
        for (i, (v, (name, ty))) in values.iter().zip(&self.columns).enumerate() {
            if v.is_null {
                row.push(None);
                continue;
            }
            if v.ty != *ty {
                return Err(RowError::Type {
                    index: i,
                    column: name.clone(),
                    got: v.ty.0,
                    want: ty.0,
                });
            }
            let text = match *ty {
                WalkerType::INT8 => v.int_value.to_string(),
                WalkerType::FLOAT8 => format_float(v.float_value),
                WalkerType::BOOL => (if v.bool_value { "true" } else { "false" }).to_string(),
                WalkerType::LSN => format_lsn(v.lsn_value),
                WalkerType::TIMESTAMPTZ => format_timestamptz(v.int_value),
                WalkerType::TEXT | WalkerType::JSONB => {
                    let bytes = if v.str_ptr.is_null() || v.str_len == 0 {
                        &[][..]
                    } else {
                        // SAFETY: the ABI requires `str_ptr` valid for `str_len` bytes during emit.
                        unsafe { std::slice::from_raw_parts(v.str_ptr, v.str_len) }
                    };
                    match std::str::from_utf8(bytes) {
                        Ok(s) if !s.contains('\0') => s.to_string(),
                        _ => {
                            return Err(RowError::Text {
                                index: i,
                                column: name.clone(),
                            })
                        }
                    }
                }
                _ => {
                    return Err(RowError::Type {
                        index: i,
                        column: name.clone(),
                        got: v.ty.0,
                        want: ty.0,
                    })
                }
            };
            row.push(Some(text));
        }
        self.rows.push(row);
        Ok(())
    }

    /// A sink whose `emit` adds rows to this collector. The sink borrows `self`.
    pub fn sink(&mut self) -> WalkerRowSink {
        WalkerRowSink {
            ctx: self as *mut RowCollector as *mut c_void,
            emit: Some(emit),
        }
    }
}

unsafe extern "C" fn emit(ctx: *mut c_void, values: *const WalkerValue, n: u32) -> WalkerStatus {
    // SAFETY: `ctx` is the collector that built this sink and outlives the call.
    let Some(c) = (unsafe { (ctx as *mut RowCollector).as_mut() }) else {
        return WalkerStatus::INVALID;
    };
    let vals = if values.is_null() || n == 0 {
        &[][..]
    } else {
        // SAFETY: the ABI requires `n` values.
        unsafe { std::slice::from_raw_parts(values, n as usize) }
    };
    match c.push(vals) {
        Ok(()) => WalkerStatus::OK,
        Err(e) => {
            if c.error.is_none() {
                c.error = Some(e);
            }
            WalkerStatus::INVALID
        }
    }
}

/// Calls view `index` of `slot` and collects its rows, each as the text form of its
/// columns (what the server's SQL views read back). `Err`: the plugin's callback
/// failed, or a row did not match the declared columns (the message says which).
/// A plugin without a `view_rows` callback has no rows.
pub fn collect_view(
    slot: &'static crate::registry::PluginSlot,
    index: usize,
) -> Result<Vec<Vec<Option<String>>>, String> {
    let Some(view) = slot.views.get(index) else {
        return Err(format!(
            "plugin \"{}\" has no view number {index}",
            slot.name
        ));
    };
    let Some(view_rows) = slot.desc.as_ref().and_then(|d| d.view_rows) else {
        return Ok(Vec::new());
    };
    let mut collector = RowCollector::new(view.columns.clone());
    let sink = collector.sink();
    // SAFETY: negotiated callback; the sink and its collector outlive the call.
    let st = unsafe { view_rows(slot.handle(), index as u32, &sink) };
    slot.check(st, "view_rows")?;
    match collector.error.take() {
        Some(e) => Err(e.to_string()),
        None => Ok(collector.rows),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use walker_abi::sdk::Value;

    #[test]
    fn lsn_text_matches_postgres() {
        assert_eq!(format_lsn(0x16_B374_D848), "16/B374D848");
        assert_eq!(format_lsn(0), "0/0");
        assert_eq!(format_lsn(0x0100_0028), "0/1000028");
    }

    #[test]
    fn timestamps_by_hand() {
        assert_eq!(format_timestamptz(0), "1970-01-01 00:00:00.000000+00");
        // 2000-01-01 00:00:00 UTC is 946684800 s after the epoch.
        assert_eq!(
            format_timestamptz(946_684_800_000_000),
            "2000-01-01 00:00:00.000000+00"
        );
        // 2024-02-29 12:34:56.789012 UTC: 19782 days + 45296.789012 s.
        assert_eq!(
            format_timestamptz((19_782 * 86_400 + 45_296) * 1_000_000 + 789_012),
            "2024-02-29 12:34:56.789012+00"
        );
        // One microsecond before the epoch.
        assert_eq!(format_timestamptz(-1), "1969-12-31 23:59:59.999999+00");
        // 1900-03-01: 25508 days before the epoch (1900 is not a leap year).
        assert_eq!(
            format_timestamptz(-25_508 * 86_400 * 1_000_000),
            "1900-03-01 00:00:00.000000+00"
        );
    }

    #[test]
    fn floats_round_trip() {
        assert_eq!(format_float(1.5), "1.5");
        assert_eq!(format_float(f64::NAN), "NaN");
        assert_eq!(format_float(f64::NEG_INFINITY), "-Infinity");
        let x = 0.1 + 0.2;
        assert_eq!(format_float(x).parse::<f64>().unwrap(), x);
    }

    fn abi(v: Value<'_>) -> WalkerValue {
        match v {
            Value::Int8(i) => WalkerValue {
                ty: WalkerType::INT8,
                int_value: i,
                ..Default::default()
            },
            Value::Text(s) => WalkerValue {
                ty: WalkerType::TEXT,
                str_ptr: s.as_ptr(),
                str_len: s.len(),
                ..Default::default()
            },
            Value::Lsn(l) => WalkerValue {
                ty: WalkerType::LSN,
                lsn_value: l,
                ..Default::default()
            },
            Value::Null => WalkerValue {
                is_null: true,
                ..Default::default()
            },
            _ => unreachable!("not used in these tests"),
        }
    }

    #[test]
    fn rows_are_checked_against_columns() {
        let mut c = RowCollector::new(vec![
            ("n".into(), WalkerType::INT8),
            ("t".into(), WalkerType::TEXT),
            ("l".into(), WalkerType::LSN),
        ]);
        let sink = c.sink();
        let row = [
            abi(Value::Int8(-3)),
            abi(Value::Text("héllo")),
            abi(Value::Lsn(0x1_0000_0010)),
        ];
        assert_eq!(
            // SAFETY: valid sink and values.
            unsafe { (sink.emit.unwrap())(sink.ctx, row.as_ptr(), 3) },
            WalkerStatus::OK
        );
        let nulls = [abi(Value::Null), abi(Value::Null), abi(Value::Null)];
        assert_eq!(
            // SAFETY: as above.
            unsafe { (sink.emit.unwrap())(sink.ctx, nulls.as_ptr(), 3) },
            WalkerStatus::OK
        );
        let short = [abi(Value::Int8(1))];
        assert_eq!(
            // SAFETY: as above.
            unsafe { (sink.emit.unwrap())(sink.ctx, short.as_ptr(), 1) },
            WalkerStatus::INVALID
        );
        let wrong = [
            abi(Value::Text("x")),
            abi(Value::Text("y")),
            abi(Value::Lsn(1)),
        ];
        assert_eq!(
            // SAFETY: as above.
            unsafe { (sink.emit.unwrap())(sink.ctx, wrong.as_ptr(), 3) },
            WalkerStatus::INVALID
        );
        assert_eq!(c.rows.len(), 2);
        assert_eq!(
            c.rows[0],
            vec![Some("-3".into()), Some("héllo".into()), Some("1/10".into())]
        );
        assert_eq!(c.rows[1], vec![None, None, None]);
        assert_eq!(c.error, Some(RowError::Count { got: 1, want: 3 }));
        let nul = [
            abi(Value::Int8(1)),
            abi(Value::Text("a\0b")),
            abi(Value::Lsn(1)),
        ];
        assert!(matches!(c.push(&nul), Err(RowError::Text { index: 1, .. })));
    }
}
