//! Running host tools (apt-get, dpkg, cpio, ...) with their failure turned
//! into an error that names the tool and shows its stderr.

use std::process::Command;

use crate::error::{Error, Result};

/// Runs `cmd` to completion; returns its stdout, or an error naming `what`
/// with the exit status and stderr.
pub fn output(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd.output().map_err(|e| Error::Tool {
        what: what.to_string(),
        detail: format!("cannot run {cmd:?}: {e}"),
    })?;
    if !out.status.success() {
        return Err(Error::Tool {
            what: what.to_string(),
            detail: format!(
                "{cmd:?} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
