//! A minimal guest-side ring client: what a guest kernel does with the
//! xenstore page, done from the host so the testbed can check a domain end
//! to end. One message at a time, blocking, with deadlines. The project's
//! real ring transport lives in the `xenstore` crate.
//!
//! Barriers follow xs_wire.h's protocol: read the indexes, then a full
//! barrier before touching ring data; a write barrier before publishing the
//! producer index; a full barrier before publishing the consumer index.

use std::sync::atomic::{Ordering, fence};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::event::GuestEventChannel;
use crate::page::{SharedPage, offset};
use crate::wire::{HEADER_LEN, Message};

const RING: u32 = offset::RING_SIZE as u32;

/// The guest's view of one domain's ring page and event channel.
pub(crate) struct GuestRing<'a> {
    pub page: &'a SharedPage,
    pub events: &'a GuestEventChannel,
}

impl GuestRing<'_> {
    /// Writes `msg` into the request ring, kicking the daemon after each
    /// chunk, waiting for space until `deadline`.
    pub(crate) fn send(&self, msg: &Message, deadline: Instant) -> Result<()> {
        let bytes = msg.encode();
        let mut sent = 0;
        while sent < bytes.len() {
            let cons = self.page.read_u32(offset::REQ_CONS)?;
            let prod = self.page.read_u32(offset::REQ_PROD)?;
            fence(Ordering::SeqCst);
            let used = prod.wrapping_sub(cons);
            if used > RING {
                return Err(Error::Protocol(format!(
                    "request ring indexes are corrupt: cons {cons} prod {prod}"
                )));
            }
            let free = (RING - used) as usize;
            if free == 0 {
                self.wait(deadline, "space in the request ring")?;
                continue;
            }
            let at = (prod % RING) as usize;
            let chunk = free.min(bytes.len() - sent).min(offset::RING_SIZE - at);
            self.page
                .write_bytes(offset::REQ + at, &bytes[sent..sent + chunk])?;
            fence(Ordering::Release);
            self.page
                .write_u32(offset::REQ_PROD, prod.wrapping_add(chunk as u32))?;
            self.events.notify()?;
            sent += chunk;
        }
        Ok(())
    }

    /// Reads the next message from the response ring, waiting until
    /// `deadline`.
    pub(crate) fn receive(&self, deadline: Instant) -> Result<Message> {
        let mut header = [0u8; HEADER_LEN];
        self.read_exact(&mut header, deadline)?;
        let (ty, req_id, tx_id, len) = Message::decode_header(&header)?;
        let mut payload = vec![0u8; len];
        self.read_exact(&mut payload, deadline)?;
        Ok(Message {
            ty,
            req_id,
            tx_id,
            payload,
        })
    }

    fn read_exact(&self, buf: &mut [u8], deadline: Instant) -> Result<()> {
        let mut got = 0;
        while got < buf.len() {
            let cons = self.page.read_u32(offset::RSP_CONS)?;
            let prod = self.page.read_u32(offset::RSP_PROD)?;
            fence(Ordering::SeqCst);
            let avail = prod.wrapping_sub(cons);
            if avail > RING {
                return Err(Error::Protocol(format!(
                    "response ring indexes are corrupt: cons {cons} prod {prod}"
                )));
            }
            if avail == 0 {
                self.wait(deadline, "a response from xenstored")?;
                continue;
            }
            let at = (cons % RING) as usize;
            let chunk = (avail as usize)
                .min(buf.len() - got)
                .min(offset::RING_SIZE - at);
            self.page
                .read_bytes(offset::RSP + at, &mut buf[got..got + chunk])?;
            fence(Ordering::SeqCst);
            self.page
                .write_u32(offset::RSP_CONS, cons.wrapping_add(chunk as u32))?;
            self.events.notify()?;
            got += chunk;
        }
        Ok(())
    }

    fn wait(&self, deadline: Instant, what: &str) -> Result<()> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !self.events.wait(left)? {
            return Err(Error::Timeout {
                what: what.to_string(),
            });
        }
        Ok(())
    }
}
