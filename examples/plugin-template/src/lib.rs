//! A walker plugin to start from: counts WAL records and bytes and shows them in the
//! view `walker.my_walker_plugin_totals` (records, bytes, since_lsn, through_lsn),
//! which equal pg_walinspect's `pg_get_wal_stats(since_lsn, through_lsn)` summed
//! (bytes = record_size + fpi_size). Plugins are trusted code: they run inside the
//! server with its privileges.

use walker_abi::{
    Host, Plugin, PluginInfo, PluginResult, Records, RecordsError, RowSink, Setting, SharedState,
    Value, ViewDef, WalkerSettingContext, WalkerType, ALL_RMGRS,
};

/// The state every server process sees: it lives in the plugin's shared-memory
/// region, under the host's lock.
#[repr(C)]
#[derive(Clone, Copy)]
struct Totals {
    records: u64,
    bytes: u64,
    since_lsn: u64,
    through_lsn: u64,
}

// SAFETY: repr(C), plain integers, valid when zeroed.
unsafe impl SharedState for Totals {}

struct MyPlugin {
    /// `my_walker_plugin.enabled`: count records or not (reloadable).
    enabled: Setting<bool>,
}

impl Plugin for MyPlugin {
    fn describe() -> PluginInfo {
        PluginInfo {
            version: env!("CARGO_PKG_VERSION"),
            description: "WAL records and bytes (plugin template)",
            rmgrs: ALL_RMGRS,
            views: vec![ViewDef {
                name: "totals",
                description: "WAL records and bytes since the walker started",
                columns: vec![
                    ("records", WalkerType::INT8),
                    ("bytes", WalkerType::INT8),
                    ("since_lsn", WalkerType::LSN),
                    ("through_lsn", WalkerType::LSN),
                ],
            }],
            ..PluginInfo::default()
        }
    }

    /// Runs once, in the postmaster: define settings, keep their handles.
    fn init(host: &Host) -> PluginResult<Self> {
        let enabled = host.define_bool(
            "enabled",
            "count records",
            true,
            WalkerSettingContext::SIGHUP,
        )?;
        Ok(MyPlugin { enabled })
    }

    fn shmem_size(&self, _host: &Host) -> usize {
        std::mem::size_of::<Totals>()
    }

    /// One lock per run of records (a batch), not one per record: the fast pattern.
    /// Hold the lock only to update the region; no I/O or waiting inside.
    fn on_records(&self, host: &Host, records: &Records<'_>) -> Result<(), RecordsError> {
        if !self.enabled.get(host).map_err(|e| RecordsError::at(0, e))? {
            return Ok(());
        }
        host.with_exclusive(|t: &mut Totals| {
            for (_, r) in records.iter() {
                if t.since_lsn == 0 {
                    t.since_lsn = r.lsn();
                }
                t.through_lsn = r.end_lsn();
                t.records += 1;
                t.bytes += u64::from(r.total_len());
            }
        })
        .map_err(|e| RecordsError::at(0, e))
    }

    fn view_rows(&self, host: &Host, _view: usize, sink: &mut RowSink<'_>) -> PluginResult {
        // Copy under the lock, emit outside it.
        let t = host.with_shared(|t: &Totals| *t)?;
        let int = |v: u64| Value::Int8(i64::try_from(v).unwrap_or(i64::MAX));
        sink.row(&[
            int(t.records),
            int(t.bytes),
            Value::Lsn(t.since_lsn),
            Value::Lsn(t.through_lsn),
        ])
    }
}

walker_abi::export_plugin!(MyPlugin);
