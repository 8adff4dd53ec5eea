//! Kernel test images on real Xen: a `role = "xen"` image from `tests/`
//! (today `xen_guest`) runs as a PVH domU created with `xl`. Its lines come
//! back over the PV console (xenconsoled's log); its host-link requests
//! (`@host SEQ VERB ARGS`, the kernel's `hostlink` codec) are answered here
//! by running dom0's real `xenstore-*` tools and typing the reply into the
//! console; it ends with SCHEDOP_shutdown: poweroff when every test passed
//! (the domain is destroyed), crash on a panic (kept with
//! `on_crash = "preserve"`, so the runner sees the crash).
//!
//! One guest runs all the image's tests; each test is a case of its own
//! (`xen::ktest::NAME`), answered from that one run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::guest::{Guest, TestResult, check};
use super::pvconsole::{DomainState, PvConsole, domain_state};
use crate::bed::Bed;
use crate::preload::Preload;
use crate::progress::Progress;

/// The image, as named in tests/Cargo.toml.
pub const IMAGE: &str = "xen_guest";
/// A "never" bound for the whole image (six tests, a few host requests;
/// ~30 s idle, several minutes with the cores shared).
const IMAGE_LIMIT: Duration = Duration::from_secs(900);
const POLL: Duration = Duration::from_millis(500);
const QUICK: Duration = Duration::from_secs(60);

/// What one run of the image showed.
pub struct ImageRun {
    /// `test NAME ... ok|FAILED` lines, by name.
    pub results: BTreeMap<String, bool>,
    /// The names of `ktest: plan`.
    pub plan: Vec<String>,
    /// `ktest: done` was printed.
    pub done: bool,
    /// How the domain ended.
    pub end: DomainState,
    /// The whole console output, for failure reports.
    pub console: Vec<String>,
    /// What `bench: ` lines said (`name=value ...`).
    pub bench: Vec<String>,
}

impl ImageRun {
    /// Every planned test passed, `ktest: done`, powered off.
    pub fn passed(&self) -> bool {
        !self.plan.is_empty()
            && self.plan.iter().all(|p| self.results.get(p) == Some(&true))
            && self.done
            && self.end == DomainState::Gone
    }
}

/// Where image `image` is in dom0.
fn in_dom0(image: &str) -> String {
    format!("/boot/ktest-{image}.elf")
}

/// This boot's run of the image; [`forget`] clears it for the next boot.
static RUN: Mutex<Option<Result<ImageRun, String>>> = Mutex::new(None);

/// Forgets the last boot's run (a new bed boot runs the image again).
pub fn forget() {
    *RUN.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

/// Builds the image (stripped of debug info: it crosses into dom0 in the
/// initramfs) and returns the file dom0 must have.
pub fn preloads(work: &Path, progress: &Progress) -> Result<Vec<Preload>, String> {
    build(work, progress, IMAGE).map(|p| vec![p])
}

/// Builds the test image `image` (a `role = "xen"` entry of tests/) and
/// returns the file dom0 must have.
pub fn build(work: &Path, progress: &Progress, image: &str) -> Result<Preload, String> {
    progress.say(format!("building the kernel test image {image}"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no workspace root")?;
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "-p", "ktests", "--test", image])
        .args(["--target", "x86_64-unknown-none"])
        .arg("--message-format=json-render-diagnostics")
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!("building the test image {image} failed"));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let built = executable(&stdout, image)
        .ok_or_else(|| format!("cargo named no executable for the test image {image}"))?;
    std::fs::create_dir_all(work).map_err(|e| format!("creating {}: {e}", work.display()))?;
    let stripped = work.join(format!("ktest-{image}.elf"));
    let status = Command::new("objcopy")
        .arg("--strip-debug")
        .arg(&built)
        .arg(&stripped)
        .status()
        .map_err(|e| format!("running objcopy: {e}"))?;
    if !status.success() {
        return Err(format!("objcopy --strip-debug {} failed", built.display()));
    }
    Ok(Preload {
        host: stripped,
        dom0: in_dom0(image),
    })
}

/// The `executable` of the image's compiler-artifact message.
fn executable(messages: &str, image: &str) -> Option<PathBuf> {
    const KEY: &str = "\"executable\":\"";
    messages
        .lines()
        .filter(|l| l.contains(&format!("\"name\":\"{image}\"")))
        .find_map(|l| {
            let start = l.find(KEY)? + KEY.len();
            let end = start + l[start..].find('"')?;
            Some(PathBuf::from(&l[start..end]))
        })
}

/// The case for test `name` of the image: its result from this boot's run.
pub fn case(bed: &mut Bed, name: &str) -> TestResult {
    let mut run = RUN.lock().unwrap_or_else(|e| e.into_inner());
    let run = run.get_or_insert_with(|| run_image(bed, IMAGE, 128));
    let run = run.as_ref().map_err(Clone::clone)?;
    match run.results.get(name) {
        Some(true) => Ok(()),
        Some(false) => Err(format!(
            "the guest reported test {name} FAILED; its console:\n{}",
            tail(&run.console)
        )),
        None if !run.plan.iter().any(|p| p == name) => Err(format!(
            "the image's plan has no test {name} (plan: {:?})",
            run.plan
        )),
        None => Err(format!(
            "test {name} never finished (the guest ended {:?}); its console:\n{}",
            run.end,
            tail(&run.console)
        )),
    }
}

/// The image ended as a passing image must: every planned test ok,
/// `ktest: done`, then powered off (not crashed, not left running).
pub fn image_powers_off_after_its_last_test(bed: &mut Bed) -> TestResult {
    let mut run = RUN.lock().unwrap_or_else(|e| e.into_inner());
    let run = run.get_or_insert_with(|| run_image(bed, IMAGE, 128));
    let run = run.as_ref().map_err(Clone::clone)?;
    if run.passed() {
        Ok(())
    } else {
        Err(format!(
            "plan {:?}, results {:?}, done {}, domain {:?}; its console:\n{}",
            run.plan,
            run.results,
            run.done,
            run.end,
            tail(&run.console)
        ))
    }
}

fn tail(lines: &[String]) -> String {
    lines[lines.len().saturating_sub(80)..].join("\n")
}

/// Creates image `image` as a guest with `memory_mib`, serves its host
/// requests until it ends, destroys it.
pub fn run_image(bed: &mut Bed, image: &str, memory_mib: u32) -> Result<ImageRun, String> {
    let guest = start_image(bed, image, memory_mib)?;
    finish_image(bed, &guest)
}

/// Creates image `image` as a guest with `memory_mib` and leaves it
/// running; [`finish_image`] collects what it did. Its host-link requests
/// wait until then, so an image started this way makes none until the
/// caller is done with it.
pub fn start_image(bed: &mut Bed, image: &str, memory_mib: u32) -> Result<Guest, String> {
    let config = format!(
        "type = \"pvh\"\nkernel = \"{}\"\nmemory = {memory_mib}\nvcpus = 1\n\
         on_poweroff = \"destroy\"\non_crash = \"preserve\"\n",
        in_dom0(image)
    );
    let guest = Guest::create_with(bed, "rx-ktest", &config)?;
    bed.progress.say(format!(
        "test image {image} running as domain {}",
        guest.domid
    ));
    Ok(guest)
}

/// Serves the host requests of the image running as `guest` until it
/// ends, then destroys it.
pub fn finish_image(bed: &mut Bed, guest: &Guest) -> Result<ImageRun, String> {
    let result = serve(bed, guest);
    guest.destroy(bed);
    result
}

fn serve(bed: &mut Bed, guest: &Guest) -> Result<ImageRun, String> {
    let mut console = PvConsole::new(guest);
    let mut run = ImageRun {
        results: BTreeMap::new(),
        plan: Vec::new(),
        done: false,
        end: DomainState::Alive,
        console: Vec::new(),
        bench: Vec::new(),
    };
    let start = Instant::now();
    loop {
        let state = domain_state(bed, &guest.name)?;
        // Read after the state: whatever it wrote before ending is in.
        for line in console.lines(bed)? {
            take_line(bed, &mut console, &mut run, line)?;
        }
        if state != DomainState::Alive {
            run.end = state;
            return Ok(run);
        }
        if start.elapsed() > IMAGE_LIMIT {
            return Err(format!(
                "the test image still ran after {}s; its console:\n{}",
                IMAGE_LIMIT.as_secs(),
                tail(&run.console)
            ));
        }
        std::thread::sleep(POLL);
    }
}

fn take_line(
    bed: &mut Bed,
    console: &mut PvConsole,
    run: &mut ImageRun,
    line: String,
) -> TestResult {
    if let Some(plan) = line.strip_prefix("ktest: plan ") {
        run.plan = plan.split_whitespace().skip(1).map(String::from).collect();
    } else if let Some(bench) = line.rsplit_once("bench: ").map(|(_, b)| b) {
        // The last marker: an image's log target may end in "bench" too
        // (`xen_bench: bench: ...`).
        // A benchmark line of the guest's (vchan throughput): shown, never asserted.
        bed.progress.say(format!("guest bench: {bench}"));
        run.bench.push(bench.to_string());
    } else if line.trim() == "ktest: done" {
        run.done = true;
    } else if let Some(rest) = line.strip_prefix("test ") {
        if let Some(name) = rest.strip_suffix(" ... ok") {
            run.results.insert(name.to_string(), true);
        } else if let Some(name) = rest.strip_suffix(" ... FAILED") {
            run.results.insert(name.to_string(), false);
        }
    } else if let Some(request) = hostlink_codec::decode_request(&line) {
        let reply = match request {
            Ok(request) => {
                bed.progress.say(format!(
                    "guest asks: {} {}",
                    request.verb,
                    words(&request.args)
                ));
                match perform(bed, &request.verb, &request.args) {
                    Ok(values) => hostlink_codec::Reply::Ok {
                        seq: request.seq,
                        values,
                    },
                    Err(message) => hostlink_codec::Reply::Err {
                        seq: request.seq,
                        message,
                    },
                }
            }
            Err(e) => {
                run.console.push(line);
                return Err(format!("the guest sent an undecodable request: {e:?}"));
            }
        };
        console.type_text(bed, &format!("{}\n", hostlink_codec::encode_reply(&reply)))?;
    }
    run.console.push(line);
    Ok(())
}

fn words(args: &[Vec<u8>]) -> String {
    args.iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn quote(arg: &[u8]) -> String {
    format!("'{}'", String::from_utf8_lossy(arg).replace('\'', "'\\''"))
}

/// The host verbs a Xen image may ask for, done with dom0's real tools.
fn perform(bed: &mut Bed, verb: &str, args: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, String> {
    if verb.starts_with("vchan-") {
        return super::vchan::perform(bed, verb, args);
    }
    if verb.starts_with("fcopy-") {
        return super::fcopy::perform(bed, verb, args);
    }
    let (tool, arity) = match verb {
        "xenstore-write" => ("xenstore-write", 2),
        "xenstore-read" => ("xenstore-read", 1),
        "xenstore-rm" => ("xenstore-rm", 1),
        "xenstore-ls" => ("xenstore-ls", 1),
        other => return Err(format!("unknown verb {other:?} on real Xen")),
    };
    if args.len() != arity {
        return Err(format!(
            "{verb} takes {arity} argument(s), got {}",
            args.len()
        ));
    }
    let script = format!(
        "{tool} {}",
        args.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
    );
    let out = check(bed, &script, QUICK)?;
    Ok(match verb {
        // The value, without the newline the tool adds.
        "xenstore-read" => vec![out.stdout.strip_suffix('\n').unwrap_or(&out.stdout).into()],
        "xenstore-ls" => vec![out.stdout.into_bytes()],
        _ => vec![],
    })
}

/// The case entry for the image's test `$name`: `xen::ktest::$name`.
macro_rules! ktest {
    ($name:ident) => {
        (concat!("xen::ktest::", stringify!($name)), |bed| {
            super::test_images::case(bed, stringify!($name))
        })
    };
}
pub(crate) use ktest;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_is_found_among_cargo_messages() {
        let messages = concat!(
            r#"{"reason":"compiler-artifact","target":{"name":"ktests","kind":["lib"]},"executable":null}"#,
            "\n",
            r#"{"reason":"compiler-artifact","target":{"name":"xen_guest","kind":["test"]},"executable":"/t/deps/xen_guest-0123"}"#,
            "\n",
            r#"{"reason":"build-finished","success":true}"#,
        );
        assert_eq!(
            executable(messages, IMAGE),
            Some(PathBuf::from("/t/deps/xen_guest-0123"))
        );
        assert_eq!(executable(r#"{"reason":"build-finished"}"#, IMAGE), None);
    }
}
