//! Noticing a peer that stops in the middle of a message.
//!
//! Replies are framed by their headers' lengths, so a peer that sends a
//! header (or part of one) and then nothing leaves the stream unusable:
//! with a request timeout configured, a message left part-way for that long
//! fails the connection ([`ProtocolViolation::TruncatedMessage`]), as an
//! over-long header does at once (see [`crate::protocol::Event::Broken`]).
//! Without a request timeout nothing is ever given up on, this included.

use core::time::Duration;

use super::{ConnState, Shared};
use crate::error::{ProtocolViolation, TransportError};
use crate::platform::{Lock, Platform};
use crate::sync::Deadline;

impl<P: Platform> Shared<P> {
    /// How long the next receive may block: until `deadline`, but no
    /// longer than the stall limit of a message that is part-way.
    pub(super) fn recv_timeout(&self, deadline: Deadline) -> Option<Duration> {
        let wanted = deadline.remaining(&self.platform);
        let Some(stall) = self.stall_left() else {
            return wanted;
        };
        Some(wanted.map_or(stall, |w| w.min(stall)))
    }

    /// After a receive timed out: the error to report, the framing error
    /// if a message has been part-way for the request timeout, else
    /// [`TransportError::TimedOut`] (not fatal).
    pub(super) fn stalled_message(&self) -> TransportError {
        self.conn
            .with(|c| self.stalled_in(c))
            .unwrap_or(TransportError::TimedOut)
    }

    /// The framing error if a message has been part-way for the request
    /// timeout with no byte since (called under `conn`). Only a reader that
    /// has just found the transport empty may conclude this: bytes may sit
    /// unread while nobody reads.
    fn stalled_in(&self, c: &ConnState<P>) -> Option<TransportError> {
        let limit = self.config.request_timeout?;
        let (received, expected) = c.core.partial_message()?;
        let idle = Duration::from_micros(self.platform.now_us().saturating_sub(c.last_input_us));
        (idle >= limit).then_some(TransportError::Framing(
            ProtocolViolation::TruncatedMessage { received, expected },
        ))
    }

    /// Records that bytes arrived (called under `conn` after feeding them).
    pub(super) fn note_input(&self, c: &mut ConnState<P>) {
        // Only a request timeout uses it; spare the clock read otherwise.
        if self.config.request_timeout.is_some() {
            c.last_input_us = self.platform.now_us();
        }
    }

    /// Time left before a part-way message counts as abandoned, if one is
    /// part-way and a request timeout is configured.
    fn stall_left(&self) -> Option<Duration> {
        let limit = self.config.request_timeout?;
        let last = self
            .conn
            .with(|c| c.core.partial_message().map(|_| c.last_input_us))?;
        let idle = Duration::from_micros(self.platform.now_us().saturating_sub(last));
        Some(limit.saturating_sub(idle))
    }
}
