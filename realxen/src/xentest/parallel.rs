//! Both daemons' suites at once: one child `realxen test --daemon D` per
//! daemon, each with its own bed (its own QEMU, run directory and process
//! state). A bed's QEMU runs one vCPU, so it keeps one core busy; on the
//! 2-core machines CI has, the two beds together take about as long as one.
//! Their progress lines go to stderr as they come, tagged with the daemon;
//! their test lines are printed whole, one suite after the other.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::bed::Daemon;
use crate::progress::Progress;

/// Runs `realxen test ARGS --kernel KERNEL --daemon D` for each daemon at
/// once; prints each child's output in `daemons` order; true if all passed.
pub fn run(args: &[String], kernel: &Path, daemons: &[Daemon]) -> Result<bool, String> {
    let exe = std::env::current_exe().map_err(|e| format!("finding realxen itself: {e}"))?;
    let progress = Progress::start();
    let mut children = Vec::new();
    for &daemon in daemons {
        progress.say(format!(
            "starting the {} suite (its own bed)",
            daemon.name()
        ));
        let mut child = Command::new(&exe)
            .arg("test")
            .args(args)
            .arg("--kernel")
            .arg(kernel)
            .args(["--daemon", daemon.name()])
            .env(crate::progress::LABEL_VAR, daemon.name())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", exe.display()))?;
        let mut stdout = child.stdout.take().ok_or("no stdout pipe")?;
        // Drained as it comes, so a child never blocks on a full pipe.
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stdout.read_to_string(&mut text);
            text
        });
        children.push((daemon, child, reader));
    }
    let mut all_passed = true;
    for (daemon, mut child, reader) in children {
        let status = child
            .wait()
            .map_err(|e| format!("waiting for the {} suite: {e}", daemon.name()))?;
        let text = reader.join().unwrap_or_default();
        print!("{text}");
        if !text.contains("test result: ") {
            // A child that died before its summary still counts as failed.
            println!(
                "test xen::{}::suite_ran ... FAILED\n\ntest result: FAILED. 0 passed; 1 failed; \
                 0 ignored; 0 measured; 0 filtered out\n",
                daemon.name()
            );
        }
        all_passed &= status.success();
    }
    Ok(all_passed)
}
