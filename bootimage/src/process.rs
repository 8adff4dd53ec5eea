//! Runs a child (QEMU) with a time limit, capturing its output, feeding it
//! input once it has started talking, and letting a host agent answer the
//! guest's requests while it runs.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::agent::{Agent, LineSplitter, Session, SharedStdin};

/// How a child is run besides its command.
#[derive(Default)]
pub struct RunOptions {
    /// Written to stdin once stdout has produced a first line.
    pub input: Option<Vec<u8>>,
    /// Answers `@host` requests in the output.
    pub agent: Option<Arc<dyn Agent>>,
    /// Also copy the output to our stdout as it arrives.
    pub echo: bool,
}

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
    lines: Option<Sender<String>>,
    echo: bool,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut splitter = LineSplitter::default();
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock()
                .expect("output buffer")
                .extend_from_slice(&buf[..n]);
            if echo {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&buf[..n]).and_then(|()| out.flush());
            }
            if let Some(lines) = &lines {
                // A gone agent only means nobody answers any more.
                splitter.feed(&buf[..n], |line| {
                    let _ = lines.send(line);
                });
            }
        }
    })
}

/// Runs `cmd` until it exits or `timeout` passes (then it is killed), with
/// `options`: input written once its stdout has produced a first line (the
/// kernel's serial port is up by then), an agent answering the guest's
/// requests on stdin, live echo of the output.
pub fn run(mut cmd: Command, options: RunOptions, timeout: Duration) -> std::io::Result<RunOutput> {
    let start = Instant::now();
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    let stdout = Arc::new(Mutex::new(Vec::new()));
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let stdin: SharedStdin = Arc::new(Mutex::new(child.stdin.take()));
    let session = options
        .agent
        .map(|agent| Session::start(agent, stdin.clone()));
    let readers = [
        drain(
            child.stdout.take().expect("piped"),
            stdout.clone(),
            session.as_ref().map(Session::line_sender),
            options.echo,
        ),
        drain(
            child.stderr.take().expect("piped"),
            stderr.clone(),
            None,
            false,
        ),
    ];
    let mut pending_input = options.input;
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
            && let Some(bytes) = pending_input.take()
            && let Some(pipe) = stdin.lock().expect("stdin").as_mut()
        {
            let _ = pipe.write_all(&bytes);
            let _ = pipe.flush();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    stdin.lock().expect("stdin").take();
    // The pipes close when the child is gone; a grandchild that inherited
    // them could keep them open, so wait a little, then stop waiting.
    let drain_deadline = Instant::now() + Duration::from_secs(2);
    while readers.iter().any(|r| !r.is_finished()) && Instant::now() < drain_deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    if let Some(session) = session {
        session.finish();
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

    fn run_with_timeout(
        cmd: Command,
        input: Option<&[u8]>,
        timeout: Duration,
    ) -> std::io::Result<RunOutput> {
        let options = RunOptions {
            input: input.map(<[u8]>::to_vec),
            ..RunOptions::default()
        };
        run(cmd, options, timeout)
    }

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
