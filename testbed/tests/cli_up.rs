//! `testbed up`: the entry point of run-qemu.sh, the kernel test runner
//! and run-bench.sh.

#[path = "support/ivshmem_client.rs"]
mod ivshmem_client;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Lines, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

fn up(
    args: &[&str],
    stdin: Stdio,
) -> (
    Child,
    Lines<BufReader<ChildStdout>>,
    HashMap<String, String>,
) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_testbed"))
        .arg("up")
        .args(args)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut keys = HashMap::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let (key, value) = line.split_once('=').expect("key=value lines");
        keys.insert(key.to_string(), value.to_string());
        if key == "ready" {
            return (child, lines, keys);
        }
    }
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let _ = child.kill();
    let status = child.wait();
    panic!("testbed up ended ({status:?}) before ready=1: {keys:?}\n{err}");
}

fn alive(pid: &str) -> bool {
    // A zombie (exited, not yet reaped by its parent) counts as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| !stat.contains(") Z "))
        .unwrap_or(false)
}

fn wait_exit(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "testbed up did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn xenstore_read(socket: &str, path: &str) -> String {
    let out = Command::new("xenstore-read")
        .arg(path)
        .env("XENSTORED_PATH", socket)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn up_prints_its_setup_serves_restarts_and_stops_on_stdin_eof() {
    let state = std::env::temp_dir().join(format!("xstb-cli-{}", std::process::id()));
    let ivshmem = state.join("ivshmem.sock");
    let (mut child, mut lines, keys) = up(
        &[
            "--domid",
            "1",
            "--domid",
            "2",
            "--state-dir",
            state.to_str().unwrap(),
            "--ivshmem",
            ivshmem.to_str().unwrap(),
            "--quota",
            "nodes=50",
        ],
        Stdio::piped(),
    );
    assert!(keys["daemon"].ends_with("xenstored"));
    assert!(!keys["daemon_version"].is_empty());
    assert_eq!(Path::new(&keys["state_dir"]), state.canonicalize().unwrap());
    assert_eq!(keys["dom1_path"], "/local/domain/1");
    assert_eq!(keys["dom2_event_port"], "1");
    assert!(Path::new(&keys["dom1_page"]).is_file());
    assert_eq!(keys["ivshmem_domid"], "1");
    assert!(Path::new(&keys["ivshmem"]).exists());
    assert_eq!(
        xenstore_read(&keys["socket"], "/local/domain/2/name"),
        "guest2\n"
    );

    let old_pid = keys["pid"].clone();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "restart").unwrap();
    let mut restarted = HashMap::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let (key, value) = line.split_once('=').unwrap();
        restarted.insert(key.to_string(), value.to_string());
        if key == "restarted" {
            break;
        }
    }
    assert_ne!(restarted["pid"], old_pid);
    assert!(!alive(&old_pid));
    assert_eq!(
        xenstore_read(&keys["socket"], "/local/domain/1/domid"),
        "1\n"
    );

    drop(stdin); // EOF: stop
    assert!(wait_exit(&mut child, Duration::from_secs(10)).success());
    assert!(!alive(&restarted["pid"]), "daemon left running");
    assert!(!Path::new(&keys["socket"]).exists(), "socket left behind");
    // A caller-chosen state directory keeps the logs.
    assert!(state.join("xenstored.log").exists());
    assert!(state.join("trace").exists());
    std::fs::remove_dir_all(&state).unwrap();
}

#[test]
fn up_in_the_background_ignores_dev_null_and_stops_on_sigterm() {
    let (mut child, _lines, keys) = up(&["--no-trace"], Stdio::null());
    assert!(!keys.contains_key("trace"));
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "exited on /dev/null");
    // The child is ours and not reaped: the pid is still its.
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    assert!(wait_exit(&mut child, Duration::from_secs(10)).success());
    assert!(!alive(&keys["pid"]));
    assert!(
        !Path::new(&keys["state_dir"]).exists(),
        "private dir removed"
    );
}

#[test]
fn up_exits_with_an_error_when_the_daemon_dies() {
    let (mut child, _lines, keys) = up(&["--no-trace"], Stdio::null());
    let pid: i32 = keys["pid"].parse().unwrap();
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(1));
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains("xenstored died"), "{err}");
}

/// Reads stdout lines until one starts with `key=`; returns its value.
fn answer(lines: &mut Lines<BufReader<ChildStdout>>, key: &str) -> String {
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(value) = line.strip_prefix(&format!("{key}=")) {
            return value.to_string();
        }
    }
    panic!("testbed up closed stdout before answering {key}");
}

#[test]
fn up_pokes_the_ring_and_kicks_the_guest_for_hostile_peer_tests() {
    let state = std::env::temp_dir().join(format!("xstb-poke-{}", std::process::id()));
    let socket = state.join("ivshmem.sock");
    let (mut child, mut lines, keys) = up(
        &[
            "--no-trace",
            "--state-dir",
            state.to_str().unwrap(),
            "--ivshmem",
            socket.to_str().unwrap(),
        ],
        Stdio::piped(),
    );
    let (_qemu, fds) = ivshmem_client::connect(Path::new(&keys["ivshmem"]));
    let mut stdin = child.stdin.take().unwrap();

    // Play a hostile daemon: a response producer index 5000 ahead.
    writeln!(stdin, "poke 1 2060 5000").unwrap();
    assert_eq!(answer(&mut lines, "poked"), "1");
    writeln!(stdin, "peek 1 0x80c").unwrap();
    assert_eq!(answer(&mut lines, "peek"), "5000");
    let page = std::fs::read(&keys["dom1_page"]).unwrap();
    assert_eq!(&page[2060..2064], &5000u32.to_le_bytes());

    // Make the guest look: its vector fires through the ivshmem bridge.
    writeln!(stdin, "notify-guest 1").unwrap();
    assert_eq!(answer(&mut lines, "notified"), "1");
    assert!(ivshmem_client::eventfd_readable(
        &fds.interrupt,
        Duration::from_secs(10)
    ));
    writeln!(stdin, "notify-daemon 1").unwrap();
    assert_eq!(answer(&mut lines, "notified"), "1");

    // A bad command is refused without stopping the testbed.
    writeln!(stdin, "poke 1 5000 1").unwrap();
    writeln!(stdin, "peek 1 0").unwrap();
    assert_eq!(answer(&mut lines, "peek"), "0");

    writeln!(stdin, "quit").unwrap();
    assert!(wait_exit(&mut child, Duration::from_secs(10)).success());
    std::fs::remove_dir_all(&state).unwrap();
}
