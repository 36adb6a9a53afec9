//! The plugin's shared-memory region and its lock.

use super::{Host, PluginError, PluginResult, SharedState};
use crate::types::*;
use std::ffi::c_void;

impl Host {
    /// The region's address and size.
    fn region_raw(&self) -> PluginResult<(*mut c_void, usize)> {
        let f = self
            .api()
            .shmem_region
            .ok_or_else(|| PluginError::new("host offers no shared memory"))?;
        let mut size = 0usize;
        // SAFETY: `size` is a valid out pointer.
        let ptr = unsafe { f(self.plugin, &mut size) };
        if ptr.is_null() {
            return Err(PluginError::new("no shared-memory region: shmem_size returned 0 or shared memory is not initialised"));
        }
        Ok((ptr, size))
    }

    fn region<T: SharedState>(&self) -> PluginResult<*mut T> {
        let (ptr, size) = self.region_raw()?;
        if size < std::mem::size_of::<T>()
            || !(ptr as usize).is_multiple_of(std::mem::align_of::<T>())
        {
            return Err(PluginError::new(format!(
                "shared-memory region of {size} bytes cannot hold the plugin's state of {} bytes",
                std::mem::size_of::<T>()
            )));
        }
        Ok(ptr as *mut T)
    }

    /// Runs `f` on the shared state under the region's shared lock.
    ///
    /// The lock rule: `f` only copies data in or out of the region (a few
    /// milliseconds at most); it never waits, sleeps, does I/O or calls a host service
    /// that may wait. On a host with ABI 1.4 the wait for the lock is bounded by
    /// `walker.lock_timeout` and by the backend's cancel: an `Err` then says the lock
    /// was busy or the wait was interrupted, and `f` did not run.
    pub fn with_shared<T: SharedState, R>(&self, f: impl FnOnce(&T) -> R) -> PluginResult<R> {
        let ptr = self.region::<T>()?;
        let guard = LockGuard::new(self, false)?;
        // SAFETY: the region holds a `T` (checked size and alignment; zeroed or
        // initialised by `shmem_init`), and writers are excluded by the lock.
        let out = f(unsafe { &*ptr });
        drop(guard);
        Ok(out)
    }

    /// Runs `f` on the shared state under the region's exclusive lock (the rule and
    /// the errors of [`Host::with_shared`] apply).
    pub fn with_exclusive<T: SharedState, R>(
        &self,
        f: impl FnOnce(&mut T) -> R,
    ) -> PluginResult<R> {
        let ptr = self.region::<T>()?;
        let guard = LockGuard::new(self, true)?;
        // SAFETY: as in `with_shared`, and every other accessor is excluded by the lock.
        let out = f(unsafe { &mut *ptr });
        drop(guard);
        Ok(out)
    }

    /// Runs `f` on a region laid out as a header `H` followed by tables
    /// ([`crate::RegionLayout`]), under the exclusive lock: `f` gets the header and
    /// the tail, from which it takes its tables ([`crate::Tables::take`]). The rule
    /// and the errors of [`Host::with_shared`] apply.
    pub fn with_exclusive_tables<H: SharedState, R>(
        &self,
        f: impl FnOnce(&mut H, crate::Tables<'_>) -> R,
    ) -> PluginResult<R> {
        let ptr = self.region::<H>()?;
        let (_, size) = self.region_raw()?;
        let guard = LockGuard::new(self, true)?;
        let head = std::mem::size_of::<H>();
        // SAFETY: the region holds an `H` at its start (checked size and alignment)
        // followed by `size - head` initialised bytes (the host zeroed the region);
        // the header and the tail do not overlap, and every other accessor is
        // excluded by the lock for the call.
        let out = unsafe {
            let tail = crate::Tables::from_raw((ptr as *mut u8).add(head), size - head);
            f(&mut *ptr, tail)
        };
        drop(guard);
        Ok(out)
    }

    /// Runs `f` on a region laid out as a header `H` followed by tables, under the
    /// shared lock (see [`Host::with_exclusive_tables`]).
    pub fn with_shared_tables<H: SharedState, R>(
        &self,
        f: impl FnOnce(&H, crate::TablesRef<'_>) -> R,
    ) -> PluginResult<R> {
        let ptr = self.region::<H>()?;
        let (_, size) = self.region_raw()?;
        let guard = LockGuard::new(self, false)?;
        let head = std::mem::size_of::<H>();
        // SAFETY: as in `with_exclusive_tables`; writers are excluded by the lock.
        let out = unsafe {
            let tail = crate::TablesRef::from_raw((ptr as *const u8).add(head), size - head);
            f(&*ptr, tail)
        };
        drop(guard);
        Ok(out)
    }
}

struct LockGuard<'h> {
    host: &'h Host,
    exclusive: bool,
}

impl<'h> LockGuard<'h> {
    fn new(host: &'h Host, exclusive: bool) -> PluginResult<Self> {
        let timed = host
            .api()
            .lock_timed
            .filter(|_| host.has(WALKER_HOST_API_V1_4_SIZE as usize));
        if let Some(f) = timed {
            // SAFETY: the handle is the one the host gave this plugin.
            let st = unsafe { f(host.plugin, exclusive, u32::MAX) };
            return match st {
                WalkerStatus::OK => Ok(LockGuard { host, exclusive }),
                WalkerStatus::BUSY => Err(PluginError::new(
                    "the plugin's shared-memory lock was not obtained within walker.lock_timeout (the server log names its holder)",
                )),
                WalkerStatus::INTERRUPTED => Err(PluginError::new(
                    "the wait for the plugin's shared-memory lock was interrupted",
                )),
                other => Err(PluginError::new(format!(
                    "taking the plugin's shared-memory lock failed (status {})",
                    other.0
                ))),
            };
        }
        let f = if exclusive {
            host.api().lock_exclusive
        } else {
            host.api().lock_shared
        };
        if let Some(f) = f {
            // SAFETY: the handle is the one the host gave this plugin.
            unsafe { f(host.plugin) }
        }
        Ok(LockGuard { host, exclusive })
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        let f = if self.exclusive {
            self.host.api().unlock_exclusive
        } else {
            self.host.api().unlock_shared
        };
        if let Some(f) = f {
            // SAFETY: releases the lock taken in `new`.
            unsafe { f(self.host.plugin) }
        }
    }
}
