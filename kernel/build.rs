//! Links the kernel binary with our linker script (fixed load address, PVH
//! note segment, boot stack guard page). `ktests` has its own build script
//! pointing at the same file for the test images.

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let target = std::env::var("TARGET").unwrap_or_default();
    println!("cargo:rerun-if-changed={dir}/linker.ld");
    if target == "x86_64-unknown-none" {
        println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
    }
}
