//! The C header and the Rust types must agree on every size and offset: a C plugin is
//! compiled against the header, the host against the Rust types. The C compiler
//! measures the header here, independently of cbindgen.

use std::mem::{offset_of, size_of};
use std::path::PathBuf;
use std::process::Command;
use walker_abi::*;

macro_rules! rust_layout {
    ($($ty:ident { $($f:ident),* }),* $(,)?) => {{
        let mut v: Vec<(String, usize)> = Vec::new();
        $(
            v.push((format!("sizeof {}", stringify!($ty)), size_of::<$ty>()));
            $( v.push((format!("offsetof {}.{}", stringify!($ty), stringify!($f)), offset_of!($ty, $f))); )*
        )*
        v
    }};
}

macro_rules! c_program {
    ($($ty:ident { $($f:ident),* }),* $(,)?) => {{
        let mut s = String::from("#include <stdio.h>\n#include <stddef.h>\n#include \"walker_plugin.h\"\nint main(void) {\n");
        $(
            s.push_str(&format!("  printf(\"sizeof %s %zu\\n\", \"{0}\", sizeof({0}));\n", stringify!($ty)));
            $( s.push_str(&format!("  printf(\"offsetof %s.%s %zu\\n\", \"{0}\", \"{1}\", offsetof({0}, {1}));\n", stringify!($ty), stringify!($f))); )*
        )*
        s.push_str("  return 0;\n}\n");
        s
    }};
}

macro_rules! both {
    ($($t:tt)*) => { (rust_layout!($($t)*), c_program!($($t)*)) };
}

#[test]
fn c_header_layout_equals_rust_layout() {
    let (rust, program) = both!(
        WalkerPluginDescriptor {
            abi_major,
            abi_minor,
            struct_size,
            version,
            description,
            rmgr_mask,
            views,
            n_views,
            init,
            shmem_size,
            shmem_init,
            on_record,
            on_idle,
            shutdown,
            view_rows,
            save_state,
            load_state,
            functions,
            n_functions,
            call,
            on_backend,
            sql,
            role
        },
        WalkerRecord {
            struct_size,
            rmid,
            info,
            timeline,
            lsn,
            end_lsn,
            xid,
            toplevel_xid,
            total_len,
            fpi_len,
            main_data,
            main_data_len,
            blocks,
            n_blocks,
            block_images,
            page_size
        },
        WalkerBlockRef {
            block_id,
            fork,
            has_image,
            apply_image,
            has_data,
            tablespace,
            database,
            relfilenode,
            block,
            image_len,
            data,
            data_len
        },
        WalkerHostApi {
            struct_size,
            abi_major,
            abi_minor,
            log,
            set_error,
            shmem_region,
            lock_shared,
            unlock_shared,
            lock_exclusive,
            unlock_exclusive,
            define_int,
            define_real,
            define_bool,
            define_string,
            define_enum,
            get_int,
            get_real,
            get_bool,
            get_enum,
            get_string,
            now_micros,
            rmgr_name,
            server_version_num,
            watch_setting,
            server_setting,
            checkpointer_stats,
            request_service,
            service_result,
            pause
        },
        WalkerValue {
            ty,
            is_null,
            bool_value,
            int_value,
            lsn_value,
            float_value,
            str_ptr,
            str_len
        },
        WalkerView {
            name,
            description,
            columns,
            n_columns
        },
        WalkerColumn { name, ty },
        WalkerRowSink { ctx, emit },
        WalkerStateSink { ctx, write },
        WalkerCheckpointerStats {
            timed,
            requested,
            read_at_micros
        },
        WalkerServiceRequest {
            kind,
            name,
            name_len,
            value,
            value_len
        },
        WalkerFunction {
            name,
            description,
            result,
            access
        },
        WalkerBackendEvent {
            struct_size,
            kind,
            statement,
            backend_type,
            nesting_level,
            read_only,
            pid,
            database,
            role,
            query_id,
            top_xid,
            xid,
            wal_records,
            wal_fpi,
            wal_bytes,
            application_name,
            application_name_len,
            role_name,
            role_name_len,
            database_name,
            database_name_len,
            command,
            command_len,
            never_writes,
            session_reset
        },
        WalkerVerdict {
            struct_size,
            fail_closed,
            sqlstate,
            message_len,
            message,
            detail_len,
            detail,
            hint_len,
            hint
        },
    );
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let src = dir.join("layout.c");
    let exe = dir.join("layout");
    std::fs::write(&src, program).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Werror", "-I"])
        .arg(crate_dir.join("include"))
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler {cc}: {e}"));
    assert!(
        out.status.success(),
        "the header does not compile: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&exe).output().unwrap();
    let c: Vec<(String, usize)> = String::from_utf8(run.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect();
    assert_eq!(c, rust);
}
