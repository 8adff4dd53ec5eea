//! The `log` backend: every record goes to the serial console as one line,
//! `[seconds.micros] LEVEL target: message`, timestamped by the monotonic
//! clock (zero until the clock is calibrated). Extra sinks (e.g. the Xen PV
//! console) can be added with [`add_sink`].

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, Ordering};

use alloc::string::String;

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::spinlock::SpinLock;

/// Receives each formatted log line (with its trailing newline). Called with
/// interrupts disabled: it must be short and must not sleep.
pub type Sink = fn(&str);

/// Called just before a log line is written to the serial port (the
/// shell clears the line being typed there). Same rules as a [`Sink`].
pub type BeforeLine = fn();

/// Set once by [`set_before_line`].
static BEFORE_LINE: spin::Once<BeforeLine> = spin::Once::new();

const MAX_SINKS: usize = 4;
/// Extra sinks besides the serial port, in registration order.
static SINKS: SpinLock<[Option<Sink>; MAX_SINKS]> = SpinLock::new([None; MAX_SINKS]);

/// Lines logged while a [`SpinLock`] was held (interrupts off for the whole
/// serial write, so timer ticks and events wait behind it): a bug to fix by
/// logging after the guard is dropped. See [`under_spin_locks`].
static UNDER_SPIN_LOCKS: AtomicU64 = AtomicU64::new(0);
/// The first such line, cut to its buffer.
static FIRST_UNDER_SPIN_LOCK: SpinLock<([u8; 120], usize)> = SpinLock::new(([0; 120], 0));

struct KernelLogger;

static LOGGER: KernelLogger = KernelLogger;

/// A fixed buffer for one log line, so logging never allocates (it runs in
/// interrupt handlers and under the heap lock). Long lines are cut.
struct LineBuffer {
    bytes: [u8; LINE_MAX + 4],
    len: usize,
    cut: bool,
}

const LINE_MAX: usize = 508;

impl Write for LineBuffer {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = LINE_MAX - self.len;
        let mut n = s.len().min(room);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.cut |= n < s.len();
        self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

impl Log for KernelLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let us = crate::time::Instant::now().as_micros();
        let level = match record.level() {
            Level::Error => "ERROR",
            Level::Warn => "WARN ",
            Level::Info => "INFO ",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        };
        let mut line = LineBuffer {
            bytes: [0; LINE_MAX + 4],
            len: 0,
            cut: false,
        };
        let _ = write!(
            line,
            "[{:>5}.{:06}] {level} {}: {}",
            us / 1_000_000,
            us % 1_000_000,
            record.target(),
            record.args()
        );
        let tail: &[u8] = if line.cut { b"...\n" } else { b"\n" };
        line.bytes[line.len..line.len + tail.len()].copy_from_slice(tail);
        let bytes = &line.bytes[..line.len + tail.len()];
        if crate::spinlock::held() > 0 && UNDER_SPIN_LOCKS.fetch_add(1, Ordering::Relaxed) == 0 {
            let mut first = FIRST_UNDER_SPIN_LOCK.lock();
            let n = bytes.len().min(first.0.len());
            first.0[..n].copy_from_slice(&bytes[..n]);
            first.1 = n;
        }
        if let Some(before) = BEFORE_LINE.get() {
            before();
        }
        crate::serial::write_bytes(bytes);
        // Only whole characters were copied, so this cannot fail.
        let text = core::str::from_utf8(bytes).unwrap_or("");
        for sink in SINKS.lock().iter().flatten() {
            sink(text);
        }
    }

    fn flush(&self) {}
}

/// How many lines were logged while a [`SpinLock`] was held, and the first
/// of them. Should stay 0: log after dropping the guard.
pub fn under_spin_locks() -> (u64, Option<String>) {
    let count = UNDER_SPIN_LOCKS.load(Ordering::Relaxed);
    let first = FIRST_UNDER_SPIN_LOCK.lock();
    let line = (first.1 > 0).then(|| String::from_utf8_lossy(&first.0[..first.1]).into_owned());
    (count, line)
}

/// Installs the logger at level `Info`. Called once, first thing at boot.
pub fn init() {
    // A second call fails harmlessly: the logger is already ours.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(LevelFilter::Info);
}

/// Applies `loglevel=error|warn|info|debug|trace|off` from the command line.
pub fn apply_cmdline(cmdline: &str) {
    let level = cmdline
        .split_ascii_whitespace()
        .find_map(|arg| arg.strip_prefix("loglevel="));
    if let Some(level) = level {
        match level.parse::<LevelFilter>() {
            Ok(filter) => log::set_max_level(filter),
            Err(_) => log::warn!("ignoring unknown loglevel={level}"),
        }
    }
}

/// Adds a sink that receives every log line. Returns `false` when all
/// slots are taken (the sink is not added).
pub fn add_sink(sink: Sink) -> bool {
    let mut sinks = SINKS.lock();
    match sinks.iter_mut().find(|slot| slot.is_none()) {
        Some(slot) => {
            *slot = Some(sink);
            true
        }
        None => false,
    }
}

/// Installs the hook run before each log line reaches the serial port.
/// Once per kernel: returns `false` (and keeps the first) if one is set.
pub fn set_before_line(hook: BeforeLine) -> bool {
    let mut installed = false;
    BEFORE_LINE.call_once(|| {
        installed = true;
        hook
    });
    installed
}
