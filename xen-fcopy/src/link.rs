//! The channel to the guest: dom0's unmodified `vchan-socket-proxy` as a
//! child, a libxenvchan client of the guest's vchan, with its stdin and
//! stdout as the two directions. A thread reads the guest's answers off
//! the proxy's stdout as they come, so the proxy never stalls on a full
//! pipe while we write.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use fcopy::Reply;
use fcopy::wire::{self, HEADER_LEN};

use crate::error::Error;

/// The proxy, from xen-utils; `VCHAN_SOCKET_PROXY` overrides.
const PROXY: &str = "vchan-socket-proxy";

/// What the reader thread saw.
enum Event {
    Reply(Reply),
    /// End of stream (the guest closed, or the proxy exited).
    Closed,
    /// Bytes that are not a reply.
    Bad(String),
}

/// A connection to the guest's service.
pub struct Link {
    child: Child,
    stdin: Option<ChildStdin>,
    replies: Receiver<Event>,
}

impl Link {
    /// Starts the proxy as a client of the vchan domain `domid` offers at
    /// `path`.
    pub fn open(domid: u32, path: &str) -> Result<Link, Error> {
        let proxy = std::env::var("VCHAN_SOCKET_PROXY").unwrap_or_else(|_| PROXY.into());
        let mut child = Command::new(&proxy)
            .args(["--mode=client", &domid.to_string(), path, "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| Error::Transport(format!("starting {proxy}: {e}")))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let (tx, replies) = mpsc::channel();
        if let Some(mut stdout) = stdout {
            std::thread::spawn(move || {
                loop {
                    let event = read_reply(&mut stdout);
                    let last = !matches!(event, Event::Reply(_));
                    if tx.send(event).is_err() || last {
                        return;
                    }
                }
            });
        }
        Ok(Link {
            child,
            stdin,
            replies,
        })
    }

    /// Sends bytes towards the guest.
    pub fn send(&mut self, parts: &[&[u8]]) -> Result<(), Error> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| Error::Transport("the link is closed".into()))?;
        for part in parts {
            stdin
                .write_all(part)
                .map_err(|e| Error::Transport(format!("writing to the proxy: {e}")))?;
        }
        Ok(())
    }

    /// The next answer, waiting at most `limit`.
    pub fn reply(&mut self, limit: Duration) -> Result<Reply, Error> {
        match self.replies.recv_timeout(limit) {
            Ok(Event::Reply(r)) => Ok(r),
            Ok(Event::Closed) | Err(RecvTimeoutError::Disconnected) => {
                Err(Error::Transport("the guest closed the channel".into()))
            }
            Ok(Event::Bad(e)) => Err(Error::Transport(e)),
            Err(RecvTimeoutError::Timeout) => Err(Error::Transport(format!(
                "no answer from the guest within {} s",
                limit.as_secs()
            ))),
        }
    }

    /// An answer already in, without waiting.
    pub fn try_reply(&mut self) -> Option<Result<Reply, Error>> {
        match self.replies.try_recv() {
            Ok(Event::Reply(r)) => Some(Ok(r)),
            Ok(Event::Closed) | Err(mpsc::TryRecvError::Disconnected) => {
                Some(Err(Error::Transport("the guest closed the channel".into())))
            }
            Ok(Event::Bad(e)) => Some(Err(Error::Transport(e))),
            Err(mpsc::TryRecvError::Empty) => None,
        }
    }

    /// Whether the guest closed its end (the reader saw end of stream)
    /// within `limit`; answers still unread count as not closed.
    pub fn wait_closed(&mut self, limit: Duration) -> bool {
        matches!(
            self.replies.recv_timeout(limit),
            Ok(Event::Closed) | Err(RecvTimeoutError::Disconnected)
        )
    }

    /// Ends the connection: waits up to `grace` for the proxy to exit (it
    /// does once the guest closed), then kills it (the guest then sees its
    /// peer gone and drops any transfer under way).
    pub fn close(mut self, grace: Duration) {
        self.stdin = None;
        let start = Instant::now();
        while start.elapsed() < grace {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn read_reply(from: &mut impl Read) -> Event {
    let mut frame = [0u8; HEADER_LEN + wire::STATUS_LEN];
    let mut at = 0;
    while at < frame.len() {
        match from.read(&mut frame[at..]) {
            Ok(0) if at == 0 => return Event::Closed,
            Ok(0) => return Event::Bad(format!("the guest's answer ends after {at} bytes")),
            Ok(n) => at += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Event::Bad(format!("reading from the proxy: {e}")),
        }
        if at >= HEADER_LEN
            && let Err(e) = wire::parse_header(&frame)
        {
            return Event::Bad(format!("the guest sent a bad frame: {e}"));
        }
    }
    match wire::decode_reply(&frame) {
        Ok(r) => Event::Reply(r),
        Err(e) => Event::Bad(format!("the guest sent a bad answer: {e}")),
    }
}
