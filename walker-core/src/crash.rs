//! The crash ledger: what each dispatch lane and the worker's reader are doing, kept in
//! memory that survives the server's crash restarts, so that a plugin that crashes the
//! server is left out of the next start instead of crashing it again and again.
//!
//! # Design
//!
//! PostgreSQL re-creates its shared memory after any server process dies by a signal
//! (the postmaster's crash restart), so nothing in walker's ordinary shared memory says
//! who crashed. Memory the postmaster mapped itself before forking is not touched by a
//! crash restart: [`create`] maps one small `MAP_SHARED | MAP_ANONYMOUS` region in
//! `_PG_init` (in the postmaster); every server process inherits it at the same
//! address. It is not a file: a server restart (or a postmaster crash) forgets it,
//! which is the documented way to re-enable a plugin after fixing it.
//!
//! - Each lane writes, with plain atomic stores (two per callback), which callback it
//!   is in and at which LSN, and since when ([`LaneEntry::enter`] / [`LaneEntry::leave`]).
//!   The worker's main thread reads the same entries to cut off a plugin whose callback
//!   overran `walker.plugin_timeout` (see `dispatch`).
//! - A fatal-signal handler (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT), installed in
//!   the walker worker only, looks up the faulting thread among the lanes by its
//!   `pthread_self()` and marks that lane's entry with the signal when the thread was
//!   inside a callback; then it restores the default action and re-raises, so the server
//!   sees the same crash it would without walker. A crash of any other process (or of a
//!   lane outside a callback) blames no plugin. Lane threads run their handler on an
//!   alternate signal stack, so a stack overflow in a plugin is caught too.
//! - The worker's main thread notes the LSN it is about to read; a crash there (the
//!   host itself, e.g. decoding a record) is counted per position. After
//!   [`MAX_HOST_CRASHES`] crashes at the same position the worker skips that record as a
//!   recorded gap instead of crashing forever.
//! - At the next start (the postmaster's shared-memory startup, after the crash), every
//!   plugin whose entry carries a signal is marked failed with a message naming the
//!   signal, callback and LSN, and how to re-enable it. The mark stays in the ledger for
//!   the life of the postmaster, so later crash restarts keep the plugin out too.
//!
//! The ledger holds [`LEDGER_PLUGINS`] entries; plugins listed beyond that are still
//! watched for timeouts (their entry is process-local) but not protected from a crash
//! loop.

use std::sync::atomic::{AtomicI64, AtomicPtr, AtomicU32, AtomicU64, Ordering};

/// Plugins the crash ledger has entries for (the first ones in `walker.plugins`).
pub const LEDGER_PLUGINS: usize = 64;
/// Crashes of the worker's own reader at one WAL position before that record is
/// skipped as a gap.
pub const MAX_HOST_CRASHES: u32 = 3;
/// Bytes of each lane thread's alternate signal stack.
const ALT_STACK_BYTES: usize = 64 * 1024;

/// The plugin callback a lane is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Callback {
    /// Not in a callback.
    None = 0,
    /// `on_record`.
    OnRecord = 1,
    /// `on_idle`.
    OnIdle = 2,
    /// `save_state` (a snapshot).
    SaveState = 3,
    /// `shutdown`.
    Shutdown = 4,
    /// `on_records` (ABI 1.5), for a run of records starting at the stored LSN.
    OnRecords = 5,
}

impl Callback {
    /// The callback's name, as the ABI spells it.
    pub fn name(self) -> &'static str {
        match self {
            Callback::None => "no callback",
            Callback::OnRecord => "on_record",
            Callback::OnIdle => "on_idle",
            Callback::SaveState => "save_state",
            Callback::Shutdown => "shutdown",
            Callback::OnRecords => "on_records",
        }
    }

    /// Decodes a stored value (unknown values read as `None`).
    pub fn from_u32(v: u32) -> Callback {
        match v {
            1 => Callback::OnRecord,
            2 => Callback::OnIdle,
            3 => Callback::SaveState,
            4 => Callback::Shutdown,
            5 => Callback::OnRecords,
            _ => Callback::None,
        }
    }

    /// "on_record at LSN 0/1234", "on_idle at LSN ...", "on_records from LSN ...", or
    /// the name alone without an LSN.
    pub fn describe(self, lsn: u64) -> String {
        if lsn == 0 {
            self.name().to_string()
        } else if self == Callback::OnRecords {
            format!("on_records from LSN {}", crate::rows::format_lsn(lsn))
        } else {
            format!("{} at LSN {}", self.name(), crate::rows::format_lsn(lsn))
        }
    }
}

/// What one lane is doing. All-zero is "idle, never ran".
#[repr(C)]
#[derive(Default)]
pub struct LaneEntry {
    /// `pthread_self()` of the lane's thread (0: no thread).
    thread: AtomicU64,
    /// When the current callback started, microseconds since the Unix epoch; 0 when the
    /// lane is not inside a callback.
    started_us: AtomicI64,
    /// The current (or last) [`Callback`].
    callback: AtomicU32,
    /// The fatal signal caught while the lane was inside a callback (0: none). Sticky.
    signal: AtomicU32,
    /// LSN of the record the callback is about (0: none).
    lsn: AtomicU64,
}

/// A callback a lane is inside, as the main thread sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InCallback {
    /// Which callback.
    pub callback: Callback,
    /// Its record's LSN (0: none).
    pub lsn: u64,
    /// When it started (µs since the epoch).
    pub started_us: i64,
}

/// A plugin's crash, as found in the ledger at the next start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crash {
    /// The fatal signal.
    pub signal: u32,
    /// The callback it was in.
    pub callback: Callback,
    /// The record's LSN (0: none).
    pub lsn: u64,
}

impl LaneEntry {
    /// Records that the calling thread is this lane's thread.
    pub fn bind_current_thread(&self) {
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { libc::pthread_self() } as u64;
        self.thread.store(me, Ordering::Release);
    }

    /// The lane enters `callback` for the record at `lsn` (0: none) at `now_us`.
    pub fn enter(&self, callback: Callback, lsn: u64, now_us: i64) {
        self.callback.store(callback as u32, Ordering::Relaxed);
        self.lsn.store(lsn, Ordering::Relaxed);
        // Release: whoever sees the start time sees the callback and LSN.
        self.started_us.store(now_us.max(1), Ordering::Release);
    }

    /// The lane left its callback.
    pub fn leave(&self) {
        self.started_us.store(0, Ordering::Release);
    }

    /// The callback the lane is inside, if any.
    pub fn current(&self) -> Option<InCallback> {
        let started_us = self.started_us.load(Ordering::Acquire);
        (started_us != 0).then(|| InCallback {
            callback: Callback::from_u32(self.callback.load(Ordering::Relaxed)),
            lsn: self.lsn.load(Ordering::Relaxed),
            started_us,
        })
    }

    /// The crash recorded for this lane, if any.
    pub fn crash(&self) -> Option<Crash> {
        let signal = self.signal.load(Ordering::Acquire);
        (signal != 0).then(|| Crash {
            signal,
            callback: Callback::from_u32(self.callback.load(Ordering::Relaxed)),
            lsn: self.lsn.load(Ordering::Relaxed),
        })
    }

    /// Called from the fatal-signal handler: when `thread` is this lane's thread and it
    /// is inside a callback, records `signal` and returns true. Async-signal-safe.
    fn blame(&self, thread: u64, signal: u32) -> bool {
        if thread == 0 || self.thread.load(Ordering::Acquire) != thread {
            return false;
        }
        if self.started_us.load(Ordering::Acquire) == 0 {
            return false;
        }
        self.signal.store(signal, Ordering::Release);
        true
    }

    /// Forgets the thread and callback of a process that is gone (the crash mark stays).
    fn reset_after_restart(&self) {
        self.thread.store(0, Ordering::Release);
        self.started_us.store(0, Ordering::Release);
    }
}

/// The worker's main thread: what it is reading, and its crashes at one position.
#[repr(C)]
#[derive(Default)]
pub struct ReaderEntry {
    /// `pthread_self()` of the worker's main thread.
    thread: AtomicU64,
    /// LSN the reader is reading at (0: not reading a record).
    reading_lsn: AtomicU64,
    /// Position of the last crashes while reading.
    crash_lsn: AtomicU64,
    /// Consecutive crashes at `crash_lsn`.
    crashes: AtomicU32,
    /// The last crash's signal.
    signal: AtomicU32,
}

/// What the reader's crash count says at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReaderVerdict {
    /// Read on.
    Continue,
    /// The record at `lsn` crashed the reader `crashes` times (last by `signal`): skip it.
    Skip {
        /// Where the reader crashed.
        lsn: u64,
        /// How often.
        crashes: u32,
        /// The last signal.
        signal: u32,
    },
}

impl ReaderEntry {
    /// Records that the calling thread is the worker's main thread.
    pub fn bind_current_thread(&self) {
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { libc::pthread_self() } as u64;
        self.thread.store(me, Ordering::Release);
    }

    /// The reader is about to read (and decode) the record at or after `lsn`.
    pub fn reading(&self, lsn: u64) {
        self.reading_lsn.store(lsn, Ordering::Relaxed);
    }

    /// The reader is not inside a record.
    pub fn done_reading(&self) {
        self.reading_lsn.store(0, Ordering::Relaxed);
    }

    /// Async-signal-safe: counts a crash of the reader at the position it is reading.
    fn blame(&self, thread: u64, signal: u32) -> bool {
        if thread == 0 || self.thread.load(Ordering::Acquire) != thread {
            return false;
        }
        let at = self.reading_lsn.load(Ordering::Relaxed);
        if at == 0 {
            return false;
        }
        note_crash(&self.crash_lsn, &self.crashes, at);
        self.signal.store(signal, Ordering::Release);
        true
    }

    /// Decides at the worker's start whether the record that crashed it is skipped;
    /// a skip resets the count (the record is gone from the walk).
    pub fn verdict(&self) -> ReaderVerdict {
        let v = reader_verdict(
            self.crash_lsn.load(Ordering::Acquire),
            self.crashes.load(Ordering::Acquire),
            self.signal.load(Ordering::Acquire),
        );
        if matches!(v, ReaderVerdict::Skip { .. }) {
            self.crashes.store(0, Ordering::Release);
            self.crash_lsn.store(0, Ordering::Release);
        }
        v
    }

    /// After the reader has read past `lsn` without crashing, its crash count is moot.
    pub fn passed(&self, lsn: u64) {
        let at = self.crash_lsn.load(Ordering::Relaxed);
        if at != 0 && lsn > at {
            self.crashes.store(0, Ordering::Relaxed);
            self.crash_lsn.store(0, Ordering::Relaxed);
        }
    }
}

/// Counts one more crash at `at`: consecutive crashes at the same position add up, a
/// crash elsewhere starts over at 1.
fn note_crash(crash_lsn: &AtomicU64, crashes: &AtomicU32, at: u64) {
    if crash_lsn.load(Ordering::Relaxed) == at {
        let n = crashes.load(Ordering::Relaxed);
        crashes.store(n.saturating_add(1), Ordering::Relaxed);
    } else {
        crash_lsn.store(at, Ordering::Relaxed);
        crashes.store(1, Ordering::Relaxed);
    }
}

/// The pure rule behind [`ReaderEntry::verdict`].
pub fn reader_verdict(crash_lsn: u64, crashes: u32, signal: u32) -> ReaderVerdict {
    if crash_lsn != 0 && crashes >= MAX_HOST_CRASHES {
        ReaderVerdict::Skip {
            lsn: crash_lsn,
            crashes,
            signal,
        }
    } else {
        ReaderVerdict::Continue
    }
}

/// The ledger: a header and one entry per plugin.
#[repr(C)]
pub struct Ledger {
    magic: AtomicU64,
    /// The worker's main thread.
    pub reader: ReaderEntry,
    lanes: [LaneEntry; LEDGER_PLUGINS],
}

impl Ledger {
    const MAGIC: u64 = 0x5741_4c4b_4352_0001; // "WALKCR" v1

    /// The entry of plugin `index`, when the ledger has one.
    pub fn lane(&self, index: usize) -> Option<&LaneEntry> {
        self.lanes.get(index)
    }

    /// Async-signal-safe: marks whoever `thread` is (a lane in a callback, the reader
    /// reading a record) with `signal`. Returns true when someone was blamed.
    pub fn blame(&self, thread: u64, signal: u32) -> bool {
        for lane in &self.lanes {
            if lane.blame(thread, signal) {
                return true;
            }
        }
        self.reader.blame(thread, signal)
    }

    /// At a (re)start of shared memory: forgets the threads of processes that are gone.
    pub fn reset_after_restart(&self) {
        for lane in &self.lanes {
            lane.reset_after_restart();
        }
        self.reader.thread.store(0, Ordering::Release);
        self.reader.reading_lsn.store(0, Ordering::Release);
    }

    /// A zeroed ledger on the heap (tests, and processes without a mapped one).
    pub fn boxed() -> Box<Ledger> {
        // SAFETY: every field is an atomic, valid at all-zero bytes.
        let l: Box<Ledger> = Box::new(unsafe { std::mem::zeroed() });
        l.magic.store(Ledger::MAGIC, Ordering::Release);
        l
    }
}

static LEDGER: AtomicPtr<Ledger> = AtomicPtr::new(std::ptr::null_mut());

/// The process's ledger, once [`create`]d (in the postmaster, inherited by children).
pub fn ledger() -> Option<&'static Ledger> {
    // SAFETY: null, or a mapping made by `create` that is never unmapped.
    let l = unsafe { LEDGER.load(Ordering::Acquire).as_ref() }?;
    (l.magic.load(Ordering::Acquire) == Ledger::MAGIC).then_some(l)
}

/// Maps the ledger (once per process; call in the postmaster before it forks).
/// Returns the error text when the kernel refuses the mapping.
pub fn create() -> Result<&'static Ledger, String> {
    if let Some(l) = ledger() {
        return Ok(l);
    }
    let size = std::mem::size_of::<Ledger>();
    // SAFETY: an anonymous shared mapping of `size` bytes with no address hint; the
    // result is checked for MAP_FAILED before use.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(format!(
            "could not map the {size}-byte crash ledger: {}",
            std::io::Error::last_os_error()
        ));
    }
    let l = p as *mut Ledger;
    // SAFETY: the mapping is zero-filled, suitably aligned (page) and large enough;
    // every field is an atomic, valid at all-zero bytes.
    let l: &'static Ledger = unsafe { &*l };
    l.magic.store(Ledger::MAGIC, Ordering::Release);
    let mine = l as *const Ledger as *mut Ledger;
    // Two threads may map at once: the first to publish wins and the other gives its
    // mapping back, so every caller (and every child forked later) sees one ledger.
    match LEDGER.compare_exchange(
        std::ptr::null_mut(),
        mine,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => Ok(l),
        Err(theirs) => {
            // SAFETY: `mine` is the mapping made above, of `size` bytes, never published
            // and so referenced by nobody else; `theirs` is a published mapping that is
            // never unmapped.
            unsafe {
                libc::munmap(mine as *mut libc::c_void, size);
                Ok(&*theirs)
            }
        }
    }
}

/// The entry a lane of plugin `index` writes: the ledger's, else a process-local one
/// (no ledger, or a plugin past [`LEDGER_PLUGINS`]), so timeouts work either way.
pub fn lane_entry(index: usize) -> &'static LaneEntry {
    match ledger().and_then(|l| l.lane(index)) {
        Some(e) => e,
        None => Box::leak(Box::default()),
    }
}

/// A monotonic clock in microseconds (CLOCK_MONOTONIC: the same in every process of
/// the machine, never set back), for callback start times and deadlines.
pub fn monotonic_us() -> i64 {
    clock_us(libc::CLOCK_MONOTONIC)
}

/// [`monotonic_us`] at the resolution of the kernel's tick (a few milliseconds), for
/// stamps taken once per callback: reading it costs a fraction of the precise clock,
/// and the watch that compares it with the precise one counts in hundreds of ms.
pub fn monotonic_coarse_us() -> i64 {
    clock_us(libc::CLOCK_MONOTONIC_COARSE)
}

fn clock_us(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into a local timespec.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec
        .saturating_mul(1_000_000)
        .saturating_add(ts.tv_nsec / 1000)
}

/// The signals that end a process with a crash, caught to blame the plugin.
pub const FATAL_SIGNALS: [libc::c_int; 5] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGABRT,
];

/// The name of a fatal signal ("SIGSEGV", ...), or "signal N".
pub fn signal_name(signal: u32) -> String {
    match signal as libc::c_int {
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGBUS => "SIGBUS".into(),
        libc::SIGILL => "SIGILL".into(),
        libc::SIGFPE => "SIGFPE".into(),
        libc::SIGABRT => "SIGABRT".into(),
        _ => format!("signal {signal}"),
    }
}

/// The message a plugin that crashed the server is failed with at the next start.
pub fn crash_message(c: &Crash) -> String {
    format!(
        "crashed (signal {}, {}) in {}; the server restarted without it. To re-enable it, fix the plugin (or remove it from walker.plugins) and restart the server",
        c.signal,
        signal_name(c.signal),
        c.callback.describe(c.lsn)
    )
}

/// Bit `n` set: signal `n` was ignored (SIG_IGN) before [`install_handler`] (the
/// server ignores SIGFPE in workers without a database connection).
static WAS_IGNORED: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_fatal_signal(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    _ctx: *mut libc::c_void,
) {
    // Only async-signal-safe work here: atomics, getpid, pthread_self, signal, raise.
    // A fault (si_code > 0) or a signal this process sent itself (abort) is a crash
    // here; one sent by another process is not blamed on anyone, and keeps being
    // ignored when the server ignored it.
    // SAFETY: the kernel passes a valid siginfo_t with SA_SIGINFO; getpid is
    // async-signal-safe.
    let own = unsafe {
        info.as_ref()
            .is_some_and(|i| i.si_code > 0 || i.si_pid() == libc::getpid())
    };
    let bit = 1u64.checked_shl(signal as u32).unwrap_or(0);
    if !own && WAS_IGNORED.load(Ordering::Relaxed) & bit != 0 {
        return;
    }
    if let (true, Some(l)) = (own, ledger()) {
        // SAFETY: pthread_self is async-signal-safe.
        let me = unsafe { libc::pthread_self() } as u64;
        l.blame(me, signal as u32);
    }
    // SAFETY: restoring the default action and re-raising, both async-signal-safe; the
    // signal is blocked while this handler runs, so the re-raised one is delivered (and
    // ends the process with the same signal) when the handler returns.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
}

/// Installs the fatal-signal handler in this process (the walker worker). The server
/// installs no handler for these signals in a background worker (it ignores SIGFPE,
/// which a fault raises regardless), so nothing is displaced; a handler some other
/// library installed is kept and not replaced.
pub fn install_handler() {
    for sig in FATAL_SIGNALS {
        // SAFETY: querying and installing a process-wide signal action with zeroed,
        // then filled, sigaction structs; the handler is async-signal-safe.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 {
                continue;
            }
            if old.sa_sigaction == libc::SIG_IGN {
                WAS_IGNORED.fetch_or(1u64 << sig, Ordering::Relaxed);
            } else if old.sa_sigaction != libc::SIG_DFL {
                continue;
            }
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_fatal_signal as *const () as usize;
            act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(sig, &act, std::ptr::null_mut());
        }
    }
}

/// Prepares the calling lane thread: the fatal signals are unblocked (lane threads
/// start with every signal blocked; a blocked SIGSEGV kills the process without running
/// any handler), and an alternate signal stack is set up so a stack overflow still
/// reaches the handler. The stack is leaked: the thread may be abandoned, never joined.
pub fn prepare_lane_thread() {
    let stack: &'static mut [u8] = Box::leak(vec![0u8; ALT_STACK_BYTES].into_boxed_slice());
    // SAFETY: installing an alternate stack that lives for the process, and unblocking
    // signals in this thread's own mask with a locally built set.
    unsafe {
        let ss = libc::stack_t {
            ss_sp: stack.as_mut_ptr() as *mut libc::c_void,
            ss_flags: 0,
            ss_size: stack.len(),
        };
        libc::sigaltstack(&ss, std::ptr::null_mut());
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in FATAL_SIGNALS {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lane_is_blamed_only_inside_a_callback_on_its_own_thread() {
        let l = Ledger::boxed();
        let e = l.lane(2).unwrap();
        e.thread.store(77, Ordering::Relaxed);
        // Outside a callback: nobody is blamed.
        assert!(!l.blame(77, 11));
        e.enter(Callback::OnRecord, 0x1234, 5);
        // Another thread (another process's crash, the main thread): not this lane.
        assert!(!l.blame(78, 11));
        assert_eq!(e.crash(), None);
        assert!(l.blame(77, 11));
        assert_eq!(
            e.crash(),
            Some(Crash {
                signal: 11,
                callback: Callback::OnRecord,
                lsn: 0x1234
            })
        );
        // Other entries are untouched.
        assert!(l.lane(0).unwrap().crash().is_none());
        assert!(l.lane(LEDGER_PLUGINS).is_none());
    }

    #[test]
    fn the_crash_mark_survives_a_restart_but_the_thread_does_not() {
        let l = Ledger::boxed();
        let e = l.lane(0).unwrap();
        e.thread.store(5, Ordering::Relaxed);
        e.enter(Callback::SaveState, 0, 9);
        assert!(l.blame(5, 6));
        l.reset_after_restart();
        assert_eq!(e.current(), None);
        assert!(!l.blame(5, 11), "the old thread id means nothing now");
        let c = e.crash().unwrap();
        assert_eq!(c.callback, Callback::SaveState);
        let m = crash_message(&c);
        assert!(
            m.starts_with("crashed (signal 6, SIGABRT) in save_state;"),
            "{m}"
        );
        assert!(m.contains("restart the server"), "{m}");
    }

    #[test]
    fn enter_and_leave_show_the_current_callback() {
        let e = LaneEntry::default();
        assert_eq!(e.current(), None);
        e.enter(Callback::OnIdle, 0x10_0000_0028, 1_000);
        assert_eq!(
            e.current(),
            Some(InCallback {
                callback: Callback::OnIdle,
                lsn: 0x10_0000_0028,
                started_us: 1_000
            })
        );
        assert_eq!(
            Callback::OnRecord.describe(0x10_0000_0028),
            "on_record at LSN 10/28"
        );
        e.leave();
        assert_eq!(e.current(), None);
        // A start time of 0 would read as "not in a callback": stored as 1.
        e.enter(Callback::OnRecord, 1, 0);
        assert!(e.current().is_some());
    }

    #[test]
    fn the_reader_skips_a_record_after_three_crashes_at_it() {
        let l = Ledger::boxed();
        let r = &l.reader;
        r.thread.store(9, Ordering::Relaxed);
        // Not reading a record: a crash elsewhere in the host counts for nothing.
        assert!(!l.blame(9, 11));
        assert_eq!(r.verdict(), ReaderVerdict::Continue);
        for n in 1..=MAX_HOST_CRASHES {
            r.reading(0x500);
            assert!(l.blame(9, 11));
            l.reset_after_restart();
            r.thread.store(9, Ordering::Relaxed);
            if n < MAX_HOST_CRASHES {
                assert_eq!(r.verdict(), ReaderVerdict::Continue, "crash {n}");
            }
        }
        assert_eq!(
            r.verdict(),
            ReaderVerdict::Skip {
                lsn: 0x500,
                crashes: 3,
                signal: 11
            }
        );
        // The skip resets the count.
        assert_eq!(r.verdict(), ReaderVerdict::Continue);
    }

    #[test]
    fn crashes_at_different_positions_do_not_add_up() {
        let (lsn, n) = (AtomicU64::new(0), AtomicU32::new(0));
        note_crash(&lsn, &n, 0x100);
        note_crash(&lsn, &n, 0x100);
        note_crash(&lsn, &n, 0x200);
        assert_eq!(
            (lsn.load(Ordering::Relaxed), n.load(Ordering::Relaxed)),
            (0x200, 1)
        );
        assert_eq!(reader_verdict(0x200, 2, 11), ReaderVerdict::Continue);
        assert!(matches!(
            reader_verdict(0x200, 3, 11),
            ReaderVerdict::Skip { .. }
        ));
        assert_eq!(reader_verdict(0, 9, 11), ReaderVerdict::Continue);
        // Reading past the position clears the count.
        let r = ReaderEntry::default();
        r.crash_lsn.store(0x300, Ordering::Relaxed);
        r.crashes.store(2, Ordering::Relaxed);
        r.passed(0x300);
        assert_eq!(r.crashes.load(Ordering::Relaxed), 2);
        r.passed(0x301);
        assert_eq!(r.crashes.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn threads_creating_the_ledger_at_once_all_get_the_same_one() {
        // Before the fix, each racing caller could publish its own mapping: a lane
        // bound in one was blamed in another (a crash test failed one run in fifty).
        let start = std::sync::Arc::new(std::sync::Barrier::new(8));
        let got: Vec<usize> = (0..8)
            .map(|_| {
                let start = start.clone();
                std::thread::spawn(move || {
                    start.wait();
                    create().expect("mmap") as *const Ledger as usize
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        let published = ledger().unwrap() as *const Ledger as usize;
        assert!(
            got.iter().all(|&p| p == published),
            "{got:x?} vs {published:x}"
        );
    }

    #[test]
    fn a_mapped_ledger_is_shared_with_a_forked_child() {
        let l = create().expect("mmap");
        let e = l.lane(1).unwrap();
        // SAFETY: fork in a test; the child only stores to an atomic and _exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            e.signal.store(11, Ordering::Release);
            // SAFETY: ends the child without running the parent's atexit handlers.
            unsafe { libc::_exit(0) };
        }
        assert!(pid > 0);
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(e.signal.load(Ordering::Acquire), 11);
        e.signal.store(0, Ordering::Release);
    }

    /// Forks a child that runs `crash` inside an `on_record` of lane `index` with the
    /// handler installed; returns the signal the child died of.
    fn crash_in_child(index: usize, crash: fn()) -> i32 {
        // One crashing child at a time; each starts like a server process after a
        // crash restart (no thread of an earlier child is known; pthread ids repeat).
        static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
        let l = create().expect("mmap");
        l.reset_after_restart();
        let e = l.lane(index).unwrap();
        // SAFETY: fork in a test; the child only sets up its handler and crashes.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // The test binary's Rust runtime has its own stack-overflow handler; the
            // server's worker has none: start from the server's defaults.
            // SAFETY: resetting signal actions in the forked child.
            unsafe {
                libc::signal(libc::SIGSEGV, libc::SIG_DFL);
                libc::signal(libc::SIGBUS, libc::SIG_DFL);
            }
            install_handler();
            let t = std::thread::spawn(move || {
                prepare_lane_thread();
                e.bind_current_thread();
                e.enter(Callback::OnRecord, 0x4242, monotonic_us());
                crash();
            });
            let _ = t.join();
            // SAFETY: not reached when the crash ends the process.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(
            libc::WIFSIGNALED(status),
            "the child exited normally: {status}"
        );
        libc::WTERMSIG(status)
    }

    #[test]
    fn a_null_dereference_on_a_lane_is_caught_recorded_and_still_kills() {
        let sig = crash_in_child(5, || {
            // SAFETY: deliberately faulting, in a forked child.
            let v = unsafe { std::ptr::read_volatile(std::ptr::null::<u64>()) };
            std::hint::black_box(v);
        });
        assert_eq!(
            sig,
            libc::SIGSEGV,
            "the process died of the original signal"
        );
        let c = ledger().unwrap().lane(5).unwrap().crash().unwrap();
        assert_eq!(
            (c.signal, c.callback, c.lsn),
            (11, Callback::OnRecord, 0x4242)
        );
    }

    #[test]
    fn an_abort_and_a_stack_overflow_on_a_lane_are_caught() {
        let sig = crash_in_child(6, || std::process::abort());
        assert_eq!(sig, libc::SIGABRT);
        assert_eq!(
            ledger().unwrap().lane(6).unwrap().crash().unwrap().signal,
            6
        );
        fn deep(n: u64) -> u64 {
            let buf = std::hint::black_box([n; 512]);
            if n == u64::MAX {
                return 0;
            }
            deep(n + 1).wrapping_add(buf[(n % 512) as usize])
        }
        let sig = crash_in_child(7, || {
            std::hint::black_box(deep(0));
        });
        assert_eq!(sig, libc::SIGSEGV);
        assert_eq!(
            ledger().unwrap().lane(7).unwrap().crash().unwrap().signal,
            11
        );
    }
}
