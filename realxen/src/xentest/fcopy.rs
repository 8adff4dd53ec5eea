//! The file copy service on real Xen: dom0 runs our `xen-fcopy` (built on
//! the host, preloaded as /usr/bin/xen-fcopy) against the kernel's
//! service, through dom0's unmodified `vchan-socket-proxy` and xenstored;
//! the guest's shell (`sum`, `files`, `cat`) on the PV console shows what
//! arrived, compared with busybox's `crc32` of dom0's file.
//!
//! One guest serves every case (a boot costs more than a copy); each case
//! creates it if none is up, and the last one destroys it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use super::guest::{Guest, TestResult, check, domid};
use super::pvconsole::PvConsole;
use super::shell::{SHELL_BANNER, ask, wait_line};
use crate::agent::Output;
use crate::bed::Bed;
use crate::preload::Preload;
use crate::progress::Progress;

const SENDER_IN_DOM0: &str = "/usr/bin/xen-fcopy";
const NAME: &str = "rx-fcopy";
/// The store's cap: room for the 10 MiB file and the 6 MiB ones of the
/// later cases together (a case that failed half way may leave its file),
/// not for the one a MiB over it.
const CAP_MIB: u64 = 32;
/// Short, so the idle case waits little.
const IDLE_SECS: u64 = 10;
/// "Never" bounds: a guest boot and one copy of a few MiB on this bed
/// (~2-3 MiB/s on the vchan, far less with the cores shared).
const UP_LIMIT: Duration = Duration::from_secs(300);
const COPY_LIMIT: Duration = Duration::from_secs(400);
const QUICK: Duration = Duration::from_secs(60);

/// The guest the cases share, and its console.
static SESSION: Mutex<Option<(Guest, PvConsole)>> = Mutex::new(None);

/// Builds `xen-fcopy` for dom0 (release, stripped: it crosses in the
/// initramfs).
pub fn preloads(work: &Path, progress: &Progress) -> Result<Vec<Preload>, String> {
    progress.say("building xen-fcopy for dom0");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no workspace root")?;
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "-p", "xen-fcopy"])
        .current_dir(root)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("running cargo: {e}"))?;
    if !status.success() {
        return Err("building xen-fcopy failed".into());
    }
    std::fs::create_dir_all(work).map_err(|e| format!("creating {}: {e}", work.display()))?;
    let stripped = work.join("xen-fcopy");
    let status = Command::new("objcopy")
        .arg("--strip-debug")
        .arg(root.join("target/release/xen-fcopy"))
        .arg(&stripped)
        .status()
        .map_err(|e| format!("running objcopy: {e}"))?;
    if !status.success() {
        return Err("objcopy --strip-debug xen-fcopy failed".into());
    }
    Ok(vec![Preload {
        host: stripped,
        dom0: SENDER_IN_DOM0.to_string(),
    }])
}

/// Runs `body` on the shared guest, creating it (and waiting for its
/// service and shell) if none is up.
fn with_guest(
    bed: &mut Bed,
    body: impl FnOnce(&mut Bed, &mut Guest, &mut PvConsole) -> TestResult,
) -> TestResult {
    let mut session = SESSION.lock().unwrap_or_else(|e| e.into_inner());
    let alive = session
        .as_ref()
        .is_some_and(|(g, _)| domid(bed, &g.name).ok() == Some(g.domid));
    if !alive {
        *session = None;
        let extra = format!(
            "on_crash = \"preserve\"\ncmdline = \"fcopy.cap={CAP_MIB}M fcopy.idle={IDLE_SECS}\"\n"
        );
        let guest = Guest::create(bed, NAME, &extra)?;
        let mut console = PvConsole::new(&guest);
        let up = wait_line(bed, &mut console, UP_LIMIT, |l| l.contains(SHELL_BANNER));
        if let Err(e) = up {
            guest.destroy(bed);
            return Err(e);
        }
        bed.progress.say(format!(
            "guest {NAME} (domain {}) serves file copy and its shell",
            guest.domid
        ));
        *session = Some((guest, console));
    }
    let Some((guest, console)) = session.as_mut() else {
        return Err("no guest".into());
    };
    body(bed, guest, console)
}

/// The last case: destroys the shared guest.
fn done(bed: &mut Bed) {
    let mut session = SESSION.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((guest, _)) = session.take() {
        guest.destroy(bed);
    }
}

/// Runs `script` in dom0, whatever its exit status.
fn run(bed: &mut Bed, script: &str, limit: Duration) -> Result<Output, String> {
    bed.run(script, limit)
        .map_err(|e| format!("`{script}`: {e}"))
}

/// Makes `/tmp/NAME` in dom0 with `bytes` random bytes; returns its crc32.
fn make_file(bed: &mut Bed, name: &str, bytes: u64) -> Result<String, String> {
    let out = check(
        bed,
        &format!("head -c {bytes} /dev/urandom >/tmp/{name} && crc32 </tmp/{name}"),
        QUICK,
    )?;
    Ok(out.stdout.trim().to_string())
}

/// `xen-fcopy send` of `/tmp/NAME`; the output, whatever the status.
fn send(bed: &mut Bed, name: &str, dir: &str, flags: &str) -> Result<Output, String> {
    run(
        bed,
        &format!("xen-fcopy send {NAME} /tmp/{name} {dir} {flags}"),
        COPY_LIMIT,
    )
}

fn sent(bed: &mut Bed, name: &str, dir: &str, flags: &str) -> Result<Output, String> {
    let out = send(bed, name, dir, flags)?;
    if !out.success() {
        return Err(format!(
            "xen-fcopy send {name} exited {}: {}{}",
            out.status, out.stdout, out.stderr
        ));
    }
    bed.progress.say(out.stdout.trim().to_string());
    Ok(out)
}

/// The guest's `sum PATH` must be dom0's crc32 and size.
fn same_sum(
    bed: &mut Bed,
    console: &mut PvConsole,
    path: &str,
    crc: &str,
    size: u64,
) -> TestResult {
    let answer = ask(bed, console, &format!("sum {path}"))?;
    let want = format!("{crc} {size} {path}");
    if answer.first().map(|l| l.trim()) != Some(want.as_str()) {
        return Err(format!(
            "`sum {path}` answered {answer:?}, dom0 has {want:?}"
        ));
    }
    Ok(())
}

/// The paths `files` lists: its lines up to its summary line (`N file(s),
/// ...`), which `shell::ask` would cut short (it stops at the first line).
fn files(bed: &mut Bed, console: &mut PvConsole) -> Result<Vec<String>, String> {
    console.type_line(bed, "files")?;
    let mut echoed = false;
    let lines = wait_line(bed, console, QUICK * 2, |l| {
        echoed |= l.ends_with("> files");
        echoed && l.contains(" file(s), ")
    })?;
    let at = lines
        .iter()
        .rposition(|l| l.ends_with("> files"))
        .map_or(0, |i| i + 1);
    Ok(lines[at..]
        .iter()
        .take_while(|l| !l.contains(" file(s), "))
        .filter_map(|l| l.split_whitespace().nth(1).map(String::from))
        .collect())
}

fn absent(bed: &mut Bed, console: &mut PvConsole, path: &str) -> TestResult {
    let listed = files(bed, console)?;
    if listed.iter().any(|p| p == path) {
        return Err(format!("{path} is in the store: {listed:?}"));
    }
    Ok(())
}

/// A refusal: exit status `code` and the status word on stderr.
fn refused(out: &Output, code: i32, word: &str) -> TestResult {
    if out.status != code || !out.stderr.contains(word) {
        return Err(format!(
            "want exit {code} and {word:?}; got exit {}: {}{}",
            out.status, out.stdout, out.stderr
        ));
    }
    Ok(())
}

/// `xen-fcopy raw` with `script`; its answer lines.
fn raw(bed: &mut Bed, script: &str) -> Result<Vec<String>, String> {
    let out = check(
        bed,
        &format!("printf '{script}' | xen-fcopy raw {NAME}"),
        COPY_LIMIT,
    )?;
    Ok(out.stdout.lines().map(String::from).collect())
}

pub fn small_files_arrive_byte_exact(bed: &mut Bed) -> TestResult {
    with_guest(bed, |bed, _, console| {
        for (name, size) in [("fc-empty", 0), ("fc-one", 1)] {
            let crc = make_file(bed, name, size)?;
            sent(bed, name, "/", "")?;
            same_sum(bed, console, &format!("/{name}"), &crc, size)?;
        }
        check(bed, "echo 'hello, guest' >/tmp/fc-text", QUICK)?;
        sent(bed, "fc-text", "/", "")?;
        let answer = ask(bed, console, "cat /fc-text")?;
        if answer.first().map(|l| l.trim()) != Some("hello, guest") {
            return Err(format!("`cat /fc-text` answered {answer:?}"));
        }
        Ok(())
    })
}

pub fn ten_mib_file_arrives_byte_exact(bed: &mut Bed) -> TestResult {
    with_guest(bed, |bed, _, console| {
        let size = 10 << 20;
        let crc = make_file(bed, "fc-10m", size)?;
        let out = sent(bed, "fc-10m", "/big/dir", "--create")?;
        if let Some(rate) = out.stdout.split('(').nth(1) {
            bed.progress.say(format!(
                "bench: fcopy 10 MiB: {}",
                rate.trim_end_matches([')', '\n'])
            ));
        }
        same_sum(bed, console, "/big/dir/fc-10m", &crc, size)?;
        // Room for the cases that follow.
        let answer = ask(bed, console, "rmfile /big/dir/fc-10m")?;
        if answer.first().map(|l| l.trim()) != Some("removed /big/dir/fc-10m") {
            return Err(format!("`rmfile /big/dir/fc-10m` answered {answer:?}"));
        }
        absent(bed, console, "/big/dir/fc-10m")
    })
}

pub fn a_file_over_the_cap_is_refused(bed: &mut Bed) -> TestResult {
    with_guest(bed, |bed, _, console| {
        // Sparse: only its size matters, refused at start.
        check(
            bed,
            &format!(
                "rm -f /tmp/fc-huge; dd if=/dev/zero of=/tmp/fc-huge bs=1M seek={CAP_MIB} count=1 2>/dev/null"
            ),
            QUICK,
        )?;
        let out = send(bed, "fc-huge", "/", "")?;
        refused(&out, 2, "out-of-space")?;
        absent(bed, console, "/fc-huge")
    })
}

pub fn each_refusal_is_typed(bed: &mut Bed) -> TestResult {
    with_guest(bed, |bed, _, console| {
        make_file(bed, "fc-twice", 3)?;
        sent(bed, "fc-twice", "/", "")?;
        refused(&send(bed, "fc-twice", "/", "")?, 2, "exists")?;
        let crc = make_file(bed, "fc-twice", 5)?;
        sent(bed, "fc-twice", "/", "--overwrite")?;
        same_sum(bed, console, "/fc-twice", &crc, 5)?;
        refused(&send(bed, "fc-twice", "/no/such", "")?, 2, "no-such-path")?;
        // Frame by frame: what a well-behaved sender never sends.
        let answers = raw(
            bed,
            "start / bad\\\\x00name 1\\nstart / .. 1\\nstart /a/../b f 1\\nwrite 0 1\\n\
             start / fc-raw 4\\nstart / fc-other 1\\nwrite 2 4\\nwrite 0 4\\ncomplete\\n",
        )?;
        let want = [
            "start bad-name 0",
            "start bad-name 0",
            "start bad-name 0",
            "write no-transfer 0",
            "start ok 0",
            "start busy 0",
            "write offset-out-of-range 4",
            "write ok 4",
            "complete ok 4",
        ];
        if answers != want {
            return Err(format!("raw frames answered {answers:?}, want {want:?}"));
        }
        // A frame of version 2: answered, then the guest hangs up.
        let answers = raw(bed, "bytes 4643020300000000\\ncancel\\n")?;
        if answers.first().map(String::as_str) != Some("complete bad-version 1")
            || !answers.get(1).is_some_and(|l| l.starts_with("closed"))
        {
            return Err(format!("a version-2 frame was answered {answers:?}"));
        }
        Ok(())
    })
}

pub fn cancel_halfway_leaves_no_file(bed: &mut Bed) -> TestResult {
    with_guest(bed, |bed, _, console| {
        let answers = raw(bed, "start / fc-cancel 8\\nwrite 0 4\\ncancel\\n")?;
        let want = ["start ok 0", "write ok 4", "cancel ok 0"];
        if answers != want {
            return Err(format!("answered {answers:?}, want {want:?}"));
        }
        absent(bed, console, "/fc-cancel")
    })
}

pub fn an_idle_transfer_is_cancelled_and_logged(bed: &mut Bed) -> TestResult {
    with_guest(bed, |bed, guest, console| {
        let answers = raw(
            bed,
            &format!("start / fc-idle 4\\nsleep {}\\nwrite 0 4\\n", IDLE_SECS + 5),
        )?;
        if answers.first().map(String::as_str) != Some("start ok 0")
            || !answers.get(1).is_some_and(|l| l.starts_with("closed"))
        {
            return Err(format!("an idle transfer answered {answers:?}"));
        }
        guest.wait_console(
            bed,
            &format!("fcopy: transfer of /fc-idle cancelled after 0 bytes: idle for {IDLE_SECS} s"),
            QUICK,
        )?;
        absent(bed, console, "/fc-idle")
    })
}

/// Starts `xen-fcopy send` of /tmp/NAME in the background, in a process
/// group of its own (with its proxy), and returns once its progress
/// line shows at least a tenth sent.
fn start_in_background(bed: &mut Bed, name: &str) -> TestResult {
    let limit = COPY_LIMIT.as_secs() / 2;
    check(
        bed,
        &format!(
            "rm -f /tmp/{name}.out /tmp/{name}.rc\n\
             (setsid xen-fcopy send {NAME} /tmp/{name} / >/tmp/{name}.out 2>&1 & echo $! >/tmp/{name}.pid; \
             wait $!; echo $? >/tmp/{name}.rc) </dev/null >/dev/null 2>&1 &\n\
             end=$(($(date +%s) + {limit}))\n\
             until grep -qE '\\(([1-9][0-9]?)%\\)' /tmp/{name}.out 2>/dev/null; do\n\
             [ $(date +%s) -lt $end ] && [ ! -f /tmp/{name}.rc ] || {{ cat /tmp/{name}.out; exit 1; }}\n\
             sleep 0.1; done\n"
        ),
        COPY_LIMIT,
    )
    .map(|_| ())
}

/// Waits for the background sender of /tmp/NAME; its exit status and output.
fn wait_background(bed: &mut Bed, name: &str) -> Result<(String, String), String> {
    let limit = COPY_LIMIT.as_secs() - 30;
    let out = check(
        bed,
        &format!(
            "end=$(($(date +%s) + {limit})); until [ -f /tmp/{name}.rc ]; do\n\
             [ $(date +%s) -lt $end ] || {{ echo never; exit 0; }}; sleep 0.5; done; cat /tmp/{name}.rc"
        ),
        COPY_LIMIT,
    )?;
    let output = check(bed, &format!("cat /tmp/{name}.out"), QUICK)?.stdout;
    Ok((out.stdout.trim().to_string(), output))
}

pub fn a_sender_killed_halfway_leaves_no_file(bed: &mut Bed) -> TestResult {
    with_guest(bed, |bed, guest, console| {
        make_file(bed, "fc-kill", 6 << 20)?;
        start_in_background(bed, "fc-kill")?;
        // The sender and its proxy, at once, as a crash would.
        check(bed, "kill -9 -$(cat /tmp/fc-kill.pid)", QUICK)?;
        guest.wait_console(
            bed,
            "fcopy: transfer of /fc-kill cancelled after",
            COPY_LIMIT,
        )?;
        absent(bed, console, "/fc-kill")?;
        // The service takes the next sender (the claim was given back).
        let crc = make_file(bed, "fc-after", 1000)?;
        sent(bed, "fc-after", "/", "")?;
        same_sum(bed, console, "/fc-after", &crc, 1000)
    })
}

pub fn the_service_comes_back_after_save_and_restore(bed: &mut Bed) -> TestResult {
    /// `xl save` writes the guest's memory out under TCG: a bound, not a time.
    const XL_LIMIT: Duration = Duration::from_secs(300);
    with_guest(bed, |bed, guest, console| {
        make_file(bed, "fc-before", 100)?;
        sent(bed, "fc-before", "/", "--overwrite")?;
        let old = guest.domid;
        let save = format!("/tmp/{NAME}.save");
        let secs = XL_LIMIT.as_secs();
        let saved = check(
            bed,
            &format!("timeout {secs} xl save {NAME} {save} && timeout {secs} xl restore {save}"),
            XL_LIMIT * 2 + QUICK,
        );
        let _ = bed.run(&format!("rm -f {save}"), QUICK);
        saved?;
        guest.domid = domid(bed, NAME)?;
        if guest.domid == old {
            return Err(format!("xl restore kept domain id {old}"));
        }
        // A new domain: a new home, and a new pty for the console.
        *console = PvConsole::new(guest);
        // The service sees its vchan went stale at its next idle check and
        // publishes itself again under the new home.
        super::guest::wait_until(
            bed,
            &format!("xenstore-read {}/data/fcopy/version", guest.home()),
            UP_LIMIT,
        )
        .map_err(|e| format!("the service never came back: {e}\n{}", guest.console(bed)))?;
        // The files copied before are still there.
        let crc = make_file(bed, "fc-restored", 4000)?;
        sent(bed, "fc-restored", "/", "")?;
        same_sum(bed, console, "/fc-restored", &crc, 4000)?;
        let listed = files(bed, console)?;
        if !listed.iter().any(|p| p == "/fc-before") {
            return Err(format!("/fc-before is gone after the restore: {listed:?}"));
        }
        Ok(())
    })
}

pub fn a_second_sender_is_refused_and_the_first_unharmed(bed: &mut Bed) -> TestResult {
    let result = with_guest(bed, |bed, _, console| {
        let crc = make_file(bed, "fc-first", 6 << 20)?;
        make_file(bed, "fc-second", 10)?;
        start_in_background(bed, "fc-first")?;
        let second = send(bed, "fc-second", "/", "")?;
        refused(&second, 3, "busy")?;
        let (status, output) = wait_background(bed, "fc-first")?;
        if status != "0" {
            return Err(format!("the first sender exited {status}: {output}"));
        }
        same_sum(bed, console, "/fc-first", &crc, 6 << 20)?;
        absent(bed, console, "/fc-second")
    });
    done(bed);
    result
}

/// The host verbs of a Xen test image for file copy:
/// `fcopy-send DOMID FILE`: dom0 runs `xen-fcopy send DOMID FILE /`;
/// replies the rate it printed (MiB/s, from start sent to complete
/// answered).
pub fn perform(bed: &mut Bed, verb: &str, args: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, String> {
    let word = |i: usize| -> Result<String, String> {
        let text = String::from_utf8_lossy(args.get(i).ok_or("missing argument")?).into_owned();
        // It goes into a shell script: only what a domid or a path holds.
        if text.is_empty()
            || !text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b))
        {
            return Err(format!("bad argument {text:?}"));
        }
        Ok(text)
    };
    match verb {
        "fcopy-send" => {
            let (dom, file) = (word(0)?, word(1)?);
            let out = check(bed, &format!("xen-fcopy send {dom} {file} /"), COPY_LIMIT)?;
            bed.progress.say(out.stdout.trim().to_string());
            let rate = out
                .stdout
                .rsplit('(')
                .next()
                .and_then(|r| r.split_whitespace().next())
                .ok_or_else(|| format!("xen-fcopy printed no rate: {}", out.stdout))?;
            Ok(vec![rate.as_bytes().to_vec()])
        }
        other => Err(format!("unknown verb {other:?} on real Xen")),
    }
}
