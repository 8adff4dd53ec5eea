//! A domU of the kernel under test, created and inspected from dom0 with
//! the real tools: `xl`, `xenstore-*`, and the guest's PV console log
//! that xenconsoled keeps.

use std::time::{Duration, Instant};

use crate::agent::Output;
use crate::bed::Bed;

/// Where the kernel image is in dom0 (preloaded at boot).
pub const KERNEL_IN_DOM0: &str = "/boot/kernel.elf";
/// Short dom0 commands.
const QUICK: Duration = Duration::from_secs(60);
/// `xl create` of a PVH guest: 4-16 s measured on a 2-core host.
const CREATE_LIMIT: Duration = Duration::from_secs(180);
/// Between polls of a condition.
const POLL: Duration = Duration::from_millis(700);

pub type TestResult = Result<(), String>;

/// A created domain; `destroy` it when done (tests do, pass or fail).
pub struct Guest {
    pub name: String,
    /// Its current domain id (a reboot gives a new one).
    pub domid: u32,
}

impl Guest {
    /// `xl create`s the kernel as a PVH guest named `name`, with `extra`
    /// lines appended to the config.
    pub fn create(bed: &mut Bed, name: &str, extra: &str) -> Result<Guest, String> {
        let config = format!(
            "type = \"pvh\"\nkernel = \"{KERNEL_IN_DOM0}\"\nmemory = 128\n\
             vcpus = 1\non_poweroff = \"destroy\"\non_crash = \"destroy\"\n{extra}"
        );
        Self::create_with(bed, name, &config)
    }

    /// `xl create`s a guest named `name` from `config` (all but the name).
    pub fn create_with(bed: &mut Bed, name: &str, config: &str) -> Result<Guest, String> {
        let config = format!("name = \"{name}\"\n{config}");
        let path = format!("/etc/xen/{name}.cfg");
        bed.put(&path, config.as_bytes())
            .map_err(|e| format!("writing {path} in dom0: {e}"))?;
        // A leftover of an earlier failed test must not be taken for ours.
        let _ = bed.run(&format!("xl destroy {name}"), QUICK);
        let _ = bed.run(
            &format!("rm -f /var/log/xen/console/guest-{name}.log"),
            QUICK,
        );
        check(bed, &format!("xl create {path}"), CREATE_LIMIT)?;
        let domid = domid(bed, name)?;
        Ok(Guest {
            name: name.to_string(),
            domid,
        })
    }

    /// The guest's xenstore home.
    pub fn home(&self) -> String {
        format!("/local/domain/{}", self.domid)
    }

    /// Its PV console output so far.
    pub fn console(&self, bed: &mut Bed) -> String {
        bed.run(
            &format!("cat /var/log/xen/console/guest-{}.log", self.name),
            QUICK,
        )
        .map(|o| o.stdout)
        .unwrap_or_default()
    }

    /// Waits until its console has a line containing `text`.
    pub fn wait_console(&self, bed: &mut Bed, text: &str, limit: Duration) -> TestResult {
        let script = format!(
            "grep -qF -- '{}' /var/log/xen/console/guest-{}.log",
            text.replace('\'', "'\\''"),
            self.name
        );
        wait_until(bed, &script, limit).map_err(|why| {
            format!(
                "the guest's console never said {text:?} ({why}); it said:\n{}",
                self.console(bed)
            )
        })
    }

    /// `xl destroy`, ignoring a domain that is already gone.
    /// `xl reboot`s the guest and follows it into the domain xl's daemon
    /// re-creates under the same name (its config must say `on_reboot =
    /// "restart"`): waits, up to `limit` each, for the kernel's reboot line
    /// and the new domain id, then `up` (the guest published what it
    /// should), and checks the old domain's home is gone.
    pub fn reboot_into_a_new_domain(
        &mut self,
        bed: &mut Bed,
        limit: Duration,
        up: impl FnOnce(&mut Bed, &Guest) -> TestResult,
    ) -> TestResult {
        let before = self.domid;
        check(bed, &format!("xl reboot {}", self.name), QUICK)?;
        self.wait_console(bed, "xenbus: control: reboot", limit)?;
        wait_until(
            bed,
            &format!("id=$(xl domid {}) && [ \"$id\" != {before} ]", self.name),
            limit,
        )?;
        self.domid = domid(bed, &self.name)?;
        up(bed, self)?;
        if check(
            bed,
            &format!("xenstore-exists /local/domain/{before}"),
            QUICK,
        )
        .is_ok()
        {
            return Err(format!(
                "the old domain's home /local/domain/{before} is still there"
            ));
        }
        Ok(())
    }

    pub fn destroy(&self, bed: &mut Bed) {
        let _ = bed.run(&format!("xl destroy {}", self.name), QUICK);
    }
}

/// The domain id `xl` knows `name` by.
pub fn domid(bed: &mut Bed, name: &str) -> Result<u32, String> {
    let out = check(bed, &format!("xl domid {name}"), QUICK)?;
    out.stdout
        .trim()
        .parse()
        .map_err(|_| format!("xl domid {name} printed {:?}", out.stdout))
}

/// Runs `script` in dom0; an error unless it exits 0.
pub fn check(bed: &mut Bed, script: &str, limit: Duration) -> Result<Output, String> {
    let out = bed
        .run(script, limit)
        .map_err(|e| format!("`{script}`: {e}"))?;
    if out.success() {
        Ok(out)
    } else {
        Err(format!(
            "`{script}` exited {}: {}{}",
            out.status,
            out.stdout.trim(),
            out.stderr.trim()
        ))
    }
}

/// Polls `script` in dom0 until it exits 0, for at most `limit`.
pub fn wait_until(bed: &mut Bed, script: &str, limit: Duration) -> TestResult {
    let start = Instant::now();
    loop {
        let out = bed
            .run(script, QUICK)
            .map_err(|e| format!("`{script}`: {e}"))?;
        if out.success() {
            return Ok(());
        }
        if start.elapsed() > limit {
            return Err(format!(
                "`{script}` still failing after {}s (exit {}, {})",
                limit.as_secs(),
                out.status,
                out.stderr.trim()
            ));
        }
        std::thread::sleep(POLL);
    }
}
