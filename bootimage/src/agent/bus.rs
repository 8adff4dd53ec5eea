//! The `xenbus` fixture's agent: the xenstore agent's verbs, plus the
//! toolstack's ([`super::toolstack`]) and the console's (typing into the
//! guest's serial line, and handing back what it printed, so a test can
//! drive the guest's shell as a user would and check what appeared).
//!
//! | verb | arguments | does | answers |
//! |---|---|---|---|
//! | `device-add` | class id auto\|manual | creates the device as libxl does (backend readable by the guest, in one transaction) | |
//! | `device-remove` | class id | removes frontend and backend directories (one transaction) | |
//! | `devices-add` | class first count auto\|manual | `device-add` for ids first..first+count, one after the other (the scaling bench's many devices without a serial round trip each) | |
//! | `devices-remove` | class first count | `device-remove` for the same ids | |
//! | `backend-rm` | class id | removes the backend directory only | |
//! | `backend-state` | class id state | writes the backend's `state` | |
//! | `wait-front-state` | class id state timeout-ms | waits until the frontend's `state` is that | |
//! | `traced-writes` | path-suffix | | the values written to nodes ending so, in the daemon's order (its trace) |
//! | `shutdown-request` | value | the real `xenstore-write <home>/control/shutdown value`; the run's check then wants it acknowledged (cleared) | |
//! | `suspend` | | plays the guest's suspend (see `suspend-mode`) | `migrated` or `cancelled` |
//! | `suspend-mode` | migrate\|checkpoint | what the next suspends do | |
//! | `restart-daemon` | | a migration (as `suspend` in migrate mode) | new pid |
//! | `type` | bytes | after answering, writes the bytes to the guest's serial input | |
//! | `console-lines` | | the guest's output lines (not requests) since the last call | the lines |
//! | anything else | | the xenstore agent's verbs | |

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use testbed::Testbed;

use super::Agent;
use super::backend::BackendMode;
use super::store::XenstoreAgent;
use super::toolstack::{SuspendMode, Toolstack};
use super::verbs::{lock, parse_number, words};

/// Most output lines kept for `console-lines`.
const CONSOLE_LINES: usize = 4000;

/// Serves one domain's guest in a xenbus image.
pub struct XenbusAgent {
    testbed: Arc<Testbed>,
    domid: u32,
    xenstore: XenstoreAgent,
    toolstack: Arc<Toolstack>,
    /// Output lines not yet handed back, and how many were dropped.
    console: Mutex<(VecDeque<String>, u64)>,
    /// Bytes to type once the current request is answered.
    typed: Mutex<Vec<u8>>,
    /// A `shutdown-request` was sent: the node must end up cleared.
    shutdown_requested: Mutex<Option<String>>,
}

fn state_number(text: &str) -> Result<u32, String> {
    u32::try_from(parse_number(text)?).map_err(|_| format!("state {text} out of range"))
}

impl XenbusAgent {
    /// An agent for `domid` of `testbed`, acting through `toolstack`.
    pub fn new(
        testbed: Arc<Testbed>,
        domid: u32,
        toolstack: Arc<Toolstack>,
    ) -> Result<XenbusAgent, String> {
        Ok(XenbusAgent {
            xenstore: XenstoreAgent::new(testbed.clone(), domid)?,
            testbed,
            domid,
            toolstack,
            console: Mutex::new((VecDeque::new(), 0)),
            typed: Mutex::new(Vec::new()),
            shutdown_requested: Mutex::new(None),
        })
    }

    /// Checks after the run: every `shutdown-request` was acknowledged (the
    /// guest cleared `control/shutdown`, as Linux does), and the backend
    /// player never failed.
    pub fn check(&self) -> Result<(), String> {
        let errors = self.toolstack.errors();
        if !errors.is_empty() {
            return Err(format!(
                "the host's backend player failed: {}",
                errors.join("; ")
            ));
        }
        let Some(value) = lock(&self.shutdown_requested).clone() else {
            return Ok(());
        };
        let node = format!("/local/domain/{}/control/shutdown", self.domid);
        let out = self
            .testbed
            .cli("read", &[&node])
            .and_then(|o| o.into_stdout())
            .map_err(|e| format!("xenstore-read {node}: {e}"))?;
        match out.trim() {
            "" => Ok(()),
            left => Err(format!(
                "the guest did not acknowledge control/shutdown = {value:?} (it still reads {left:?})"
            )),
        }
    }

    fn toolstack_verb(&self, verb: &str, raw: &[Vec<u8>]) -> Option<Result<Vec<Vec<u8>>, String>> {
        let ts = &self.toolstack;
        let none = |r: Result<(), String>| r.map(|()| vec![]);
        Some(match verb {
            "device-add" => words::<3>(verb, raw).and_then(|[class, id, mode]| {
                none(ts.add_device(&class, &id, mode.parse::<BackendMode>()?))
            }),
            "device-remove" => {
                words::<2>(verb, raw).and_then(|[class, id]| none(ts.remove_device(&class, &id)))
            }
            "devices-add" => words::<4>(verb, raw).and_then(|[class, first, count, mode]| {
                let mode = mode.parse::<BackendMode>()?;
                none(
                    id_range(&first, &count)?
                        .try_for_each(|id| ts.add_device(&class, &id.to_string(), mode)),
                )
            }),
            "devices-remove" => words::<3>(verb, raw).and_then(|[class, first, count]| {
                none(
                    id_range(&first, &count)?
                        .try_for_each(|id| ts.remove_device(&class, &id.to_string())),
                )
            }),
            "backend-rm" => {
                words::<2>(verb, raw).and_then(|[class, id]| none(ts.remove_backend(&class, &id)))
            }
            "backend-state" => words::<3>(verb, raw).and_then(|[class, id, state]| {
                none(ts.set_backend_state(&class, &id, state_number(&state)?))
            }),
            "wait-front-state" => words::<4>(verb, raw).and_then(|[class, id, state, ms]| {
                let timeout = Duration::from_millis(parse_number(&ms)?);
                none(ts.wait_front_state(&class, &id, state_number(&state)?, timeout))
            }),
            "shutdown-request" => words::<1>(verb, raw).and_then(|[value]| {
                let node = format!("/local/domain/{}/control/shutdown", self.domid);
                *lock(&self.shutdown_requested) = Some(value.clone());
                self.testbed
                    .cli("write", &[&node, &value])
                    .and_then(|o| o.into_stdout())
                    .map(|_| vec![])
                    .map_err(|e| format!("xenstore-write {node} {value}: {e}"))
            }),
            "traced-writes" => words::<1>(verb, raw).and_then(|[suffix]| {
                ts.traced_writes(&suffix)
                    .map(|values| values.into_iter().map(String::into_bytes).collect())
            }),
            "suspend" => ts.suspend().map(|answer| vec![answer.as_bytes().to_vec()]),
            "suspend-mode" => words::<1>(verb, raw).and_then(|[mode]| {
                let mode = match mode.as_str() {
                    "migrate" => SuspendMode::Migrate,
                    "checkpoint" => SuspendMode::Checkpoint,
                    other => {
                        return Err(format!("suspend mode {other:?}: want migrate|checkpoint"));
                    }
                };
                ts.set_suspend_mode(mode);
                Ok(vec![])
            }),
            "restart-daemon" => ts.migrate().map(|()| {
                let pid = self.testbed.daemon_pid().unwrap_or(0);
                vec![pid.to_string().into_bytes()]
            }),
            _ => return None,
        })
    }
}

impl Agent for XenbusAgent {
    fn perform(&self, verb: &str, raw: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, String> {
        if let Some(result) = self.toolstack_verb(verb, raw) {
            return result;
        }
        match verb {
            "type" => match raw {
                [bytes] => {
                    lock(&self.typed).extend_from_slice(bytes);
                    Ok(vec![])
                }
                _ => Err("type takes 1 argument".into()),
            },
            "console-lines" => {
                let mut console = lock(&self.console);
                let dropped = std::mem::take(&mut console.1);
                let mut lines: Vec<Vec<u8>> = console.0.drain(..).map(String::into_bytes).collect();
                if dropped > 0 {
                    lines.insert(0, format!("({dropped} older lines dropped)").into_bytes());
                }
                Ok(lines)
            }
            _ => self.xenstore.perform(verb, raw),
        }
    }

    fn observe(&self, line: &str) {
        let mut console = lock(&self.console);
        if console.0.len() == CONSOLE_LINES {
            console.0.pop_front();
            console.1 += 1;
        }
        console.0.push_back(line.to_string());
    }

    fn input_after_reply(&self) -> Vec<u8> {
        std::mem::take(&mut *lock(&self.typed))
    }

    fn transcript(&self) -> String {
        format!(
            "{}\n{}",
            self.toolstack.describe(),
            self.xenstore.transcript()
        )
    }
}

/// Device ids `first..first + count` from a guest's words; the count is
/// capped, as every number the guest sends is.
fn id_range(first: &str, count: &str) -> Result<std::ops::Range<u64>, String> {
    const MOST_DEVICES: u64 = 10_000;
    let (first, count) = (parse_number(first)?, parse_number(count)?);
    if count > MOST_DEVICES {
        return Err(format!("{count} devices: at most {MOST_DEVICES} at once"));
    }
    let end = first
        .checked_add(count)
        .ok_or_else(|| format!("device ids {first} + {count} overflow"))?;
    Ok(first..end)
}
