//! The serial shell, driven through QEMU's serial port as a user would:
//! the host agent types keys into the guest's COM1 (`type`), the shell
//! reads and runs one line, and the host hands back what the guest
//! printed (`console-lines`) for the test to check. Against the real
//! xenstored, with the `xenbus` fixture's devices. The last test types
//! `poweroff`: the runner wants the kernel's `@power poweroff` and QEMU's
//! poweroff status (`expect = "poweroff"`).

#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use ::xenstore::Store;
use kernel::shell::Shell;
use kernel::time::Instant;
use ktests::support::bus::{WAIT, guest, wait_for_our_state, wait_until};
use ktests::support::{abs, client, host};
use xenbus::XenbusState;

// A request timeout short enough for a test to wait it out (default 30 s).
ktests::config!(
    timeout_secs = 120,
    needs = "xenbus",
    expect = "poweroff",
    cmdline = "xenstore.timeout=5"
);
ktests::main!(
    typed_commands_run_and_print_their_output,
    bad_input_gets_a_clear_error_and_the_shell_goes_on,
    a_line_too_long_to_hold_is_refused_whole_and_nothing_of_it_runs,
    backspace_ctrl_u_ctrl_c_and_escape_sequences_edit_the_line,
    watch_events_are_printed_as_they_come,
    devices_services_and_vm_data_show_the_guest_side,
    ctrl_c_abandons_a_command_waiting_for_a_stopped_daemon,
    a_request_to_a_stopped_daemon_ends_in_an_error_and_the_shell_goes_on,
    input_longer_than_the_receive_buffer_waits_and_arrives_whole,
    poweroff_powers_the_guest_off,
);

/// A shell with the bus and services running, and the console drained.
fn shell() -> Shell {
    guest();
    // The bus logs as it connects its devices (on its own thread): wait
    // until it has, so no log line lands in the middle of a typed one.
    wait_until("every device Connected", WAIT, || {
        let devices = guest().bus().devices();
        !devices.is_empty() && devices.iter().all(|d| d.state == XenbusState::Connected)
    });
    let shell = Shell::new().expect("the xenstore service is up");
    host("console-lines", &[]);
    shell
}

/// Types `keys` (one line, ending in `\r`, or in Ctrl-C) into the guest's
/// serial port, has the shell serve it, and returns what the guest printed.
fn typed(shell: &mut Shell, keys: &str) -> Vec<String> {
    host("type", &[keys]);
    shell
        .serve_line(Some(WAIT))
        .expect("the typed line arrives");
    host("console-lines", &[])
}

/// Whether a printed line is exactly `want` (a terminal's line clearing,
/// `ESC [ K` after a CR, may precede it).
fn has_line(lines: &[String], want: &str) -> bool {
    lines.iter().any(|l| l.trim_start_matches("\x1b[K") == want)
}

fn assert_line(lines: &[String], want: &str) {
    assert!(has_line(lines, want), "no line {want:?} in {lines:#?}");
}

/// Collects printed lines, starting from `seen` (what the caller has already
/// collected: a callback's line may land in a command's own output), until
/// one is `want`; panics after `WAIT`.
fn printed_eventually(seen: Vec<String>, want: &str) -> Vec<String> {
    let mut lines = seen;
    let deadline = Instant::now() + WAIT;
    while !has_line(&lines, want) {
        assert!(
            Instant::now() < deadline,
            "{want:?} never printed: {lines:#?}"
        );
        kernel::thread::sleep(Duration::from_millis(50));
        lines.extend(host("console-lines", &[]));
    }
    lines
}

fn typed_commands_run_and_print_their_output() {
    let mut sh = shell();
    let out = typed(&mut sh, "write data/shell/motd \"hello world\"\r");
    // The shell echoes what was typed after its prompt, and prints nothing
    // else for a successful write.
    assert_line(&out, "dom1> write data/shell/motd \"hello world\"");
    assert!(!out.iter().any(|l| l.contains("error")), "{out:#?}");
    assert_eq!(
        host("xenstore-read", &[&abs("data/shell/motd")]),
        ["hello world"]
    );

    assert_line(&typed(&mut sh, "read data/shell/motd\r"), "hello world");
    assert_line(&typed(&mut sh, "ls data/shell\r"), "motd = \"hello world\"");
    assert_line(&typed(&mut sh, "read name\r"), "guest1");
    typed(&mut sh, "mkdir data/shell/empty\r");
    assert_line(&typed(&mut sh, "ls data/shell/empty\r"), "(no children)");
    typed(&mut sh, "rm data/shell/empty\r");
    assert!(!client().exists("data/shell/empty").unwrap());
    // Permissions: shown, then set (owner and default, then a grant).
    assert_line(&typed(&mut sh, "perms data/shell/motd\r"), "n1");
    typed(&mut sh, "perms data/shell/motd n1 r0\r");
    assert_line(&typed(&mut sh, "perms data/shell/motd\r"), "n1 r0");
}

fn bad_input_gets_a_clear_error_and_the_shell_goes_on() {
    let mut sh = shell();
    for (keys, error) in [
        (
            "frobnicate --now\r",
            "error: unknown command \"frobnicate\" (type 'help' for the list)",
        ),
        (
            "read\r",
            "error: wrong number of arguments to read; usage: read PATH",
        ),
        (
            "read data/shell/none\r",
            "error: no such node (ENOENT from READ data/shell/none)",
        ),
        (
            "write /local/domain/0/x 1\r",
            "error: permission denied (EACCES from WRITE /local/domain/0/x)",
        ),
        ("write x \"open\r", "error: unterminated quote"),
        (
            "perms data q1\r",
            "error: bad permission \"q1\": want n, r, w or b followed by a domain id, e.g. n0 r1",
        ),
        (
            "unwatch 7\r",
            "error: no watch number 7 (type 'watch' to list them)",
        ),
        ("help frobnicate\r", "error: no command \"frobnicate\""),
    ] {
        assert_line(&typed(&mut sh, keys), error);
    }
    // Still serving.
    assert_line(&typed(&mut sh, "read domid\r"), "1");
}

fn a_line_too_long_to_hold_is_refused_whole_and_nothing_of_it_runs() {
    let mut sh = shell();
    // Three times what the shell holds, typed at once: none of it may be
    // lost before the shell reads it, or the Enter would be lost too.
    const TYPED: usize = 3000;
    let command = "write data/shell/long ";
    let mut keys = String::from(command);
    keys.extend(core::iter::repeat_n('x', TYPED));
    keys.push('\r');
    let out = typed(&mut sh, &keys);
    assert_line(
        &out,
        &alloc::format!(
            "error: line too long ({} characters, at most {}); nothing was run",
            command.len() + TYPED,
            kernel::shell::LINE_LIMIT
        ),
    );
    assert!(
        matches!(
            client().read(&abs("data/shell/long")),
            Err(::xenstore::XsError::Enoent(_))
        ),
        "a truncated line was run"
    );
    // Still serving, with an empty line editor.
    assert_line(&typed(&mut sh, "read domid\r"), "1");
}

/// Typed input (or a host reply) longer than the kernel's receive buffer,
/// arriving while nobody reads: the rest waits in the UART rather than
/// being dropped. (Dropped, it cost a reply's newline, and a host request
/// then hung: one boot in about 70, when the first `console-lines` reply
/// carried the whole boot log.)
fn input_longer_than_the_receive_buffer_waits_and_arrives_whole() {
    shell();
    let sent: String = (0..3 * kernel::serial::RX_CAPACITY)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    host("type", &[&sent]);
    // Long enough for the guest to take in every byte it would take.
    kernel::thread::sleep(Duration::from_secs(2));
    let mut got = Vec::with_capacity(sent.len());
    while got.len() < sent.len() {
        match kernel::serial::read_byte(Some(WAIT)) {
            Some(byte) => got.push(byte),
            None => panic!("only {} of {} typed bytes arrived", got.len(), sent.len()),
        }
    }
    assert!(
        got == sent.as_bytes(),
        "typed bytes arrived changed or out of order"
    );
    assert_eq!(kernel::serial::rx_dropped(), 0);
}

/// The daemon stopped (SIGSTOP): a `read` waits; Ctrl-C gives the prompt
/// back at once, long before the request timeout.
fn ctrl_c_abandons_a_command_waiting_for_a_stopped_daemon() {
    let mut sh = shell();
    host("daemon-pause", &[]);
    let out = typed(&mut sh, "read name\r\x03");
    host("daemon-resume", &[]);
    assert_line(
        &out,
        "error: abandoned (Ctrl-C); the request may still complete, a write may still take effect",
    );
    assert_line(&typed(&mut sh, "read domid\r"), "1");
}

/// The daemon stopped: a `read` ends at the request timeout
/// (`xenstore.timeout=5` here) with a typed error, and the shell takes the
/// next command.
fn a_request_to_a_stopped_daemon_ends_in_an_error_and_the_shell_goes_on() {
    let mut sh = shell();
    host("daemon-pause", &[]);
    let out = typed(&mut sh, "read name\r");
    host("daemon-resume", &[]);
    assert_line(
        &out,
        "error: READ name: no reply within the request timeout",
    );
    assert_line(&typed(&mut sh, "read domid\r"), "1");
}

fn backspace_ctrl_u_ctrl_c_and_escape_sequences_edit_the_line() {
    let mut sh = shell();
    // Backspace (DEL and BS): "reax" -> "rea" -> "read".
    assert_line(&typed(&mut sh, "reax\x7fd na\x08\x08name\r"), "guest1");
    // Ctrl-U drops what was typed; arrow keys (ESC [ A, ESC [ D) are ignored.
    assert_line(&typed(&mut sh, "rm data\x15\x1b[Aread\x1b[D domid\r"), "1");
    // Ctrl-C drops the line unexecuted.
    let out = typed(&mut sh, "write data/shell/cancelled 1\x03");
    assert_line(&out, "dom1> write data/shell/cancelled 1^C");
    assert!(!client().exists("data/shell/cancelled").unwrap());
    // A blank line does nothing.
    let out = typed(&mut sh, "   \r");
    assert!(!out.iter().any(|l| l.contains("error")), "{out:#?}");
}

fn watch_events_are_printed_as_they_come() {
    let mut sh = shell();
    let out = typed(&mut sh, "watch data/shell/w\r");
    assert_line(&out, "watch 1 on data/shell/w");
    // Every watch fires once when set, then for each change below it. The
    // callback prints on its own thread, so its line may already be in the
    // command's output.
    printed_eventually(out, "[watch 1] data/shell/w");
    host("xenstore-write", &[&abs("data/shell/w/x"), "1"]);
    printed_eventually(Vec::new(), "[watch 1] data/shell/w/x");
    assert_line(&typed(&mut sh, "watch\r"), "  1  data/shell/w");
    assert_line(
        &typed(&mut sh, "unwatch data/shell/w\r"),
        "unwatched 1 (data/shell/w)",
    );
    host("xenstore-write", &[&abs("data/shell/w/y"), "2"]);
    kernel::thread::sleep(Duration::from_millis(300));
    let after = host("console-lines", &[]);
    assert!(
        !after.iter().any(|l| l.contains("data/shell/w/y")),
        "{after:#?}"
    );
    assert_line(&typed(&mut sh, "watch\r"), "no watches");
}

fn devices_services_and_vm_data_show_the_guest_side() {
    let mut sh = shell();
    for dev in ["device/vbd/768", "device/vif/0", "device/vif/1"] {
        wait_for_our_state(dev, XenbusState::Connected);
    }
    let out = typed(&mut sh, "devices\r");
    assert!(out.iter().any(|l| l.starts_with("DEVICE ")), "{out:#?}");
    for dev in ["device/vbd/768", "device/vif/0", "device/vif/1"] {
        let line = out
            .iter()
            .find(|l| l.starts_with(dev))
            .unwrap_or_else(|| panic!("{dev} not listed: {out:#?}"));
        assert_eq!(
            line.matches("Connected").count(),
            2,
            "ours and the backend's: {line}"
        );
        assert!(line.contains("/local/domain/0/backend/"), "{line}");
    }
    let out = typed(&mut sh, "services\r");
    for service in ["control ", "data ", "vm-data "] {
        assert!(
            out.iter()
                .any(|l| l.starts_with(service) && l.contains("Ready")),
            "{service}in {out:#?}"
        );
    }
    host("xenstore-write", &[&abs("vm-data/colour"), "blue"]);
    wait_until("vm-data/colour in the pool", WAIT, || {
        guest().vm_data().get("colour").is_some()
    });
    assert_line(&typed(&mut sh, "vm-data colour\r"), "blue");
    assert_line(&typed(&mut sh, "vm-data\r"), "colour = \"blue\"");
    assert_line(
        &typed(&mut sh, "vm-data shape\r"),
        "error: vm-data/shape is not set",
    );
    assert_line(&typed(&mut sh, "perms data\r"), "n1");
    assert_line(&typed(&mut sh, "help write\r"), "usage: write PATH VALUE");
}

fn poweroff_powers_the_guest_off() {
    let mut sh = shell();
    host("type", &["poweroff\r"]);
    // The machine ends while serving this line; still being here fails.
    let served = sh.serve_line(Some(WAIT));
    panic!("still running after typing poweroff ({served:?})");
}
