//! The kernel's frontends against dom0's real Linux backends: xen-netback
//! for a `vif`, xen-blkback for a `disk`, with the project's hotplug
//! scripts (realxen/dom0/hotplug/) where Xen's bash scripts would be.
//!
//! Everything is observed from dom0: both ends' `state` nodes with
//! `xenstore-read`, what the frontend published, and the backends' own
//! evidence that they mapped the rings (blkback's log line, netback's
//! interface with its carrier on, which it turns on only once the rings are
//! mapped and the event channel bound). Domain and device ids are read
//! from `xl` and xenstore, never assumed.

use std::time::Duration;

use super::guest::{Guest, TestResult, check, wait_until};
use crate::bed::Bed;

/// From `xl create` to both devices Connected: ~20 s measured on an idle
/// 2-core host. The limits bound a hang, they time nothing.
const UP_LIMIT: Duration = Duration::from_secs(300);
const QUICK: Duration = Duration::from_secs(60);

/// Connected, Closing and Closed in `public/io/xenbus.h`.
const CONNECTED: &str = "4";
const CLOSING: &str = "5";
const CLOSED: &str = "6";

/// One device of the guest: its class, id, and both ends' directories.
struct Dev {
    class: &'static str,
    id: String,
    front: String,
    back: String,
}

/// The guest's config lines for one vif and one 1 MiB file-backed disk
/// (`backendtype=phy`: blkback serves it, through a loop device the block
/// script attaches). No `script=`: libxl runs its defaults,
/// /etc/xen/scripts/vif-bridge and block, which are the project's here.
fn devices_config(image: &str) -> String {
    format!(
        "vif = [ \"\" ]\n\
         disk = [ \"format=raw,vdev=xvda,access=rw,backendtype=phy,target={image}\" ]\n"
    )
}

/// Creates a guest named `name` with a vif and a disk, runs `body`, then
/// destroys the guest and removes its disk image.
fn with_devices(
    bed: &mut Bed,
    name: &str,
    body: impl FnOnce(&mut Bed, &mut Guest, &[Dev]) -> TestResult,
) -> TestResult {
    let image = format!("/var/lib/realxen/{name}.img");
    check(
        bed,
        &format!("dd if=/dev/zero of={image} bs=1024 count=1024 2>/dev/null"),
        QUICK,
    )?;
    let result = Guest::create(bed, name, &devices_config(&image)).and_then(|mut guest| {
        let result = find_devices(bed, &guest).and_then(|devs| body(bed, &mut guest, &devs));
        guest.destroy(bed);
        result
    });
    let _ = bed.run(&format!("rm -f {image}"), QUICK);
    result
}

/// The guest's vif and vbd as xl made them (one of each).
fn find_devices(bed: &mut Bed, guest: &Guest) -> Result<Vec<Dev>, String> {
    let mut devs = Vec::new();
    for class in ["vbd", "vif"] {
        let dir = format!("{}/device/{class}", guest.home());
        let ids = check(bed, &format!("xenstore-list {dir}"), QUICK)?.stdout;
        let ids: Vec<&str> = ids.split_whitespace().collect();
        let [id] = ids[..] else {
            return Err(format!("{dir} lists {ids:?}, not one device"));
        };
        let front = format!("{dir}/{id}");
        let back = check(bed, &format!("xenstore-read {front}/backend"), QUICK)?
            .stdout
            .trim()
            .to_string();
        let expected = format!("/local/domain/0/backend/{class}/{}/{id}", guest.domid);
        if back != expected {
            return Err(format!("{front}/backend is {back:?}, not {expected:?}"));
        }
        devs.push(Dev {
            class,
            id: id.to_string(),
            front,
            back,
        });
    }
    Ok(devs)
}

/// A dom0 condition: the node `path` reads `value`.
fn reads(path: &str, value: &str) -> String {
    format!("[ \"$(xenstore-read {path})\" = {value} ]")
}

/// Waits until both ends of every device are Connected.
fn wait_connected(bed: &mut Bed, guest: &Guest, devs: &[Dev]) -> TestResult {
    for dev in devs {
        let both = format!(
            "{} && {}",
            reads(&format!("{}/state", dev.front), CONNECTED),
            reads(&format!("{}/state", dev.back), CONNECTED)
        );
        wait_until(bed, &both, UP_LIMIT).map_err(|e| {
            let fronts = bed
                .run(&format!("xenstore-ls -f {}", dev.front), QUICK)
                .map(|o| o.stdout)
                .unwrap_or_default();
            let backs = bed
                .run(
                    &format!("xenstore-ls -f {}; cat /var/log/xen/hotplug.log", dev.back),
                    QUICK,
                )
                .map(|o| o.stdout)
                .unwrap_or_default();
            format!(
                "{} {}: both ends never Connected: {e}\nfrontend:\n{fronts}\nbackend and hotplug log:\n{backs}\nthe guest's console:\n{}",
                dev.class,
                dev.id,
                guest.console(bed)
            )
        })?;
    }
    bed.progress.say(format!(
        "guest {} (domain {}): vif and vbd Connected at both ends",
        guest.name, guest.domid
    ));
    Ok(())
}

/// Checks that `path` reads `value` now.
fn expect_value(bed: &mut Bed, path: &str, value: &str) -> TestResult {
    let got = check(bed, &format!("xenstore-read {path}"), QUICK)?.stdout;
    if got.trim() == value {
        Ok(())
    } else {
        Err(format!("{path} is {:?}, not {value:?}", got.trim()))
    }
}

/// Checks that `path` is a number (a grant reference or a port).
fn expect_number(bed: &mut Bed, path: &str) -> TestResult {
    let got = check(bed, &format!("xenstore-read {path}"), QUICK)?.stdout;
    match got.trim().parse::<u32>() {
        Ok(_) => Ok(()),
        Err(_) => Err(format!("{path} is {:?}, not a number", got.trim())),
    }
}

/// Neither end reported an error for `dev` (xenbus_dev_error's nodes:
/// the backend's under dom0's error/, ours under the guest's).
fn expect_no_errors(bed: &mut Bed, guest: &Guest, dev: &Dev) -> TestResult {
    let back_error = format!(
        "/local/domain/0/error/backend/{}/{}/{}",
        dev.class, guest.domid, dev.id
    );
    let front_error = format!("{}/error/device/{}/{}", guest.home(), dev.class, dev.id);
    for node in [back_error, front_error] {
        if let Ok(out) = bed.run(&format!("xenstore-ls -f {node}"), QUICK)
            && out.success()
        {
            return Err(format!("{node} reports an error:\n{}", out.stdout));
        }
    }
    Ok(())
}

/// The frontends publish their protocol's keys, both ends reach Connected,
/// and each Linux backend shows it mapped the guest's rings.
pub fn vif_and_vbd_connect_to_linux_netback_and_blkback(bed: &mut Bed) -> TestResult {
    with_devices(bed, "rx-backends", |bed, guest, devs| {
        wait_connected(bed, guest, devs)?;
        backends_mapped_the_rings(bed, guest, devs)?;
        // libxl ran the project's hotplug scripts, with the environment
        // they read.
        for line in [
            format!("block add XENBUS_PATH=backend/vbd/{}/", guest.domid),
            format!(
                "vif-bridge online type_if=vif XENBUS_PATH=backend/vif/{}/0 vif=vif{}.0",
                guest.domid, guest.domid
            ),
        ] {
            check(
                bed,
                &format!("grep -qF '{line}' /var/log/xen/hotplug.log"),
                QUICK,
            )
            .map_err(|e| format!("the hotplug log lacks {line:?}: {e}"))?;
        }
        Ok(())
    })
}

/// `xl save` + `xl restore`, twice: the restored domain (a new id) gets new
/// backends from the toolstack, and the kernel's frontends start over with
/// them (new rings, new event channels) until both ends are Connected
/// again and each Linux backend shows it mapped the new rings.
pub fn frontends_reconnect_to_the_backends_after_save_and_restore(bed: &mut Bed) -> TestResult {
    /// `xl save` writes the guest's memory out under TCG: a bound, not a time.
    const XL_LIMIT: Duration = Duration::from_secs(300);
    with_devices(bed, "rx-resume", |bed, guest, devs| {
        wait_connected(bed, guest, devs)?;
        for round in 1..=2 {
            let old = guest.domid;
            let save = format!("/tmp/{}.save", guest.name);
            let secs = XL_LIMIT.as_secs();
            let saved = check(
                bed,
                &format!("timeout {secs} xl save {} {save}", guest.name),
                XL_LIMIT + QUICK,
            )
            .and_then(|_| {
                check(
                    bed,
                    &format!("timeout {secs} xl restore {save}"),
                    XL_LIMIT + QUICK,
                )
            });
            let _ = bed.run(&format!("rm -f {save}"), QUICK);
            saved.map_err(|e| format!("round {round}: {e}"))?;
            guest.domid = super::guest::domid(bed, &guest.name)?;
            if guest.domid == old {
                return Err(format!("round {round}: xl restore kept domain id {old}"));
            }
            let devs = find_devices(bed, guest).map_err(|e| format!("round {round}: {e}"))?;
            wait_connected(bed, guest, &devs).map_err(|e| format!("round {round}: {e}"))?;
            backends_mapped_the_rings(bed, guest, &devs)
                .map_err(|e| format!("round {round}: {e}"))?;
        }
        Ok(())
    })
}

/// What each Linux backend shows once it mapped our rings, and what the
/// frontends published for it; no error node on either end.
fn backends_mapped_the_rings(bed: &mut Bed, guest: &Guest, devs: &[Dev]) -> TestResult {
    for dev in devs {
        let front = &dev.front;
        expect_number(bed, &format!("{front}/event-channel"))?;
        match dev.class {
            "vbd" => {
                expect_number(bed, &format!("{front}/ring-ref"))?;
                expect_value(bed, &format!("{front}/protocol"), "x86_64-abi")?;
                // blkback logs this once it read our keys; it says
                // Connected only after mapping the ring and binding
                // the port.
                let line = format!(
                    "xen-blkback: backend/vbd/{}/{}: using 1 queues, protocol 1 (x86_64-abi)",
                    guest.domid, dev.id
                );
                check(bed, &format!("dmesg | grep -qF '{line}'"), QUICK)
                    .map_err(|e| format!("blkback never said {line:?}: {e}"))?;
            }
            _ => {
                expect_number(bed, &format!("{front}/tx-ring-ref"))?;
                expect_number(bed, &format!("{front}/rx-ring-ref"))?;
                expect_value(bed, &format!("{front}/request-rx-copy"), "1")?;
                expect_value(bed, &format!("{front}/feature-rx-notify"), "1")?;
                // netback's interface exists from probe on; its carrier
                // goes on only once both rings are mapped and the
                // event channel bound.
                let vif = format!("vif{}.{}", guest.domid, dev.id);
                check(bed, &format!("ip link show {vif}"), QUICK)?;
                let carrier = check(bed, &format!("cat /sys/class/net/{vif}/carrier"), QUICK)?;
                if carrier.stdout.trim() != "1" {
                    return Err(format!(
                        "{vif}'s carrier is {:?}: netback did not connect the rings",
                        carrier.stdout.trim()
                    ));
                }
            }
        }
        expect_no_errors(bed, guest, dev)?;
    }
    Ok(())
}

/// The toolstack removes each device (the backend's `online = 0`, `state
/// = Closing`, as libxl's device removal writes them): the frontend goes
/// through Closing to Closed, the backend follows to Closed and lets go of
/// the rings, and every ring page the frontend had to keep while the
/// backend still mapped it is released afterwards.
///
/// The test writes those two nodes itself rather than run `xl
/// block-detach`: libxl gives the guest 10 s and then removes the device
/// by force, so its success would not show that the frontend closed.
pub fn removing_the_devices_closes_both_ends(bed: &mut Bed) -> TestResult {
    with_devices(bed, "rx-detach", |bed, guest, devs| {
        wait_connected(bed, guest, devs)?;
        for dev in devs {
            check(
                bed,
                &format!(
                    "xenstore-write {back}/online 0 {back}/state {CLOSING}",
                    back = dev.back
                ),
                QUICK,
            )?;
            let closed = format!(
                "{} && {}",
                reads(&format!("{}/state", dev.front), CLOSED),
                reads(&format!("{}/state", dev.back), CLOSED)
            );
            wait_until(bed, &closed, UP_LIMIT).map_err(|e| {
                format!(
                    "{} {}: both ends never Closed: {e}\nthe guest's console:\n{}",
                    dev.class,
                    dev.id,
                    guest.console(bed)
                )
            })?;
            let nodename = format!("device/{}/{}", dev.class, dev.id);
            guest.wait_console(bed, &format!("xenbus: {nodename}: closed"), QUICK)?;
            // The backend device is gone from dom0: it unmapped the rings
            // (and netback's interface went with it).
            let gone = match dev.class {
                "vbd" => format!(
                    "[ ! -e /sys/bus/xen-backend/devices/vbd-{}-{} ]",
                    guest.domid, dev.id
                ),
                _ => format!("! ip link show vif{}.{} 2>/dev/null", guest.domid, dev.id),
            };
            wait_until(bed, &gone, UP_LIMIT)
                .map_err(|e| format!("{} {}: the backend never let go: {e}", dev.class, dev.id))?;
            expect_no_errors(bed, guest, dev)?;
        }
        // A page kept because the backend still mapped it when the
        // frontend closed is released once the backend closed too.
        let log = format!("/var/log/xen/console/guest-{}.log", guest.name);
        let balanced = format!(
            "[ \"$(grep -c 'ring page kept' {log})\" = \"$(grep -c 'kept ring page released' {log})\" ]"
        );
        wait_until(bed, &balanced, QUICK).map_err(|e| {
            format!(
                "kept ring pages were never released: {e}\nthe guest's console:\n{}",
                guest.console(bed)
            )
        })?;
        let kept = check(bed, &format!("grep -c 'ring page kept' {log}; true"), QUICK)?;
        bed.progress.say(format!(
            "both devices closed; {} ring page(s) kept until the backend let go, all released",
            kept.stdout.trim()
        ));
        Ok(())
    })
}
