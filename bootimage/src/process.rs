//! Runs a child (QEMU) with a time limit, capturing its output and feeding
//! it input once it has started talking.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a run produced.
#[derive(Debug)]
pub struct RunOutput {
    /// stdout (the serial console) then stderr, lossily decoded.
    pub output: String,
    /// Exit status, `None` if killed (timeout) or ended by a signal.
    pub status: Option<i32>,
    /// Whether the time limit killed it.
    pub timed_out: bool,
    /// Wall time.
    pub elapsed: Duration,
}

fn drain(
    mut from: impl Read + Send + 'static,
    into: Arc<Mutex<Vec<u8>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock()
                .expect("output buffer")
                .extend_from_slice(&buf[..n]);
        }
    })
}

/// Runs `cmd` until it exits or `timeout` passes (then it is killed).
/// `input`, if any, is written to its stdin once its stdout has produced a
/// first line (the kernel's serial port is up by then).
pub fn run_with_timeout(
    mut cmd: Command,
    input: Option<&[u8]>,
    timeout: Duration,
) -> std::io::Result<RunOutput> {
    let start = Instant::now();
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    let stdout = Arc::new(Mutex::new(Vec::new()));
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let readers = [
        drain(child.stdout.take().expect("piped"), stdout.clone()),
        drain(child.stderr.take().expect("piped"), stderr.clone()),
    ];
    let mut stdin = child.stdin.take();
    let mut pending_input = input.map(<[u8]>::to_vec);
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status.code();
        }
        if start.elapsed() >= timeout {
            timed_out = true;
            // Our own child, by handle: never a broad kill.
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        if pending_input.is_some()
            && stdout.lock().expect("output buffer").contains(&b'\n')
            && let (Some(bytes), Some(pipe)) = (pending_input.take(), stdin.as_mut())
        {
            let _ = pipe.write_all(&bytes);
            let _ = pipe.flush();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    drop(stdin);
    // The pipes close when the child is gone; a grandchild that inherited
    // them could keep them open, so wait a little, then stop waiting.
    let drain_deadline = Instant::now() + Duration::from_secs(2);
    while readers.iter().any(|r| !r.is_finished()) && Instant::now() < drain_deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut output = String::from_utf8_lossy(&stdout.lock().expect("output buffer")).into_owned();
    let err = stderr.lock().expect("output buffer");
    if !err.is_empty() {
        output.push_str("\n[stderr]\n");
        output.push_str(&String::from_utf8_lossy(&err));
    }
    Ok(RunOutput {
        output,
        status,
        timed_out,
        elapsed: start.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    #[test]
    fn a_hanging_child_is_killed_at_the_limit() {
        let out = run_with_timeout(
            sh("echo started; sleep 30"),
            None,
            Duration::from_millis(500),
        )
        .unwrap();
        assert!(out.timed_out);
        assert_eq!(out.status, None);
        assert!(
            out.elapsed < Duration::from_secs(10),
            "kill took {:?}",
            out.elapsed
        );
        assert!(out.output.contains("started"));
    }

    #[test]
    fn exit_status_and_output_are_kept() {
        let out = run_with_timeout(
            sh("echo hi; echo oops >&2; exit 35"),
            None,
            Duration::from_secs(20),
        )
        .unwrap();
        assert!(!out.timed_out);
        assert_eq!(out.status, Some(35));
        assert!(out.output.contains("hi") && out.output.contains("oops"));
    }

    #[test]
    fn input_is_fed_after_the_first_line() {
        let out = run_with_timeout(
            sh("echo ready; read line; echo got:$line"),
            Some(b"ping\n"),
            Duration::from_secs(20),
        )
        .unwrap();
        assert_eq!(out.status, Some(0));
        assert!(out.output.contains("got:ping"), "{}", out.output);
    }
}
