//! Write a node, read it back, see a missing node's typed error, remove
//! the subtree: the first things a XenStore user does, here as dom0 over
//! the daemon's unix socket (feature `std`).
//!
//! ```sh
//! XENSTORED_PATH=/run/xenstored/socket cargo run -p xenstore-client --example read_write
//! ```
//!
//! In a guest kernel the same calls go over the shared ring:
//! `Client::over_ring(platform, page, events, Config::default())`.

use xenstore_client::{Client, Store, XsError};

fn main() -> Result<(), XsError> {
    let socket = std::env::var("XENSTORED_PATH").unwrap_or_else(|_| "/run/xenstored/socket".into());
    let xs = Client::connect(&socket)?;

    xs.write("/example/greeting", "hello")?;
    let greeting = xs.read_string("/example/greeting")?;
    println!("/example/greeting = {greeting:?}");

    // Values are bytes; read_parsed/write_display convert with FromStr/Display.
    xs.write_display("/example/answer", 42)?;
    let answer: u32 = xs.read_parsed("/example/answer")?;
    println!("/example/answer = {answer}");

    // A node that is not there is an error of its own, never an empty value.
    match xs.read("/example/missing") {
        Err(XsError::Enoent(context)) => println!("/example/missing: ENOENT ({context})"),
        other => panic!("expected ENOENT, got {other:?}"),
    }

    println!("/example holds {:?}", xs.directory("/example")?);
    xs.rm_tree("/example")?;
    assert!(!xs.exists("/example")?);
    if greeting != "hello" || answer != 42 {
        panic!("read back {greeting:?} and {answer}");
    }
    println!("ok");
    Ok(())
}
