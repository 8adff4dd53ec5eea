//! `bootimage demo`: a scripted session. Starts the real xenstored with
//! domain 1 and its devices (the `xenbus` fixture), boots the demo kernel with its ring,
//! shows the guest's log as it comes, and when the guest says it watches
//! `control/shutdown`, writes `poweroff` there with the real
//! `xenstore-write`, as a toolstack (`xl shutdown`) does. Succeeds when the
//! guest acknowledges (clears the node) and powers off cleanly.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use testbed::Testbed;

use crate::agent::Agent;
use crate::cli::BootArgs;
use crate::fixtures::Fixture;
use crate::fixtures::bus::XenbusFixture;
use crate::fixtures::store::DOMID;
use crate::runner::{build_boot_dir, choose_accel};
use crate::{process, qemu};

/// What the guest logs once its watch is in place.
pub const READY_LINE: &str = "xenstore: watching control/shutdown";
/// How long the whole demo may take.
const TIMEOUT: Duration = Duration::from_secs(180);

/// Acts on the guest's log: the toolstack's side of a shutdown.
struct ShutdownAgent {
    testbed: Arc<Testbed>,
    sent: AtomicBool,
    /// What the host did, shown at the end.
    outcome: Mutex<Option<Result<(), String>>>,
}

impl Agent for ShutdownAgent {
    fn perform(&self, verb: &str, _args: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, String> {
        Err(format!("the demo agent does not take requests ({verb})"))
    }

    fn observe(&self, line: &str) {
        if !line.contains(READY_LINE) || self.sent.swap(true, Ordering::SeqCst) {
            return;
        }
        let path = format!("/local/domain/{DOMID}/control/shutdown");
        println!(
            "\nhost: the guest watches control/shutdown; running: xenstore-write {path} poweroff"
        );
        let result = self
            .testbed
            .cli("write", &[&path, "poweroff"])
            .and_then(|out| out.into_stdout())
            .map(drop)
            .map_err(|e| e.to_string());
        if let Err(e) = &result {
            println!("host: xenstore-write failed: {e}");
        }
        *self.outcome.lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
    }
}

/// Runs the demo; exit status 0 only after a clean, acknowledged poweroff.
pub fn cmd_demo(args: BootArgs) -> Result<ExitCode, String> {
    // The options ./run-qemu.sh's usage offers for every mode.
    let BootArgs {
        release,
        accel,
        append,
        memory,
        qemu_args: qemu_extra,
    } = args;
    let accel = choose_accel(accel)?;
    let boot = build_boot_dir(release)?;
    let mut fixture = XenbusFixture::start()?;
    let testbed = fixture.testbed().clone();
    println!(
        "host: real xenstored {} ({}), domain {DOMID} introduced; its ring is QEMU's ivshmem-doorbell BAR2",
        testbed.xenstored().path.display(),
        testbed.xenstored().version
    );
    let agent = Arc::new(ShutdownAgent {
        testbed: testbed.clone(),
        sent: AtomicBool::new(false),
        outcome: Mutex::new(None),
    });
    let mut cmd = qemu::command(
        qemu::Boot::Kernel(&boot.kernel),
        accel,
        &memory,
        &append,
        false,
    );
    cmd.args(fixture.qemu_args());
    cmd.args(&qemu_extra);
    let options = process::RunOptions {
        input: None,
        agent: Some(agent.clone()),
        echo: true,
    };
    let run = process::run(cmd, options, TIMEOUT).map_err(|e| format!("running QEMU: {e}"))?;
    let host_side = agent
        .outcome
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    let acknowledged = testbed
        .cli(
            "read",
            &[&format!("/local/domain/{DOMID}/control/shutdown")],
        )
        .and_then(|out| out.into_stdout())
        .map(|v| v.trim().is_empty());
    let daemon = fixture.check_after_run();
    let verdict = match (&host_side, run.status, &acknowledged, &daemon) {
        (None, ..) => Err("the guest never said it watches control/shutdown".to_string()),
        (Some(Err(e)), ..) => Err(format!("the host's xenstore-write failed: {e}")),
        (_, _, _, Err(e)) => Err(format!("the daemon or the ivshmem bridge failed: {e}")),
        (_, Some(qemu::STATUS_SUCCESS), Ok(true), _) => Ok(()),
        (_, Some(qemu::STATUS_SUCCESS), Ok(false), _) => {
            Err("the guest powered off without clearing control/shutdown".to_string())
        }
        (_, status, ..) if run.timed_out => {
            Err(format!("timed out after {TIMEOUT:?} ({status:?})"))
        }
        (_, status, ..) => Err(format!(
            "the guest did not power off cleanly (QEMU status {status:?})"
        )),
    };
    match verdict {
        Ok(()) => {
            println!("host: the guest cleared control/shutdown and powered off: demo passed");
            Ok(ExitCode::SUCCESS)
        }
        Err(why) => {
            eprintln!("demo failed: {why}\n{}", fixture.diagnostics());
            Ok(ExitCode::from(1))
        }
    }
}
