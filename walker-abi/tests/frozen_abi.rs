//! Every released minor of ABI 1 is frozen: its C header as it shipped
//! (`include/frozen/walker_plugin_1.N.h`, taken from the commit that released it) and
//! the sizes and offsets the C compiler measures in it (`walker_plugin_1.N.layout`,
//! checked in). A plugin built against any of them must keep working, so:
//! - the C compiler still measures each frozen header as its checked-in table says;
//! - every field of every frozen struct sits at the same offset, with the same size,
//!   in today's Rust types (a field inserted mid-struct, or one that grew, fails);
//! - every "1.N size" constant equals the size of the struct in minor N's table.
//!
//! Regenerate a table (only when adding the header of a newly released minor) with
//! `WALKER_BLESS=1 cargo test -p walker-abi --test frozen_abi`.

mod c_measure;
mod current_layout;

use std::collections::BTreeMap;
use std::path::PathBuf;
use walker_abi::*;

/// The released minors of ABI 1, each with a frozen header.
const MINORS: [u32; 7] = [0, 1, 2, 3, 4, 5, 6];

/// Fields renamed since the minor that froze them: (struct, old name, today's name).
/// A rename keeps the offset and the size; the test checks both.
const RENAMED: &[(&str, &str, &str)] = &[("WalkerFunction", "admin_only", "access")];

fn frozen_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("include/frozen")
}

/// The structs of a cbindgen header and their fields, in order.
fn structs_of(header: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut current: Option<(String, Vec<String>)> = None;
    let mut in_comment = false;
    for line in header.lines() {
        // cbindgen writes each doc comment as a `/*` ... `*/` block of its own lines.
        let t = line.trim();
        if in_comment || t.starts_with("/*") {
            in_comment = !t.ends_with("*/");
            continue;
        }
        if let Some(rest) = line.strip_prefix("typedef struct ") {
            if let Some(name) = rest.strip_suffix(" {") {
                current = Some((name.to_string(), Vec::new()));
            }
            continue;
        }
        let Some((_, fields)) = current.as_mut() else {
            continue;
        };
        if line.starts_with('}') {
            out.push(current.take().expect("inside a struct"));
            continue;
        }
        let member = line.trim();
        if !line.starts_with("  ") {
            continue;
        }
        let Some(decl) = member.strip_suffix(';') else {
            continue;
        };
        let name = if let Some(i) = decl.find("(*") {
            let rest = &decl[i + 2..];
            &rest[..rest.find(')').expect("function pointer member")]
        } else {
            let decl = decl.split('[').next().expect("split yields one piece");
            let name = decl.rsplit(' ').next().expect("rsplit yields one piece");
            name.trim_start_matches('*')
        };
        fields.push(name.to_string());
    }
    out
}

/// A C program printing `sizeof S n`, and `offsetof S.f n` and `sizeof S.f n` for
/// every field, measured in `header`.
fn c_program(header: &str, structs: &[(String, Vec<String>)]) -> String {
    let mut s = format!(
        "#include <stdio.h>\n#include <stddef.h>\n#include \"{header}\"\nint main(void) {{\n"
    );
    for (ty, fields) in structs {
        s.push_str(&format!(
            "  printf(\"sizeof {ty} %zu\\n\", sizeof({ty}));\n"
        ));
        for f in fields {
            s.push_str(&format!(
                "  printf(\"offsetof {ty}.{f} %zu\\n\", offsetof({ty}, {f}));\n  printf(\"sizeof {ty}.{f} %zu\\n\", sizeof((({ty} *) 0)->{f}));\n"
            ));
        }
    }
    s.push_str("  return 0;\n}\n");
    s
}

/// Compiles and runs `program` with the frozen headers on the include path.
fn measure(name: &str, program: &str) -> String {
    c_measure::compile_and_run(name, program, &frozen_dir())
}

fn parse_table(text: &str) -> BTreeMap<String, usize> {
    c_measure::parse_table(text).into_iter().collect()
}

/// Minor `minor`'s checked-in table (after checking the C compiler agrees with it).
fn frozen_table(minor: u32) -> BTreeMap<String, usize> {
    let header = format!("walker_plugin_1.{minor}.h");
    let text = std::fs::read_to_string(frozen_dir().join(&header)).unwrap();
    assert!(
        text.contains(&format!("#define WALKER_ABI_MINOR {minor}\n")),
        "{header} is not minor {minor}'s header"
    );
    let measured = measure(
        &format!("frozen_1_{minor}"),
        &c_program(&header, &structs_of(&text)),
    );
    let path = frozen_dir().join(format!("walker_plugin_1.{minor}.layout"));
    if std::env::var_os("WALKER_BLESS").is_some() && !path.exists() {
        std::fs::write(&path, &measured).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; a newly released minor's table is written by WALKER_BLESS=1 cargo test -p walker-abi --test frozen_abi",
            path.display()
        )
    });
    assert_eq!(
        parse_table(&measured),
        parse_table(&checked_in),
        "the C compiler no longer measures {header} as {} says: a frozen header or table was edited",
        path.display()
    );
    parse_table(&checked_in)
}

/// Today's sizes and offsets from the Rust types, plus each field's size (the
/// distance to the next field is not enough: padding).
fn current_table() -> BTreeMap<String, usize> {
    let (rust, _) = current_layout::current();
    let mut table: BTreeMap<String, usize> = rust.into_iter().collect();
    // Field sizes come from today's header, which c_layout checks against the Rust
    // types offset by offset.
    let header = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("include/walker_plugin.h");
    let text = std::fs::read_to_string(&header).unwrap();
    let measured = measure(
        "current",
        &c_program(header.to_str().unwrap(), &structs_of(&text)),
    );
    for (k, v) in parse_table(&measured) {
        if k.starts_with("sizeof ") && k.contains('.') {
            table.insert(k, v);
        }
    }
    table
}

#[test]
fn frozen_headers_parse() {
    let text = std::fs::read_to_string(frozen_dir().join("walker_plugin_1.0.h")).unwrap();
    let structs = structs_of(&text);
    let desc = structs
        .iter()
        .find(|(n, _)| n == "WalkerPluginDescriptor")
        .expect("1.0 has a descriptor");
    assert_eq!(desc.1.first().map(String::as_str), Some("abi_major"));
    assert_eq!(desc.1.last().map(String::as_str), Some("view_rows"));
    assert!(desc.1.contains(&"rmgr_mask".to_string()));
}

#[test]
fn every_frozen_field_keeps_its_offset_and_size() {
    let now = current_table();
    let mut problems = Vec::new();
    for minor in MINORS {
        for (key, value) in frozen_table(minor) {
            let (what, rest) = key.split_once(' ').unwrap();
            let today = match rest.split_once('.') {
                Some((ty, field)) => {
                    let field = RENAMED
                        .iter()
                        .find(|(t, old, _)| *t == ty && *old == field)
                        .map_or(field, |(_, _, new)| new);
                    format!("{what} {ty}.{field}")
                }
                None => key.clone(),
            };
            match now.get(&today) {
                None => problems.push(format!("1.{minor}: {key} is gone from today's types")),
                Some(&v) if what == "sizeof" && !rest.contains('.') => {
                    if v < value {
                        problems.push(format!("1.{minor}: {key} was {value}, today {v}: a struct shrank"));
                    }
                }
                Some(&v) if v != value => problems.push(format!(
                    "1.{minor}: {key} was {value}, today {today} is {v}: a field was inserted, removed or resized mid-struct (only append)"
                )),
                Some(_) => {}
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn size(table: &BTreeMap<String, usize>, ty: &str) -> u32 {
    table[&format!("sizeof {ty}")] as u32
}

#[test]
fn size_constants_equal_the_frozen_sizes() {
    let t: Vec<BTreeMap<String, usize>> = MINORS.iter().map(|&m| frozen_table(m)).collect();
    let d = "WalkerPluginDescriptor";
    assert_eq!(WALKER_DESCRIPTOR_V1_0_SIZE, size(&t[0], d));
    assert_eq!(WALKER_DESCRIPTOR_V1_1_SIZE, size(&t[1], d));
    assert_eq!(WALKER_DESCRIPTOR_V1_2_SIZE, size(&t[2], d));
    assert_eq!(WALKER_DESCRIPTOR_V1_3_SIZE, size(&t[3], d));
    assert_eq!(
        WALKER_DESCRIPTOR_V1_3_SIZE,
        size(&t[4], d),
        "1.4 kept 1.3's descriptor"
    );
    assert_eq!(WALKER_DESCRIPTOR_V1_5_SIZE, size(&t[5], d));
    let h = "WalkerHostApi";
    assert_eq!(WALKER_HOST_API_V1_0_SIZE, size(&t[0], h));
    assert_eq!(WALKER_HOST_API_V1_1_SIZE, size(&t[1], h));
    assert_eq!(WALKER_HOST_API_V1_2_SIZE, size(&t[2], h));
    assert_eq!(
        WALKER_HOST_API_V1_2_SIZE,
        size(&t[3], h),
        "1.3 kept 1.2's host table"
    );
    assert_eq!(WALKER_HOST_API_V1_4_SIZE, size(&t[4], h));
    assert_eq!(
        WALKER_HOST_API_V1_4_SIZE,
        size(&t[5], h),
        "1.5 kept 1.4's host table"
    );
    assert_eq!(WALKER_HOST_API_V1_6_SIZE, size(&t[6], h));
    let r = "WalkerRecord";
    assert_eq!(WALKER_RECORD_V1_0_SIZE, size(&t[0], r));
    for table in &t[1..] {
        assert_eq!(WALKER_RECORD_V1_1_SIZE, size(table, r));
    }
    let e = "WalkerBackendEvent";
    assert_eq!(WALKER_BACKEND_EVENT_V1_3_SIZE, size(&t[3], e));
    assert_eq!(
        WALKER_BACKEND_EVENT_V1_3_SIZE,
        size(&t[4], e),
        "1.4 kept 1.3's event"
    );
    assert_eq!(WALKER_BACKEND_EVENT_V1_5_SIZE, size(&t[5], e));
    assert_eq!(
        WALKER_BACKEND_EVENT_V1_5_SIZE,
        size(&t[6], e),
        "1.6 kept 1.5's event"
    );
    assert_eq!(
        WALKER_DESCRIPTOR_V1_5_SIZE,
        size(&t[6], d),
        "1.6 kept 1.5's descriptor"
    );
    for table in &t[3..] {
        assert_eq!(WALKER_VERDICT_V1_3_SIZE, size(table, "WalkerVerdict"));
    }
}

#[test]
fn the_newest_frozen_minor_is_todays() {
    // Today's minor is released: its frozen header declares the same structs with
    // the same fields as the generated one. (A field added after a release goes
    // under a new minor, with that minor's frozen header and table.)
    let today = std::fs::read_to_string(frozen_dir().join("../walker_plugin.h")).unwrap();
    let name = format!("walker_plugin_1.{WALKER_ABI_MINOR}.h");
    let frozen = std::fs::read_to_string(frozen_dir().join(&name))
        .unwrap_or_else(|e| panic!("{name}: {e}: freeze the header of minor {WALKER_ABI_MINOR}"));
    assert_eq!(
        structs_of(&frozen),
        structs_of(&today),
        "walker_plugin.h's structs differ from {name}'s: ABI 1.{WALKER_ABI_MINOR} changed after its release (add the change under a new minor)"
    );
    assert_eq!(
        MINORS.last(),
        Some(&WALKER_ABI_MINOR),
        "MINORS lists every released minor"
    );
}
