//! The kernel as a full HVM guest: hvmloader, SeaBIOS and the device model
//! (`xen-qemu-system-i386`) in dom0, the GRUB ISO that `bootimage build`
//! writes as the guest's cdrom, booted with the shipped
//! `target/boot/kernel-hvm.cfg` (only its name and the ISO's path changed
//! for dom0). Direct kernel boot cannot work with this device model (see
//! that config's comments).
//!
//! The kernel logs to the PV console too, so the boot is watched in
//! xenconsoled's log as for PVH; its shell runs on the emulated COM1,
//! whose pty is the one `xl console -t serial` attaches to.
//!
//! These cases run against the C xenstored only (`mod.rs` filters them for
//! the other daemon): an HVM boot goes through firmware and GRUB and costs
//! 35-150 s here, against a few seconds for PVH, and what differs from PVH
//! is the boot path and the device model, not the xenstore protocol, which
//! the PVH cases cover on both daemons. For the same reason the cases share
//! one guest, in their order in `CASES`: each takes the guest the previous
//! one left running, or creates one if there is none (a case run alone, or
//! after a case that failed), so each case also passes on its own. The
//! last one powers it off.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::guest::{Guest, TestResult, check, domid, wait_until};
use crate::bed::Bed;

/// Where the ISO and the shipped config are in dom0 (preloaded at boot).
pub const ISO_IN_DOM0: &str = "/boot/kernel.iso";
pub const CONFIG_IN_DOM0: &str = "/boot/kernel-hvm.cfg";

/// From `xl create` to data/: ~35 s on an idle 2-core host, ~130 s seen
/// with the cores shared (load 10): firmware, GRUB reading the ISO through
/// the emulated IDE cdrom, then the kernel. The limits bound a hang.
const UP_LIMIT: Duration = Duration::from_secs(600);
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(300);
const SAVE_LIMIT: Duration = Duration::from_secs(300);
const QUICK: Duration = Duration::from_secs(60);
/// How long the shell may take to answer a typed line.
const ANSWER_LIMIT: Duration = Duration::from_secs(120);

/// The name of the guest the cases share.
const NAME: &str = "rx-hvm";
/// The guest the previous case left running, if any.
static SHARED: Mutex<Option<Guest>> = Mutex::new(None);

/// The files the HVM cases preload into dom0: the ISO and the config that
/// `bootimage build` wrote next to `kernel` (none if it wrote no ISO:
/// grub-mkrescue missing; the cases then fail saying so).
pub fn preloads(kernel: &Path) -> Vec<crate::preload::Preload> {
    let dir = kernel.parent().unwrap_or(Path::new("."));
    [
        ("kernel.iso", ISO_IN_DOM0),
        ("kernel-hvm.cfg", CONFIG_IN_DOM0),
    ]
    .into_iter()
    .map(|(file, dom0)| (dir.join(file), dom0))
    .filter(|(host, _)| host.is_file())
    .map(|(host, dom0): (PathBuf, &str)| crate::preload::Preload {
        host,
        dom0: dom0.to_string(),
    })
    .collect()
}

/// `xl create`s the shipped HVM config as `name`: its `name` and `disk`
/// lines replaced (the ISO's path in dom0), `extra` lines appended after
/// dropping the shipped lines they set.
fn create(bed: &mut Bed, name: &str, extra: &[(&str, &str)]) -> Result<Guest, String> {
    let shipped = check(
        bed,
        &format!("test -f {ISO_IN_DOM0} && cat {CONFIG_IN_DOM0}"),
        QUICK,
    )
    .map_err(|e| {
        format!("no ISO or HVM config in dom0 (bootimage writes them only with grub-mkrescue): {e}")
    })?
    .stdout;
    let mut config = String::new();
    for line in shipped.lines() {
        let key = line.split('=').next().unwrap_or("").trim();
        if key == "name" || extra.iter().any(|(k, _)| *k == key) {
            continue;
        }
        if key == "disk" {
            config.push_str(&format!("disk = [ \"file:{ISO_IN_DOM0},hdc:cdrom,r\" ]\n"));
            continue;
        }
        config.push_str(line);
        config.push('\n');
    }
    if !config.contains("type = \"hvm\"") || !config.contains("disk = ") {
        return Err(format!("the shipped HVM config is not one:\n{shipped}"));
    }
    for (key, value) in extra {
        config.push_str(&format!("{key} = {value}\n"));
    }
    Guest::create_with(bed, name, &config)
}

/// The shared guest, up (data/ published): the one the previous case left
/// if it still runs under the same domain id, else a fresh one.
fn take_guest(bed: &mut Bed) -> Result<Guest, String> {
    let left = SHARED.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(guest) = left {
        if domid(bed, NAME).ok() == Some(guest.domid) {
            return Ok(guest);
        }
        guest.destroy(bed);
    }
    let start = Instant::now();
    let guest = create(bed, NAME, &[("on_reboot", "\"restart\"")])?;
    if let Err(e) = wait_up(bed, &guest) {
        guest.destroy(bed);
        return Err(e);
    }
    bed.progress.say(format!(
        "HVM guest {NAME} up as domain {} {:.0}s after xl create (firmware, GRUB, kernel)",
        guest.domid,
        start.elapsed().as_secs_f64()
    ));
    Ok(guest)
}

/// Runs `body` on the shared guest; leaves it for the next case if `body`
/// passed, else destroys it (the next case then starts afresh).
fn with_shared_guest(
    bed: &mut Bed,
    body: impl FnOnce(&mut Bed, &mut Guest) -> TestResult,
) -> TestResult {
    let mut guest = take_guest(bed)?;
    let result = body(bed, &mut guest);
    match result {
        Ok(()) => *SHARED.lock().unwrap_or_else(|e| e.into_inner()) = Some(guest),
        Err(_) => guest.destroy(bed),
    }
    result
}

/// Waits until the guest has published data/ and logged (on its PV
/// console, which it finds early in boot) that its upcalls come through the
/// per-vCPU vector and its ring from Xen's HVM params.
fn wait_up(bed: &mut Bed, guest: &Guest) -> TestResult {
    let updated = format!("{}/data/updated", guest.home());
    wait_until(bed, &format!("xenstore-read {updated}"), UP_LIMIT)
        .map_err(|e| format!("{e}\nthe guest's console:\n{}", guest.console(bed)))?;
    guest.wait_console(bed, "upcalls PerVcpuVector", QUICK)?;
    guest.wait_console(bed, "via Xen ring at gfn", QUICK)?;
    guest.wait_console(
        bed,
        &format!("domain {} at {}", guest.domid, guest.home()),
        QUICK,
    )
}

/// Types `line` into the guest's COM1 and returns what COM1 printed, once
/// a line of it is exactly `want` (or `ANSWER_LIMIT` passed). It talks to
/// the pty the device model made for COM1, from `serial/0/tty` in the
/// guest's xenstore home: the one `xl console -t serial` attaches to.
/// `xl console` itself was tried here with a fifo on its stdin and passed
/// nothing through (it wants a terminal, and busybox dom0 has no `script`
/// to give it one).
fn type_on_com1(bed: &mut Bed, guest: &Guest, line: &str, want: &str) -> Result<String, String> {
    // The shell is up once the kernel logged this, just before serving it.
    guest.wait_console(bed, "xenstore: watching control/shutdown", QUICK)?;
    let out = format!("/tmp/com1-{}.out", guest.name);
    let limit = ANSWER_LIMIT.as_secs();
    let script = format!(
        "tty=$(xenstore-read {home}/serial/0/tty) || exit 1
rm -f {out}; cat $tty >{out} 2>&1 &
pid=$!
sleep 1
printf '%s\\r' '{line}' >$tty
end=$(($(date +%s) + {limit}))
while [ $(date +%s) -lt $end ] && ! tr -d '\\r' <{out} | grep -qx -- '{want}'; do sleep 1; done
kill $pid 2>/dev/null; wait
cat {out}; rm -f {out}",
        home = guest.home()
    );
    Ok(check(bed, &script, ANSWER_LIMIT + QUICK)
        .map_err(|e| format!("typing on COM1: {e}"))?
        .stdout)
}

pub fn hvm_guest_boots_from_the_iso_and_publishes_data(bed: &mut Bed) -> TestResult {
    with_shared_guest(bed, |bed, guest| {
        let listing = check(bed, &format!("xenstore-ls {}/data", guest.home()), QUICK)?.stdout;
        for key in ["os_name", "os_uname", "meminfo_total", "updated"] {
            if !listing
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{key} = \"")))
            {
                return Err(format!("data/{key} missing from xenstore-ls:\n{listing}"));
            }
        }
        // A full HVM guest: the device model runs for it in dom0.
        check(
            bed,
            &format!(
                "xenstore-read /local/domain/0/device-model/{}/state",
                guest.domid
            ),
            QUICK,
        )
        .map_err(|e| format!("no device model for the guest: {e}"))?;
        Ok(())
    })
}

pub fn hvm_guest_shell_answers_read_domid_on_com1(bed: &mut Bed) -> TestResult {
    with_shared_guest(bed, |bed, guest| {
        let want = guest.domid.to_string();
        let printed = type_on_com1(bed, guest, "read domid", &want)?;
        let text = printed.replace('\r', "");
        let after_echo = text
            .find("read domid")
            .map(|at| &text[at + "read domid".len()..])
            .ok_or_else(|| {
                format!("COM1 showed no echo of the typed line; it printed:\n{printed}")
            })?;
        if after_echo.lines().any(|l| l == want) {
            Ok(())
        } else {
            Err(format!(
                "`read domid` typed on COM1 never printed {want}; COM1 printed:\n{printed}"
            ))
        }
    })
}

pub fn hvm_guest_survives_xl_save_and_restore(bed: &mut Bed) -> TestResult {
    with_shared_guest(bed, |bed, guest| {
        let image = format!("/tmp/{NAME}.save");
        let before = check(
            bed,
            &format!("xenstore-read {}/data/updated", guest.home()),
            QUICK,
        )?
        .stdout
        .trim()
        .to_string();
        check(
            bed,
            &format!("rm -f {image}; xl save {NAME} {image}"),
            SAVE_LIMIT,
        )?;
        guest.wait_console(bed, "xenbus: control: suspend", QUICK)?;
        if domid(bed, NAME).is_ok() {
            return Err(format!("{NAME} still runs after xl save"));
        }
        let restored = check(
            bed,
            &format!("xl restore {image}; rc=$?; rm -f {image}; exit $rc"),
            SAVE_LIMIT,
        );
        guest.domid = domid(bed, NAME)?;
        restored?;
        guest.wait_console(
            bed,
            "shared_info and upcall restored after resume",
            UP_LIMIT,
        )?;
        guest.wait_console(bed, "suspend ended: Resumed", QUICK)?;
        // Its data/ service writes again once resumed: the ring works.
        wait_until(
            bed,
            &format!(
                "n=$(xenstore-read {}/data/updated) && [ \"$n\" -gt {before} ]",
                guest.home()
            ),
            UP_LIMIT,
        )
    })
}

pub fn hvm_guest_restarts_on_xl_reboot(bed: &mut Bed) -> TestResult {
    with_shared_guest(bed, |bed, guest| {
        // xl's daemon re-creates the domain under the same name; it boots
        // through firmware and GRUB again.
        guest.reboot_into_a_new_domain(bed, SHUTDOWN_LIMIT, wait_up)
    })
}

pub fn hvm_guest_powers_off_on_xl_shutdown(bed: &mut Bed) -> TestResult {
    let guest = take_guest(bed)?;
    let secs = SHUTDOWN_LIMIT.as_secs();
    // -w returns once the domain is gone; timeout bounds a guest that
    // ignores the request.
    let result = check(
        bed,
        &format!("timeout {secs} xl shutdown -w {NAME}"),
        SHUTDOWN_LIMIT + QUICK,
    )
    .and_then(|_| guest.wait_console(bed, "xenbus: control: poweroff", QUICK))
    .and_then(|()| guest.wait_console(bed, "power: powering off", QUICK))
    // -w returns once the domain has shut down; xl's daemon destroys it
    // (and the device model) after that: gone, never restarted.
    .and_then(|()| {
        wait_until(bed, &format!("! xl domid {NAME}"), SHUTDOWN_LIMIT)
            .map_err(|e| format!("domain {NAME} still exists after xl shutdown -w: {e}"))
    });
    guest.destroy(bed);
    result
}
