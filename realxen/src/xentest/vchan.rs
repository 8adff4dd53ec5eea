//! dom0's side of the kernel's vchan tests: Xen's own, unmodified
//! `vchan-socket-proxy` (libxenvchan) as the peer, run in the background
//! while the guest does its half, with its data in files whose `crc32`
//! (busybox, zlib's CRC-32) the guest compares with its own.
//!
//! - `vchan-send DOMID PATH BYTES`: random bytes to a file, then a proxy
//!   client sends the file to the guest's server at PATH and exits at its
//!   end. Replies the file's crc32.
//! - `vchan-recv-start DOMID PATH`: a proxy client writes what the guest's
//!   server sends to a file; its stdin is a fifo held open, so it ends only
//!   when the guest closes the vchan.
//! - `vchan-recv-result`: waits for that proxy to exit; replies its exit
//!   status, the file's crc32 and its size.
//! - `vchan-serve DOMID PATH BYTES`: a proxy server offers random bytes at
//!   PATH and exits at their end. Replies their crc32 once PATH's keys
//!   exist (the guest connects right after).
//! - `vchan-send-status`, `vchan-serve-status`: for a failure report, the
//!   proxy's exit status (or `running`), its output's size and its stderr.

use std::time::Duration;

use super::guest::check;
use crate::bed::Bed;

/// A "never" bound for a transfer of a few MiB on this bed.
const TRANSFER: Duration = Duration::from_secs(300);
const QUICK: Duration = Duration::from_secs(60);

fn arg(args: &[Vec<u8>], i: usize, what: &str) -> Result<String, String> {
    let raw = args.get(i).ok_or_else(|| format!("missing {what}"))?;
    let text = String::from_utf8_lossy(raw).into_owned();
    // Only what a domid, a xenstore path or a byte count holds: these go
    // into a shell script.
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

fn status_script(name: &str) -> String {
    format!(
        "f=/tmp/vc-{name}; if [ -f $f.rc ]; then echo rc=$(cat $f.rc); else echo running; fi\n\
         echo out=$(wc -c <$f.out 2>/dev/null); head -c 400 $f.err\n"
    )
}

/// Does `verb` (see the module docs).
pub fn perform(bed: &mut Bed, verb: &str, args: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, String> {
    let script = match verb {
        "vchan-send" => {
            let (dom, path, n) = (
                arg(args, 0, "domid")?,
                arg(args, 1, "path")?,
                arg(args, 2, "size")?,
            );
            format!(
                "rm -f /tmp/vc-send.*; head -c {n} /dev/urandom >/tmp/vc-send.in || exit 1\n\
                 (vchan-socket-proxy {dom} {path} - </tmp/vc-send.in >/dev/null 2>/tmp/vc-send.err; \
                 echo $? >/tmp/vc-send.rc) </dev/null >/dev/null 2>&1 &\n\
                 crc32 </tmp/vc-send.in\n"
            )
        }
        "vchan-recv-start" => {
            let (dom, path) = (arg(args, 0, "domid")?, arg(args, 1, "path")?);
            format!(
                "rm -f /tmp/vc-recv.*; mkfifo /tmp/vc-recv.hold || exit 1\n\
                 (vchan-socket-proxy {dom} {path} - </tmp/vc-recv.hold >/tmp/vc-recv.out \
                 2>/tmp/vc-recv.err; echo $? >/tmp/vc-recv.rc) </dev/null >/dev/null 2>&1 &\n\
                 sleep 3600 >/tmp/vc-recv.hold 2>/dev/null </dev/null &\n\
                 echo $! >/tmp/vc-recv.holder\n"
            )
        }
        "vchan-recv-result" => {
            let secs = TRANSFER.as_secs() - 10;
            let script = format!(
                "i=0; while [ ! -f /tmp/vc-recv.rc ] && [ $i -lt {secs} ]; do sleep 1; i=$((i+1)); done\n\
                 kill $(cat /tmp/vc-recv.holder) 2>/dev/null\n\
                 [ -f /tmp/vc-recv.rc ] || {{ echo 'the proxy never exited' >&2; cat /tmp/vc-recv.err >&2; exit 1; }}\n\
                 cat /tmp/vc-recv.rc; crc32 </tmp/vc-recv.out; wc -c </tmp/vc-recv.out\n"
            );
            return Ok(words(&check(bed, &script, TRANSFER)?.stdout));
        }
        "vchan-serve" => {
            let (dom, path, n) = (
                arg(args, 0, "domid")?,
                arg(args, 1, "path")?,
                arg(args, 2, "size")?,
            );
            format!(
                "rm -f /tmp/vc-serve.*; head -c {n} /dev/urandom >/tmp/vc-serve.in || exit 1\n\
                 (vchan-socket-proxy --mode=server {dom} {path} - </tmp/vc-serve.in \
                 >/tmp/vc-serve.out 2>/tmp/vc-serve.err; echo $? >/tmp/vc-serve.rc) \
                 </dev/null >/dev/null 2>&1 &\n\
                 i=0; until xenstore-read {path}/event-channel >/dev/null 2>&1; do\n\
                 [ $i -lt 200 ] || {{ echo 'no vchan keys' >&2; cat /tmp/vc-serve.err >&2; exit 1; }}\n\
                 sleep 0.2; i=$((i+1)); done\n\
                 crc32 </tmp/vc-serve.in\n"
            )
        }
        "vchan-send-status" => status_script("send"),
        "vchan-serve-status" => status_script("serve"),
        other => return Err(format!("unknown verb {other:?} on real Xen")),
    };
    Ok(words(&check(bed, &script, QUICK)?.stdout))
}
