//! ABI negotiation: deciding from a plugin's descriptor header whether the host can
//! use it, and copying what it can use into a zeroed descriptor of the host's layout.

use walker_abi::{
    sdk::c_str, WalkerPluginDescriptor, WalkerType, WALKER_ABI_MAJOR, WALKER_ABI_MINOR,
    WALKER_DESCRIPTOR_V1_0_SIZE,
};

/// The three fields every descriptor starts with, whatever its version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbiHeader {
    /// Plugin's ABI major.
    pub major: u32,
    /// Plugin's ABI minor.
    pub minor: u32,
    /// Plugin's `sizeof(WalkerPluginDescriptor)`.
    pub struct_size: u32,
}

/// Why a descriptor is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AbiError {
    /// Different major version.
    #[error("the plugin was built for walker ABI {plugin_major}.{plugin_minor}, but this walker speaks ABI {host_major}.{host_minor}; rebuild the plugin against walker-abi {host_major}.x")]
    Major {
        /// ABI major the plugin was built for.
        plugin_major: u32,
        /// ABI minor the plugin was built for.
        plugin_minor: u32,
        /// This host's ABI major.
        host_major: u32,
        /// This host's ABI minor.
        host_minor: u32,
    },
    /// Same major, newer minor than the host.
    #[error("the plugin was built for walker ABI {plugin_major}.{plugin_minor}, newer than this walker's ABI {host_major}.{host_minor}; upgrade walker or rebuild the plugin against walker-abi {host_major}.{host_minor}")]
    MinorTooNew {
        /// ABI major the plugin was built for.
        plugin_major: u32,
        /// ABI minor the plugin was built for.
        plugin_minor: u32,
        /// This host's ABI major.
        host_major: u32,
        /// This host's ABI minor.
        host_minor: u32,
    },
    /// The descriptor is smaller than ABI 1.0's.
    #[error("the plugin's descriptor is {size} bytes, smaller than the {min} bytes of ABI 1.0's; it was not built from walker-abi's header or types: rebuild it against walker-abi")]
    TooSmall {
        /// The descriptor's `struct_size`.
        size: u32,
        /// ABI 1.0's descriptor size.
        min: u32,
    },
    /// The entry function returned null.
    #[error("walker_plugin_entry returned a null descriptor; the plugin must return a pointer to a static WalkerPluginDescriptor")]
    NullDescriptor,
    /// Only one of `save_state` / `load_state` is provided.
    #[error("the plugin provides {has} but not {lacks}; snapshots need both (or neither): fix the plugin's descriptor")]
    HalfSnapshot {
        /// The snapshot callback provided.
        has: &'static str,
        /// The snapshot callback missing.
        lacks: &'static str,
    },
    /// A declared view or column is unusable.
    #[error("view declaration: {0}; fix the plugin's views")]
    BadView(String),
    /// A declared SQL function is unusable.
    #[error("function declaration: {0}; fix the plugin's functions")]
    BadFunction(String),
}

/// Checks a header against this host's ABI.
pub fn check_header(h: AbiHeader) -> Result<(), AbiError> {
    check_header_against(
        h,
        WALKER_ABI_MAJOR,
        WALKER_ABI_MINOR,
        WALKER_DESCRIPTOR_V1_0_SIZE,
    )
}

/// Checks a header against a given host version (for tests of future versions).
pub fn check_header_against(
    h: AbiHeader,
    host_major: u32,
    host_minor: u32,
    min_size: u32,
) -> Result<(), AbiError> {
    if h.major != host_major {
        return Err(AbiError::Major {
            plugin_major: h.major,
            plugin_minor: h.minor,
            host_major,
            host_minor,
        });
    }
    if h.minor > host_minor {
        return Err(AbiError::MinorTooNew {
            plugin_major: h.major,
            plugin_minor: h.minor,
            host_major,
            host_minor,
        });
    }
    if h.struct_size < min_size {
        return Err(AbiError::TooSmall {
            size: h.struct_size,
            min: min_size,
        });
    }
    Ok(())
}

/// Reads a plugin's descriptor: checks the header, then copies
/// `min(struct_size, host size)` bytes into a zeroed host descriptor.
///
/// # Safety
/// `ptr` must be null or point to at least 12 readable bytes, and to `struct_size`
/// readable bytes when the header passes.
pub unsafe fn read_descriptor(
    ptr: *const WalkerPluginDescriptor,
) -> Result<WalkerPluginDescriptor, AbiError> {
    if ptr.is_null() {
        return Err(AbiError::NullDescriptor);
    }
    // SAFETY: the caller guarantees 12 readable bytes; the three u32 fields come first
    // in every version, and unaligned reads cover a misaligned pointer.
    let header = unsafe {
        let p = ptr as *const u32;
        AbiHeader {
            major: p.read_unaligned(),
            minor: p.add(1).read_unaligned(),
            struct_size: p.add(2).read_unaligned(),
        }
    };
    check_header(header)?;
    let host_size = std::mem::size_of::<WalkerPluginDescriptor>();
    let n = (header.struct_size as usize).min(host_size);
    let mut out = std::mem::MaybeUninit::<WalkerPluginDescriptor>::zeroed();
    // SAFETY: `n` bytes are readable (header passed, caller's contract) and fit into
    // `out`; all-zero bytes are a valid descriptor (null pointers, `None` callbacks),
    // and the copied prefix comes from a descriptor of the same major layout.
    unsafe {
        std::ptr::copy_nonoverlapping(ptr as *const u8, out.as_mut_ptr() as *mut u8, n);
    }
    // SAFETY: as above.
    let desc = unsafe { out.assume_init() };
    match (desc.save_state.is_some(), desc.load_state.is_some()) {
        (true, false) => Err(AbiError::HalfSnapshot {
            has: "save_state",
            lacks: "load_state",
        }),
        (false, true) => Err(AbiError::HalfSnapshot {
            has: "load_state",
            lacks: "save_state",
        }),
        _ => Ok(desc),
    }
}

/// A view as the host keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewInfo {
    /// View name (without the plugin prefix).
    pub name: String,
    /// Description, possibly empty.
    pub description: String,
    /// Columns: name and type.
    pub columns: Vec<(String, WalkerType)>,
}

fn is_identifier(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_lowercase() || f == '_')
        && c.all(|x| x.is_ascii_lowercase() || x.is_ascii_digit() || x == '_')
        && s.len() <= 63
}

/// The SQL name of a column type.
pub fn sql_type(t: WalkerType) -> Option<&'static str> {
    Some(match t {
        WalkerType::INT8 => "int8",
        WalkerType::FLOAT8 => "float8",
        WalkerType::TEXT => "text",
        WalkerType::BOOL => "bool",
        WalkerType::LSN => "pg_lsn",
        WalkerType::TIMESTAMPTZ => "timestamptz",
        WalkerType::JSONB => "jsonb",
        _ => return None,
    })
}

/// A SQL function as the host keeps it (ABI 1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionInfo {
    /// Function name (without the plugin prefix).
    pub name: String,
    /// Description, possibly empty.
    pub description: String,
    /// Result type: JSONB or TEXT.
    pub result: WalkerType,
    /// Who may call it.
    pub access: Access,
}

/// Who may call a plugin function (the ABI's [`walker_abi::WalkerAccess`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `walker_monitor` members.
    Monitor,
    /// `walker_admin` members.
    Admin,
    /// Members of the plugin's own role, and `walker_admin` members.
    Role,
}

impl Access {
    fn from_abi(a: walker_abi::WalkerAccess) -> Option<Access> {
        match a {
            walker_abi::WalkerAccess::MONITOR => Some(Access::Monitor),
            walker_abi::WalkerAccess::ADMIN => Some(Access::Admin),
            walker_abi::WalkerAccess::ROLE => Some(Access::Role),
            _ => None,
        }
    }
}

/// Reads the plugin's own SQL and role (ABI 1.3; `None` before it).
///
/// # Safety
/// `desc.sql` and `desc.role` must be null or NUL-terminated strings.
pub unsafe fn read_sql_and_role(
    plugin: &str,
    desc: &WalkerPluginDescriptor,
) -> Result<(Option<String>, Option<String>), AbiError> {
    // SAFETY: the caller's contract.
    let sql = unsafe { c_str(desc.sql) }.map(str::to_string);
    // SAFETY: the caller's contract.
    let role = unsafe { c_str(desc.role) }.map(str::to_string);
    if let Some(r) = &role {
        if !r.starts_with("walker_") || !is_identifier(r) {
            return Err(AbiError::BadFunction(format!(
                "plugin {plugin} names its role \"{r}\"; a role must be a lower-case identifier starting with walker_"
            )));
        }
    }
    Ok((sql, role))
}

/// Reads and checks the SQL functions a descriptor declares (none before ABI 1.2, and
/// none without a `call` callback).
///
/// # Safety
/// `desc.functions` must point to `desc.n_functions` entries with valid strings.
pub unsafe fn read_functions(
    plugin: &str,
    desc: &WalkerPluginDescriptor,
) -> Result<Vec<FunctionInfo>, AbiError> {
    let mut out: Vec<FunctionInfo> = Vec::new();
    if desc.n_functions == 0 {
        return Ok(out);
    }
    let bad = |m: String| Err(AbiError::BadFunction(m));
    if desc.functions.is_null() {
        return bad(format!(
            "n_functions is {} but functions is null",
            desc.n_functions
        ));
    }
    if desc.call.is_none() {
        return bad("functions are declared but the call callback is missing".into());
    }
    for i in 0..desc.n_functions as usize {
        // SAFETY: the caller guarantees `n_functions` entries.
        let f = unsafe { &*desc.functions.add(i) };
        // SAFETY: NUL-terminated or null per the ABI.
        let Some(name) = (unsafe { c_str(f.name) }) else {
            return bad(format!("function {i} has no name"));
        };
        let full = format!("{plugin}_{name}");
        if !is_identifier(name) || !is_identifier(&full) {
            return bad(format!("function name \"{name}\" is not a lower-case identifier (or \"{full}\" exceeds 63 bytes)"));
        }
        if out.iter().any(|o| o.name == name) {
            return bad(format!("function \"{name}\" declared twice"));
        }
        if f.result != WalkerType::JSONB && f.result != WalkerType::TEXT {
            return bad(format!(
                "function \"{name}\" returns type {}; only jsonb and text are supported",
                f.result.0
            ));
        }
        let Some(access) = Access::from_abi(f.access) else {
            return bad(format!(
                "function \"{name}\" has access {}; 0 (monitor), 1 (admin) and 2 (the plugin's role) exist",
                f.access.0
            ));
        };
        // SAFETY: NUL-terminated or null per the ABI.
        if access == Access::Role && unsafe { c_str(desc.role) }.is_none() {
            return bad(format!(
                "function \"{name}\" is granted to the plugin's role, but the plugin names no role"
            ));
        }
        // SAFETY: as above.
        let description = unsafe { c_str(f.description) }.unwrap_or("").to_string();
        out.push(FunctionInfo {
            name: name.to_string(),
            description,
            result: f.result,
            access,
        });
    }
    Ok(out)
}

/// Reads and checks the views a descriptor declares.
///
/// # Safety
/// `desc.views` must point to `desc.n_views` views whose strings and column arrays are valid.
pub unsafe fn read_views(
    plugin: &str,
    desc: &WalkerPluginDescriptor,
) -> Result<Vec<ViewInfo>, AbiError> {
    let mut out = Vec::new();
    if desc.n_views == 0 {
        return Ok(out);
    }
    if desc.views.is_null() {
        return Err(AbiError::BadView(format!(
            "n_views is {} but views is null",
            desc.n_views
        )));
    }
    for i in 0..desc.n_views as usize {
        // SAFETY: the caller guarantees `n_views` entries.
        let v = unsafe { &*desc.views.add(i) };
        // SAFETY: the caller guarantees NUL-terminated strings or null.
        let name = unsafe { c_str(v.name) }
            .ok_or_else(|| AbiError::BadView(format!("view {i} has no name")))?;
        let full = format!("{plugin}_{name}");
        if !is_identifier(name) || !is_identifier(&full) {
            return Err(AbiError::BadView(format!("view name \"{name}\" is not a lower-case identifier (or \"{full}\" exceeds 63 bytes)")));
        }
        if out.iter().any(|o: &ViewInfo| o.name == name) {
            return Err(AbiError::BadView(format!("view \"{name}\" declared twice")));
        }
        // SAFETY: as above.
        let description = unsafe { c_str(v.description) }.unwrap_or("").to_string();
        if v.n_columns == 0 || v.columns.is_null() {
            return Err(AbiError::BadView(format!("view \"{name}\" has no columns")));
        }
        let mut columns: Vec<(String, WalkerType)> = Vec::new();
        for j in 0..v.n_columns as usize {
            // SAFETY: the caller guarantees `n_columns` entries.
            let c = unsafe { &*v.columns.add(j) };
            // SAFETY: as above.
            let cname = unsafe { c_str(c.name) }.ok_or_else(|| {
                AbiError::BadView(format!("view \"{name}\" column {j} has no name"))
            })?;
            if !is_identifier(cname) {
                return Err(AbiError::BadView(format!(
                    "column \"{cname}\" of view \"{name}\" is not a lower-case identifier"
                )));
            }
            if sql_type(c.ty).is_none() {
                return Err(AbiError::BadView(format!(
                    "column \"{cname}\" of view \"{name}\" has unknown type {}",
                    c.ty.0
                )));
            }
            if columns.iter().any(|(n, _)| n == cname) {
                return Err(AbiError::BadView(format!(
                    "column \"{cname}\" of view \"{name}\" declared twice"
                )));
            }
            columns.push((cname.to_string(), c.ty));
        }
        out.push(ViewInfo {
            name: name.to_string(),
            description,
            columns,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::c_char;
    use walker_abi::{WalkerColumn, WalkerView};

    const V1: u32 = WALKER_DESCRIPTOR_V1_0_SIZE;

    fn h(major: u32, minor: u32, size: u32) -> AbiHeader {
        AbiHeader {
            major,
            minor,
            struct_size: size,
        }
    }

    #[test]
    fn same_version_is_accepted() {
        assert_eq!(
            check_header(h(WALKER_ABI_MAJOR, WALKER_ABI_MINOR, V1)),
            Ok(())
        );
    }

    #[test]
    fn other_major_is_refused_both_ways() {
        assert!(matches!(
            check_header(h(2, 0, V1)),
            Err(AbiError::Major {
                plugin_major: 2,
                ..
            })
        ));
        assert!(matches!(
            check_header(h(0, 9, V1)),
            Err(AbiError::Major {
                plugin_major: 0,
                ..
            })
        ));
    }

    #[test]
    fn older_minor_is_accepted_newer_refused() {
        // A host at 1.3 accepts 1.0..=1.3 and refuses 1.4.
        assert_eq!(check_header_against(h(1, 0, 100), 1, 3, 100), Ok(()));
        assert_eq!(check_header_against(h(1, 3, 120), 1, 3, 100), Ok(()));
        assert!(matches!(
            check_header_against(h(1, 4, 120), 1, 3, 100),
            Err(AbiError::MinorTooNew {
                plugin_minor: 4,
                ..
            })
        ));
    }

    #[test]
    fn descriptor_smaller_than_v1_is_refused() {
        assert_eq!(
            check_header(h(1, 0, 12)),
            Err(AbiError::TooSmall { size: 12, min: V1 })
        );
        assert_eq!(
            check_header(h(1, 0, V1 - 8)),
            Err(AbiError::TooSmall {
                size: V1 - 8,
                min: V1
            })
        );
    }

    #[test]
    fn messages_name_versions_and_fix() {
        let m = check_header(h(2, 1, V1)).unwrap_err().to_string();
        assert!(
            m.contains("ABI 2.1")
                && m.contains(&format!("ABI 1.{WALKER_ABI_MINOR}"))
                && m.contains("rebuild"),
            "{m}"
        );
    }

    unsafe extern "C" fn save(
        _: *mut walker_abi::WalkerPlugin,
        _: *const walker_abi::WalkerStateSink,
    ) -> walker_abi::WalkerStatus {
        walker_abi::WalkerStatus::OK
    }

    #[test]
    fn a_v1_0_descriptor_has_no_snapshot_callbacks() {
        // A 1.0 plugin's descriptor ends before save_state: whatever follows it in the
        // plugin's memory must not be read as callbacks.
        // SAFETY: zeroed is valid for the descriptor.
        let mut d: WalkerPluginDescriptor = unsafe { std::mem::zeroed() };
        d.abi_major = 1;
        d.struct_size = V1;
        d.save_state = Some(save);
        // SAFETY: `d` is a full descriptor.
        let got = unsafe { read_descriptor(&d) }.unwrap();
        assert!(got.save_state.is_none() && got.load_state.is_none());
        // The 1.0 size is the offset of the first 1.1 field.
        assert_eq!(
            V1 as usize,
            std::mem::offset_of!(WalkerPluginDescriptor, save_state)
        );
    }

    #[test]
    fn half_a_snapshot_pair_is_refused() {
        // SAFETY: zeroed is valid for the descriptor.
        let mut d: WalkerPluginDescriptor = unsafe { std::mem::zeroed() };
        d.abi_major = 1;
        d.abi_minor = 1;
        d.struct_size = std::mem::size_of::<WalkerPluginDescriptor>() as u32;
        d.save_state = Some(save);
        // SAFETY: `d` is a full descriptor.
        let Err(e) = (unsafe { read_descriptor(&d) }) else {
            panic!("accepted")
        };
        assert_eq!(
            e,
            AbiError::HalfSnapshot {
                has: "save_state",
                lacks: "load_state"
            }
        );
        assert!(e.to_string().contains("snapshots need both"));
    }

    #[test]
    fn larger_descriptor_is_truncated_to_host_layout() {
        // A descriptor of a future minor, with 64 extra bytes after ours, but claiming
        // minor 0 so this host accepts it: the extra bytes must be ignored, not read
        // into our struct.
        #[repr(C)]
        struct Bigger {
            d: WalkerPluginDescriptor,
            extra: [u8; 64],
        }
        // SAFETY: zeroed is valid for the descriptor (null pointers, None callbacks).
        let mut b: Bigger = unsafe { std::mem::zeroed() };
        b.d.abi_major = 1;
        b.d.struct_size = std::mem::size_of::<Bigger>() as u32;
        b.d.n_views = 0;
        b.d.rmgr_mask = [1, 2, 3, 4];
        b.extra = [0xAA; 64];
        // SAFETY: `b` is readable for its whole size.
        let d = unsafe { read_descriptor(&b.d) }.unwrap();
        assert_eq!(d.rmgr_mask, [1, 2, 3, 4]);
        assert!(d.on_record.is_none());
    }

    #[test]
    fn null_descriptor_is_refused() {
        assert!(matches!(
            // SAFETY: null is allowed.
            unsafe { read_descriptor(std::ptr::null()) },
            Err(AbiError::NullDescriptor)
        ));
    }

    fn cs(s: &'static [u8]) -> *const c_char {
        s.as_ptr() as *const c_char
    }

    unsafe extern "C" fn call(
        _: *mut walker_abi::WalkerPlugin,
        _: u32,
        _: *const u8,
        _: usize,
        _: *const walker_abi::WalkerStateSink,
    ) -> walker_abi::WalkerStatus {
        walker_abi::WalkerStatus::OK
    }

    #[test]
    fn functions_are_checked() {
        let f = |name: &'static [u8], result| walker_abi::WalkerFunction {
            name: cs(name),
            description: std::ptr::null(),
            result,
            access: walker_abi::WalkerAccess::ADMIN,
        };
        // SAFETY: zeroed descriptor is valid.
        let mut d: WalkerPluginDescriptor = unsafe { std::mem::zeroed() };
        let good = [
            f(b"status\0", WalkerType::JSONB),
            f(b"metrics\0", WalkerType::TEXT),
        ];
        d.functions = good.as_ptr();
        d.n_functions = 2;
        // SAFETY: pointers above are valid.
        let e = unsafe { read_functions("auto", &d) }.unwrap_err();
        assert!(e.to_string().contains("call callback is missing"), "{e}");
        d.call = Some(call);
        // SAFETY: as above.
        let got = unsafe { read_functions("auto", &d) }.unwrap();
        assert_eq!(
            (got[0].name.as_str(), got[1].result, got[1].access),
            ("status", WalkerType::TEXT, Access::Admin)
        );
        for (bad, why) in [
            ([f(b"Bad\0", WalkerType::JSONB)], "lower-case identifier"),
            ([f(b"n\0", WalkerType::INT8)], "only jsonb and text"),
        ] {
            d.functions = bad.as_ptr();
            d.n_functions = 1;
            // SAFETY: as above.
            let e = unsafe { read_functions("auto", &d) }
                .unwrap_err()
                .to_string();
            assert!(e.contains(why), "{e}");
        }
        let twice = [f(b"a\0", WalkerType::TEXT), f(b"a\0", WalkerType::TEXT)];
        d.functions = twice.as_ptr();
        d.n_functions = 2;
        // SAFETY: as above.
        assert!(unsafe { read_functions("auto", &d) }
            .unwrap_err()
            .to_string()
            .contains("declared twice"));
    }

    #[test]
    fn views_are_checked() {
        let cols = [
            WalkerColumn {
                name: cs(b"rmgr\0"),
                ty: WalkerType::TEXT,
            },
            WalkerColumn {
                name: cs(b"records\0"),
                ty: WalkerType::INT8,
            },
        ];
        let views = [WalkerView {
            name: cs(b"rmgrs\0"),
            description: cs(b"per rmgr\0"),
            columns: cols.as_ptr(),
            n_columns: 2,
        }];
        // SAFETY: zeroed descriptor is valid.
        let mut d: WalkerPluginDescriptor = unsafe { std::mem::zeroed() };
        d.views = views.as_ptr();
        d.n_views = 1;
        // SAFETY: pointers above are valid.
        let got = unsafe { read_views("stats", &d) }.unwrap();
        assert_eq!(got[0].name, "rmgrs");
        assert_eq!(
            got[0].columns,
            vec![
                ("rmgr".to_string(), WalkerType::TEXT),
                ("records".to_string(), WalkerType::INT8)
            ]
        );

        let bad_cols = [WalkerColumn {
            name: cs(b"x\0"),
            ty: WalkerType(99),
        }];
        let bad = [WalkerView {
            name: cs(b"v\0"),
            description: std::ptr::null(),
            columns: bad_cols.as_ptr(),
            n_columns: 1,
        }];
        d.views = bad.as_ptr();
        // SAFETY: pointers above are valid.
        let e = unsafe { read_views("stats", &d) }.unwrap_err();
        assert!(e.to_string().contains("unknown type 99"), "{e}");

        let upper = [WalkerView {
            name: cs(b"Bad\0"),
            description: std::ptr::null(),
            columns: cols.as_ptr(),
            n_columns: 2,
        }];
        d.views = upper.as_ptr();
        // SAFETY: pointers above are valid.
        assert!(unsafe { read_views("stats", &d) }.is_err());
    }
}
