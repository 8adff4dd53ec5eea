//! The real xenstore-* CLI (xenstore-utils) against the testbed's private
//! socket, as shell scripts and the QEMU demo use it.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use testbed::Testbed;
use testbed::wire::ty;

#[test]
fn the_cli_tools_work_against_the_private_socket() {
    let tb = Testbed::start().unwrap();
    let ok = |tool: &str, args: &[&str]| tb.cli(tool, args).unwrap().into_stdout().unwrap();
    ok("write", &["/test/a", "hello", "/test/b", "world"]);
    assert_eq!(ok("read", &["/test/a", "/test/b"]), "hello\nworld\n");
    let listing = ok("ls", &["/test"]);
    assert!(listing.contains("a = \"hello\""), "{listing}");
    ok("chmod", &["/test/a", "n0", "r5"]);
    assert!(ok("ls", &["-p", "/test"]).contains("(n0,r5)"));
    assert_eq!(ok("exists", &["/test/a"]), "");
    ok("rm", &["/test/a"]);
    let missing = tb.cli("read", &["/test/a"]).unwrap();
    assert!(!missing.status.success());
    assert!(tb.cli("read", &["/test/a"]).unwrap().into_stdout().is_err());
    // Tool names may be given in full.
    assert_eq!(ok("xenstore-read", &["/test/b"]), "world\n");
}

#[test]
fn xenstore_watch_sees_a_guest_write() {
    let tb = Testbed::start().unwrap();
    let dom = tb.introduce_domain(1).unwrap();
    let mut watch = tb
        .cli_command("watch")
        .arg("/local/domain/1/data")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    // The initial event proves the watch is registered before we write.
    assert_eq!(lines.next().unwrap().unwrap(), "/local/domain/1/data");
    let reply = dom
        .request(ty::WRITE, b"data/ping\0pong", Duration::from_secs(10))
        .unwrap();
    assert_eq!(reply.text(), "OK");
    assert_eq!(lines.next().unwrap().unwrap(), "/local/domain/1/data/ping");
    watch.kill().unwrap();
    watch.wait().unwrap();
}
