//! `xen-fcopy raw`: frames from a script on stdin, one per line, each
//! answer printed as `KIND STATUS VALUE`, for the tests of each refusal.
//!
//! ```text
//! start DIR NAME SIZE [overwrite] [create]   (DIR, NAME: \xHH escapes)
//! write OFFSET LEN                           (LEN bytes of a fixed pattern)
//! complete | cancel
//! bytes HEX                                  (raw bytes: a hostile frame)
//! sleep SECS                                 (send nothing for a while)
//! ```
//!
//! It stops at the first line the guest does not answer (it closed).

use std::io::BufRead;

use fcopy::wire::{self, Flags, Request, Start};

use crate::error::Error;
use crate::link::Link;
use crate::send::ANSWER_LIMIT;

fn unescape(word: &str) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    let bytes = word.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"\\x") && i + 4 <= bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 2..i + 4]).unwrap_or("");
            let b = u8::from_str_radix(hex, 16)
                .map_err(|_| Error::Usage(format!("bad escape in {word:?}")))?;
            out.push(b);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn hex(word: &str) -> Result<Vec<u8>, Error> {
    (0..word.len() / 2)
        .map(|i| u8::from_str_radix(word.get(2 * i..2 * i + 2).unwrap_or(""), 16))
        .collect::<Result<_, _>>()
        .map_err(|_| Error::Usage(format!("bad hex {word:?}")))
}

fn number(word: Option<&str>) -> Result<u64, Error> {
    word.and_then(|w| w.parse().ok())
        .ok_or_else(|| Error::Usage(format!("want a number, got {word:?}")))
}

/// The bytes of one script line.
fn frame(line: &str) -> Result<Vec<u8>, Error> {
    let mut words = line.split_whitespace();
    let verb = words.next().unwrap_or("");
    let mut out = Vec::new();
    let encode = |r: &Request<'_>, out: &mut Vec<u8>| {
        wire::encode_request(r, out).map_err(|e| Error::Usage(e.to_string()))
    };
    match verb {
        "start" => {
            let dir = unescape(words.next().unwrap_or(""))?;
            let name = unescape(words.next().unwrap_or(""))?;
            let size = number(words.next())?;
            let rest: Vec<&str> = words.collect();
            let flags = Flags {
                overwrite: rest.contains(&"overwrite"),
                create_path: rest.contains(&"create"),
            };
            let start = Start {
                dir: &dir,
                name: &name,
                size,
                flags,
            };
            encode(&Request::Start(start), &mut out)?;
        }
        "write" => {
            let offset = number(words.next())?;
            let len = number(words.next())? as usize;
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            encode(
                &Request::Write {
                    offset,
                    data: &data,
                },
                &mut out,
            )?;
        }
        "complete" => encode(&Request::Complete, &mut out)?,
        "cancel" => encode(&Request::Cancel, &mut out)?,
        "bytes" => out = hex(words.next().unwrap_or(""))?,
        other => return Err(Error::Usage(format!("unknown script verb {other:?}"))),
    }
    Ok(out)
}

/// Runs the script on stdin over `link`.
pub fn run(link: &mut Link) -> Result<(), Error> {
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| Error::Io("reading the script".into(), e))?;
        if line.trim().is_empty() {
            continue;
        }
        if let Some(secs) = line.trim().strip_prefix("sleep ") {
            let secs: u64 = number(Some(secs.trim()))?;
            std::thread::sleep(std::time::Duration::from_secs(secs));
            continue;
        }
        let bytes = frame(&line)?;
        // A guest that hung up shows as a failed send or a missing answer.
        match link.send(&[&bytes]).and_then(|()| link.reply(ANSWER_LIMIT)) {
            Ok(r) => println!("{} {} {}", r.answers.name(), r.status.word(), r.value),
            Err(e) => {
                println!("closed ({e})");
                return Ok(());
            }
        }
    }
    Ok(())
}
