//! The current Rust types' layout, field by field, and a C program that prints the
//! same sizes and offsets from a header: shared by the layout tests.
#![allow(dead_code)]

use std::mem::{offset_of, size_of};
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

/// Every ABI struct's size and each field's offset in today's Rust types
/// (`sizeof S` / `offsetof S.f`), and the C program printing the same lines from
/// `walker_plugin.h`.
pub fn current() -> (Vec<(String, usize)>, String) {
    both!(
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
            role,
            on_records
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
            pause,
            lock_timed,
            settings_generation
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
    )
}
