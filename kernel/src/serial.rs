//! COM1 (16550 UART at 0x3f8): polled output for the log, and
//! interrupt-driven input into a bounded receive buffer with blocking,
//! timeout-bounded readers ([`read_byte`], [`read_line`]).
//!
//! Output takes [`TX_LOCK`] (IRQ-safe, a leaf in the kernel's lock order),
//! so whole log lines never interleave, even with interrupt handlers.
//! Input: the IRQ 4 handler drains the UART into [`RX`] and wakes
//! [`RX_READY`]. When the buffer is full the handler stops draining and
//! masks the receive interrupt, so further bytes wait in the UART; a reader
//! that has taken the buffer down to half unmasks it. Under QEMU the
//! UART's input then simply waits (its character backend is not read while
//! the FIFO is full), so a reply longer than the buffer arrives whole
//! however late its reader runs. A real UART's FIFO overruns instead; that
//! loss is counted ([`rx_dropped`]), never silent.
//!
//! Where there is no UART (a Xen PVH guest), the console is Xen's PV
//! console: the hypervisor layer installs a [`Mirror`] that gets every byte
//! written here, and an [`InputSource`] whose bytes join the UART's in
//! [`RX`], so the shell and the host link work the same on both. The
//! source is throttled like the UART: when [`RX`] is full its bytes wait in
//! its own ring until a reader takes the buffer down to half.

use alloc::collections::VecDeque;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;

use crate::arch::cpu::{inb, outb};
use crate::spinlock::SpinLock;
use crate::thread::WaitQueue;
use crate::time::Instant;

const COM1: u16 = 0x3f8;
const COM1_IRQ: u8 = 4;
const REG_DATA: u16 = 0;
const REG_IER: u16 = 1;
const REG_FCR: u16 = 2;
const REG_LCR: u16 = 3;
const REG_MCR: u16 = 4;
const REG_LSR: u16 = 5;
const LSR_DATA_READY: u8 = 0x01;
const LSR_OVERRUN: u8 = 0x02;
const LSR_THR_EMPTY: u8 = 0x20;

/// Receive buffer size; when it is full, input waits in the UART.
pub const RX_CAPACITY: usize = 4096;
/// A full buffer's reader unmasks the receive interrupt at this fill.
const RX_RESUME_AT: usize = RX_CAPACITY / 2;

/// Serialises writers so lines do not interleave. Guards nothing else.
static TX_LOCK: SpinLock<()> = SpinLock::new(());
/// Received bytes not yet read. Taken by the IRQ handler and by readers.
static RX: SpinLock<VecDeque<u8>> = SpinLock::new(VecDeque::new());
/// Readers sleep here until [`RX`] is non-empty.
static RX_READY: WaitQueue = WaitQueue::new();
static RX_DROPPED: AtomicU64 = AtomicU64::new(0);
static RX_ENABLED: AtomicBool = AtomicBool::new(false);
/// The receive interrupt is masked because [`RX`] filled up. Changed only
/// with [`RX`] held.
static RX_THROTTLED: AtomicBool = AtomicBool::new(false);
/// IER value with the received-data-available interrupt on.
const IER_RX: u8 = 0x01;

/// Gets a copy of everything written to the console (`\n` already turned
/// into `\r\n`). `emergency` is set on fatal paths, where the mirror must
/// not wait for a lock its own CPU may hold. Called with [`TX_LOCK`] held
/// (except on fatal paths) and interrupts disabled.
pub type Mirror = fn(bytes: &[u8], emergency: bool);
static MIRROR: spin::Once<Mirror> = spin::Once::new();

/// Another input device (the Xen PV console): moves at most `room` bytes,
/// oldest first, into `push` and returns how many it moved. Called with
/// [`RX`] held and interrupts disabled.
pub type InputSource = fn(room: usize, push: &mut dyn FnMut(u8)) -> usize;
static INPUT_SOURCE: spin::Once<InputSource> = spin::Once::new();
/// The input source was left with bytes because [`RX`] was full. Changed
/// only with [`RX`] held.
static SOURCE_THROTTLED: AtomicBool = AtomicBool::new(false);

/// Errors of [`read_line`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadLineError {
    /// The timeout passed before a line ended; the bytes read so far are in
    /// the buffer.
    Timeout,
    /// The line exceeded the caller's limit; the rest of it was discarded.
    TooLong {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// Input is not enabled (called before boot finished).
    NotEnabled,
}

impl fmt::Display for ReadLineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => write!(f, "timed out waiting for the end of the line"),
            Self::TooLong { limit } => write!(f, "line longer than {limit} bytes"),
            Self::NotEnabled => write!(f, "serial input is not enabled yet"),
        }
    }
}

/// Reads COM1's register `reg`.
fn com1_read(reg: u16) -> u8 {
    // SAFETY: COM1 is this module's device; a 16550 does no DMA, and a data
    // read only pops the receive FIFO this module drains.
    unsafe { inb(COM1 + reg) }
}

/// Writes COM1's register `reg`.
fn com1_write(reg: u16, value: u8) {
    // SAFETY: COM1 is this module's device; a 16550 does no DMA and raises
    // only IRQ 4, whose handler is this module's.
    unsafe { outb(COM1 + reg, value) }
}

/// Programs COM1: 115200 8N1, FIFOs on, interrupts off. Called first at boot.
pub fn init() {
    com1_write(REG_IER, 0x00);
    com1_write(REG_LCR, 0x80); // DLAB: divisor follows
    com1_write(REG_DATA, 0x01); // 115200 baud
    com1_write(REG_IER, 0x00);
    com1_write(REG_LCR, 0x03); // 8 data bits, no parity, 1 stop bit
    com1_write(REG_FCR, 0xc7); // FIFOs on and cleared, 14-byte RX trigger
    com1_write(REG_MCR, 0x0b); // DTR, RTS, OUT2 (routes the IRQ)
}

/// Bytes the 16550's transmit FIFO holds once it reports empty.
const TX_FIFO_SIZE: usize = 16;

/// Waits until the transmit FIFO is empty. An absent UART reads 0xff, which
/// also says "empty", so this never spins forever.
fn wait_tx_empty() {
    let mut spins = 0u32;
    while com1_read(REG_LSR) & LSR_THR_EMPTY == 0 && spins < 1_000_000 {
        spins += 1;
        core::hint::spin_loop();
    }
}

fn write_bytes_raw(bytes: &[u8], emergency: bool) {
    write_uart(bytes);
    if let Some(mirror) = MIRROR.get() {
        for (i, piece) in bytes.split(|&b| b == b'\n').enumerate() {
            if i > 0 {
                mirror(b"\r\n", emergency);
            }
            if !piece.is_empty() {
                mirror(piece, emergency);
            }
        }
    }
}

fn write_uart(bytes: &[u8]) {
    // One status read per FIFO-full of bytes rather than per byte: each port
    // access is a VM exit, which dominates console cost under virtualisation.
    let mut in_fifo = TX_FIFO_SIZE;
    let mut put = |b: u8| {
        if in_fifo == TX_FIFO_SIZE {
            wait_tx_empty();
            in_fifo = 0;
        }
        com1_write(REG_DATA, b);
        in_fifo += 1;
    };
    for &b in bytes {
        if b == b'\n' {
            put(b'\r');
        }
        put(b);
    }
}

/// Writes bytes to COM1 (`\n` becomes `\r\n`), atomically with respect to
/// other writers. Callable from any context, including interrupt handlers.
pub fn write_bytes(bytes: &[u8]) {
    let _tx = TX_LOCK.lock();
    write_bytes_raw(bytes, false);
}

/// Formats and writes to COM1 as one unit (see [`write_bytes`]).
pub fn write_fmt(args: fmt::Arguments<'_>) {
    let _tx = TX_LOCK.lock();
    let _ = fmt::write(&mut RawWriter, args);
}

/// Writes without taking the lock; only for paths that run while the lock
/// may be held by this CPU itself (under `TX_LOCK`, or fatal reports).
struct RawWriter;

impl fmt::Write for RawWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_bytes_raw(s.as_bytes(), false);
        Ok(())
    }
}

/// A writer for fatal paths (panic, exceptions): takes the output lock if it
/// can, and writes anyway if it cannot (the holder may be the code that
/// crashed), so a report is never lost to a deadlock.
pub struct EmergencyWriter;

impl fmt::Write for EmergencyWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let _tx = TX_LOCK.try_lock();
        write_bytes_raw(s.as_bytes(), true);
        Ok(())
    }
}

/// `print!` to the serial console (no log prefix).
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::serial::write_fmt(format_args!($($arg)*)) };
}

/// `println!` to the serial console (no log prefix).
#[macro_export]
macro_rules! println {
    () => { $crate::serial::write_bytes(b"\n") };
    ($($arg:tt)*) => { $crate::serial::write_fmt(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Mirrors all console output to `mirror` from now on. Once per kernel;
/// returns `false` (and keeps the first) if one is set.
pub fn set_mirror(mirror: Mirror) -> bool {
    let mut installed = false;
    MIRROR.call_once(|| {
        installed = true;
        mirror
    });
    installed
}

/// Takes input from `source` too, and enables input. Once per kernel;
/// returns `false` (and keeps the first) if one is set. The source's
/// driver calls [`input_arrived`] when it has bytes.
pub fn add_input_source(source: InputSource) -> bool {
    let mut installed = false;
    INPUT_SOURCE.call_once(|| {
        installed = true;
        source
    });
    if installed {
        RX.lock().reserve(RX_CAPACITY);
        RX_ENABLED.store(true, Ordering::SeqCst);
        input_arrived();
    }
    installed
}

/// The input source has bytes: moves what fits into the buffer and wakes
/// readers. Interrupt context is fine (the PV console's event handler).
pub fn input_arrived() {
    let got = drain_source(&mut RX.lock());
    if got {
        RX_READY.wake_all();
    }
}

/// Moves what fits from the input source into `rx`; when `rx` fills up,
/// marks the source throttled (see the module doc). Called with [`RX`]
/// held.
fn drain_source(rx: &mut VecDeque<u8>) -> bool {
    let Some(source) = INPUT_SOURCE.get() else {
        return false;
    };
    let room = RX_CAPACITY.saturating_sub(rx.len());
    let moved = if room > 0 {
        source(room, &mut |b| rx.push_back(b))
    } else {
        0
    };
    if rx.len() >= RX_CAPACITY {
        SOURCE_THROTTLED.store(true, Ordering::SeqCst);
    }
    moved > 0
}

fn on_rx_interrupt() {
    let got = drain_uart(&mut RX.lock());
    if got {
        RX_READY.wake_all();
    }
}

/// Moves bytes from the UART into `rx` until the UART is empty or `rx` is
/// full; in the latter case masks the receive interrupt (see the module
/// doc). Returns whether any byte was moved. Called with [`RX`] held.
fn drain_uart(rx: &mut VecDeque<u8>) -> bool {
    let mut got = false;
    loop {
        let lsr = com1_read(REG_LSR);
        if lsr & LSR_OVERRUN != 0 {
            RX_DROPPED.fetch_add(1, Ordering::Relaxed); // the UART lost at least one
        }
        if lsr & LSR_DATA_READY == 0 || lsr == 0xff {
            return got;
        }
        if rx.len() >= RX_CAPACITY {
            com1_write(REG_IER, 0x00);
            RX_THROTTLED.store(true, Ordering::SeqCst);
            return got;
        }
        rx.push_back(com1_read(REG_DATA));
        got = true;
    }
}

/// Takes the oldest received byte. Once a throttled buffer is down to
/// [`RX_RESUME_AT`], unmasks the receive interrupt and takes what waited in
/// the UART meanwhile; returns whether that moved bytes other readers may
/// want (the caller wakes them: this runs inside a wait queue's condition).
fn take_byte() -> (Option<u8>, bool) {
    let mut rx = RX.lock();
    let byte = rx.pop_front();
    let mut refilled = false;
    if RX_THROTTLED.load(Ordering::SeqCst) && rx.len() <= RX_RESUME_AT {
        RX_THROTTLED.store(false, Ordering::SeqCst);
        com1_write(REG_IER, IER_RX);
        refilled = drain_uart(&mut rx);
    }
    if SOURCE_THROTTLED.load(Ordering::SeqCst) && rx.len() <= RX_RESUME_AT {
        SOURCE_THROTTLED.store(false, Ordering::SeqCst);
        refilled |= drain_source(&mut rx);
    }
    (byte, refilled)
}

/// Enables the receive interrupt (IRQ 4 through the IOAPIC). Called by boot
/// once interrupts work; input arriving earlier waits in the UART FIFO.
/// Without a UART (Xen PVH) this fails; input then comes only from an
/// [`InputSource`] if one was added.
pub fn enable_input() {
    RX.lock().reserve(RX_CAPACITY);
    match crate::interrupts::register_legacy_irq(COM1_IRQ, on_rx_interrupt) {
        Ok(_) => {
            com1_write(REG_IER, IER_RX);
            RX_ENABLED.store(true, Ordering::SeqCst);
            on_rx_interrupt(); // anything that arrived before the IRQ was routed
        }
        Err(e) if INPUT_SOURCE.get().is_some() => {
            log::info!("serial input disabled ({e}); input comes from the Xen PV console")
        }
        Err(e) => log::warn!("serial input disabled: {e}"),
    }
}

/// Whether input is enabled (the receive interrupt is routed).
pub fn input_enabled() -> bool {
    RX_ENABLED.load(Ordering::SeqCst)
}

/// Overruns the UART reported: input lost because its FIFO was full (at
/// least one byte each). QEMU's UART never overruns.
pub fn rx_dropped() -> u64 {
    RX_DROPPED.load(Ordering::Relaxed)
}

/// Waits for one received byte. `timeout` `None` waits forever; returns
/// `None` on timeout or when input is not enabled. Sleeps (do not call from
/// interrupt context or with a spin lock held).
pub fn read_byte(timeout: Option<Duration>) -> Option<u8> {
    read_byte_or_stop(timeout, &mut || false)
}

/// Like [`read_byte`] without a timeout, but also returns `None` once
/// `stop()` holds. A thread that makes `stop()` true must then call
/// [`wake_readers`] (the condition is re-checked only on a wake-up).
pub fn read_byte_until(stop: &mut dyn FnMut() -> bool) -> Option<u8> {
    read_byte_or_stop(None, stop)
}

fn read_byte_or_stop(timeout: Option<Duration>, stop: &mut dyn FnMut() -> bool) -> Option<u8> {
    if !RX_ENABLED.load(Ordering::SeqCst) {
        return None;
    }
    let mut byte = None;
    let mut refilled = false;
    RX_READY.wait_until(
        || {
            let (taken, moved) = take_byte();
            byte = taken;
            refilled |= moved;
            byte.is_some() || stop()
        },
        timeout,
    );
    if refilled {
        RX_READY.wake_all();
    }
    byte
}

/// Wakes the threads in [`read_byte_until`] so they re-check `stop`.
/// Thread context.
pub fn wake_readers() {
    RX_READY.wake_all();
}

/// Reads one line into `line` (cleared first), without its terminator.
/// A line ends at `\n`, `\r` or `\r\n` (a `\n` right after a `\r` that ended
/// the previous line is skipped). `timeout` bounds the whole line. Returns
/// the line length. Lines longer than `limit` are consumed to their end and
/// reported as [`ReadLineError::TooLong`].
pub fn read_line(
    line: &mut alloc::vec::Vec<u8>,
    limit: usize,
    timeout: Option<Duration>,
) -> Result<usize, ReadLineError> {
    static LAST_WAS_CR: AtomicBool = AtomicBool::new(false);
    if !RX_ENABLED.load(Ordering::SeqCst) {
        return Err(ReadLineError::NotEnabled);
    }
    line.clear();
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut too_long = false;
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let Some(byte) = read_byte(left) else {
            return Err(ReadLineError::Timeout);
        };
        let after_cr = LAST_WAS_CR.swap(byte == b'\r', Ordering::Relaxed);
        match byte {
            b'\n' if after_cr && line.is_empty() && !too_long => continue,
            b'\n' | b'\r' if too_long => return Err(ReadLineError::TooLong { limit }),
            b'\n' | b'\r' => return Ok(line.len()),
            _ if line.len() >= limit => too_long = true,
            _ => line.push(byte),
        }
    }
}
