//! Watch a subtree and see each change below it, in order: the callback
//! runs on one of the client's callback threads and hands events to
//! `main` over a channel.
//!
//! ```sh
//! XENSTORED_PATH=/run/xenstored/socket cargo run -p xenstore-client --example watch_subtree
//! ```

use std::sync::mpsc;
use std::time::Duration;

use xenstore_client::{Client, Store, WatchEvent, XsError};

/// How long to wait for an event before giving up (a bound, not a timing).
const PATIENCE: Duration = Duration::from_secs(30);

fn main() -> Result<(), XsError> {
    let socket = std::env::var("XENSTORED_PATH").unwrap_or_else(|_| "/run/xenstored/socket".into());
    let xs = Client::connect(&socket)?;
    xs.write("/example/watched", "")?;

    let (tx, events) = mpsc::channel();
    let watch = xs.watch("/example/watched", move |event: &WatchEvent| {
        let _ = tx.send(event.clone());
    })?;

    // The daemon fires every new watch once, for the watched path itself.
    let next = || {
        events
            .recv_timeout(PATIENCE)
            .expect("no watch event within 30 s")
    };
    println!("registered: {:?}", next());

    let changed = [
        "/example/watched/a",
        "/example/watched/b",
        "/example/watched/a/c",
    ];
    for path in changed {
        xs.write(path, "x")?;
    }
    for want in changed {
        match next() {
            WatchEvent::Changed { path } => {
                println!("changed: {path}");
                assert_eq!(path, want, "events arrive in the order of the writes");
            }
            WatchEvent::Overflow { missed } => {
                // Only when a callback falls far behind; then re-read the subtree.
                panic!("{missed} events dropped");
            }
        }
    }

    // After unwatch returns, the callback never runs again.
    watch.unwatch()?;
    xs.rm_tree("/example")?;
    println!("ok");
    Ok(())
}
