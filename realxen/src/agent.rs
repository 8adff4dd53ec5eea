//! The command channel into dom0, host side: a line protocol with the
//! shell agent (`dom0/agent`) on dom0's second serial port, which QEMU
//! connects to a unix socket. One request at a time; every payload is
//! base64, so only the agent's own `@` lines frame a reply.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::error::{Error, Result};

/// What a dom0 command did.
#[derive(Debug, Clone)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    /// The shell's exit status (137 when the agent's timeout killed it).
    pub status: i32,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == 0
    }
}

/// Bytes of file content per `put` request: the agent acknowledges each,
/// so dom0's tty buffers never have to hold more than this.
const PUT_CHUNK: usize = 3 * 8 * 1024;
/// Slack for the round trip on top of a command's own time limit.
const REPLY_SLACK: Duration = Duration::from_secs(30);

pub struct Agent {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
    next_id: u64,
}

impl Agent {
    pub fn new(stream: UnixStream) -> Result<Agent> {
        let reader = stream
            .try_clone()
            .map_err(|e| Error::io("cloning the agent socket", e))?;
        Ok(Agent {
            writer: stream,
            reader: BufReader::new(reader),
            next_id: 1,
        })
    }

    /// Waits for the agent's `@agent ready` line.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        self.set_timeout(timeout)?;
        loop {
            if self.line()? == "@agent ready" {
                return Ok(());
            }
        }
    }

    /// Runs `script` with `sh` in dom0, killing it after `limit`.
    pub fn run(&mut self, script: &str, limit: Duration) -> Result<Output> {
        let id = self.take_id();
        let request = format!(
            "run {id} {} {}\n",
            limit.as_secs().max(1),
            BASE64.encode(script.as_bytes())
        );
        self.send(request.as_bytes())?;
        self.set_timeout(limit + REPLY_SLACK)?;
        self.skip_to(&format!("@out {id}"))?;
        let stdout = self.payload_until(&format!("@err {id}"))?;
        let end = format!("@end {id} ");
        let mut stderr_b64 = String::new();
        let status = loop {
            let line = self.line()?;
            if let Some(status) = line.strip_prefix(&end) {
                break parse_status(status)?;
            }
            stderr_b64.push_str(&line);
        };
        Ok(Output {
            stdout: decode_text(&stdout)?,
            stderr: decode_text(&stderr_b64)?,
            status,
        })
    }

    /// Writes `data` to `path` in dom0.
    pub fn put(&mut self, path: &str, data: &[u8]) -> Result<()> {
        let path_b64 = BASE64.encode(path.as_bytes());
        let mut chunks = data.chunks(PUT_CHUNK).peekable();
        let mut mode = "new";
        if chunks.peek().is_none() {
            return self.put_chunk(mode, &path_b64, b"");
        }
        for chunk in chunks {
            self.put_chunk(mode, &path_b64, chunk)?;
            mode = "append";
        }
        Ok(())
    }

    fn put_chunk(&mut self, mode: &str, path_b64: &str, chunk: &[u8]) -> Result<()> {
        let id = self.take_id();
        let body = BASE64.encode(chunk);
        let mut request = format!("put {id} {mode} {path_b64} {}\n", body.len()).into_bytes();
        request.extend_from_slice(body.as_bytes());
        self.send(&request)?;
        self.set_timeout(REPLY_SLACK)?;
        let line = self.skip_to_prefix(&format!("@end {id} "))?;
        match parse_status(&line)? {
            0 => Ok(()),
            status => Err(Error::agent(format!(
                "writing a file in dom0 failed (status {status})"
            ))),
        }
    }

    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.writer
            .write_all(bytes)
            .map_err(|e| Error::io("sending to the dom0 agent", e))
    }

    fn set_timeout(&mut self, timeout: Duration) -> Result<()> {
        self.reader
            .get_ref()
            .set_read_timeout(Some(timeout))
            .map_err(|e| Error::io("setting the agent socket timeout", e))
    }

    /// The next line, without its end; an error at end of stream or timeout.
    fn line(&mut self) -> Result<String> {
        let mut raw = Vec::new();
        match self.reader.read_until(b'\n', &mut raw) {
            Ok(0) => Err(Error::agent("the channel closed (QEMU exited?)")),
            Ok(_) => Ok(String::from_utf8_lossy(&raw).trim_end().to_string()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Err(Error::agent("no answer in time (dom0 hung or busy?)"))
            }
            Err(e) => Err(Error::io("reading from the dom0 agent", e)),
        }
    }

    /// Reads up to the line `marker`. Anything before it is a leftover of
    /// an earlier request that timed out on our side: skipped.
    fn skip_to(&mut self, marker: &str) -> Result<()> {
        while self.line()? != marker {}
        Ok(())
    }

    fn skip_to_prefix(&mut self, prefix: &str) -> Result<String> {
        loop {
            if let Some(rest) = self.line()?.strip_prefix(prefix) {
                return Ok(rest.to_string());
            }
        }
    }

    fn payload_until(&mut self, marker: &str) -> Result<String> {
        let mut payload = String::new();
        loop {
            let line = self.line()?;
            if line == marker {
                return Ok(payload);
            }
            if line.starts_with('@') {
                return Err(Error::agent(format!(
                    "unexpected {line:?} before {marker:?}"
                )));
            }
            payload.push_str(&line);
        }
    }
}

fn parse_status(text: &str) -> Result<i32> {
    text.trim()
        .parse()
        .map_err(|_| Error::agent(format!("bad exit status {text:?}")))
}

/// Decodes a payload; busybox's `base64` wraps its lines at 76.
fn decode_text(b64: &str) -> Result<String> {
    let joined: String = b64.split_ascii_whitespace().collect();
    BASE64
        .decode(joined)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .map_err(|e| Error::agent(format!("reply payload is not base64: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_decode_across_busybox_line_wraps_and_garbage_is_refused() {
        assert_eq!(decode_text("aGkK\naA==\n").unwrap(), "hi\nh");
        assert!(decode_text("aA==aGkK").is_err()); // Data after padding.
        assert!(decode_text("aG!K").is_err());
        assert_eq!(BASE64.encode(b"hi\n"), "aGkK");
    }
}
