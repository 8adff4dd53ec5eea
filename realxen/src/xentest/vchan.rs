//! dom0's side of the kernel's vchan tests: Xen's own, unmodified
//! `vchan-socket-proxy` (libxenvchan) as the peer, run in the background
//! while the guest does its half, with its data in files whose `crc32`
//! (busybox, zlib's CRC-32) the guest compares with its own. Each proxy run
//! has a NAME; its files are `/tmp/vc-NAME.*`.
//!
//! - `vchan-send NAME DOMID PATH BYTES`: random bytes to a file, then a
//!   proxy client sends the file to the guest's server at PATH. Replies the
//!   file's crc32.
//! - `vchan-serve NAME DOMID PATH BYTES`: the same from a proxy server
//!   offering the vchan at PATH; replies once PATH's keys exist.
//! - `vchan-recv NAME DOMID PATH client|server`: a proxy (client of the
//!   guest's server, or server for the guest's client) writes what the guest
//!   sends to a file. Its stdin is a fifo held open, so it stops only when
//!   the guest closes the vchan.
//! - `vchan-wait NAME`: waits for that proxy to exit; replies its exit
//!   status, and for `vchan-recv` its file's crc32 and size.
//! - `vchan-kill NAME`: kills that proxy (SIGKILL), mid-transfer.
//! - `vchan-status NAME`: for a failure report, the exit status (or
//!   `running`), the output's size and the start of the proxy's stderr.
//!
//! The proxy does not tell its peer that its input ended (its source says
//! so), so a guest that receives reads the byte count it was told, then
//! closes; the proxy then exits.

use std::time::Duration;

use super::guest::check;
use crate::bed::Bed;

/// A "never" bound for one verb (random bytes to make, a proxy to start or
/// to wait for), kept under the guest's 120 s wait for a reply (the
/// kernel's `hostlink::DEFAULT_TIMEOUT`) so that a failure comes back as
/// dom0's own message rather than as the guest's timeout.
const VERB_LIMIT: Duration = Duration::from_secs(110);

fn arg(args: &[Vec<u8>], i: usize, what: &str) -> Result<String, String> {
    let raw = args.get(i).ok_or_else(|| format!("missing {what}"))?;
    let text = String::from_utf8_lossy(raw).into_owned();
    // Only what a name, a domid, a xenstore path or a byte count holds:
    // these go into a shell script.
    if text.is_empty()
        || !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b))
    {
        return Err(format!("bad {what} {text:?}"));
    }
    Ok(text)
}

fn words(stdout: &str) -> Vec<Vec<u8>> {
    stdout
        .split_whitespace()
        .map(|w| w.as_bytes().to_vec())
        .collect()
}

/// Starts `proxy_args` in the background with `stdin`, output to NAME.out,
/// its pid in NAME.pid.
fn start(f: &str, proxy_args: &str, stdin: &str) -> String {
    format!(
        "(vchan-socket-proxy {proxy_args} - <{stdin} >{f}.out 2>{f}.err & echo $! >{f}.pid; \
         wait $!; echo $? >{f}.rc) </dev/null >/dev/null 2>&1 &\n\
         until [ -s {f}.pid ]; do sleep 0.1; done\n"
    )
}

/// Waits until the server proxy wrote its keys at `path`.
fn await_keys(f: &str, path: &str) -> String {
    format!(
        "end=$(($(date +%s) + 90)); until xenstore-read {path}/event-channel >/dev/null 2>&1; do\n\
         [ $(date +%s) -lt $end ] || {{ echo 'no vchan keys' >&2; cat {f}.err >&2; exit 1; }}\n\
         sleep 0.2; done\n"
    )
}

/// Does `verb` (see the module docs).
pub fn perform(bed: &mut Bed, verb: &str, args: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, String> {
    let name = arg(args, 0, "name")?;
    let f = format!("/tmp/vc-{name}");
    let script = match verb {
        "vchan-send" | "vchan-serve" => {
            let (dom, path, n) = (
                arg(args, 1, "domid")?,
                arg(args, 2, "path")?,
                arg(args, 3, "size")?,
            );
            let mut s = format!("rm -f {f}.*; head -c {n} /dev/urandom >{f}.in || exit 1\n");
            if verb == "vchan-send" {
                s += &start(&f, &format!("{dom} {path}"), &format!("{f}.in"));
            } else {
                s += &start(
                    &f,
                    &format!("--mode=server {dom} {path}"),
                    &format!("{f}.in"),
                );
                s += &await_keys(&f, &path);
            }
            s + &format!("crc32 <{f}.in\n")
        }
        "vchan-recv" => {
            let (dom, path, mode) = (
                arg(args, 1, "domid")?,
                arg(args, 2, "path")?,
                arg(args, 3, "mode")?,
            );
            let mut s = format!("rm -f {f}.*; mkfifo {f}.hold || exit 1\n");
            s += &start(
                &f,
                &format!("--mode={mode} {dom} {path}"),
                &format!("{f}.hold"),
            );
            s += &format!("sleep 3600 >{f}.hold 2>/dev/null </dev/null &\necho $! >{f}.holder\n");
            if mode == "server" {
                s += &await_keys(&f, &path);
            }
            s
        }
        "vchan-wait" => {
            let secs = VERB_LIMIT.as_secs() - 15;
            let script = format!(
                "end=$(($(date +%s) + {secs})); while [ ! -f {f}.rc ] && [ $(date +%s) -lt $end ]; do sleep 1; done\n\
                 [ -f {f}.holder ] && kill $(cat {f}.holder) 2>/dev/null\n\
                 [ -f {f}.rc ] || {{ echo 'the proxy never exited' >&2; head -c 400 {f}.err >&2; exit 1; }}\n\
                 cat {f}.rc; [ -p {f}.hold ] && {{ crc32 <{f}.out; wc -c <{f}.out; }}; true\n"
            );
            return Ok(words(&check(bed, &script, VERB_LIMIT)?.stdout));
        }
        "vchan-kill" => format!(
            "kill -9 $(cat {f}.pid) || exit 1\n\
             [ -f {f}.holder ] && kill $(cat {f}.holder) 2>/dev/null; true\n"
        ),
        "vchan-status" => format!(
            "if [ -f {f}.rc ]; then echo rc=$(cat {f}.rc); else echo running; fi\n\
             echo out=$(wc -c <{f}.out 2>/dev/null); head -c 400 {f}.err\n"
        ),
        other => return Err(format!("unknown verb {other:?} on real Xen")),
    };
    Ok(words(&check(bed, &script, VERB_LIMIT)?.stdout))
}
