//! `xen-fcopy`: copies a file from dom0 into a guest's in-memory store,
//! through the guest's file copy service (`docs/fcopy.md`).
//!
//! ```text
//! xen-fcopy send DOMAIN FILE [DIR] [--name NAME] [--overwrite] [--create] [--chunk BYTES]
//! xen-fcopy raw DOMAIN      (frames from a script on stdin: see raw.rs)
//! ```
//!
//! It claims the service in a xenstore transaction (a second sender is
//! refused before it touches the ring), then talks to the guest's vchan
//! through dom0's `vchan-socket-proxy`. Exit status: 0 copied; 2 the guest
//! refused (the status is printed); 3 another sender holds the service;
//! 1 anything else.

mod error;
mod link;
mod raw;
mod send;
mod service;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use fcopy::wire::{Flags, MAX_CHUNK};

use error::Error;
use link::Link;

/// Bytes per write by default: half the guest's 64 KiB ring (the kernel's
/// `vchan::BULK_RING_BYTES`), so one chunk is read while the next fills.
const DEFAULT_CHUNK: usize = 32 << 10;
/// How long the guest may take to offer its vchan after a claim (it
/// offers it again after each connection: a few xenstore writes).
const OFFER_LIMIT: Duration = Duration::from_secs(60);
/// How long the proxy gets to exit once the guest closed.
const CLOSE_GRACE: Duration = Duration::from_secs(10);
/// How long the guest gets to give the claim back after a connection (it
/// notices the close, offers the vchan again: a few xenstore requests).
const RELEASE_LIMIT: Duration = Duration::from_secs(60);

const USAGE: &str = "usage: xen-fcopy send DOMAIN FILE [DIR] [--name NAME] [--overwrite] [--create] [--chunk BYTES]\n       xen-fcopy raw DOMAIN   (frames from a script on stdin)";

enum Mode {
    Send {
        file: String,
        dir: String,
        name: Option<String>,
        flags: Flags,
        chunk: usize,
    },
    Raw,
}

struct Args {
    domain: String,
    mode: Mode,
}

fn parse() -> Result<Args, lexopt::Error> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_env();
    let mut words = Vec::new();
    let (mut name, mut flags, mut chunk) = (None, Flags::default(), DEFAULT_CHUNK);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("name") => name = Some(parser.value()?.string()?),
            Long("overwrite") => flags.overwrite = true,
            Long("create") => flags.create_path = true,
            Long("chunk") => {
                chunk = parser.value()?.parse()?;
                if chunk == 0 || chunk > MAX_CHUNK {
                    return Err(format!("--chunk: 1 to {MAX_CHUNK} bytes").into());
                }
            }
            Long("help") | Short('h') => return Err(USAGE.into()),
            Value(v) => words.push(v.string()?),
            _ => return Err(arg.unexpected()),
        }
    }
    let mut words = words.into_iter();
    let (verb, domain) = (words.next(), words.next());
    let (Some(verb), Some(domain)) = (verb, domain) else {
        return Err(USAGE.into());
    };
    let mode = match verb.as_str() {
        "send" => Mode::Send {
            file: words.next().ok_or(USAGE)?,
            dir: words.next().unwrap_or_else(|| "/".into()),
            name,
            flags,
            chunk,
        },
        "raw" => Mode::Raw,
        _ => return Err(USAGE.into()),
    };
    if words.next().is_some() {
        return Err(USAGE.into());
    }
    Ok(Args { domain, mode })
}

fn run(args: Args) -> Result<(), Error> {
    let xs = service::connect()?;
    let domid = service::domid(&xs, &args.domain)?;
    let base = service::base(&xs, domid)?;
    let me = format!("dom0 xen-fcopy pid {}", std::process::id());
    service::claim(&xs, &base, &me)?;
    // From here until connected, the claim is ours to give back.
    let link =
        service::wait_offer(&xs, &base, OFFER_LIMIT).and_then(|path| Link::open(domid, &path));
    let mut link = match link {
        Ok(link) => link,
        Err(e) => {
            service::release(&xs, &base, &me);
            return Err(e);
        }
    };
    let sending = matches!(args.mode, Mode::Send { .. });
    let result = transfer(&mut link, domid, args.mode);
    // The guest closes after answering complete; the proxy then exits.
    // Otherwise (a refusal, a raw script, a failure) every answer we wait
    // for is in, and killing the proxy ends the connection.
    let grace = if sending && result.is_ok() {
        link.wait_closed(CLOSE_GRACE);
        CLOSE_GRACE
    } else {
        Duration::ZERO
    };
    link.close(grace);
    if !service::wait_released(&xs, &base, &me, RELEASE_LIMIT) {
        eprintln!(
            "xen-fcopy: the guest has not given the claim back within {} s",
            RELEASE_LIMIT.as_secs()
        );
    }
    result
}

fn transfer(link: &mut Link, domid: u32, mode: Mode) -> Result<(), Error> {
    match mode {
        Mode::Raw => raw::run(link),
        Mode::Send {
            file,
            dir,
            name,
            flags,
            chunk,
        } => {
            let name = match name {
                Some(n) => n,
                None => std::path::Path::new(&file)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .ok_or_else(|| Error::Usage(format!("{file} has no file name; use --name")))?,
            };
            let job = send::Job {
                file: &file,
                dir: &dir,
                name: &name,
                flags,
                chunk,
            };
            let start = Instant::now();
            let size = send::send(link, &job)?;
            let secs = start.elapsed().as_secs_f64().max(1e-6);
            let slash = if dir.ends_with('/') { "" } else { "/" };
            println!(
                "xen-fcopy: sent {file} to domain {domid} as {dir}{slash}{name}: {size} bytes in {secs:.2} s ({:.3} MiB/s)",
                size as f64 / (1 << 20) as f64 / secs
            );
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("xen-fcopy: {e}");
            return ExitCode::from(1);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xen-fcopy: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
