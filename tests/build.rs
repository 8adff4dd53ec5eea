//! Links every test image with the kernel's linker script (same layout,
//! PVH note and guard pages as the real kernel).

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let target = std::env::var("TARGET").unwrap_or_default();
    let script = format!("{dir}/../kernel/linker.ld");
    println!("cargo:rerun-if-changed={script}");
    if target == "x86_64-unknown-none" {
        println!("cargo:rustc-link-arg-tests=-T{script}");
    }
}
