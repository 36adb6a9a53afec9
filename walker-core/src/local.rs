//! Host memory for a host without a server (`pg_walker`): the same layout the server
//! puts in shared memory ([`Layout`]), allocated zeroed on the heap of this one
//! process, with every plugin's counters and region attached and `shmem_init` run.

use crate::registry::PluginSlot;
use crate::shared::{HostShared, Layout, PluginShared, RegionHeader, ALIGN};
use std::alloc::{alloc_zeroed, Layout as AllocLayout};
use std::sync::atomic::Ordering;

/// Allocates the host memory for `slots` (indexed by their `index`, as registered)
/// and attaches each slot to its part, then runs each usable plugin's `shmem_init`
/// (with `found` false: the memory is new). The memory lives as long as the process.
/// Returns one message per plugin that failed (the slot is marked failed).
pub fn attach(slots: &[&'static PluginSlot]) -> Result<Vec<String>, String> {
    let n = slots.iter().map(|s| s.index + 1).max().unwrap_or(0);
    let mut sizes: Vec<Option<usize>> = vec![None; n];
    let mut failed = Vec::new();
    for s in slots {
        match s.shmem_size() {
            Ok(size) => sizes[s.index] = size,
            Err(m) => failed.push(format!("plugin \"{}\" refused: {m}", s.name)),
        }
    }
    let layout = Layout::compute(&sizes);
    let alloc = AllocLayout::from_size_align(layout.total.max(ALIGN), ALIGN).map_err(|e| {
        format!(
            "host memory of {} bytes cannot be laid out: {e}",
            layout.total
        )
    })?;
    // SAFETY: the layout has a non-zero size; the allocation is never freed (the
    // slots keep pointers into it for the life of the process).
    let base = unsafe { alloc_zeroed(alloc) };
    if base.is_null() {
        return Err(format!(
            "out of memory allocating {} bytes of host memory for the plugins",
            layout.total
        ));
    }
    // SAFETY: `base` is a zeroed allocation of `layout.total` bytes, aligned for
    // HostShared, whose all-zero bytes are valid.
    let host = unsafe { &*(base as *const HostShared) };
    host.magic.store(HostShared::MAGIC, Ordering::Release);
    for &slot in slots {
        let i = slot.index;
        // SAFETY: every offset of `layout` lies within the allocation and is aligned
        // to ALIGN; the parts are zeroed, which is valid for each type.
        let (shared, header, region, size) = unsafe {
            let shared = base.add(layout.plugin_shared[i]) as *mut PluginShared;
            match (layout.region_header[i], layout.region[i]) {
                (Some(h), Some(r)) => {
                    let size = layout.region_size(i);
                    let header = base.add(h) as *mut RegionHeader;
                    (*header).size.store(size as u64, Ordering::Relaxed);
                    (shared, header, base.add(r), size)
                }
                _ => (shared, std::ptr::null_mut(), std::ptr::null_mut(), 0),
            }
        };
        slot.attach_shared(shared, header, region, size);
        if !slot.usable() || region.is_null() {
            continue;
        }
        if let Some(f) = slot.desc.as_ref().and_then(|d| d.shmem_init) {
            // SAFETY: negotiated callback; `region` is `size` writable bytes.
            let st = unsafe { f(slot.handle(), region as *mut std::ffi::c_void, size, false) };
            if let Err(m) = slot.check(st, "shmem_init") {
                slot.fail(&m);
                failed.push(format!("plugin \"{}\" failed: {m}", slot.name));
            }
        }
    }
    Ok(failed)
}
