//! Plugin-defined settings: their definitions, the storage the server writes, and a
//! snapshot any thread may read.
//!
//! The server (its GUC machinery) owns the values and changes them on the process's
//! main thread (at start, `SET`, reload). The host copies them into snapshots on that
//! thread ([`Setting::refresh`]); dispatch threads read only snapshots, never the
//! server's variables, which a reload may free and replace.

use std::ffi::{c_char, CStr, CString};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use walker_abi::{WalkerSettingContext, WalkerSettingUnit};

/// What kind of value a setting holds, with its bounds.
#[derive(Debug, Clone, PartialEq)]
pub enum SettingKind {
    /// Integer (the server stores 32 bits).
    Int {
        /// Value before anyone sets it (for an enum: the option's index).
        default: i32,
        /// Smallest value accepted.
        min: i32,
        /// Largest value accepted.
        max: i32,
        /// Unit the server shows and parses values in.
        unit: WalkerSettingUnit,
    },
    /// Floating point.
    Real {
        /// Value before anyone sets it (for an enum: the option's index).
        default: f64,
        /// Smallest value accepted.
        min: f64,
        /// Largest value accepted.
        max: f64,
    },
    /// Boolean.
    Bool {
        /// Value before anyone sets it (for an enum: the option's index).
        default: bool,
    },
    /// String.
    Str {
        /// Value before anyone sets it (for an enum: the option's index).
        default: String,
    },
    /// One of `options`, read back as the option's index.
    Enum {
        /// Value before anyone sets it (for an enum: the option's index).
        default: u32,
        /// The options, in order.
        options: Vec<String>,
    },
}

/// A setting to define.
#[derive(Debug, Clone, PartialEq)]
pub struct SettingDef {
    /// `<plugin>.<name>`.
    pub full_name: String,
    /// `<name>`.
    pub name: String,
    /// One-line description.
    pub description: String,
    /// Kind and bounds.
    pub kind: SettingKind,
    /// When it may change.
    pub context: WalkerSettingContext,
}

/// Why a definition is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingError {
    /// The name is not an identifier.
    #[error("setting name \"{0}\" is not a lower-case identifier")]
    BadName(String),
    /// Default outside bounds, or bounds reversed.
    #[error("setting \"{0}\": the default must lie between minimum and maximum")]
    BadBounds(String),
    /// An integer bound does not fit the server's 32-bit integers.
    #[error("setting \"{0}\": integer settings hold 32-bit values ({min}..={max})", min = i32::MIN, max = i32::MAX)]
    OutOfRange(String),
    /// Enum without options, bad option or default index.
    #[error("setting \"{0}\": an enum needs lower-case options and a default index among them")]
    BadEnum(String),
    /// Unknown context value.
    #[error("setting \"{0}\": unknown context {1}")]
    BadContext(String, u32),
    /// Defined twice.
    #[error("setting \"{0}\" is defined twice")]
    Duplicate(String),
    /// Defined outside `init`.
    #[error("setting \"{0}\": settings can only be defined during init")]
    NotDuringInit(String),
    /// The server refused it.
    #[error("setting \"{0}\": {1}")]
    Server(String, String),
}

fn ident(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_lowercase())
        && c.all(|x| x.is_ascii_lowercase() || x.is_ascii_digit() || x == '_')
}

impl SettingDef {
    /// Builds and checks a definition.
    pub fn new(
        plugin: &str,
        name: &str,
        description: &str,
        kind: SettingKind,
        context: WalkerSettingContext,
    ) -> Result<Self, SettingError> {
        let full_name = format!("{plugin}.{name}");
        if !ident(name) {
            return Err(SettingError::BadName(name.to_string()));
        }
        if !(1..=4).contains(&context.0) {
            return Err(SettingError::BadContext(full_name, context.0));
        }
        match &kind {
            SettingKind::Int {
                default, min, max, ..
            } if !(min <= default && default <= max) => {
                return Err(SettingError::BadBounds(full_name))
            }
            SettingKind::Real { default, min, max } if !(min <= default && default <= max) => {
                return Err(SettingError::BadBounds(full_name))
            }
            SettingKind::Enum { default, options }
                if options.is_empty()
                    || *default as usize >= options.len()
                    || !options.iter().all(|o| ident(o)) =>
            {
                return Err(SettingError::BadEnum(full_name))
            }
            _ => {}
        }
        Ok(SettingDef {
            full_name,
            name: name.to_string(),
            description: description.to_string(),
            kind,
            context,
        })
    }

    /// An integer definition from the ABI's 64-bit values.
    pub fn int(
        plugin: &str,
        name: &str,
        description: &str,
        (default, min, max): (i64, i64, i64),
        unit: WalkerSettingUnit,
        context: WalkerSettingContext,
    ) -> Result<Self, SettingError> {
        let fit = |v: i64| {
            i32::try_from(v).map_err(|_| SettingError::OutOfRange(format!("{plugin}.{name}")))
        };
        let kind = SettingKind::Int {
            default: fit(default)?,
            min: fit(min)?,
            max: fit(max)?,
            unit,
        };
        SettingDef::new(plugin, name, description, kind, context)
    }
}

/// The variable the server writes for one setting (allocated once, never freed).
#[derive(Debug, Clone, Copy)]
pub enum Storage {
    /// `int`.
    Int(*mut i32),
    /// `double`.
    Real(*mut f64),
    /// `bool`.
    Bool(*mut bool),
    /// `char *`.
    Str(*mut *mut c_char),
    /// `int` (enum index).
    Enum(*mut i32),
}

/// A setting's value as last copied from the server.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Integer.
    Int(i64),
    /// Floating point.
    Real(f64),
    /// Boolean.
    Bool(bool),
    /// String.
    Str(String),
    /// Enum index.
    Enum(u32),
}

/// How often a plugin setting of this process was created or assigned by the server
/// (the host's assign hooks call [`note_assigned`]). Starts at 1 so that a plugin
/// that never refreshed (its count is 0) refreshes once.
static ASSIGNED: AtomicU64 = AtomicU64::new(1);

/// Records that the server assigned a plugin setting (`SET`, `RESET`, a reload, the end
/// of a transaction that set one, its definition): the next
/// [`crate::registry::PluginSlot::refresh_settings`] copies the values again.
pub fn note_assigned() {
    ASSIGNED.fetch_add(1, Ordering::Release);
}

/// The count [`note_assigned`] advances.
pub fn assignments() -> u64 {
    ASSIGNED.load(Ordering::Acquire)
}

/// A defined setting.
pub struct Setting {
    /// Its definition.
    pub def: SettingDef,
    storage: Storage,
    snapshot: Mutex<Value>,
    /// The raw bits of the numeric value last copied into `snapshot` (see
    /// [`Setting::raw_bits`]): an unchanged value is not copied again, without
    /// taking the mutex (hooks refresh at every backend event). Unused for strings.
    copied_bits: AtomicU64,
}

// SAFETY: `storage` points to process-lifetime variables that are only dereferenced in
// `refresh`, which the host calls on the process's main thread; other threads read
// the mutex-protected snapshot.
unsafe impl Send for Setting {}
// SAFETY: as above.
unsafe impl Sync for Setting {}

impl Setting {
    /// Allocates the variable for `def`, initialised to its default.
    pub fn new(def: SettingDef) -> Setting {
        let (storage, value) = match &def.kind {
            SettingKind::Int { default, .. } => (
                Storage::Int(Box::leak(Box::new(*default))),
                Value::Int(*default as i64),
            ),
            SettingKind::Real { default, .. } => (
                Storage::Real(Box::leak(Box::new(*default))),
                Value::Real(*default),
            ),
            SettingKind::Bool { default } => (
                Storage::Bool(Box::leak(Box::new(*default))),
                Value::Bool(*default),
            ),
            SettingKind::Str { default } => (
                Storage::Str(Box::leak(Box::new(std::ptr::null_mut()))),
                Value::Str(default.clone()),
            ),
            SettingKind::Enum { default, .. } => (
                Storage::Enum(Box::leak(Box::new(*default as i32))),
                Value::Enum(*default),
            ),
        };
        let s = Setting {
            def,
            storage,
            snapshot: Mutex::new(value),
            copied_bits: AtomicU64::new(0),
        };
        // A host that writes the variable itself (not through the server) does so
        // right after this: the next refresh must look.
        note_assigned();
        // SAFETY: the variable was just allocated with the default in the snapshot.
        if let Some(bits) = unsafe { s.raw_bits() } {
            s.copied_bits.store(bits, Ordering::Relaxed);
        }
        s
    }

    /// The variable's current value as bits, for numeric settings (`None` for strings).
    ///
    /// # Safety
    /// As for [`Setting::refresh`] (or right after allocation, before the server has it).
    unsafe fn raw_bits(&self) -> Option<u64> {
        // SAFETY: the caller's contract: the variables are not written concurrently.
        unsafe {
            match self.storage {
                Storage::Int(p) | Storage::Enum(p) => Some(u64::from(*p as u32)),
                Storage::Real(p) => Some((*p).to_bits()),
                Storage::Bool(p) => Some(u64::from(*p)),
                Storage::Str(_) => None,
            }
        }
    }

    /// The variable to hand to the server.
    pub fn storage(&self) -> Storage {
        self.storage
    }

    /// Copies the server's current value into the snapshot.
    ///
    /// # Safety
    /// Call only on the thread that the server changes settings on, after the setting
    /// was defined with [`Setting::storage`].
    pub unsafe fn refresh(&self) {
        // SAFETY: forwarded from the caller.
        let bits = unsafe { self.raw_bits() };
        if bits.is_some_and(|b| b == self.copied_bits.load(Ordering::Relaxed)) {
            return;
        }
        let mut snapshot = self.snapshot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = bits {
            self.copied_bits.store(b, Ordering::Relaxed);
        }
        // SAFETY: the caller guarantees we are on the thread that writes these variables.
        let v = unsafe {
            match self.storage {
                Storage::Int(p) => Value::Int(*p as i64),
                Storage::Real(p) => Value::Real(*p),
                Storage::Bool(p) => Value::Bool(*p),
                Storage::Enum(p) => Value::Enum((*p).max(0) as u32),
                Storage::Str(p) => {
                    let s = *p;
                    let bytes = if s.is_null() {
                        &b""[..]
                    } else {
                        CStr::from_ptr(s).to_bytes()
                    };
                    // Hooks refresh at every backend event: an unchanged string is
                    // compared, not copied again.
                    if matches!(&*snapshot, Value::Str(cur) if cur.as_bytes() == bytes) {
                        return;
                    }
                    Value::Str(String::from_utf8_lossy(bytes).into_owned())
                }
            }
        };
        *snapshot = v;
    }

    /// The snapshot.
    pub fn value(&self) -> Value {
        self.snapshot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Default of a string setting as a C string (for the server's definition call).
pub fn c_default(def: &SettingDef) -> Option<CString> {
    match &def.kind {
        SettingKind::Str { default } => {
            Some(CString::new(default.replace('\0', " ")).expect("NULs replaced"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_checked() {
        let c = WalkerSettingContext::SIGHUP;
        assert!(SettingDef::int("p", "n", "", (5, 0, 10), WalkerSettingUnit::NONE, c).is_ok());
        assert_eq!(
            SettingDef::int("p", "n", "", (11, 0, 10), WalkerSettingUnit::NONE, c),
            Err(SettingError::BadBounds("p.n".into()))
        );
        assert_eq!(
            SettingDef::int("p", "n", "", (0, 0, 1 << 40), WalkerSettingUnit::NONE, c),
            Err(SettingError::OutOfRange("p.n".into()))
        );
        assert!(SettingDef::new("p", "Bad", "", SettingKind::Bool { default: true }, c).is_err());
        assert!(SettingDef::new(
            "p",
            "r",
            "",
            SettingKind::Real {
                default: f64::NAN,
                min: 0.0,
                max: 1.0
            },
            c
        )
        .is_err());
        let e = SettingKind::Enum {
            default: 2,
            options: vec!["a".into(), "b".into()],
        };
        assert_eq!(
            SettingDef::new("p", "e", "", e, c),
            Err(SettingError::BadEnum("p.e".into()))
        );
        assert!(SettingDef::new(
            "p",
            "b",
            "",
            SettingKind::Bool { default: true },
            WalkerSettingContext(9)
        )
        .is_err());
    }

    #[test]
    fn snapshot_follows_the_variable() {
        let c = WalkerSettingContext::SIGHUP;
        let s = Setting::new(
            SettingDef::int("p", "n", "", (5, 0, 10), WalkerSettingUnit::NONE, c).unwrap(),
        );
        assert_eq!(s.value(), Value::Int(5));
        if let Storage::Int(p) = s.storage() {
            // SAFETY: single-threaded test; the pointer is the setting's own variable.
            unsafe { *p = 7 };
        }
        assert_eq!(s.value(), Value::Int(5), "not refreshed yet");
        // SAFETY: this test thread is the only writer.
        unsafe { s.refresh() };
        assert_eq!(s.value(), Value::Int(7));

        let st = Setting::new(
            SettingDef::new(
                "p",
                "s",
                "",
                SettingKind::Str {
                    default: "x".into(),
                },
                c,
            )
            .unwrap(),
        );
        assert_eq!(st.value(), Value::Str("x".into()));
        let owned = CString::new("hello").unwrap();
        if let Storage::Str(p) = st.storage() {
            // SAFETY: as above; `owned` outlives the refresh.
            unsafe { *p = owned.as_ptr() as *mut c_char };
        }
        // SAFETY: as above.
        unsafe { st.refresh() };
        assert_eq!(st.value(), Value::Str("hello".into()));
    }

    /// The buffer of a string setting's snapshot.
    fn snapshot_buffer(s: &Setting) -> *const u8 {
        match &*s.snapshot.lock().unwrap() {
            Value::Str(v) => v.as_ptr(),
            other => panic!("not a string: {other:?}"),
        }
    }

    #[test]
    fn an_unchanged_string_is_not_copied_again() {
        let c = WalkerSettingContext::SIGHUP;
        let def = SettingDef::new(
            "p",
            "s",
            "",
            SettingKind::Str {
                default: "x".into(),
            },
            c,
        );
        let st = Setting::new(def.unwrap());
        let first = CString::new("tenant_a,tenant_b").unwrap();
        let Storage::Str(p) = st.storage() else {
            panic!("a string setting's storage")
        };
        // SAFETY: single-threaded test; `first` outlives every refresh that reads it.
        unsafe { *p = first.as_ptr() as *mut c_char };
        // SAFETY: this test thread is the only writer.
        unsafe { st.refresh() };
        let buffer = snapshot_buffer(&st);
        // The same text at another address (the server replaces the pointer on SET).
        let same = CString::new("tenant_a,tenant_b").unwrap();
        // SAFETY: as above.
        unsafe { *p = same.as_ptr() as *mut c_char };
        // SAFETY: as above.
        unsafe { st.refresh() };
        assert_eq!(snapshot_buffer(&st), buffer, "kept, not copied");
        assert_eq!(st.value(), Value::Str("tenant_a,tenant_b".into()));
        // A change is copied; a null pointer reads as empty.
        let other = CString::new("tenant_c").unwrap();
        // SAFETY: as above.
        unsafe { *p = other.as_ptr() as *mut c_char };
        // SAFETY: as above.
        unsafe { st.refresh() };
        assert_eq!(st.value(), Value::Str("tenant_c".into()));
        // SAFETY: as above.
        unsafe { *p = std::ptr::null_mut() };
        // SAFETY: as above.
        unsafe { st.refresh() };
        assert_eq!(st.value(), Value::Str(String::new()));
    }
}
