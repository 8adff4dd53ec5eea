//! The shell's view of the files dom0 copied in (`crate::fcopy`): `files`,
//! `cat`, `sum`, `rmfile`.

use alloc::format;
use alloc::string::String;
use core::fmt::Write;

use crate::fcopy::{self, FilesError};

/// A command's text, or why it failed.
type Output = Result<String, FilesError>;

/// Most bytes `cat` prints: the console is slow; `sum` checks big files.
const CAT_LIMIT: usize = 64 << 10;

pub(super) fn list() -> Output {
    let listing = fcopy::list()?;
    let mut out = String::new();
    for (path, size) in &listing.files {
        let _ = writeln!(out, "{size:>10}  {path}");
    }
    let _ = writeln!(
        out,
        "{} file(s), {} of {} bytes used",
        listing.files.len(),
        listing.used,
        listing.cap
    );
    Ok(out)
}

pub(super) fn cat(path: &str) -> Output {
    fcopy::read(path, |data| {
        let shown = &data[..data.len().min(CAT_LIMIT)];
        let mut out = String::from_utf8_lossy(shown).into_owned();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        if data.len() > shown.len() {
            let _ = writeln!(
                out,
                "({} more bytes not shown; 'sum {path}' checks the whole file)",
                data.len() - shown.len()
            );
        }
        out
    })
}

pub(super) fn sum(path: &str) -> Output {
    fcopy::read(path, |data| {
        format!("{} {} {path}\n", ::fcopy::crc32::of(data).hex(), data.len())
    })
}

pub(super) fn remove(path: &str) -> Output {
    fcopy::remove(path).map(|()| format!("removed {path}\n"))
}
