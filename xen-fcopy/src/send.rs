//! `xen-fcopy send`: one file into the guest, with a progress line.
//!
//! Writes are pipelined: the guest answers each in order, and answers are
//! checked as they arrive (a refusal stops the copy at once), all of them
//! before complete.

use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::time::{Duration, Instant};

use fcopy::wire::{self, Flags, Kind, Request, Start, Status};

use crate::error::Error;
use crate::link::Link;

/// A "never" bound for one answer from a guest on an emulated CPU.
pub const ANSWER_LIMIT: Duration = Duration::from_secs(120);

/// What to send where.
pub struct Job<'a> {
    /// The local file.
    pub file: &'a str,
    /// Its destination directory in the guest.
    pub dir: &'a str,
    /// Its name there.
    pub name: &'a str,
    /// Overwrite, create the path.
    pub flags: Flags,
    /// Bytes per write.
    pub chunk: usize,
}

fn check(reply: fcopy::Reply, kind: Kind) -> Result<fcopy::Reply, Error> {
    if reply.answers != kind || reply.status != Status::Ok {
        return Err(Error::Refused(reply));
    }
    Ok(reply)
}

/// Prints `sent/size` on one line: rewritten in place on a terminal, a
/// line per tenth otherwise (logs).
struct Progress {
    size: u64,
    tty: bool,
    shown: u64,
    start: Instant,
}

impl Progress {
    fn show(&mut self, sent: u64, last: bool) {
        let tenth = (sent * 10).checked_div(self.size).unwrap_or(10);
        if !last && tenth == self.shown {
            return;
        }
        self.shown = tenth;
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        let secs = self.start.elapsed().as_secs_f64().max(1e-3);
        let line = format!(
            "xen-fcopy: {:.1} of {:.1} MiB ({}%), {:.2} MiB/s",
            mib(sent),
            mib(self.size),
            (sent * 100).checked_div(self.size).unwrap_or(100),
            mib(sent) / secs
        );
        let mut err = std::io::stderr();
        let _ = if self.tty {
            write!(err, "\r{line}{}", if last { "\n" } else { "" })
        } else {
            writeln!(err, "{line}")
        };
    }
}

/// Sends the job's file over `link`; returns its size.
pub fn send(link: &mut Link, job: &Job<'_>) -> Result<u64, Error> {
    let mut file =
        File::open(job.file).map_err(|e| Error::Io(format!("opening {}", job.file), e))?;
    let size = file
        .metadata()
        .map_err(|e| Error::Io(format!("reading {}", job.file), e))?
        .len();
    let mut frame = Vec::new();
    wire::encode_request(
        &Request::Start(Start {
            dir: job.dir.as_bytes(),
            name: job.name.as_bytes(),
            size,
            flags: job.flags,
        }),
        &mut frame,
    )
    .map_err(|e| Error::Usage(e.to_string()))?;
    link.send(&[&frame])?;
    check(link.reply(ANSWER_LIMIT)?, Kind::Start)?;
    let mut progress = Progress {
        size,
        tty: std::io::stderr().is_terminal(),
        shown: u64::MAX,
        start: Instant::now(),
    };
    let mut buf = vec![0u8; job.chunk];
    let mut offset = 0u64;
    let mut unanswered = 0u64;
    while offset < size {
        let n = read_full(&mut file, &mut buf)
            .map_err(|e| Error::Io(format!("reading {}", job.file), e))?;
        if n == 0 {
            return Err(Error::Transport(format!(
                "{} shrank while being sent",
                job.file
            )));
        }
        let prefix = wire::write_prefix(offset, n).map_err(|e| Error::Usage(e.to_string()))?;
        link.send(&[&prefix, &buf[..n]])?;
        unanswered += 1;
        offset += n as u64;
        while let Some(reply) = link.try_reply() {
            check(reply?, Kind::Write)?;
            unanswered -= 1;
        }
        progress.show(offset, false);
    }
    frame.clear();
    wire::encode_request(&Request::Complete, &mut frame)
        .map_err(|e| Error::Usage(e.to_string()))?;
    link.send(&[&frame])?;
    for _ in 0..unanswered {
        check(link.reply(ANSWER_LIMIT)?, Kind::Write)?;
    }
    check(link.reply(ANSWER_LIMIT)?, Kind::Complete)?;
    progress.show(size, true);
    Ok(size)
}

fn read_full(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut at = 0;
    while at < buf.len() {
        match file.read(&mut buf[at..])? {
            0 => break,
            n => at += n,
        }
    }
    Ok(at)
}
