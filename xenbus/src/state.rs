//! The XenBus device state (`enum xenbus_state` of Xen's
//! `public/io/xenbus.h`), as each end writes it to its `state` node.
//!
//! The numbering is the ABI: Unknown 0, Initialising 1, InitWait 2,
//! Initialised 3, Connected 4, Closing 5, Closed 6, Reconfiguring 7,
//! Reconfigured 8. The node holds the decimal number as text.

use core::fmt;
use core::str::FromStr;

/// The state of one end of a XenBus device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum XenbusState {
    /// 0: the node is missing or was never written.
    Unknown = 0,
    /// 1: the end is setting itself up (the toolstack writes this first).
    Initialising = 1,
    /// 2: early set-up done; waiting for the peer's details or hotplug
    /// scripts (a backend goes here before the frontend publishes).
    InitWait = 2,
    /// 3: set up and waiting for the peer to connect.
    Initialised = 3,
    /// 4: connected; the data path may run.
    Connected = 4,
    /// 5: closing, after an error or an unplug.
    Closing = 5,
    /// 6: closed.
    Closed = 6,
    /// 7: being reconfigured (pciback).
    Reconfiguring = 7,
    /// 8: reconfiguration done.
    Reconfigured = 8,
}

impl XenbusState {
    /// Every state, in ABI order.
    pub const ALL: [XenbusState; 9] = [
        XenbusState::Unknown,
        XenbusState::Initialising,
        XenbusState::InitWait,
        XenbusState::Initialised,
        XenbusState::Connected,
        XenbusState::Closing,
        XenbusState::Closed,
        XenbusState::Reconfiguring,
        XenbusState::Reconfigured,
    ];

    /// The state numbered `n`, if the header defines one.
    pub fn from_raw(n: u32) -> Option<XenbusState> {
        XenbusState::ALL.get(usize::try_from(n).ok()?).copied()
    }

    /// The ABI number.
    pub fn raw(self) -> u32 {
        self as u32
    }

    /// Parses a `state` node's value: a decimal number of a defined state,
    /// with surrounding ASCII whitespace allowed (as `xenbus_scanf("%d")`
    /// skips it). Anything else is an error, never a guess.
    pub fn parse(value: &[u8]) -> Result<XenbusState, InvalidState> {
        let text = core::str::from_utf8(value).map_err(|_| InvalidState)?;
        let digits = text.trim_ascii();
        // u32::from_str accepts a leading '+'; the protocol writes bare digits.
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InvalidState);
        }
        digits
            .parse::<u32>()
            .ok()
            .and_then(XenbusState::from_raw)
            .ok_or(InvalidState)
    }

    /// The name Linux's `xenbus_strstate` prints.
    pub fn name(self) -> &'static str {
        match self {
            XenbusState::Unknown => "Unknown",
            XenbusState::Initialising => "Initialising",
            XenbusState::InitWait => "InitWait",
            XenbusState::Initialised => "Initialised",
            XenbusState::Connected => "Connected",
            XenbusState::Closing => "Closing",
            XenbusState::Closed => "Closed",
            XenbusState::Reconfiguring => "Reconfiguring",
            XenbusState::Reconfigured => "Reconfigured",
        }
    }

    /// Whether the end is going away or gone (Closing or Closed).
    pub fn is_closing(self) -> bool {
        matches!(self, XenbusState::Closing | XenbusState::Closed)
    }
}

impl fmt::Display for XenbusState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.raw())
    }
}

/// A `state` value that is not a defined [`XenbusState`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidState;

impl FromStr for XenbusState {
    type Err = InvalidState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        XenbusState::parse(s.as_bytes())
    }
}

/// A set of states, e.g. the ones a wait accepts.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct StateSet(u16);

impl StateSet {
    /// The empty set.
    pub const EMPTY: StateSet = StateSet(0);

    /// The set holding exactly `states`.
    pub const fn of(states: &[XenbusState]) -> StateSet {
        let mut bits = 0u16;
        let mut i = 0;
        while i < states.len() {
            bits |= 1 << states[i] as u16;
            i += 1;
        }
        StateSet(bits)
    }

    /// Whether `state` is in the set.
    pub fn contains(self, state: XenbusState) -> bool {
        self.0 & (1 << state as u16) != 0
    }

    /// The states in the set, in ABI order.
    pub fn iter(self) -> impl Iterator<Item = XenbusState> {
        XenbusState::ALL
            .into_iter()
            .filter(move |s| self.contains(*s))
    }
}

impl From<XenbusState> for StateSet {
    fn from(state: XenbusState) -> StateSet {
        StateSet::of(&[state])
    }
}

impl fmt::Debug for StateSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(XenbusState::name))
            .finish()
    }
}

impl fmt::Display for StateSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.iter().enumerate() {
            if i > 0 {
                f.write_str("|")?;
            }
            f.write_str(s.name())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_header_state_round_trips_through_its_number() {
        for (n, state) in XenbusState::ALL.iter().enumerate() {
            assert_eq!(state.raw(), n as u32);
            assert_eq!(XenbusState::from_raw(n as u32), Some(*state));
            let text = alloc::format!("{}", state.raw());
            assert_eq!(XenbusState::parse(text.as_bytes()), Ok(*state));
        }
        assert_eq!(XenbusState::from_raw(9), None);
    }

    #[test]
    fn parse_accepts_whitespace_and_rejects_everything_else() {
        assert_eq!(XenbusState::parse(b" 4\n"), Ok(XenbusState::Connected));
        assert_eq!(XenbusState::parse(b"04"), Ok(XenbusState::Connected));
        for bad in [
            &b""[..],
            b" ",
            b"9",
            b"-1",
            b"+4",
            b"4x",
            b"Connected",
            b"99999999999999999999",
            b"\xff\xfe",
            b"4 4",
        ] {
            assert_eq!(XenbusState::parse(bad), Err(InvalidState), "{bad:?}");
        }
    }

    #[test]
    fn state_sets_hold_what_they_were_given() {
        let set = StateSet::of(&[XenbusState::InitWait, XenbusState::Connected]);
        assert!(set.contains(XenbusState::Connected));
        assert!(!set.contains(XenbusState::Closed));
        assert_eq!(alloc::format!("{set}"), "InitWait|Connected");
        assert!(XenbusState::Closing.is_closing() && !XenbusState::Connected.is_closing());
    }
}
