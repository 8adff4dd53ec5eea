//! Building the kernel and the test images with cargo, and finding the
//! produced executables from cargo's JSON messages.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The bare-metal target.
pub const TARGET: &str = "x86_64-unknown-none";

/// The workspace root (this crate's parent directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bootimage lives in the workspace")
        .to_path_buf()
}

/// The cargo target directory (`$CARGO_TARGET_DIR` or `<root>/target`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        None => workspace_root().join("target"),
    }
}

/// An executable cargo built.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// Target name (`kernel`, or a test image's name).
    pub name: String,
    /// Its source file.
    pub src_path: PathBuf,
    /// The built file.
    pub executable: PathBuf,
}

fn build(args: &[&str], release: bool) -> Result<Vec<Artifact>, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root())
        .arg("build")
        .args(args)
        .args([
            "--target",
            TARGET,
            "--message-format=json-render-diagnostics",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if release {
        cmd.arg("--release");
    }
    let out = cmd.output().map_err(|e| format!("running cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo build {} failed", args.join(" ")));
    }
    let mut artifacts = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        if let Some(exe) = msg["executable"].as_str() {
            artifacts.push(Artifact {
                name: msg["target"]["name"].as_str().unwrap_or_default().into(),
                src_path: msg["target"]["src_path"]
                    .as_str()
                    .unwrap_or_default()
                    .into(),
                executable: exe.into(),
            });
        }
    }
    Ok(artifacts)
}

/// Builds the kernel binary and returns its path.
pub fn build_kernel(release: bool) -> Result<PathBuf, String> {
    build(&["-p", "kernel", "--bin", "kernel"], release)?
        .into_iter()
        .find(|a| a.name == "kernel")
        .map(|a| a.executable)
        .ok_or_else(|| "cargo produced no kernel executable".into())
}

/// Builds every test image; fails if a file in tests/ is not declared as a
/// `[[test]]` in tests/Cargo.toml (it would silently never run).
pub fn build_test_images(release: bool) -> Result<Vec<Artifact>, String> {
    let images = build(&["-p", "ktests", "--tests"], release)?;
    let dir = workspace_root().join("tests");
    let mut undeclared = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let is_image = path.extension().is_some_and(|e| e == "rs")
            && !matches!(
                path.file_name().and_then(|n| n.to_str()),
                Some("lib.rs" | "build.rs")
            );
        if is_image && !images.iter().any(|a| a.src_path == path) {
            undeclared.push(path.display().to_string());
        }
    }
    if !undeclared.is_empty() {
        return Err(format!(
            "test images not declared as [[test]] in tests/Cargo.toml: {}",
            undeclared.join(", ")
        ));
    }
    Ok(images)
}
