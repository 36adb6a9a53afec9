//! The checked-in C header must equal what cbindgen generates from the Rust types.
//! Regenerate with `WALKER_BLESS=1 cargo test -p walker-abi --test header`.

use std::path::PathBuf;

#[test]
fn c_header_is_current() {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("src/types.rs"))
        .generate()
        .expect("cbindgen could not generate the header")
        .write(&mut generated);
    let path = crate_dir.join("include/walker_plugin.h");
    if std::env::var_os("WALKER_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write header");
        return;
    }
    let checked_in = std::fs::read(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "walker-abi/include/walker_plugin.h is stale: regenerate it with `WALKER_BLESS=1 cargo test -p walker-abi --test header` and commit it"
    );
}
