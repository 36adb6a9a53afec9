//! The C header and the Rust types must agree on every size and offset: a C plugin is
//! compiled against the header, the host against the Rust types. The C compiler
//! measures the header here, independently of cbindgen.

mod c_measure;
mod current_layout;

use std::path::PathBuf;

#[test]
fn c_header_layout_equals_rust_layout() {
    let (rust, program) = current_layout::current();
    let include = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("include");
    let c = c_measure::parse_table(&c_measure::compile_and_run("layout", &program, &include));
    assert_eq!(c, rust);
}
