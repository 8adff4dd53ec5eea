//! `control/shutdown`: the toolstack writes a command, the guest reads and
//! acknowledges it by writing the empty string in the same transaction,
//! then acts (Linux's `drivers/xen/manage.c`). Commands the guest cannot
//! handle are left in the node unacknowledged and reported.
//!
//! The guest advertises what it handles with `control/feature-poweroff`,
//! `-reboot` and (when a suspend path is given) `-suspend` = "1", as
//! Linux does. There is no `feature-halt` in xenstore-paths, so "halt" is
//! handled but not advertised. A failed advertisement (e.g. EACCES: under
//! xl the `control` directory is read-only to the guest unless the
//! toolstack created the node) is logged and recorded; commands are still
//! handled, as xenstore-paths asks.

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;

use xenstore::{Client, Lock, Platform, Store, Watch, WatchEvent};

use super::machine::{Handler, Machine, ServiceStatus, Timing};
use super::{PowerControl, ServiceConfig, SuspendPath, node};
use crate::error::{ServiceError, shown};

const NAME: &str = "control";
const CONTROL: &str = "control";
const SHUTDOWN: &str = "control/shutdown";

/// A command written to `control/shutdown`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownCommand {
    /// "poweroff".
    Poweroff,
    /// "reboot".
    Reboot,
    /// "halt".
    Halt,
    /// "suspend" (also a migration or a save).
    Suspend,
}

impl ShutdownCommand {
    /// The command's text in the node.
    pub fn as_str(self) -> &'static str {
        match self {
            ShutdownCommand::Poweroff => "poweroff",
            ShutdownCommand::Reboot => "reboot",
            ShutdownCommand::Halt => "halt",
            ShutdownCommand::Suspend => "suspend",
        }
    }

    /// The command `value` names, exactly (no trimming: the toolstack
    /// writes the bare word).
    pub fn parse(value: &[u8]) -> Option<ShutdownCommand> {
        [
            ShutdownCommand::Poweroff,
            ShutdownCommand::Reboot,
            ShutdownCommand::Halt,
            ShutdownCommand::Suspend,
        ]
        .into_iter()
        .find(|c| c.as_str().as_bytes() == value)
    }
}

/// What `receive` found in the node.
enum Found {
    Nothing,
    Command(ShutdownCommand),
    Unknown(String),
}

pub(crate) struct ControlHandler<P: Platform> {
    xs: Client<P>,
    power: Arc<dyn PowerControl>,
    suspend: Option<Arc<dyn SuspendPath>>,
}

impl<P: Platform> ControlHandler<P> {
    /// Writes the feature nodes; returns the first error.
    fn advertise(&self) -> Result<(), ServiceError> {
        let mut features = alloc::vec!["poweroff", "reboot"];
        if self.suspend.is_some() {
            features.push("suspend");
        }
        let mut first = None;
        for feature in features {
            let path = node(CONTROL, &format!("feature-{feature}"));
            if let Err(e) = self.xs.write(&path, "1") {
                first.get_or_insert(ServiceError::store(NAME, "advertising a feature", e));
            }
        }
        first.map_or(Ok(()), Err)
    }

    fn handles(&self, command: ShutdownCommand) -> bool {
        command != ShutdownCommand::Suspend || self.suspend.is_some()
    }
}

impl<P: Platform> Handler for ControlHandler<P> {
    type Request = ShutdownCommand;

    fn name(&self) -> &'static str {
        NAME
    }

    fn receive(&self) -> Result<Option<ShutdownCommand>, ServiceError> {
        let found = self
            .xs
            .transaction(|t| {
                let value = match t.read_optional(SHUTDOWN)? {
                    None => return Ok(Found::Nothing),
                    Some(v) if v.is_empty() => return Ok(Found::Nothing),
                    Some(v) => v,
                };
                match ShutdownCommand::parse(&value).filter(|c| self.handles(*c)) {
                    Some(command) => {
                        // Acknowledge only what we will act on (Linux).
                        t.write(SHUTDOWN, "")?;
                        Ok(Found::Command(command))
                    }
                    None => Ok(Found::Unknown(shown(&value))),
                }
            })
            .map_err(|e| ServiceError::store(NAME, "reading control/shutdown", e))?;
        match found {
            Found::Nothing => Ok(None),
            Found::Command(command) => Ok(Some(command)),
            Found::Unknown(value) => Err(ServiceError::UnknownCommand {
                service: NAME,
                path: String::from(SHUTDOWN),
                value,
            }),
        }
    }

    fn handle(&self, command: ShutdownCommand) -> Result<(), ServiceError> {
        log::info!("xenbus: control: {}", command.as_str());
        let power = |action, result: Result<(), crate::error::PowerError>| {
            result.map_err(|source| ServiceError::Power { action, source })
        };
        match command {
            ShutdownCommand::Poweroff => power("poweroff", self.power.poweroff()),
            ShutdownCommand::Reboot => power("reboot", self.power.reboot()),
            ShutdownCommand::Halt => power("halt", self.power.halt()),
            ShutdownCommand::Suspend => {
                let Some(path) = &self.suspend else {
                    return Ok(()); // `receive` does not hand it over.
                };
                let outcome = path.suspend();
                // After a migration the store is a new one: advertise again
                // (also after a failed suspend: it does no harm).
                let advertised = self.advertise();
                outcome?;
                advertised
            }
        }
    }

    fn describe(&self, command: &ShutdownCommand) -> String {
        String::from(command.as_str())
    }
}

/// The `control/shutdown` service. Stops when dropped.
pub struct ControlService<P: Platform> {
    machine: Machine<P, ControlHandler<P>>,
    /// The watch on `control/shutdown`; taken alone.
    watch: P::Lock<Option<Watch<P>>>,
}

impl<P: Platform> ControlService<P> {
    /// Advertises the features, starts the service thread and watches
    /// `control/shutdown` (its first event handles a command written
    /// before we started). `suspend`: the suspend path; `None` leaves
    /// "suspend" unadvertised and unacknowledged.
    ///
    /// Errors: [`ServiceError::Spawn`]; the watch could not be registered.
    /// A failed advertisement is only recorded (see the module doc).
    pub fn start(
        platform: Arc<P>,
        xs: Client<P>,
        power: Arc<dyn PowerControl>,
        suspend: Option<Arc<dyn SuspendPath>>,
        config: ServiceConfig,
    ) -> Result<ControlService<P>, ServiceError> {
        let handler = ControlHandler {
            xs: xs.clone(),
            power,
            suspend,
        };
        let advertised = handler.advertise();
        let timing = Timing {
            timeout: config.handler_timeout,
            period: None,
        };
        let machine = Machine::start(platform, handler, timing, "xenbus-control")?;
        if let Err(e) = advertised {
            machine.record_error(e);
        }
        let trigger = machine.clone();
        let watch = xs
            .watch(SHUTDOWN, move |_: &WatchEvent| trigger.trigger())
            .map_err(|e| {
                machine.stop();
                ServiceError::store(NAME, "watching control/shutdown", e)
            })?;
        Ok(ControlService {
            machine,
            watch: Lock::new(Some(watch)),
        })
    }

    /// The service's state and counters.
    pub fn status(&self) -> ServiceStatus {
        self.machine.status()
    }

    /// Writes the feature nodes again (e.g. after the store was replaced).
    /// Errors: the first write that failed.
    pub fn advertise(&self) -> Result<(), ServiceError> {
        self.machine.inner.handler.advertise()
    }
}

impl<P: Platform> Drop for ControlService<P> {
    fn drop(&mut self) {
        let watch = self.watch.with(Option::take);
        drop(watch);
        self.machine.stop();
    }
}
