//! The service's settings, from the kernel command line.

use core::time::Duration;

/// The store's cap when the command line names none.
pub const DEFAULT_CAP: u64 = 32 << 20;
/// How long a connection may stay silent before its transfer is cancelled.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(30);

/// How the service runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Bytes the store holds at most (files plus the transfer staged).
    pub cap: u64,
    /// Silence after which a connection is dropped with its transfer.
    pub idle: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cap: DEFAULT_CAP,
            idle: DEFAULT_IDLE,
        }
    }
}

/// `N`, `NK` or `NM` bytes.
fn bytes(value: &str) -> Option<u64> {
    let (digits, shift) = match value.as_bytes().last()? {
        b'K' | b'k' => (&value[..value.len() - 1], 10),
        b'M' | b'm' => (&value[..value.len() - 1], 20),
        _ => (value, 0),
    };
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}

impl Config {
    /// `fcopy.cap=BYTES` (`K`, `M` suffixes) and `fcopy.idle=SECS` from the
    /// command line; an unreadable value is logged and the default kept.
    pub fn from_cmdline() -> Config {
        let info = crate::bootinfo::info();
        let mut config = Config::default();
        if let Some(value) = info.cmdline_value("fcopy.cap") {
            match bytes(value) {
                Some(cap) => config.cap = cap,
                None => log::warn!("fcopy: ignoring fcopy.cap={value} (want BYTES, NK or NM)"),
            }
        }
        if let Some(value) = info.cmdline_value("fcopy.idle") {
            match value.parse::<u64>() {
                Ok(secs) if secs > 0 => config.idle = Duration::from_secs(secs),
                _ => log::warn!("fcopy: ignoring fcopy.idle={value} (want whole seconds > 0)"),
            }
        }
        config
    }
}
