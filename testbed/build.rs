//! Builds the fake Xen libraries and the LD_PRELOAD shim (C, in `csrc/`)
//! with the system C compiler into OUT_DIR. The library embeds them
//! (`include_bytes!`) and writes them into each testbed's directory, so a
//! test binary or the `testbed` CLI is self-contained.

use std::path::{Path, PathBuf};
use std::process::Command;

/// One shared object to build.
struct Lib {
    /// Output file name in OUT_DIR.
    file: &'static str,
    /// DT_SONAME, as the daemon's DT_NEEDED names it (None: LD_PRELOAD shim).
    soname: Option<&'static str>,
    /// Linker version script giving the exact symbol versions.
    version_script: &'static str,
    sources: &'static [&'static str],
    libs: &'static [&'static str],
}

const LIBS: &[Lib] = &[
    Lib {
        file: "libxenctrl.so.4.17",
        soname: Some("libxenctrl.so.4.17"),
        version_script: "xenctrl.map",
        sources: &["ctrl.c", "path.c"],
        libs: &[],
    },
    Lib {
        file: "libxenevtchn.so.1",
        soname: Some("libxenevtchn.so.1"),
        version_script: "xenevtchn.map",
        sources: &["evtchn.c", "path.c"],
        libs: &[],
    },
    Lib {
        file: "libxengnttab.so.1",
        soname: Some("libxengnttab.so.1"),
        version_script: "xengnttab.map",
        sources: &["gnttab.c", "path.c"],
        libs: &[],
    },
    Lib {
        file: "libxstb_redirect.so",
        soname: None,
        version_script: "redirect.map",
        sources: &["redirect.c", "path.c"],
        libs: &["-ldl"],
    },
];

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    let csrc = manifest.join("csrc");
    let cc = std::env::var("CC").unwrap_or_else(|_| "gcc".to_string());
    println!("cargo:rerun-if-changed=csrc");
    println!("cargo:rerun-if-env-changed=CC");

    for lib in LIBS {
        let mut cmd = Command::new(&cc);
        cmd.args(["-O2", "-g", "-std=gnu11", "-Wall", "-Wextra", "-Werror"])
            .args(["-fPIC", "-shared", "-o"])
            .arg(out.join(lib.file))
            .arg(format!(
                "-Wl,--version-script={}",
                csrc.join(lib.version_script).display()
            ));
        if let Some(soname) = lib.soname {
            cmd.arg(format!("-Wl,-soname,{soname}"));
        }
        cmd.args(lib.sources.iter().map(|s| csrc.join(s)))
            .args(lib.libs);
        run(&mut cmd, lib.file);
    }

    // Our copy of xc_dominfo_t must match Xen's; check it whenever Xen's
    // headers are installed (libxen-dev). Without them the copy's own size
    // assertion still holds the line.
    if Path::new("/usr/include/xenctrl.h").exists() {
        let mut cmd = Command::new(&cc);
        cmd.args(["-fsyntax-only", "-Wall", "-Werror"])
            .arg(csrc.join("abi_check.c"));
        run(&mut cmd, "abi_check.c");
    }
}

fn run(cmd: &mut Command, what: &str) {
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C compiler for {what} ({cmd:?}): {e}"));
    assert!(status.success(), "C compiler failed for {what}: {cmd:?}");
}
