//! The host agent: performs what a guest asks for on its serial console,
//! while the guest runs (write a node with the real `xenstore-write`,
//! restart the daemon, corrupt the ring, ...), and answers on the guest's
//! serial input.
//!
//! The line format is the `hostlink-codec` crate, which the kernel uses too,
//! so both ends share one definition:
//! `@host <seq> <verb> <args...>` from the guest, `@ok <seq> <values...>`
//! or `@err <seq> <message>` back. Only lines that start with the marker
//! count, so the guest's log output around them is ignored; a malformed
//! request is answered with `@err` (if it has a sequence number) and never
//! stops the run.
//!
//! [`Session`] wires an [`Agent`] to a running QEMU: the output reader
//! hands each complete line to the agent's thread, which answers through
//! the shared stdin. Verbs may take long (a flood of 10,000 writes): the
//! output keeps being collected meanwhile.

pub mod backend;
pub mod bus;
pub mod ring;
pub mod store;
pub mod toolstack;
pub mod verbs;

use std::io::Write;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use hostlink_codec::{DecodeError, Reply, decode_request, encode_reply};

/// Performs guest requests.
pub trait Agent: Send + Sync {
    /// Performs `verb` with `args`; returns the values to answer with, or
    /// a message saying why it was not done.
    fn perform(&self, verb: &str, args: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, String>;

    /// What the agent did, for a failure report (most recent last).
    fn transcript(&self) -> String {
        String::new()
    }

    /// Sees every output line that is not a request (the guest's log), on
    /// the agent's thread, in order. For agents that act on what the guest
    /// says rather than on what it asks (the demo). Default: nothing.
    fn observe(&self, _line: &str) {}

    /// Bytes to write to the guest's serial input right after the reply
    /// to a request (e.g. keys typed into its shell): they arrive after the
    /// reply line, so the guest's request reader never takes them.
    /// Default: none.
    fn input_after_reply(&self) -> Vec<u8> {
        Vec::new()
    }
}

/// The reply line (without newline) to one line of guest output, if the
/// line is a request; `None` for every other line.
pub fn answer(agent: &dyn Agent, line: &str) -> Option<String> {
    let reply = match decode_request(line)? {
        Ok(request) => match agent.perform(&request.verb, &request.args) {
            Ok(values) => Reply::Ok {
                seq: request.seq,
                values,
            },
            Err(message) => Reply::Err {
                seq: request.seq,
                message,
            },
        },
        // Without a sequence number the guest cannot match an answer.
        Err(DecodeError::BadSeq) => return None,
        Err(e) => Reply::Err {
            seq: seq_of(line).unwrap_or(0),
            message: format!("malformed request: {e:?}"),
        },
    };
    Some(encode_reply(&reply))
}

fn seq_of(line: &str) -> Option<u64> {
    line.split(' ').nth(1)?.parse().ok()
}

/// Splits output bytes into lines (without `\r`/`\n`), keeping a partial
/// line across calls.
#[derive(Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    /// Feeds `bytes`; calls `line` for each completed line.
    pub fn feed(&mut self, bytes: &[u8], mut line: impl FnMut(String)) {
        for &b in bytes {
            if b == b'\n' {
                let text = String::from_utf8_lossy(&self.partial)
                    .trim_end_matches('\r')
                    .to_string();
                self.partial.clear();
                line(text);
            } else {
                self.partial.push(b);
            }
        }
    }
}

/// An agent serving one QEMU run.
pub struct Session {
    lines: Option<Sender<String>>,
    thread: Option<JoinHandle<()>>,
}

/// QEMU's stdin, shared by the agent and the runner's scripted input.
pub type SharedStdin = Arc<Mutex<Option<std::process::ChildStdin>>>;

impl Session {
    /// Starts the agent's thread; it answers on `stdin`.
    pub fn start(agent: Arc<dyn Agent>, stdin: SharedStdin) -> Session {
        let (tx, rx) = channel::<String>();
        let thread = std::thread::Builder::new()
            .name("host-agent".into())
            .spawn(move || serve(agent.as_ref(), rx, &stdin))
            .expect("spawning the host agent thread");
        Session {
            lines: Some(tx),
            thread: Some(thread),
        }
    }

    /// A sender for complete output lines (the output reader's end).
    pub fn line_sender(&self) -> Sender<String> {
        self.lines.clone().expect("session running")
    }

    /// Stops taking lines and waits (bounded) for the verb in progress.
    pub fn finish(mut self) {
        self.lines.take();
        if let Some(thread) = self.thread.take() {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while !thread.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            if thread.is_finished() {
                let _ = thread.join();
            } else {
                eprintln!("bootimage: host agent still busy after the guest exited; leaving it");
            }
        }
    }
}

fn serve(agent: &dyn Agent, lines: Receiver<String>, stdin: &SharedStdin) {
    for line in lines {
        let Some(mut reply) = answer(agent, &line) else {
            agent.observe(&line);
            continue;
        };
        reply.push('\n');
        let mut bytes = reply.into_bytes();
        bytes.extend(agent.input_after_reply());
        let mut stdin = stdin.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pipe) = stdin.as_mut() {
            // A guest that is gone cannot be answered; the run reports why.
            let _ = pipe.write_all(&bytes).and_then(|()| pipe.flush());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;
    impl Agent for Echo {
        fn perform(&self, verb: &str, args: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, String> {
            match verb {
                "echo" => Ok(args.to_vec()),
                other => Err(format!("unknown verb {other}")),
            }
        }
    }

    #[test]
    fn requests_are_answered_and_log_lines_ignored() {
        assert_eq!(answer(&Echo, "[    0.1] INFO kernel: hello"), None);
        assert_eq!(
            answer(&Echo, "@host 3 echo a%20b"),
            Some("@ok 3 a%20b".into())
        );
        assert_eq!(
            answer(&Echo, "@host 4 nope"),
            Some("@err 4 unknown%20verb%20nope".into())
        );
        assert_eq!(
            answer(&Echo, "@host 5 echo %ZZ").map(|l| l.starts_with("@err 5 ")),
            Some(true)
        );
        assert_eq!(answer(&Echo, "@host x echo"), None, "no seq: cannot answer");
    }

    #[test]
    fn lines_are_split_across_reads_and_lose_their_cr() {
        let mut s = LineSplitter::default();
        let mut got = Vec::new();
        s.feed(b"ab", |l| got.push(l));
        s.feed(b"c\r\n@host 1 ", |l| got.push(l));
        s.feed(b"nop\r\n", |l| got.push(l));
        assert_eq!(got, ["abc", "@host 1 nop"]);
    }

    /// Answers `type` and then "types" its argument.
    struct Typist(Mutex<Vec<u8>>);
    impl Agent for Typist {
        fn perform(&self, _verb: &str, args: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, String> {
            self.0.lock().unwrap().extend(args.concat());
            Ok(vec![])
        }
        fn input_after_reply(&self) -> Vec<u8> {
            std::mem::take(&mut *self.0.lock().unwrap())
        }
    }

    #[test]
    fn typed_input_follows_the_reply() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "read reply; read typed; echo \"$reply|$typed\""])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdin: SharedStdin = Arc::new(Mutex::new(child.stdin.take()));
        let session = Session::start(Arc::new(Typist(Mutex::default())), stdin.clone());
        session
            .line_sender()
            .send("@host 3 type ls%0A".into())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        session.finish();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "@ok 3|ls");
    }

    #[test]
    fn a_session_answers_through_stdin() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "read line; echo got:$line"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdin: SharedStdin = Arc::new(Mutex::new(child.stdin.take()));
        let session = Session::start(Arc::new(Echo), stdin.clone());
        session
            .line_sender()
            .send("@host 9 echo hi".into())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        session.finish();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "got:@ok 9 hi");
    }
}
