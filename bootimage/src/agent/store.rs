//! The xenstore fixture's verbs: the host side of a guest's xenstore test,
//! acting on the real daemon (through its real CLI tools or a dom0 socket)
//! and on the domain's ring page.
//!
//! | verb | arguments | does | answers |
//! |---|---|---|---|
//! | `nop` | | nothing (measures the serial round trip) | |
//! | `xenstore-write` | path value | the real `xenstore-write` | |
//! | `xenstore-read` | path | the real `xenstore-read` | value |
//! | `xenstore-rm` | path | the real `xenstore-rm` | |
//! | `xenstore-chmod` | path perm... | the real `xenstore-chmod` | |
//! | `flood` | dir count | writes `dir/<i>` = `i` for i in 0..count over a dom0 socket, one after the other (make `dir` dom0's first, or the children count against the guest's node quota) | microseconds taken |
//! | `restart-daemon` | | `Testbed::restart_daemon` (a "migration": fresh daemon, same ring) | new pid |
//! | `hold-watches` | prefix count | registers `count` watches on `prefix/<i>` over a dom0 socket of its own (raw requests, events discarded) and keeps them (the scaling bench's control: watches the guest does not hold) | |
//! | `drop-watches` | | closes that socket: the daemon removes its watches | |
//! | `quota` | name=value | sets one of the daemon's quotas for every domain (`Testbed::set_quota`; names as `testbed --quota`) | |
//! | `peek` | field | reads a u32 of the ring page | value |
//! | `poke` | field value | writes a u32 of the ring page | old value |
//! | `inject` | bytes | appends raw bytes to the response ring as the daemon would (waiting for room as the guest reads), then raises the guest's event | |
//! | `notify-guest` | | raises the guest's event | |
//! | `daemon-pause` / `daemon-resume` | | SIGSTOP / SIGCONT the daemon, so the host can answer a request in its place | |
//! | `answer-next` | payload \[declared-len\] | (daemon paused) waits for the guest's next request in the ring, consumes it and answers it with `payload` under the request's type and id, declaring `declared-len` bytes (default: the payload's length; longer declarations are padded with zeros) | the request's type |
//! | `latency` | node ack count | `count` times: write `node` = i (dom0 socket) and wait until the guest's watch callback has written `ack` = i, timed on the host clock | p50 and p99 in µs |
//!
//! Ring fields and the rules for writing the ring are in [`super::ring`].

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use testbed::wire::{nul_join, ty};
use testbed::{SharedPage, Testbed};

use super::Agent;
use super::ring::{DaemonSide, field_offset};
use super::verbs::{lock, parse_number, text, words};

/// Most transcript lines kept.
const TRANSCRIPT_LINES: usize = 200;
/// How long `latency` waits for one acknowledgement.
const ACK_TIMEOUT: Duration = Duration::from_secs(20);

/// Serves one domain's guest.
pub struct XenstoreAgent {
    testbed: Arc<Testbed>,
    domid: u32,
    /// The daemon's side of the domain's ring page (a second view).
    ring: DaemonSide,
    transcript: Mutex<Vec<String>>,
    /// The connections holding `hold-watches`' watches.
    held_watches: Mutex<Vec<testbed::wire::SocketClient>>,
}

impl XenstoreAgent {
    /// An agent for domain `domid` of `testbed`.
    pub fn new(testbed: Arc<Testbed>, domid: u32) -> Result<XenstoreAgent, String> {
        let page = SharedPage::open(&testbed.page_path(domid)).map_err(|e| e.to_string())?;
        Ok(XenstoreAgent {
            testbed,
            domid,
            ring: DaemonSide::new(page),
            transcript: Mutex::new(Vec::new()),
            held_watches: Mutex::new(Vec::new()),
        })
    }

    fn note(&self, line: String) {
        let mut t = lock(&self.transcript);
        if t.len() == TRANSCRIPT_LINES {
            t.remove(0);
        }
        t.push(line);
    }

    fn cli(&self, tool: &str, args: &[&str]) -> Result<String, String> {
        self.testbed
            .cli(tool, args)
            .and_then(|out| out.into_stdout())
            .map(|s| s.trim_end_matches('\n').to_string())
            .map_err(|e| e.to_string())
    }

    fn flood(&self, dir: &str, count: u64) -> Result<u64, String> {
        let e = |e: testbed::Error| e.to_string();
        let mut xs = self.testbed.connect().map_err(e)?;
        let start = Instant::now();
        for i in 0..count {
            let path = format!("{dir}/{i}");
            let value = i.to_string();
            let mut payload = nul_join(&[&path]);
            payload.extend_from_slice(value.as_bytes());
            xs.request(ty::WRITE, &payload).map_err(e)?;
        }
        Ok(start.elapsed().as_micros() as u64)
    }

    /// Registers `count` watches on `prefix/<i>` from a dom0 connection of
    /// its own and keeps them until `drop-watches`.
    fn hold_watches(&self, prefix: &str, count: u64) -> Result<(), String> {
        const MOST: u64 = 100_000;
        if count > MOST {
            return Err(format!("{count} watches: at most {MOST}"));
        }
        let mut xs = self.testbed.connect().map_err(|e| e.to_string())?;
        for i in 0..count {
            let path = format!("{prefix}/{i}");
            xs.request(ty::WATCH, &nul_join(&[&path, &format!("h{i}")]))
                .map_err(|e| format!("watch {i} of {count}: {e}"))?;
        }
        lock(&self.held_watches).push(xs);
        Ok(())
    }

    /// Sends `signal` to the daemon (this testbed's child, still running).
    fn signal_daemon(&self, signal: Signal) -> Result<(), String> {
        let pid = self.testbed.daemon_pid().ok_or("no daemon is running")?;
        let pid = i32::try_from(pid).map_err(|_| format!("pid {pid} out of range"))?;
        kill(Pid::from_raw(pid), signal).map_err(|e| format!("kill({pid}, {signal}): {e}"))
    }

    fn notify_guest(&self) -> Result<(), String> {
        self.testbed
            .notify_guest(self.domid)
            .map_err(|e| e.to_string())
    }

    fn latency(&self, node: &str, ack: &str, count: u64) -> Result<(u64, u64), String> {
        use xenstore::Store;
        let xs =
            xenstore::Client::connect(self.testbed.socket_path()).map_err(|e| e.to_string())?;
        let (tx, rx) = mpsc::channel();
        let watch = xs
            .watch(ack, move |_| {
                let _ = tx.send(Instant::now());
            })
            .map_err(|e| e.to_string())?;
        // `count` is the guest's word: grown as rounds complete, never
        // preallocated from it.
        let mut samples = Vec::new();
        for i in 0..count {
            let want = i.to_string();
            let start = Instant::now();
            xs.write(node, &want).map_err(|e| e.to_string())?;
            let seen = loop {
                let at = rx
                    .recv_timeout(ACK_TIMEOUT)
                    .map_err(|_| format!("no acknowledgement {i} within {ACK_TIMEOUT:?}"))?;
                // Events before this round (the initial one, stale acks) do not count.
                if at >= start
                    && xs.read_optional(ack).map_err(|e| e.to_string())?.as_deref()
                        == Some(want.as_bytes())
                {
                    break at;
                }
            };
            samples.push(seen.duration_since(start).as_micros() as u64);
        }
        drop(watch);
        samples.sort_unstable();
        let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        Ok((pick(0.5), pick(0.99)))
    }
}

impl Agent for XenstoreAgent {
    fn perform(&self, verb: &str, raw: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, String> {
        let started = Instant::now();
        let result = match verb {
            "nop" => Ok(vec![]),
            "xenstore-write" => {
                let [path, value] = words(verb, raw)?;
                self.cli("write", &[&path, &value]).map(|_| vec![])
            }
            "xenstore-read" => {
                let [path] = words(verb, raw)?;
                self.cli("read", &[&path]).map(|v| vec![v.into_bytes()])
            }
            "xenstore-rm" => {
                let [path] = words(verb, raw)?;
                self.cli("rm", &[&path]).map(|_| vec![])
            }
            "xenstore-chmod" => {
                let words: Vec<String> = raw.iter().map(|a| text(a)).collect();
                let refs: Vec<&str> = words.iter().map(String::as_str).collect();
                self.cli("chmod", &refs).map(|_| vec![])
            }
            "flood" => {
                let [dir, count] = words(verb, raw)?;
                let count = parse_number(&count)?;
                self.flood(&dir, count)
                    .map(|us| vec![us.to_string().into_bytes()])
            }
            "restart-daemon" => self
                .testbed
                .restart_daemon()
                .map_err(|e| e.to_string())
                .map(|()| {
                    let pid = self.testbed.daemon_pid().unwrap_or(0);
                    vec![pid.to_string().into_bytes()]
                }),
            "peek" => {
                let [field] = words(verb, raw)?;
                self.ring
                    .read(field_offset(&field)?)
                    .map(|v| vec![v.to_string().into_bytes()])
            }
            "poke" => {
                let [field, value] = words(verb, raw)?;
                let at = field_offset(&field)?;
                let value = u32::try_from(parse_number(&value)?)
                    .map_err(|_| format!("{value} does not fit a u32"))?;
                self.ring
                    .write(at, value)
                    .map(|old| vec![old.to_string().into_bytes()])
            }
            "inject" => match raw {
                [bytes] => self
                    .ring
                    .inject(bytes, &|| self.notify_guest())
                    .map(|()| vec![]),
                _ => Err("inject takes 1 argument".into()),
            },
            "daemon-pause" => self.signal_daemon(Signal::SIGSTOP).map(|()| vec![]),
            "daemon-resume" => self.signal_daemon(Signal::SIGCONT).map(|()| vec![]),
            "answer-next" => {
                let (payload, declared) = match raw {
                    [p] => (p, None),
                    [p, len] => {
                        let len = u32::try_from(parse_number(&text(len))?)
                            .map_err(|_| "declared length does not fit a u32".to_string())?;
                        (p, Some(len))
                    }
                    _ => return Err("answer-next takes 1 or 2 arguments".into()),
                };
                self.ring
                    .answer_next(payload, declared, &|| self.notify_guest())
                    .map(|ty| vec![ty.to_string().into_bytes()])
            }
            "notify-guest" => self.notify_guest().map(|()| vec![]),
            "hold-watches" => words(verb, raw).and_then(|[prefix, count]| {
                self.hold_watches(&prefix, parse_number(&count)?)
                    .map(|()| vec![])
            }),
            "drop-watches" => {
                lock(&self.held_watches).clear();
                Ok(vec![])
            }
            "quota" => words(verb, raw).and_then(|[spec]| {
                let quota = testbed::Quota::parse(&spec).map_err(|e| e.to_string())?;
                self.testbed
                    .set_quota(quota)
                    .map(|()| vec![])
                    .map_err(|e| e.to_string())
            }),
            "latency" => {
                let [node, ack, count] = words(verb, raw)?;
                let count = parse_number(&count)?.max(1);
                self.latency(&node, &ack, count).map(|(p50, p99)| {
                    vec![p50.to_string().into_bytes(), p99.to_string().into_bytes()]
                })
            }
            other => Err(format!("unknown verb {other:?}")),
        };
        let shown: Vec<String> = raw.iter().take(3).map(|a| text(a)).collect();
        self.note(format!(
            "{verb} {} -> {} ({:?})",
            shown.join(" "),
            match &result {
                Ok(_) => "ok".to_string(),
                Err(e) => format!("error: {e}"),
            },
            started.elapsed()
        ));
        result
    }

    fn transcript(&self) -> String {
        lock(&self.transcript).join("\n")
    }
}
