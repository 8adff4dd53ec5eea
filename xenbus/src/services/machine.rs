//! The state machine every guest service runs on, after the Hyper-V util
//! services' `hvutil_device_state`: one request at a time, requests that
//! arrive meanwhile deferred, and a timeout on the handler.
//!
//! ```text
//!  Init ──start──► Ready ◄──────────────────────────────┐
//!                    │ trigger (watch event / period)   │
//!                    ▼                                  │
//!             RequestReceived ── nothing to do / error ─┤
//!                    │ receive() gave a request         │
//!                    ▼                                  │
//!             HandlerRunning ── timeout (abandoned) ────┤
//!                    │ handle() returned                │
//!                    ▼                                  │
//!               Responded ── outcome recorded ──────────┘
//!  (any) ──stop──► Dying
//! ```
//!
//! A trigger while the service is not Ready is *deferred*: it is remembered
//! (triggers coalesce: the request is read from the store when its turn
//! comes, so the latest one wins) and handled as soon as the service is
//! Ready again. It is counted as deferred only if a request was under way
//! when it came (not a `receive` that found nothing to do) and it then
//! carries a request itself: the watch event that a service's own
//! acknowledgement fires while it is busy is a trigger too, and finds
//! nothing to do. The service thread runs `receive` (read and
//! acknowledge the request); each request's `handle` runs on a thread of
//! its own so a handler that never returns only costs that thread: after
//! the timeout the service records [`ServiceError::HandlerTimeout`] and
//! goes back to Ready, and the late result, if any, is dropped.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use core::fmt;
use core::time::Duration;

use xenstore::{Lock, Platform, WaitQueue};

use crate::error::ServiceError;

/// Where a service is in its request cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceState {
    /// Created, its thread not running yet.
    Init,
    /// Waiting for a request.
    Ready,
    /// Reading (and acknowledging) a request.
    RequestReceived,
    /// The handler is running.
    HandlerRunning,
    /// The handler returned; recording its outcome.
    Responded,
    /// Stopped, or stopping.
    Dying,
}

impl fmt::Display for ServiceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A service's counters and state, for the shell and for tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceStatus {
    /// The service's name.
    pub name: &'static str,
    /// Its state now.
    pub state: ServiceState,
    /// Requests whose handler returned Ok.
    pub handled: u64,
    /// Requests that failed (in `receive` or `handle`).
    pub failed: u64,
    /// Handlers abandoned after the timeout.
    pub timed_out: u64,
    /// Requests that arrived while another was under way and were taken up
    /// after it (triggers that found nothing to do, or came while the
    /// service only found nothing to do, are not counted).
    pub deferred: u64,
    /// The request being handled, or the last one.
    pub last_request: Option<String>,
    /// The last error.
    pub last_error: Option<ServiceError>,
}

/// What a service does with a request. Implemented by each service.
pub(crate) trait Handler: Send + Sync + 'static {
    /// A request, as `receive` read it.
    type Request: Send + 'static;

    /// The service's name.
    fn name(&self) -> &'static str;

    /// On the service thread: read (and acknowledge) the pending request.
    /// `Ok(None)`: nothing to do (e.g. the node was already cleared).
    fn receive(&self) -> Result<Option<Self::Request>, ServiceError>;

    /// On a handler thread: act on `request`.
    fn handle(&self, request: Self::Request) -> Result<(), ServiceError>;

    /// A short description of `request` for status and errors.
    fn describe(&self, request: &Self::Request) -> String;
}

/// Timing of a service.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timing {
    /// How long a handler may run before it is abandoned.
    pub(crate) timeout: Duration,
    /// Trigger by itself this long after the last request (`None`: never).
    pub(crate) period: Option<Duration>,
}

struct Control {
    status: ServiceStatus,
    /// A trigger not yet taken by the service thread.
    pending: bool,
    /// Some pending trigger arrived while a request was under way.
    pending_while_busy: bool,
    /// Some pending trigger arrived while `receive` ran: it was waiting
    /// behind a request only if that `receive` found one.
    pending_while_receiving: bool,
    /// The request whose handler's result is still wanted.
    active: Option<u64>,
    next_seq: u64,
    finished: Option<Result<(), ServiceError>>,
}

pub(crate) struct MachineInner<P: Platform, H: Handler> {
    platform: Arc<P>,
    pub(crate) handler: H,
    timing: Timing,
    /// Guards the state, counters and the handler's result. A leaf lock.
    control: P::Lock<Control>,
    /// Woken on a trigger, a handler's result, and stop.
    wake: P::WaitQueue,
}

/// A running service: its thread and state. Clone to share.
pub(crate) struct Machine<P: Platform, H: Handler> {
    pub(crate) inner: Arc<MachineInner<P, H>>,
}

impl<P: Platform, H: Handler> Clone for Machine<P, H> {
    fn clone(&self) -> Self {
        Machine {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<P: Platform, H: Handler> Machine<P, H> {
    /// Starts the service thread (`thread` names it).
    pub(crate) fn start(
        platform: Arc<P>,
        handler: H,
        timing: Timing,
        thread: &'static str,
    ) -> Result<Machine<P, H>, ServiceError> {
        let name = handler.name();
        let inner = Arc::new(MachineInner {
            platform,
            handler,
            timing,
            control: Lock::new(Control {
                status: ServiceStatus {
                    name,
                    state: ServiceState::Init,
                    handled: 0,
                    failed: 0,
                    timed_out: 0,
                    deferred: 0,
                    last_request: None,
                    last_error: None,
                },
                pending: false,
                pending_while_busy: false,
                pending_while_receiving: false,
                active: None,
                next_seq: 0,
                finished: None,
            }),
            wake: WaitQueue::new(),
        });
        let runner = Arc::clone(&inner);
        inner
            .platform
            .spawn(thread, Box::new(move || run(&runner)))
            .map_err(|_| ServiceError::Spawn(thread))?;
        Ok(Machine { inner })
    }

    /// Asks for a request to be handled: now if Ready, else once the
    /// current one is done (deferred). Never blocks; callable from a
    /// watch callback.
    pub(crate) fn trigger(&self) {
        self.inner.control.with(|c| {
            match c.status.state {
                ServiceState::HandlerRunning | ServiceState::Responded => {
                    c.pending_while_busy = true
                }
                ServiceState::RequestReceived => c.pending_while_receiving = true,
                ServiceState::Init | ServiceState::Ready | ServiceState::Dying => {}
            }
            c.pending = true;
        });
        self.inner.wake.wake_all();
    }

    /// The state and counters now.
    pub(crate) fn status(&self) -> ServiceStatus {
        self.inner.control.with(|c| c.status.clone())
    }

    /// Records an error met outside a request (e.g. advertising features).
    pub(crate) fn record_error(&self, err: ServiceError) {
        log::warn!("xenbus: {err}");
        self.inner.control.with(|c| c.status.last_error = Some(err));
    }

    /// Stops the service thread (a running handler is abandoned).
    pub(crate) fn stop(&self) {
        self.inner
            .control
            .with(|c| c.status.state = ServiceState::Dying);
        self.inner.wake.wake_all();
    }
}

fn set_state<P: Platform, H: Handler>(m: &MachineInner<P, H>, state: ServiceState) {
    m.control.with(|c| {
        if c.status.state != ServiceState::Dying {
            c.status.state = state;
        }
    });
}

fn failed<P: Platform, H: Handler>(m: &MachineInner<P, H>, err: ServiceError) {
    log::warn!("xenbus: {err}");
    m.control.with(|c| {
        c.status.failed += 1;
        c.status.last_error = Some(err);
    });
}

/// The service thread.
fn run<P: Platform, H: Handler>(m: &Arc<MachineInner<P, H>>) {
    set_state(m, ServiceState::Ready);
    loop {
        let mut dying = false;
        let mut deferred = false;
        let mut taken = || {
            m.control.with(|c| {
                dying = c.status.state == ServiceState::Dying;
                let go = dying || c.pending;
                if go && !dying {
                    c.pending = false;
                    deferred = core::mem::take(&mut c.pending_while_busy);
                    c.status.state = ServiceState::RequestReceived;
                }
                go
            })
        };
        if !m.wake.wait_until(&mut taken, m.timing.period) {
            // The period passed without a trigger: that is the trigger.
            set_state(m, ServiceState::RequestReceived);
        }
        if dying || m.control.with(|c| c.status.state == ServiceState::Dying) {
            return;
        }
        let received = m.handler.receive();
        m.control.with(|c| {
            // A trigger that came while this `receive` found nothing to do
            // (e.g. the host's write landing while the watch's first event is
            // checked) waited behind no request.
            let during = core::mem::take(&mut c.pending_while_receiving);
            if !matches!(received, Ok(None)) {
                c.pending_while_busy |= during;
            }
        });
        match received {
            Ok(Some(request)) => {
                if deferred {
                    m.control.with(|c| c.status.deferred += 1);
                }
                serve(m, request)
            }
            Ok(None) => {}
            Err(e) => failed(m, e),
        }
        set_state(m, ServiceState::Ready);
    }
}

/// Runs one request's handler on its own thread, with the timeout.
fn serve<P: Platform, H: Handler>(m: &Arc<MachineInner<P, H>>, request: H::Request) {
    let what = m.handler.describe(&request);
    let seq = m.control.with(|c| {
        c.next_seq += 1;
        c.active = Some(c.next_seq);
        c.finished = None;
        c.status.last_request = Some(what.clone());
        if c.status.state != ServiceState::Dying {
            c.status.state = ServiceState::HandlerRunning;
        }
        c.next_seq
    });
    // A slot rather than a move into the closure: if the thread cannot be
    // started the request is taken back and run here.
    let slot: Arc<P::Lock<Option<H::Request>>> = Arc::new(Lock::new(Some(request)));
    let (runner, theirs) = (Arc::clone(m), Arc::clone(&slot));
    let body = move || {
        let Some(request) = theirs.with(Option::take) else {
            return;
        };
        let result = runner.handler.handle(request);
        runner.control.with(|c| {
            if c.active == Some(seq) {
                c.finished = Some(result);
            }
        });
        runner.wake.wake_all();
    };
    if m.platform.spawn("xenbus-handler", Box::new(body)).is_err() {
        // No thread: run it here, without the timeout, rather than lose it.
        log::warn!(
            "xenbus: {}: no handler thread; running inline",
            m.handler.name()
        );
        if let Some(request) = slot.with(Option::take) {
            let result = m.handler.handle(request);
            m.control.with(|c| c.finished = Some(result));
        }
    }
    let mut outcome = None;
    let mut done = || {
        m.control.with(|c| {
            outcome = c.finished.take();
            outcome.is_some() || c.status.state == ServiceState::Dying
        })
    };
    m.wake.wait_until(&mut done, Some(m.timing.timeout));
    let stopping = m.control.with(|c| {
        c.active = None;
        c.status.state == ServiceState::Dying
    });
    if stopping && outcome.is_none() {
        return;
    }
    set_state(m, ServiceState::Responded);
    match outcome {
        Some(Ok(())) => m.control.with(|c| c.status.handled += 1),
        Some(Err(e)) => failed(m, e),
        None => {
            let err = ServiceError::HandlerTimeout {
                service: m.handler.name(),
                request: what,
                after: m.timing.timeout,
            };
            log::warn!("xenbus: {err}");
            m.control.with(|c| {
                c.status.timed_out += 1;
                c.status.last_error = Some(err);
            });
        }
    }
}
