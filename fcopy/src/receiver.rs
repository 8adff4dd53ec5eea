//! The receiver's side of one connection: one transfer at a time, staged
//! in memory and published only on complete, so a cancel, a vanished
//! sender or an idle timeout leaves no partial file. Pure: the kernel
//! feeds it decoded frames and sends back the replies it returns.

use alloc::collections::TryReserveError;
use alloc::string::String;
use alloc::vec::Vec;

use crate::store::{FileStore, Reservation};
use crate::wire::{Kind, Reply, Request, Start, Status};

/// The transfer under way.
#[derive(Debug)]
struct Staged {
    reservation: Reservation,
    /// The bytes so far; its length is the highest byte written, zeros in
    /// any gap.
    data: Vec<u8>,
}

/// What happened to a transfer, for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Published: path and size.
    Published(String, u64),
    /// Dropped: path and bytes received.
    Dropped(String, u64),
}

/// One connection's state: idle, or one transfer staged.
#[derive(Debug, Default)]
pub struct Receiver {
    staged: Option<Staged>,
}

fn reply(answers: Kind, status: Status, value: u64) -> Reply {
    Reply {
        answers,
        status,
        value,
    }
}

fn stage(size: u64) -> Result<Vec<u8>, TryReserveError> {
    let mut data = Vec::new();
    data.try_reserve_exact(usize::try_from(size).unwrap_or(usize::MAX))?;
    Ok(data)
}

impl Receiver {
    /// A receiver with nothing under way.
    pub fn new() -> Receiver {
        Receiver::default()
    }

    /// The transfer under way: its path, announced size and bytes so far.
    pub fn in_flight(&self) -> Option<(&str, u64, u64)> {
        self.staged.as_ref().map(|s| {
            (
                s.reservation.path(),
                s.reservation.bytes(),
                s.data.len() as u64,
            )
        })
    }

    /// Handles one frame and returns its answer. `Some` outcome when a
    /// transfer ended (published, or dropped by a cancel).
    pub fn handle(
        &mut self,
        store: &mut FileStore,
        request: &Request<'_>,
    ) -> (Reply, Option<Outcome>) {
        let kind = request.kind();
        match *request {
            Request::Start(start) => (self.start(store, start), None),
            Request::Write { offset, data } => (self.write(offset, data), None),
            Request::Complete => self.complete(store),
            Request::Cancel => match self.abort(store) {
                Some(outcome) => (reply(kind, Status::Ok, 0), Some(outcome)),
                None => (reply(kind, Status::NoTransfer, 0), None),
            },
        }
    }

    fn start(&mut self, store: &mut FileStore, start: Start<'_>) -> Reply {
        if let Some(s) = &self.staged {
            return reply(Kind::Start, Status::Busy, s.data.len() as u64);
        }
        let reservation = match store.reserve(
            start.dir,
            start.name,
            start.size,
            start.flags.overwrite,
            start.flags.create_path,
        ) {
            Ok(r) => r,
            Err(e) => {
                let value = match e {
                    crate::store::StoreError::OutOfSpace { free, .. } => free,
                    _ => 0,
                };
                return reply(Kind::Start, e.status(), value);
            }
        };
        // The cap is the store's promise; the heap may still say no.
        let Ok(data) = stage(start.size) else {
            let free = store.free() + reservation.bytes();
            store.release(reservation);
            return reply(Kind::Start, Status::OutOfSpace, free);
        };
        self.staged = Some(Staged { reservation, data });
        reply(Kind::Start, Status::Ok, 0)
    }

    fn write(&mut self, offset: u64, bytes: &[u8]) -> Reply {
        let Some(s) = &mut self.staged else {
            return reply(Kind::Write, Status::NoTransfer, 0);
        };
        let size = s.reservation.bytes();
        let end = offset.checked_add(bytes.len() as u64);
        let Some(end) = end.filter(|&end| end <= size) else {
            return reply(Kind::Write, Status::OffsetOutOfRange, size);
        };
        // In bounds of the reserved size, so these fit in usize.
        let (offset, end) = (offset as usize, end as usize);
        if end > s.data.len() {
            s.data.resize(end, 0);
        }
        s.data[offset..end].copy_from_slice(bytes);
        reply(Kind::Write, Status::Ok, s.data.len() as u64)
    }

    fn complete(&mut self, store: &mut FileStore) -> (Reply, Option<Outcome>) {
        let Some(s) = self.staged.take() else {
            return (reply(Kind::Complete, Status::NoTransfer, 0), None);
        };
        let got = s.data.len() as u64;
        if got < s.reservation.bytes() {
            self.staged = Some(s);
            return (reply(Kind::Complete, Status::Incomplete, got), None);
        }
        let path = String::from(s.reservation.path());
        store.publish(s.reservation, s.data);
        (
            reply(Kind::Complete, Status::Ok, got),
            Some(Outcome::Published(path, got)),
        )
    }

    /// Drops the transfer under way, if any (cancel, the sender gone, an
    /// idle timeout): its space goes back, no file appears.
    pub fn abort(&mut self, store: &mut FileStore) -> Option<Outcome> {
        let s = self.staged.take()?;
        let outcome = Outcome::Dropped(String::from(s.reservation.path()), s.data.len() as u64);
        store.release(s.reservation);
        Some(outcome)
    }
}

#[cfg(test)]
mod tests;
