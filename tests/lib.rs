//! The kernel test framework. Each file in `tests/` is one kernel image: it
//! lists its test functions with [`main!`] and may describe how the runner
//! should boot it with [`config!`]. The `bootimage` runner boots each image
//! in QEMU and turns its serial output into libtest-style lines.
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! ktests::config!(timeout_secs = 20);
//! ktests::main!(adds_up);
//! fn adds_up() {
//!     assert_eq!(1 + 1, 2);
//! }
//! ```
//!
//! A test passes when it returns and fails when it panics. A panic ends the
//! image (the tests after it are reported as not run); a hang is ended by
//! the runner's per-image timeout.
//!
//! Serial protocol (parsed by `bootimage`'s runner):
//! `ktest: plan N name...`, then per test `ktest: start NAME` and
//! `test NAME ... ok` (or `test NAME ... FAILED` from the panic hook), and
//! finally `ktest: done` before exiting with success.

#![no_std]

extern crate alloc;

use core::sync::atomic::{AtomicUsize, Ordering};

pub use kernel;

pub mod support;

/// One test function of an image.
pub struct Test {
    /// The function's name, as printed.
    pub name: &'static str,
    /// The test; panicking fails it.
    pub run: fn(),
}

/// Index into the running image's test list, plus one (0: none running).
static CURRENT: AtomicUsize = AtomicUsize::new(0);
static TESTS: spin::Once<&'static [Test]> = spin::Once::new();

fn current_test_name() -> Option<&'static str> {
    let index = CURRENT.load(Ordering::SeqCst).checked_sub(1)?;
    TESTS
        .get()
        .and_then(|tests| tests.get(index))
        .map(|t| t.name)
}

fn on_panic(_info: &core::panic::PanicInfo<'_>) {
    // The kernel already printed the message and backtrace.
    if let Some(name) = current_test_name() {
        kernel::println!("test {name} ... FAILED");
    }
}

/// Runs `tests` in order (those whose name contains the `ktest.filter=`
/// command-line value, if given), then exits with success. Called by
/// [`main!`].
pub fn run(tests: &'static [Test]) -> ! {
    TESTS.call_once(|| tests);
    kernel::panic::set_hook(on_panic);
    let filter = kernel::bootinfo::info().cmdline_value("ktest.filter");
    let selected = || {
        tests
            .iter()
            .enumerate()
            .filter(move |(_, t)| filter.is_none_or(|f| t.name.contains(f)))
    };
    let mut plan = alloc::string::String::new();
    for (_, t) in selected() {
        plan.push(' ');
        plan.push_str(t.name);
    }
    kernel::println!("ktest: plan {}{}", selected().count(), plan);
    for (index, test) in selected() {
        CURRENT.store(index + 1, Ordering::SeqCst);
        kernel::println!("ktest: start {}", test.name);
        (test.run)();
        kernel::println!("test {} ... ok", test.name);
    }
    CURRENT.store(0, Ordering::SeqCst);
    kernel::println!("ktest: done");
    kernel::exit(kernel::ExitCode::Success)
}

/// Marks the running test as passed and ends the image successfully, from
/// wherever the test's outcome became known (e.g. a fatal-exception hook in
/// an image whose test must end in a double fault). Only for an image with
/// that one test.
pub fn pass_and_exit() -> ! {
    if let Some(name) = current_test_name() {
        kernel::println!("test {name} ... ok");
    }
    kernel::println!("ktest: done");
    kernel::exit(kernel::ExitCode::Success)
}

/// Declares the image's tests, in the order they run:
/// `ktests::main!(first_test, second_test);`
#[macro_export]
macro_rules! main {
    ($($test:ident),+ $(,)?) => {
        $crate::kernel::entry_point!(__ktest_main);
        static __KTEST_LIST: &[$crate::Test] = &[
            $($crate::Test { name: stringify!($test), run: $test }),+
        ];
        fn __ktest_main(_boot: &'static $crate::kernel::BootInfo) -> ! {
            $crate::run(__KTEST_LIST)
        }
    };
}

/// Per-image runner settings, stored in the image's `.ktest_config` ELF
/// section and read by the runner before booting. Keys (all optional,
/// `qemu_arg`, `needs` and `cmdline` repeatable):
///
/// - `timeout_secs = 30` — kill the image after this long (it then fails).
/// - `memory = "256M"` — guest RAM (default 128M).
/// - `qemu_arg = "-device"` — one extra QEMU argument per entry; `{name.key}`
///   is replaced by the value a fixture exports.
/// - `needs = "shared-memory"` — a host fixture started before QEMU and
///   checked after it (see the runner's `fixtures` module).
/// - `stdin = "text\n"` — fed to the serial port once the kernel is up.
/// - `cmdline = "loglevel=debug"` — appended to the kernel command line.
/// - `role = "bench"` — a benchmark image: skipped by `bootimage test`, run
///   by `bootimage bench`, which collects its `bench: key=value` lines.
/// - `role = "xen"` — an image for real Xen: skipped by `bootimage test`,
///   run by `realxen test` as a PVH domU created with `xl`. Its output and
///   the host link go over the PV console; it ends with SCHEDOP_shutdown
///   (poweroff when every test passed, crash on a panic).
/// - `expect = "panic" | "timeout"` — a runner self-test: the image passes
///   only if it fails that way.
/// - `expect = "poweroff" | "reboot"` — the image's last test ends the
///   machine on the host's request: it passes when the kernel printed
///   `@power poweroff` (`reboot`) and QEMU exited with the poweroff status
///   (with status 0: a reset under `-no-reboot`).
#[macro_export]
macro_rules! config {
    ($($key:ident = $value:literal),* $(,)?) => {
        const __KTEST_CONFIG_TEXT: &str = concat!($(stringify!($key), "\0", $value, "\0"),*);
        #[used]
        #[unsafe(link_section = ".ktest_config")]
        static __KTEST_CONFIG: [u8; __KTEST_CONFIG_TEXT.len()] =
            $crate::config_bytes(__KTEST_CONFIG_TEXT);
    };
}

/// Copies a string into an array (for [`config!`], at compile time).
pub const fn config_bytes<const N: usize>(text: &str) -> [u8; N] {
    let bytes = text.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = bytes[i];
        i += 1;
    }
    out
}
