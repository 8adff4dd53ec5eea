//! Suspend, resume and checkpoint of a BUSY guest on real Xen, driven and
//! observed from dom0 with `xl save -c`, `xl save`, `xl restore` and
//! `xenstore-*`. The guest runs the kernel's `xsload` (kernel/src/guest/
//! load.rs): load threads and a transaction loop keep requests in flight,
//! echo watches copy what dom0 writes under `data/echo/wK/` to
//! `data/echoed/wK/` and count the events on their own node (initial
//! events, so one per (re-)registration) in `data/echoed/wK/fires`; every
//! failed request is logged as `xsload: error:`.
//!
//! Each test runs its suspend more than once on one guest and names the
//! round that failed. The limits bound hangs; nothing is timed.

use std::time::Duration;

use super::guest::{Guest, KERNEL_IN_DOM0, TestResult, check, domid, wait_until};
use crate::bed::Bed;

/// From `xl create` (or `xl restore`) to what the guest then publishes.
const UP_LIMIT: Duration = Duration::from_secs(300);
/// One `xl save`, `xl save -c` or `xl restore` (xl's own timeouts are
/// shorter: a guest that does not suspend fails it on its own).
const XL_LIMIT: Duration = Duration::from_secs(300);
const QUICK: Duration = Duration::from_secs(60);
/// Echo watches of xsload.
const WATCHES: usize = 3;
/// Rounds of each kind of suspend.
const ROUNDS: u32 = 2;

/// Creates a guest running xsload with `options` on its command line, runs
/// `body`, destroys it.
fn with_busy_guest(
    bed: &mut Bed,
    name: &str,
    options: &str,
    body: impl FnOnce(&mut Bed, &mut Guest) -> TestResult,
) -> TestResult {
    // 32 MB (the kernel uses about 2): less memory to write out per save.
    let config = format!(
        "type = \"pvh\"\nkernel = \"{KERNEL_IN_DOM0}\"\nmemory = 32\nvcpus = 1\n\
         on_poweroff = \"destroy\"\non_crash = \"destroy\"\n\
         extra = \"xsload=on {options}\"\n"
    );
    let mut guest = Guest::create_with(bed, name, &config)?;
    let result = wait_busy(bed, &guest)
        .and_then(|()| body(bed, &mut guest))
        .map_err(|e| {
            let domains = bed
                .run("xl list", QUICK)
                .map(|o| o.stdout)
                .unwrap_or_else(|e| format!("(xl list: {e})"));
            format!(
                "{e}\nxl list:\n{domains}\nthe guest's console:\n{}",
                guest.console(bed)
            )
        });
    let _ = bed.run(&format!("rm -f /tmp/{name}.save"), QUICK);
    guest.destroy(bed);
    result
}

/// Waits until xsload runs: its watches registered (each fired once) and
/// its load threads going.
fn wait_busy(bed: &mut Bed, guest: &Guest) -> TestResult {
    let home = guest.home();
    wait_until(
        bed,
        &format!("[ \"$(xenstore-read {home}/data/load/ready 2>/dev/null)\" = 1 ]"),
        UP_LIMIT,
    )?;
    for k in 0..WATCHES {
        wait_until(
            bed,
            &format!("xenstore-read {home}/data/echoed/w{k}/fires"),
            UP_LIMIT,
        )?;
    }
    wait_until(bed, &format!("xenstore-read {home}/data/load/tx"), UP_LIMIT)?;
    bed.progress.say(format!(
        "guest {} busy as domain {}",
        guest.name, guest.domid
    ));
    Ok(())
}

/// `xenstore-read path`, trimmed; `None` if it fails.
fn read(bed: &mut Bed, path: &str) -> Option<String> {
    bed.run(&format!("xenstore-read {path}"), QUICK)
        .ok()
        .filter(|o| o.success())
        .map(|o| o.stdout.trim().to_string())
}

fn read_number(bed: &mut Bed, path: &str) -> Result<u64, String> {
    let text = read(bed, path).ok_or_else(|| format!("cannot read {path}"))?;
    text.parse()
        .map_err(|_| format!("{path} holds {text:?}, not a number"))
}

/// Waits until `path` holds exactly `want`.
fn wait_value(bed: &mut Bed, path: &str, want: &str, limit: Duration) -> TestResult {
    wait_until(
        bed,
        &format!("[ \"$(xenstore-read {path} 2>/dev/null)\" = '{want}' ]"),
        limit,
    )
    .map_err(|e| {
        format!(
            "{path} never became {want:?} (it is {:?}): {e}",
            read(bed, path)
        )
    })
}

/// Waits until the number in `path` is above `floor`.
fn wait_above(bed: &mut Bed, path: &str, floor: u64, limit: Duration) -> TestResult {
    wait_until(
        bed,
        &format!("v=$(xenstore-read {path} 2>/dev/null) && [ \"$v\" -gt {floor} ]"),
        limit,
    )
    .map_err(|e| {
        format!(
            "{path} never went above {floor} (it is {:?}): {e}",
            read(bed, path)
        )
    })
}

/// How many console lines contain `text`.
fn console_count(bed: &mut Bed, guest: &Guest, text: &str) -> Result<usize, String> {
    let out = bed
        .run(
            &format!(
                "grep -cF -- '{text}' /var/log/xen/console/guest-{}.log",
                guest.name
            ),
            QUICK,
        )
        .map_err(|e| format!("reading the console: {e}"))?;
    Ok(out.stdout.trim().parse().unwrap_or(0))
}

/// No request of xsload ended with an error (nothing was lost or failed).
fn no_load_errors(bed: &mut Bed, guest: &Guest) -> TestResult {
    match console_count(bed, guest, "xsload: error:")? {
        0 => Ok(()),
        n => Err(format!("{n} xsload request(s) failed (see the console)")),
    }
}

/// The load counters of the current home: t0, t1 (rounds written).
fn load_rounds(bed: &mut Bed, guest: &Guest) -> Result<Vec<u64>, String> {
    (0..2)
        .map(|n| read_number(bed, &format!("{}/data/load/t{n}", guest.home())))
        .collect()
}

/// The load threads went on past `before` (each request they had in
/// flight ended, or they would not have).
fn load_went_on(bed: &mut Bed, guest: &Guest, before: &[u64]) -> TestResult {
    for (n, floor) in before.iter().enumerate() {
        wait_above(
            bed,
            &format!("{}/data/load/t{n}", guest.home()),
            *floor,
            UP_LIMIT,
        )?;
    }
    Ok(())
}

fn fires(bed: &mut Bed, guest: &Guest) -> Result<Vec<u64>, String> {
    (0..WATCHES)
        .map(|k| read_number(bed, &format!("{}/data/echoed/w{k}/fires", guest.home())))
        .collect()
}

/// Runs `xl_command` in dom0 while a writer keeps writing distinct values
/// under the guest's `data/echo/wK/` (`tag`n`i`, value `v-tag-K-i`) until
/// xl has returned; returns how many of each it wrote. xl must succeed.
fn xl_while_writing(
    bed: &mut Bed,
    guest: &Guest,
    tag: &str,
    xl_command: &str,
) -> Result<u64, String> {
    let home = guest.home();
    let done = format!("/tmp/{}.xl-done", guest.name);
    let written = format!("/tmp/{}.written", guest.name);
    let secs = XL_LIMIT.as_secs();
    let script = format!(
        "rm -f {done} {written}\n\
         ( i=0; while :; do \
             for k in 0 1 2; do xenstore-write {home}/data/echo/w$k/{tag}n$i v-{tag}-$k-$i || exit 1; done; \
             i=$((i+1)); [ -e {done} ] && break; \
           done; echo $i > {written} ) &\n\
         writer=$!\n\
         timeout {secs} {xl_command}; status=$?\n\
         touch {done}\n\
         wait $writer; wstatus=$?\n\
         [ $status = 0 ] || {{ echo \"xl exited $status\"; exit 1; }}\n\
         [ $wstatus = 0 ] || {{ echo \"the writer failed ($wstatus)\"; exit 1; }}\n\
         cat {written}"
    );
    let out = check(bed, &script, XL_LIMIT + QUICK)?;
    out.stdout
        .trim()
        .lines()
        .last()
        .and_then(|l| l.parse().ok())
        .ok_or_else(|| format!("the writer said {:?}", out.stdout))
}

/// Every value the writer wrote (`count` per watch) was echoed: each watch
/// fired for each, and the callback read the value dom0 wrote.
fn every_value_echoed(bed: &mut Bed, guest: &Guest, tag: &str, count: u64) -> TestResult {
    let home = guest.home();
    let script = format!(
        "missing=0; for k in 0 1 2; do i=0; while [ $i -lt {count} ]; do \
           [ \"$(xenstore-read {home}/data/echoed/w$k/{tag}n$i 2>/dev/null)\" = v-{tag}-$k-$i ] \
             || {{ missing=$((missing+1)); echo w$k/{tag}n$i; }}; \
           i=$((i+1)); done; done; [ $missing = 0 ]"
    );
    wait_until(bed, &script, UP_LIMIT).map_err(|e| {
        let listing = bed
            .run(&script, QUICK)
            .map(|o| o.stdout)
            .unwrap_or_default();
        format!("values written during the suspend were not echoed: {e}\nmissing:\n{listing}")
    })
}

pub fn checkpoint_of_a_busy_guest_loses_nothing(bed: &mut Bed) -> TestResult {
    with_busy_guest(bed, "rx-ckpt", "", |bed, guest| {
        for round in 1..=ROUNDS {
            checkpoint_round(bed, guest, round).map_err(|e| format!("round {round}: {e}"))?;
        }
        Ok(())
    })
}

fn checkpoint_round(bed: &mut Bed, guest: &Guest, round: u32) -> TestResult {
    let before = load_rounds(bed, guest)?;
    let tx_before = read_number(bed, &format!("{}/data/load/tx", guest.home()))?;
    let fires_before = fires(bed, guest)?;
    let tag = format!("c{round}");
    let written = xl_while_writing(
        bed,
        guest,
        &tag,
        &format!("xl save -c {} /tmp/{}.save", guest.name, guest.name),
    )?;
    bed.progress.say(format!(
        "checkpoint {round} of {} done; dom0 wrote {written} values per watch meanwhile",
        guest.name
    ));
    let _ = bed.run(&format!("rm -f /tmp/{}.save", guest.name), QUICK);
    // It did suspend, and came back cancelled: the same domain.
    guest.wait_console(bed, "power: suspend ended: Cancelled", QUICK)?;
    let cancelled = console_count(bed, guest, "power: suspend ended: Cancelled")?;
    if cancelled != round as usize {
        return Err(format!(
            "{cancelled} cancelled suspends logged after {round} checkpoints"
        ));
    }
    if domid(bed, &guest.name)? != guest.domid {
        return Err("the domain id changed across a checkpoint".into());
    }
    every_value_echoed(bed, guest, &tag, written)?;
    load_went_on(bed, guest, &before)?;
    wait_above(
        bed,
        &format!("{}/data/load/tx", guest.home()),
        tx_before,
        UP_LIMIT,
    )?;
    // The daemon kept the watches: none was registered again.
    let fires_after = fires(bed, guest)?;
    if fires_after != fires_before {
        return Err(format!(
            "the watches' own-node events went from {fires_before:?} to {fires_after:?}: \
             registered again after a checkpoint"
        ));
    }
    no_load_errors(bed, guest)
}

pub fn save_and_restore_of_a_busy_guest_carries_on_in_its_new_home(bed: &mut Bed) -> TestResult {
    let shared = "/rx-shared/save";
    check(
        bed,
        &format!("xenstore-write {shared} initial && xenstore-chmod {shared} r0"),
        QUICK,
    )?;
    let result = with_busy_guest(
        bed,
        "rx-save",
        &format!("xsload.shared={shared}"),
        |bed, guest| {
            wait_value(
                bed,
                &format!("{}/data/echoed/shared", guest.home()),
                "initial",
                UP_LIMIT,
            )?;
            for round in 1..=ROUNDS {
                save_round(bed, guest, shared, round).map_err(|e| format!("round {round}: {e}"))?;
            }
            Ok(())
        },
    );
    let _ = bed.run(&format!("xenstore-rm {shared}"), QUICK);
    result
}

fn save_round(bed: &mut Bed, guest: &mut Guest, shared: &str, round: u32) -> TestResult {
    let old = guest.domid;
    let before = load_rounds(bed, guest)?;
    let fires_before = fires(bed, guest)?;
    // Dom0's own node, written before the save: the guest must see it after.
    let value = format!("before-save-{round}");
    check(bed, &format!("xenstore-write {shared} {value}"), QUICK)?;
    let save = format!("/tmp/{}.save", guest.name);
    // dom0 keeps writing under the guest's watched paths while xl saves it:
    // events arriving during the save once left the restored guest spinning
    // (kernel/src/guest/power.rs, `xen_suspend`). Values written after the
    // guest suspended may be lost with the old connection (xenstore's
    // README): only the watches firing again is required.
    xl_while_writing(
        bed,
        guest,
        &format!("s{round}"),
        &format!("xl save {} {save}", guest.name),
    )?;
    if domid(bed, &guest.name).is_ok() {
        return Err("the domain still exists after xl save".into());
    }
    check(
        bed,
        &format!("timeout {} xl restore {save}", XL_LIMIT.as_secs()),
        XL_LIMIT + QUICK,
    )?;
    let _ = bed.run(&format!("rm -f {save}"), QUICK);
    guest.domid = domid(bed, &guest.name)?;
    bed.progress.say(format!(
        "save/restore {round} of {}: domain {old} is now {}",
        guest.name, guest.domid
    ));
    if guest.domid == old {
        return Err(format!("xl restore kept domain id {old}"));
    }
    // The guest learnt its new identity...
    let home = guest.home();
    wait_value(bed, &format!("{home}/data/load/home"), &home, UP_LIMIT)?;
    // ...every watch was registered again and fired in the new home...
    for (k, floor) in fires_before.iter().enumerate() {
        wait_above(
            bed,
            &format!("{home}/data/echoed/w{k}/fires"),
            *floor,
            UP_LIMIT,
        )?;
    }
    // ...it read dom0's value written before the save...
    wait_value(bed, &format!("{home}/data/echoed/shared"), &value, UP_LIMIT)?;
    // ...republished data/, and its load carries on there.
    wait_until(bed, &format!("xenstore-read {home}/data/updated"), UP_LIMIT)?;
    load_went_on(bed, guest, &before)?;
    wait_until(bed, &format!("xenstore-read {home}/data/load/tx"), UP_LIMIT)?;
    // Its watches follow dom0's writes in the new home.
    for k in 0..WATCHES {
        check(
            bed,
            &format!("xenstore-write {home}/data/echo/w{k}/after{round} a-{k}"),
            QUICK,
        )?;
    }
    for k in 0..WATCHES {
        wait_value(
            bed,
            &format!("{home}/data/echoed/w{k}/after{round}"),
            &format!("a-{k}"),
            UP_LIMIT,
        )?;
    }
    // The toolstack removed the old domain (dom0's writer may have left
    // its echo nodes there after it was gone: dom0 may write anywhere).
    if check(
        bed,
        &format!("xenstore-exists /local/domain/{old}/domid"),
        QUICK,
    )
    .is_ok()
    {
        return Err(format!("the old domain {old} is still in the store"));
    }
    let _ = bed.run(&format!("xenstore-rm /local/domain/{old}"), QUICK);
    no_load_errors(bed, guest)
}

pub fn a_transaction_open_at_suspend_does_not_stop_xl_save(bed: &mut Bed) -> TestResult {
    with_busy_guest(bed, "rx-txhold", "xsload.hold=on", |bed, guest| {
        // Each kind twice: checkpoint, save+restore, checkpoint, save+restore.
        for round in 1..=2 * ROUNDS {
            let restore = round % 2 == 0;
            hold_round(bed, guest, round, restore).map_err(|e| {
                let kind = if restore {
                    "save+restore"
                } else {
                    "checkpoint"
                };
                format!("round {round} ({kind}): {e}")
            })?;
        }
        Ok(())
    })
}

fn hold_round(bed: &mut Bed, guest: &mut Guest, round: u32, restore: bool) -> TestResult {
    let r = round.to_string();
    let home = guest.home();
    check(
        bed,
        &format!("xenstore-write {home}/data/txhold/open {r}"),
        QUICK,
    )?;
    wait_value(bed, &format!("{home}/data/txhold/opened"), &r, UP_LIMIT)?;
    let name = guest.name.clone();
    let save = format!("/tmp/{name}.save");
    let secs = XL_LIMIT.as_secs();
    // The transaction is open now; xl must not time out because of it.
    if restore {
        check(
            bed,
            &format!("timeout {secs} xl save {name} {save}"),
            XL_LIMIT + QUICK,
        )?;
        check(
            bed,
            &format!("timeout {secs} xl restore {save}"),
            XL_LIMIT + QUICK,
        )?;
        guest.domid = domid(bed, &name)?;
    } else {
        check(
            bed,
            &format!("timeout {secs} xl save -c {name} {save}"),
            XL_LIMIT + QUICK,
        )?;
    }
    let _ = bed.run(&format!("rm -f {save}"), QUICK);
    // The suspend went on with the transaction still open.
    let went_on = console_count(bed, guest, "xenstore: suspending with")?;
    if went_on < round as usize {
        return Err(format!(
            "only {went_on} suspend(s) went on past an open transaction in {round} rounds"
        ));
    }
    let home = guest.home();
    check(
        bed,
        &format!("xenstore-write {home}/data/txhold/release {r}"),
        QUICK,
    )?;
    let result_path = format!("{home}/data/txhold/result-{r}");
    wait_until(bed, &format!("xenstore-read {result_path}"), UP_LIMIT)?;
    let result = read(bed, &result_path).unwrap_or_default();
    let allowed: &[&str] = if restore {
        // The new connection's daemon never heard of it.
        &["EAGAIN"]
    } else {
        &["committed", "EAGAIN"]
    };
    if !allowed.contains(&result.as_str()) {
        return Err(format!(
            "the held transaction ended {result:?}, want one of {allowed:?}"
        ));
    }
    wait_value(
        bed,
        &format!("{home}/data/txhold/retry-{r}"),
        "ok",
        UP_LIMIT,
    )?;
    wait_value(
        bed,
        &format!("{home}/data/txhold/value"),
        &format!("retried-{r}"),
        QUICK,
    )?;
    bed.progress.say(format!(
        "hold round {round}: the held transaction ended {result}, the retry committed"
    ));
    no_load_errors(bed, guest)
}
