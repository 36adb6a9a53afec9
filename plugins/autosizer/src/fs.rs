//! The size and free space of the filesystem holding pg_wal, from `statvfs`.
//!
//! Plain libc, no PostgreSQL call: safe on the dispatch thread. `statvfs` follows a
//! symlinked `pg_wal` to the filesystem the WAL is really on.

/// What `statvfs` tells of a filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsSizes {
    /// Its size in bytes (`f_blocks × f_frsize`, what `df` shows as its size).
    pub total_bytes: u64,
    /// Bytes an unprivileged process may still write (`f_bavail × f_frsize`).
    pub free_bytes: u64,
}

/// The sizes of the filesystem holding `dir`; the error names the path and the cause.
pub fn sizes(dir: &str) -> Result<FsSizes, String> {
    let c =
        std::ffi::CString::new(dir).map_err(|_| format!("the path {dir:?} holds a NUL byte"))?;
    // SAFETY: statvfs fills a zeroed struct it owns; the path is NUL-terminated and
    // outlives the call.
    let st = unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut st) != 0 {
            return Err(format!(
                "statvfs of {dir} failed: {}",
                std::io::Error::last_os_error()
            ));
        }
        st
    };
    let frsize = st.f_frsize as u64;
    Ok(FsSizes {
        total_bytes: (st.f_blocks as u64).saturating_mul(frsize),
        free_bytes: (st.f_bavail as u64).saturating_mul(frsize),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_directory_has_sizes_and_a_missing_one_says_why() {
        let s = sizes("/").unwrap();
        assert!(s.total_bytes > 0 && s.free_bytes <= s.total_bytes, "{s:?}");
        let e = sizes("/no/such/walker/dir").unwrap_err();
        assert!(
            e.contains("/no/such/walker/dir") && e.contains("No such file"),
            "{e}"
        );
    }
}
