//! `daemon_read_pipelined`: what the daemon itself can serve one connection.
//! A raw client (no library) keeps `depth` READs in flight on one socket:
//! each read(2) takes whatever replies arrived, and one write(2) sends as
//! many new requests as replies came back. Nothing in the client waits on
//! anything but the daemon, so the figure is the daemon's own ceiling.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use testbed::wire::{HEADER_LEN, Message, ty};

/// One pipelined connection, `depth` READs of `path` in flight.
pub struct Pipeline {
    stream: UnixStream,
    request: Vec<u8>,
    expect_len: usize,
    buf: Vec<u8>,
    have: usize,
    out: Vec<u8>,
}

impl Pipeline {
    /// Connects and sends the first `depth` requests. Each reply must be a
    /// READ reply of `expect_len` bytes.
    pub fn start(
        socket: &Path,
        path: &str,
        expect_len: usize,
        depth: usize,
    ) -> Result<Pipeline, String> {
        let mut stream =
            UnixStream::connect(socket).map_err(|e| format!("connect {socket:?}: {e}"))?;
        let mut body = path.as_bytes().to_vec();
        body.push(0);
        // The req_id is echoed, not interpreted, by the daemon: one for all.
        let request = Message::new(ty::READ, 1, &body).encode();
        let first = request.repeat(depth);
        stream.write_all(&first).map_err(|e| format!("send: {e}"))?;
        Ok(Pipeline {
            stream,
            request,
            expect_len,
            buf: vec![0; 1 << 20],
            have: 0,
            out: Vec::new(),
        })
    }

    /// One round: reads what replies arrived, checks them, sends as many new
    /// requests. Returns the number of replies.
    pub fn round(&mut self) -> Result<u64, String> {
        let n = self
            .stream
            .read(&mut self.buf[self.have..])
            .map_err(|e| format!("recv: {e}"))?;
        if n == 0 {
            return Err("the daemon closed the connection".into());
        }
        self.have += n;
        let mut off = 0;
        let mut replies = 0u64;
        self.out.clear();
        while self.have - off >= HEADER_LEN {
            let header: &[u8; HEADER_LEN] = self.buf[off..off + HEADER_LEN]
                .try_into()
                .expect("slice of HEADER_LEN");
            let (msg_ty, _req_id, _tx, len) =
                Message::decode_header(header).map_err(|e| format!("bad reply header: {e}"))?;
            if self.have - off < HEADER_LEN + len {
                break;
            }
            if msg_ty != ty::READ || len != self.expect_len {
                let body = &self.buf[off + HEADER_LEN..off + HEADER_LEN + len];
                return Err(format!(
                    "unexpected reply: type {} ({}), {:?}",
                    msg_ty,
                    ty::name(msg_ty),
                    String::from_utf8_lossy(body)
                ));
            }
            off += HEADER_LEN + len;
            replies += 1;
            self.out.extend_from_slice(&self.request);
        }
        self.buf.copy_within(off..self.have, 0);
        self.have -= off;
        if !self.out.is_empty() {
            self.stream
                .write_all(&self.out)
                .map_err(|e| format!("send: {e}"))?;
        }
        Ok(replies)
    }
}
