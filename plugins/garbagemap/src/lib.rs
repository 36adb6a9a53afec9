//! # garbagemap: where the dead tuples are, per block range, from WAL alone
//!
//! A walker plugin. It follows every heap change in the WAL, holds each change until
//! its transaction's fate is known (commit, abort, rolled-back savepoint, two-phase
//! commit), and keeps, per relation and block range, the dead tuples (deleter
//! committed, or inserter aborted) and dead line pointers (`LP_DEAD`, left by pruning
//! until VACUUM frees them), as `pageinspect` would count them.
//!
//! The map lives in the walker worker (on this plugin's dispatch thread); a copy is
//! published into shared memory for the views after every few thousand records and
//! whenever the walker catches up. The map survives restarts through walker's
//! snapshots.

pub use walker_decode as decode;
pub mod blockmap;
pub mod heap;
pub mod pending;
pub mod published;
pub mod snapshot;
pub mod svg;
pub mod tracker;
pub mod vismap;

use decode::{decode, visibility, Block, Format, Rec, RelKey};
use published::Published;
use std::sync::Mutex;
use tracker::{Limits, Tracker};
use walker_abi::{
    mask_of, Host, Plugin, PluginError, PluginInfo, PluginResult, Record, Records, RecordsError,
    RowSink, Value, ViewDef, WalkerSettingContext, WalkerSettingUnit, WalkerType,
};

/// Counts the plugin's live heap bytes (`walker.garbagemap_status.heap_bytes`).
#[global_allocator]
static ALLOCATOR: heap::Counting = heap::Counting;

/// The plugin's SQL (ABI 1.3 `sql`, idempotent): `walker.garbagemap_vacuum_plan`,
/// the action for each relation with dead items and its cost in blocks, beside
/// `n_dead_tup` and autovacuum's threshold (`sql/vacuum_plan.sql`); and
/// `walker.garbagemap_svg`, each relation's heat map titled with its name
/// (`sql/svg.sql`).
pub const PLUGIN_SQL: &str = concat!(
    include_str!("../sql/vacuum_plan.sql"),
    include_str!("../sql/svg.sql")
);

/// Records between two publications while walking (a run of records publishes at
/// its end once this many have passed).
const PUBLISH_EVERY: u64 = 4096;

/// The plugin. Its views are declared in `describe` in the order of
/// [`published::VIEW_RELATIONS`] .. [`published::VIEW_CUMULATIVE`]; the
/// per-relation heat maps are the function `svg` (and the view over it in
/// [`PLUGIN_SQL`], which names each relation).
pub struct Garbagemap {
    /// Read from the settings in `shmem_init` (settings are not final during `init`).
    limits: Mutex<Limits>,
    format: Format,
    map: Mutex<Walk>,
}

struct Walk {
    tracker: Tracker,
    through_lsn: u64,
    since_publish: u64,
}

fn read_limits(host: &Host) -> PluginResult<Limits> {
    let get = |name: &str| host.get_int(name).map(|v| v.max(1) as u64);
    Ok(Limits {
        range_blocks: get("range_blocks")? as u32,
        max_relations: get("max_relations")? as usize,
        max_ranges: get("max_ranges")? as usize,
        max_pending: get("max_pending")? as usize,
    })
}

impl Garbagemap {
    /// Applies one record to the map. `blocks` is a buffer for the record's block
    /// references (empty; given back empty, so a run allocates it once).
    fn apply<'a>(
        &self,
        host: &Host,
        walk: &mut Walk,
        r: &Record<'a>,
        mut blocks: Vec<Block<'a>>,
    ) -> Vec<Block<'a>> {
        blocks.extend(r.blocks().iter().enumerate().map(|(i, b)| Block {
            id: b.block_id,
            fork: b.fork,
            rel: RelKey {
                db: b.database,
                ts: b.tablespace,
                rel: b.relfilenode,
            },
            block: b.block,
            data: r.block_data(b),
            image: r.block_image(i),
        }));
        let rec = Rec {
            rmid: r.rmid(),
            info: r.info(),
            xid: r.xid(),
            main: r.main_data(),
            blocks,
        };
        // The dead-tuple event and the visibility-map bits are read independently:
        // a record one of them cannot read still gives the other (and counts once).
        let event = decode(&rec, self.format);
        let vm = visibility(&rec);
        let mut failed = None;
        match event {
            Ok(Some(event)) => walk.tracker.apply(event, r.lsn()),
            Ok(None) => {}
            Err(e) => failed = Some(e),
        }
        match vm {
            Ok(vm) => {
                for c in vm.iter() {
                    walk.tracker.apply_visibility(c, r.lsn());
                }
            }
            Err(e) => failed = failed.or(Some(e)),
        }
        if let Some(e) = failed {
            walk.tracker.counters.undecodable += 1;
            if walk.tracker.counters.undecodable <= 10 {
                host.warning(&format!(
                    "record at {:X}/{:X}: {e}",
                    r.lsn() >> 32,
                    r.lsn() as u32
                ));
            }
        }
        walk.through_lsn = r.end_lsn();
        walk.since_publish += 1;
        let mut blocks = rec.blocks;
        blocks.clear();
        blocks
    }

    fn publish(&self, host: &Host, walk: &mut Walk) -> PluginResult {
        walk.since_publish = 0;
        host.with_exclusive(|p: &mut Published| p.fill(&walk.tracker, walk.through_lsn))
    }
}

impl Plugin for Garbagemap {
    fn describe() -> PluginInfo {
        use WalkerType as T;
        let rel_cols = [
            ("database", T::INT8),
            ("tablespace", T::INT8),
            ("relfilenode", T::INT8),
        ];
        let with_rel = |more: &[(&'static str, WalkerType)]| {
            rel_cols.iter().chain(more).copied().collect::<Vec<_>>()
        };
        PluginInfo {
            version: env!("CARGO_PKG_VERSION"),
            description: "dead tuples and dead line pointers per block range, from WAL alone",
            rmgrs: mask_of(&[decode::RM_XLOG_ID, decode::RM_XACT_ID, decode::RM_SMGR_ID, decode::RM_DBASE_ID, decode::RM_HEAP2_ID, decode::RM_HEAP_ID]),
            views: vec![
                ViewDef {
                    name: "relations",
                    description: "dead tuples and dead line pointers per relation, with its hottest block range",
                    columns: with_rel(&[
                        ("dead_tuples", T::INT8),
                        ("dead_line_pointers", T::INT8),
                        ("ranges", T::INT8),
                        ("hottest_first_block", T::INT8),
                        ("hottest_dead_tuples", T::INT8),
                        ("last_change_lsn", T::LSN),
                    ]),
                },
                ViewDef {
                    name: "heatmap",
                    description: "one row per tracked block range: dead tuples, dead line pointers, changes seen, blocks the WAL marked all-visible and all-frozen",
                    columns: with_rel(&[
                        ("first_block", T::INT8),
                        ("last_block", T::INT8),
                        ("dead_tuples", T::INT8),
                        ("dead_line_pointers", T::INT8),
                        ("inserts", T::INT8),
                        ("updates", T::INT8),
                        ("deletes", T::INT8),
                        ("last_prune_lsn", T::LSN),
                        ("last_vacuum_lsn", T::LSN),
                        ("last_change_lsn", T::LSN),
                        ("all_visible_blocks", T::INT8),
                        ("all_frozen_blocks", T::INT8),
                    ]),
                },
                ViewDef {
                    name: "advice",
                    description: "relations to vacuum first, ranked by dead tuples and line pointers, with the block ranges and why",
                    columns: with_rel(&[
                        ("rank", T::INT8),
                        ("dead_tuples", T::INT8),
                        ("dead_line_pointers", T::INT8),
                        ("first_block", T::INT8),
                        ("last_block", T::INT8),
                        ("reason", T::TEXT),
                    ]),
                },
                ViewDef {
                    name: "status",
                    description: "the map's size, bounds and what did not fit",
                    columns: vec![
                        ("through_lsn", T::LSN),
                        ("relations", T::INT8),
                        ("ranges", T::INT8),
                        ("range_blocks", T::INT8),
                        ("pending_changes", T::INT8),
                        ("pending_transactions", T::INT8),
                        ("evicted_relations", T::INT8),
                        ("evicted_ranges", T::INT8),
                        ("evicted_dead_tuples", T::INT8),
                        ("unattributed_changes", T::INT8),
                        ("undecodable_records", T::INT8),
                        ("dropped_relations", T::INT8),
                        ("heap_bytes", T::INT8),
                        ("unpublished_ranges", T::INT8),
                    ],
                },
                ViewDef {
                    name: "cumulative",
                    description: "each relation's block ranges ranked by dead tuples, with the running share of its ranges and of its dead tuples (\"10% of the ranges hold 80% of the dead tuples\")",
                    columns: with_rel(&[
                        ("rank", T::INT8),
                        ("first_block", T::INT8),
                        ("last_block", T::INT8),
                        ("dead_tuples", T::INT8),
                        ("cumulative_dead_tuples", T::INT8),
                        ("ranges_pct", T::FLOAT8),
                        ("dead_tuples_pct", T::FLOAT8),
                    ]),
                },
            ],
            snapshots: true,
            functions: vec![walker_abi::FunctionDef {
                name: "svg",
                description: "the SVG heat map of one relation: walker.garbagemap_svg('{\"relation\": \"t\"}')",
                result: T::TEXT,
                access: walker_abi::WalkerAccess::MONITOR,
            }],
            backend_events: false,
            sql: Some(PLUGIN_SQL),
            role: None,
        }
    }

    fn init(host: &Host) -> PluginResult<Self> {
        let version = host
            .server_version_num()
            .ok_or("the walker host does not tell the server version; upgrade walker")?;
        let format = Format::for_server(version).map_err(|e| {
            PluginError::new(format!(
                "garbagemap: {e}; remove garbagemap from walker.plugins"
            ))
        })?;
        let ctx = WalkerSettingContext::POSTMASTER;
        let none = WalkerSettingUnit::NONE;
        host.define_int(
            "range_blocks",
            "Blocks per range of the dead-tuple map (128 blocks = 1 MB).",
            128,
            1,
            1 << 20,
            none,
            ctx,
        )?;
        host.define_int(
            "max_relations",
            "Most relations the map tracks; past it, the least recently changed are evicted and counted.",
            published::REL_CAP as i64,
            1,
            published::REL_CAP as i64,
            none,
            ctx,
        )?;
        host.define_int(
            "max_ranges",
            "Most block ranges the map tracks; past it, the least recently changed are evicted and counted.",
            published::RANGE_CAP as i64,
            1,
            published::MAX_RANGES as i64,
            none,
            ctx,
        )?;
        host.define_int(
            "max_pending",
            "Most tuple changes held until their transaction ends; past it, changes are counted as unattributed.",
            1_000_000,
            1,
            100_000_000,
            none,
            ctx,
        )?;
        let limits = read_limits(host)?;
        let walk = Walk {
            tracker: Tracker::new(limits),
            through_lsn: 0,
            since_publish: 0,
        };
        Ok(Garbagemap {
            limits: Mutex::new(limits),
            format,
            map: Mutex::new(walk),
        })
    }

    fn shmem_init(&self, host: &Host, _found: bool) -> PluginResult {
        let limits = read_limits(host)?;
        *self.limits.lock().unwrap_or_else(|e| e.into_inner()) = limits;
        let mut walk = self.map.lock().unwrap_or_else(|e| e.into_inner());
        *walk = Walk {
            tracker: Tracker::new(limits),
            through_lsn: 0,
            since_publish: 0,
        };
        Ok(())
    }

    fn shmem_size(&self, _host: &Host) -> usize {
        std::mem::size_of::<Published>()
    }

    fn on_record(&self, host: &Host, r: &Record<'_>) -> PluginResult {
        let mut walk = self.map.lock().unwrap_or_else(|e| e.into_inner());
        self.apply(host, &mut walk, r, Vec::new());
        if walk.since_publish >= PUBLISH_EVERY {
            self.publish(host, &mut walk)?;
        }
        Ok(())
    }

    /// The run under one lock of the map, with one block buffer, publishing at most
    /// once, at its end (ABI 1.5).
    fn on_records(&self, host: &Host, records: &Records<'_>) -> Result<(), RecordsError> {
        let mut walk = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let mut blocks = Vec::new();
        let mut last = None;
        for (i, r) in records.iter() {
            blocks = self.apply(host, &mut walk, &r, blocks);
            last = Some(i);
        }
        if let Some(i) = last.filter(|_| walk.since_publish >= PUBLISH_EVERY) {
            self.publish(host, &mut walk)
                .map_err(|e| RecordsError::at(i, e))?;
        }
        Ok(())
    }

    fn on_idle(&self, host: &Host, lsn: u64) -> PluginResult {
        let mut walk = self.map.lock().unwrap_or_else(|e| e.into_inner());
        walk.through_lsn = walk.through_lsn.max(lsn);
        self.publish(host, &mut walk)?;
        heap::trim_after_burst();
        Ok(())
    }

    fn shutdown(&self, host: &Host) -> PluginResult {
        let mut walk = self.map.lock().unwrap_or_else(|e| e.into_inner());
        self.publish(host, &mut walk)
    }

    fn save_state(&self, _host: &Host, out: &mut Vec<u8>) -> PluginResult {
        let walk = self.map.lock().unwrap_or_else(|e| e.into_inner());
        walk.tracker.encode(out);
        Ok(())
    }

    fn load_state(&self, host: &Host, state: Option<&[u8]>, lsn: u64) -> PluginResult {
        let limits = *self.limits.lock().unwrap_or_else(|e| e.into_inner());
        let tracker = match state {
            Some(b) => Tracker::decode(b, limits)?,
            None => Tracker::new(limits),
        };
        let mut walk = self.map.lock().unwrap_or_else(|e| e.into_inner());
        *walk = Walk {
            tracker,
            through_lsn: lsn,
            since_publish: 0,
        };
        self.publish(host, &mut walk)
    }

    fn call(&self, host: &Host, _function: usize, args: &str) -> PluginResult<String> {
        let key = published::relation_key(args)?;
        let name = published::relation_name(args);
        host.with_shared(|p: &Published| p.svg(key, name.as_deref()))?
            .ok_or_else(|| {
                PluginError::new(format!(
                    "garbagemap tracks no change of relfilenode {} in database {} (none since walker started, or it was evicted)",
                    key.2, key.0
                ))
            })
    }

    fn view_rows(&self, host: &Host, view: usize, sink: &mut RowSink<'_>) -> PluginResult {
        let rows = host.with_shared(|p: &Published| p.rows(view))?;
        for row in rows {
            let values: Vec<Value<'_>> = row.iter().map(published::Cell::value).collect();
            sink.row(&values)?;
        }
        Ok(())
    }
}

walker_abi::export_plugin!(Garbagemap);
