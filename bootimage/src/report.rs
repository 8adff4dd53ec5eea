//! Turns an image's serial output and exit into per-test results, printed
//! libtest-style (`test NAME ... ok|FAILED` and `test result: ...`).
//!
//! The kernel side (`ktests`) prints `ktest: plan N names...`,
//! `ktest: start NAME`, `test NAME ... ok|FAILED` and `ktest: done`.

use std::fmt::Write as _;
use std::time::Duration;

use crate::config::Expect;
use crate::process::RunOutput;
use crate::qemu::{STATUS_FAILURE, STATUS_RESET, STATUS_SUCCESS};
use hostlink_codec::POWER_MARKER;

/// One test's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestResult {
    /// `image::test`.
    pub name: String,
    /// Passed?
    pub ok: bool,
    /// Why it failed (or a note).
    pub note: Option<String>,
}

/// An image's outcome.
#[derive(Debug)]
pub struct ImageReport {
    /// Image name (the file in tests/ without `.rs`).
    pub image: String,
    /// Per-test results.
    pub tests: Vec<TestResult>,
    /// Everything the image printed (shown when something failed).
    pub output: String,
    /// Wall time.
    pub elapsed: Duration,
}

impl ImageReport {
    /// Tests passed.
    pub fn passed(&self) -> usize {
        self.tests.iter().filter(|t| t.ok).count()
    }

    /// Tests failed.
    pub fn failed(&self) -> usize {
        self.tests.len() - self.passed()
    }

    /// A report for an image that could not even be started.
    pub fn not_started(image: &str, why: String) -> Self {
        Self {
            image: image.into(),
            tests: vec![TestResult {
                name: format!("{image}::<boot>"),
                ok: false,
                note: Some(why),
            }],
            output: String::new(),
            elapsed: Duration::ZERO,
        }
    }

    /// Prints the report the way libtest prints one test binary.
    pub fn render(&self, accel: &str, verbose: bool) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "     Running tests/{}.rs (kernel image, {accel})",
            self.image
        );
        let _ = writeln!(s, "running {} tests", self.tests.len());
        for t in &self.tests {
            let verdict = if t.ok { "ok" } else { "FAILED" };
            match &t.note {
                Some(note) if !t.ok => {
                    let _ = writeln!(s, "test {} ... {verdict} ({note})", t.name);
                }
                _ => {
                    let _ = writeln!(s, "test {} ... {verdict}", t.name);
                }
            }
        }
        if self.failed() > 0 || verbose {
            let _ = writeln!(
                s,
                "\n---- {} serial output ----\n{}",
                self.image,
                self.output.trim_end()
            );
            if self.failed() > 0 {
                let _ = writeln!(s, "\nfailures:");
                for t in self.tests.iter().filter(|t| !t.ok) {
                    let _ = writeln!(s, "    {}", t.name);
                }
            }
            s.push('\n');
        }
        let _ = writeln!(
            s,
            "test result: {}. {} passed; {} failed; 0 ignored; 0 measured; 0 filtered out; finished in {:.2}s\n",
            if self.failed() == 0 { "ok" } else { "FAILED" },
            self.passed(),
            self.failed(),
            self.elapsed.as_secs_f64()
        );
        s
    }
}

#[derive(Default)]
struct Transcript {
    plan: Option<Vec<String>>,
    started: Vec<String>,
    ok: Vec<String>,
    failed: Vec<String>,
    done: bool,
    panicked: bool,
    /// The actions of `@power` lines (`poweroff`, `reboot`).
    power: Vec<String>,
}

fn parse(output: &str) -> Transcript {
    let mut t = Transcript::default();
    for line in output.lines().map(|l| l.trim_end_matches('\r')) {
        if let Some(rest) = line.strip_prefix("ktest: plan ") {
            t.plan = Some(rest.split_whitespace().skip(1).map(String::from).collect());
        } else if let Some(name) = line.strip_prefix("ktest: start ") {
            t.started.push(name.trim().into());
        } else if line == "ktest: done" {
            t.done = true;
        } else if let Some(rest) = line.strip_prefix("test ") {
            if let Some(name) = rest.strip_suffix(" ... ok") {
                t.ok.push(name.into());
            } else if let Some(name) = rest.strip_suffix(" ... FAILED") {
                t.failed.push(name.into());
            }
        } else if let Some(action) = line
            .strip_prefix(POWER_MARKER)
            .and_then(|rest| rest.strip_prefix(' '))
        {
            t.power.push(action.trim().into());
        } else if line.starts_with("KERNEL PANIC") || line.starts_with("FATAL: ") {
            t.panicked = true;
        }
    }
    t
}

/// Why a run that did not end with success ended.
fn ending(run: &RunOutput, timeout: Duration) -> String {
    if run.timed_out {
        return format!("timed out after {}s", timeout.as_secs());
    }
    match run.status {
        Some(STATUS_FAILURE) => "the kernel reported a failure (panic or fatal exception)".into(),
        Some(STATUS_SUCCESS) => "the kernel exited early".into(),
        Some(STATUS_RESET) => {
            "QEMU exited without isa-debug-exit: a reset (triple fault? see output)".into()
        }
        Some(code) => format!("QEMU exited with status {code}"),
        None => "QEMU was killed by a signal".into(),
    }
}

/// Judges one image run.
pub fn evaluate(image: &str, expect: Expect, timeout: Duration, run: &RunOutput) -> ImageReport {
    let t = parse(&run.output);
    let qualified = |name: &str| format!("{image}::{name}");
    let tests = match expect {
        Expect::Panic => {
            let ok = run.status == Some(STATUS_FAILURE) && t.panicked && !t.failed.is_empty();
            vec![TestResult {
                name: qualified("panicking_test_is_reported_as_failed"),
                ok,
                note: (!ok).then(|| format!("expected a reported panic; {}", ending(run, timeout))),
            }]
        }
        Expect::Timeout => vec![TestResult {
            name: qualified("hanging_image_is_killed_at_its_timeout"),
            ok: run.timed_out,
            note: (!run.timed_out).then(|| format!("expected a timeout; {}", ending(run, timeout))),
        }],
        Expect::Success => {
            let success = run.status == Some(STATUS_SUCCESS) && t.done && !run.timed_out;
            judge_plan(&t, success, run, timeout, &qualified)
        }
        Expect::Poweroff | Expect::Reboot => {
            let (word, status) = match expect {
                Expect::Reboot => ("reboot", STATUS_RESET),
                _ => ("poweroff", STATUS_SUCCESS),
            };
            let ended = !run.timed_out
                && run.status == Some(status)
                && t.power.iter().any(|p| p == word)
                && !t.done;
            let mut t = t;
            // The last test is the one that ends the machine: it passes
            // when the machine ended that way.
            if ended
                && let Some(last) = t.plan.as_ref().and_then(|p| p.last()).cloned()
                && t.started.contains(&last)
                && !t.failed.contains(&last)
            {
                t.ok.push(last);
            }
            let mut results = judge_plan(&t, ended, run, timeout, &qualified);
            if !ended {
                for r in results.iter_mut().filter(|r| !r.ok) {
                    r.note = Some(format!(
                        "expected `{POWER_MARKER} {word}` and QEMU status {status}; got {:?} and {}",
                        t.power,
                        ending(run, timeout)
                    ));
                }
            }
            results
        }
    };
    ImageReport {
        image: image.into(),
        tests,
        output: run.output.clone(),
        elapsed: run.elapsed,
    }
}

/// Per-test results of an image that printed a plan; `clean_end` says the
/// machine ended as expected after its last test.
fn judge_plan(
    t: &Transcript,
    success: bool,
    run: &RunOutput,
    timeout: Duration,
    qualified: &dyn Fn(&str) -> String,
) -> Vec<TestResult> {
    match &t.plan {
        None => vec![TestResult {
            name: qualified("<boot>"),
            ok: false,
            note: Some(format!(
                "no test plan printed (did it boot?); {}",
                ending(run, timeout)
            )),
        }],
        Some(plan) => {
            let mut results: Vec<TestResult> = plan
                .iter()
                .map(|name| {
                    let passed = t.ok.contains(name) && !t.failed.contains(name);
                    let note = if passed {
                        None
                    } else if t.failed.contains(name) {
                        Some("panicked".to_string())
                    } else if t.started.contains(name) {
                        Some(ending(run, timeout))
                    } else if success {
                        Some("never reported".to_string())
                    } else {
                        Some(format!("not run: {}", ending(run, timeout)))
                    };
                    TestResult {
                        name: qualified(name),
                        ok: passed,
                        note,
                    }
                })
                .collect();
            // Every test passed but the image did not end cleanly
            // (hang or crash after the last test): still a failure.
            if !success && results.iter().all(|r| r.ok) {
                results.push(TestResult {
                    name: qualified("<exit>"),
                    ok: false,
                    note: Some(ending(run, timeout)),
                });
            }
            results
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(output: &str, status: Option<i32>, timed_out: bool) -> RunOutput {
        RunOutput {
            output: output.into(),
            status,
            timed_out,
            elapsed: Duration::from_millis(10),
        }
    }

    const T: Duration = Duration::from_secs(5);

    #[test]
    fn all_ok_and_success_status_passes() {
        let out = "boot log\r\nktest: plan 2 a b\r\nktest: start a\r\ntest a ... ok\r\nktest: start b\r\ntest b ... ok\r\nktest: done\r\n";
        let r = evaluate("img", Expect::Success, T, &run(out, Some(33), false));
        assert_eq!((r.passed(), r.failed()), (2, 0));
        assert_eq!(r.tests[0].name, "img::a");
    }

    #[test]
    fn a_panic_fails_that_test_and_the_rest_are_not_run() {
        let out = "ktest: plan 3 a b c\nktest: start a\ntest a ... ok\nktest: start b\nKERNEL PANIC in thread 1: boom\ntest b ... FAILED\n";
        let r = evaluate("img", Expect::Success, T, &run(out, Some(35), false));
        assert_eq!((r.passed(), r.failed()), (1, 2));
        assert_eq!(r.tests[1].note.as_deref(), Some("panicked"));
        assert!(r.tests[2].note.as_deref().unwrap().starts_with("not run"));
        assert!(
            r.render("tcg", false)
                .contains("---- img serial output ----")
        );
    }

    #[test]
    fn a_timeout_fails_the_running_test() {
        let out = "ktest: plan 2 a b\nktest: start a\n";
        let r = evaluate("img", Expect::Success, T, &run(out, None, true));
        assert_eq!(r.failed(), 2);
        assert!(
            r.tests[0]
                .note
                .as_deref()
                .unwrap()
                .contains("timed out after 5s")
        );
    }

    #[test]
    fn ok_lines_without_a_clean_exit_still_fail_the_unfinished() {
        // A triple fault: QEMU exits 0 with -no-reboot.
        let out = "ktest: plan 2 a b\nktest: start a\ntest a ... ok\nktest: start b\n";
        let r = evaluate("img", Expect::Success, T, &run(out, Some(0), false));
        assert_eq!((r.passed(), r.failed()), (1, 1));
        assert!(r.tests[1].note.as_deref().unwrap().contains("triple fault"));
    }

    #[test]
    fn a_hang_after_the_last_test_is_a_failure() {
        let out = "ktest: plan 1 a\nktest: start a\ntest a ... ok\n";
        let r = evaluate("img", Expect::Success, T, &run(out, None, true));
        assert_eq!((r.passed(), r.failed()), (1, 1));
        assert_eq!(r.tests[1].name, "img::<exit>");
    }

    #[test]
    fn no_plan_is_one_failure() {
        let r = evaluate("img", Expect::Success, T, &run("garbage", Some(1), false));
        assert_eq!((r.passed(), r.failed()), (0, 1));
        assert!(
            r.render("tcg", false)
                .contains("test result: FAILED. 0 passed; 1 failed")
        );
    }

    #[test]
    fn a_requested_poweroff_or_reset_passes_the_last_test() {
        let out = "ktest: plan 2 a off\nktest: start a\ntest a ... ok\nktest: start off\n@power poweroff\n";
        let r = evaluate("img", Expect::Poweroff, T, &run(out, Some(33), false));
        assert_eq!((r.passed(), r.failed()), (2, 0));
        let reboot = out.replace("poweroff", "reboot");
        let r = evaluate("img", Expect::Reboot, T, &run(&reboot, Some(0), false));
        assert_eq!((r.passed(), r.failed()), (2, 0));
        // A reset without the marker is a crash, not a reboot.
        let crash = "ktest: plan 1 off\nktest: start off\n";
        let r = evaluate("img", Expect::Reboot, T, &run(crash, Some(0), false));
        assert_eq!((r.passed(), r.failed()), (0, 1));
        // Powering off when a reset was asked for, or finishing normally.
        let r = evaluate("img", Expect::Reboot, T, &run(out, Some(33), false));
        assert_eq!(r.failed(), 1);
        let done = "ktest: plan 1 off\nktest: start off\ntest off ... ok\nktest: done\n";
        let r = evaluate("img", Expect::Poweroff, T, &run(done, Some(33), false));
        assert!(r.failed() >= 1, "a clean finish is not a poweroff");
        // An earlier failing test still fails.
        let bad = "ktest: plan 2 a off\nktest: start a\ntest a ... FAILED\n@power poweroff\n";
        let r = evaluate("img", Expect::Poweroff, T, &run(bad, Some(33), false));
        assert!(r.failed() >= 1);
    }

    #[test]
    fn expected_failures_pass_only_when_they_happen() {
        let panicked = "ktest: plan 1 p\nktest: start p\nKERNEL PANIC: x\ntest p ... FAILED\n";
        assert_eq!(
            evaluate("s", Expect::Panic, T, &run(panicked, Some(35), false)).passed(),
            1
        );
        assert_eq!(
            evaluate(
                "s",
                Expect::Panic,
                T,
                &run("ktest: plan 1 p\nktest: done\n", Some(33), false)
            )
            .passed(),
            0
        );
        assert_eq!(
            evaluate("s", Expect::Timeout, T, &run("", None, true)).passed(),
            1
        );
        assert_eq!(
            evaluate("s", Expect::Timeout, T, &run("", Some(33), false)).passed(),
            0
        );
    }
}
