//! Our client's figures: a `Client` over the daemon's unix socket (as dom0,
//! like libxenstore), default `Config`, every result checked.

use std::path::Path;

use xenstore::{Client, Config, StdPlatform, Store};

use crate::measure::{Window, ops_per_sec};

fn connect(socket: &Path) -> Result<Client<StdPlatform>, String> {
    Client::connect_with(socket, Config::default()).map_err(|e| format!("connect: {e}"))
}

/// `threads` threads sharing one client, each calling `read(path)` one at a
/// time (a synchronous request per call) and checking the value's length.
pub fn read(
    socket: &Path,
    threads: usize,
    window: Window,
    path: &str,
    value_len: usize,
) -> Result<f64, String> {
    let xs = connect(socket)?;
    ops_per_sec(threads, window, |_| {
        let (xs, path) = (xs.clone(), path.to_string());
        move || match xs.read(&path) {
            Ok(v) if v.len() == value_len => Ok(1),
            Ok(v) => Err(format!("read {} bytes, expected {value_len}", v.len())),
            Err(e) => Err(e.to_string()),
        }
    })
}

/// One thread calling `write(path, value)` in a loop.
pub fn write(socket: &Path, window: Window, path: &str, value_len: usize) -> Result<f64, String> {
    let xs = connect(socket)?;
    let value = vec![b'v'; value_len];
    ops_per_sec(1, window, |_| {
        let (xs, path, value) = (xs.clone(), path.to_string(), value.clone());
        move || {
            xs.write(&path, &value)
                .map(|()| 1)
                .map_err(|e| e.to_string())
        }
    })
}

/// One thread calling `read_many` on `batch` paths (all `path`) per call:
/// the library's own pipelining (up to `Config::pipeline_depth` in flight).
/// Counts each path read.
pub fn read_many(
    socket: &Path,
    batch: usize,
    window: Window,
    path: &str,
    value_len: usize,
) -> Result<f64, String> {
    let xs = connect(socket)?;
    ops_per_sec(1, window, |_| {
        let (xs, path) = (xs.clone(), path.to_string());
        move || {
            let paths = vec![path.as_str(); batch];
            for r in xs.read_many(&paths) {
                match r {
                    Ok(v) if v.len() == value_len => {}
                    Ok(v) => return Err(format!("read {} bytes, expected {value_len}", v.len())),
                    Err(e) => return Err(e.to_string()),
                }
            }
            Ok(batch as u64)
        }
    })
}
