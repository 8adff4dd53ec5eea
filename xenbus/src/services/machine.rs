//! The state machine every guest service runs on, after the Hyper-V util
//! services' `hvutil_device_state`: one request at a time, requests that
//! arrive meanwhile deferred, and a timeout on the handler.
//!
//! ```text
//!  Init ──start──► Ready ◄──────────────────────────────────────┐
//!                    │ trigger (watch event / period)           │
//!                    ▼                                          │
//!             RequestReceived ── nothing to do / error ─────────┤
//!                    │ receive() gave a request                 │
//!                    ▼                                          │
//!             HandlerRunning ── timeout ──► HandlerOverdue ──────┤
//!                    │ handle() returned      (handle() returned,│
//!                    ▼                         result dropped)   │
//!               Responded ── outcome recorded ──────────────────┘
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
//! nothing to do.
//!
//! Threads: two per service, for its whole life, none per request. The
//! service thread waits for triggers and runs `receive` (read and
//! acknowledge the request); the handler thread runs each request's
//! `handle`, so the service thread can notice a handler that overruns the
//! timeout. It then records [`ServiceError::HandlerTimeout`] (logged once)
//! and goes to `HandlerOverdue`: the handler is still waited for, and no
//! other request starts until it returns; its late result is dropped (not
//! counted as handled or failed). Handlers never run two at once.
//!
//! [`Machine::stop`] returns once the service thread has ended and the
//! handler thread has ended too, or, if a handler is still running a
//! timeout after the stop, once that handler is abandoned with
//! [`ServiceError::HandlerAbandoned`] logged. "Ended" means the thread
//! holds nothing of the service any more (its handler, store client, OS
//! hooks) and only returns.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use core::fmt;
use core::time::Duration;

use xenstore::{Lock, Platform, WaitQueue};

use crate::error::ServiceError;

/// Name of every service's handler thread.
const HANDLER_THREAD: &str = "xenbus-handler";

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
    /// The handler overran the timeout (recorded as
    /// [`ServiceError::HandlerTimeout`]) and is still running; the service
    /// waits for it before it takes another request.
    HandlerOverdue,
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
    /// Handlers that overran the timeout (their late results are dropped).
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

    /// On the handler thread: act on `request`.
    fn handle(&self, request: Self::Request) -> Result<(), ServiceError>;

    /// A short description of `request` for status and errors.
    fn describe(&self, request: &Self::Request) -> String;
}

/// Timing of a service.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timing {
    /// How long a handler may run before it is reported as timed out (it
    /// is still waited for), and how long `stop` waits for a running one.
    pub(crate) timeout: Duration,
    /// Trigger by itself this long after the last request (`None`: never).
    pub(crate) period: Option<Duration>,
}

struct Control<R> {
    status: ServiceStatus,
    /// A trigger not yet taken by the service thread.
    pending: bool,
    /// Some pending trigger arrived while a request was under way.
    pending_while_busy: bool,
    /// Some pending trigger arrived while `receive` ran: it was waiting
    /// behind a request only if that `receive` found one.
    pending_while_receiving: bool,
    /// The request handed to the handler thread and not yet taken by it.
    request: Option<R>,
    /// The result of the handler that just returned, for the service thread.
    finished: Option<Result<(), ServiceError>>,
}

/// Which of a service's threads still run. Kept apart from
/// [`MachineInner`] so that a thread can say it has ended after dropping
/// its last reference to the service.
struct Threads<P: Platform> {
    /// Guards [`Running`]. A leaf lock, taken alone.
    running: P::Lock<Running>,
    /// Woken when a thread ends.
    ended: P::WaitQueue,
}

struct Running {
    /// The service thread was started and has not ended yet.
    service: bool,
    /// The handler thread was started and has not ended yet.
    handler: bool,
    /// The threads' ids once they run (so `stop` from inside one of them
    /// does not wait for itself).
    service_id: Option<u64>,
    handler_id: Option<u64>,
}

pub(crate) struct MachineInner<P: Platform, H: Handler> {
    platform: Arc<P>,
    pub(crate) handler: H,
    timing: Timing,
    /// Guards the state, counters, the request handed to the handler
    /// thread and its result. A leaf lock.
    control: P::Lock<Control<H::Request>>,
    /// Woken on a trigger, a request for the handler thread, a handler's
    /// result, and stop.
    wake: P::WaitQueue,
    threads: Arc<Threads<P>>,
}

/// A running service: its threads and state. Clone to share.
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
    /// Starts the service thread (`thread` names it) and its handler
    /// thread. Errors: [`ServiceError::Spawn`] naming the thread that could
    /// not start (none is left running).
    pub(crate) fn start(
        platform: Arc<P>,
        handler: H,
        timing: Timing,
        thread: &'static str,
    ) -> Result<Machine<P, H>, ServiceError> {
        let name = handler.name();
        let threads = Arc::new(Threads {
            running: Lock::new(Running {
                service: false,
                handler: false,
                service_id: None,
                handler_id: None,
            }),
            ended: WaitQueue::new(),
        });
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
                request: None,
                finished: None,
            }),
            wake: WaitQueue::new(),
            threads,
        });
        let machine = Machine { inner };
        if !machine.spawn(
            HANDLER_THREAD,
            work,
            |r| &mut r.handler,
            |r| &mut r.handler_id,
        ) {
            machine.stop();
            return Err(ServiceError::Spawn(HANDLER_THREAD));
        }
        if !machine.spawn(thread, run, |r| &mut r.service, |r| &mut r.service_id) {
            machine.stop();
            return Err(ServiceError::Spawn(thread));
        }
        Ok(machine)
    }

    /// Starts one of the service's threads running `body`; `alive` and
    /// `id` pick its entries in [`Running`]. False if it could not start
    /// (it is then marked ended).
    fn spawn(
        &self,
        name: &'static str,
        body: fn(&Arc<MachineInner<P, H>>),
        alive: fn(&mut Running) -> &mut bool,
        id: fn(&mut Running) -> &mut Option<u64>,
    ) -> bool {
        let service = Arc::clone(&self.inner);
        let threads = Arc::clone(&self.inner.threads);
        // Marked before it can end; a thread never started is not waited for.
        threads.running.with(|r| *alive(r) = true);
        let started = self.inner.platform.spawn(
            name,
            Box::new(move || {
                let me = service.platform.current_thread_id();
                threads.running.with(|r| *id(r) = Some(me));
                body(&service);
                // Let go of the service before saying so: `stop` promises
                // that nothing of it is held once it returns.
                drop(service);
                threads.running.with(|r| *alive(r) = false);
                threads.ended.wake_all();
            }),
        );
        if started.is_err() {
            self.inner.threads.running.with(|r| *alive(r) = false);
        }
        started.is_ok()
    }

    /// Asks for a request to be handled: now if Ready, else once the
    /// current one is done (deferred). Never blocks; callable from a
    /// watch callback.
    pub(crate) fn trigger(&self) {
        self.inner.control.with(|c| {
            match c.status.state {
                ServiceState::HandlerRunning
                | ServiceState::HandlerOverdue
                | ServiceState::Responded => c.pending_while_busy = true,
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

    /// Stops the service. Returns once the service thread has ended, and
    /// the handler thread too; a handler still running one timeout after
    /// the stop is abandoned instead, with [`ServiceError::HandlerAbandoned`]
    /// logged and recorded (its thread ends when the handler returns, and
    /// never takes another request). Ended: the thread holds nothing of the
    /// service any more (see the module doc). Called from one of the
    /// service's own threads (a handler stopping its service), it does not
    /// wait for that thread. Idempotent.
    pub(crate) fn stop(&self) {
        let m = &self.inner;
        let request = m.control.with(|c| {
            c.status.state = ServiceState::Dying;
            c.status.last_request.clone()
        });
        m.wake.wake_all();
        let me = m.platform.current_thread_id();
        let threads = &m.threads;
        let (on_service, on_handler) = threads
            .running
            .with(|r| (r.service_id == Some(me), r.handler_id == Some(me)));
        if !on_service {
            let mut service_ended = || threads.running.with(|r| !r.service);
            threads.ended.wait_until(&mut service_ended, None);
        }
        if on_handler {
            return;
        }
        let mut handler_ended = || threads.running.with(|r| !r.handler);
        if !threads
            .ended
            .wait_until(&mut handler_ended, Some(m.timing.timeout))
        {
            let err = ServiceError::HandlerAbandoned {
                service: m.handler.name(),
                request: request.unwrap_or_default(),
                after: m.timing.timeout,
            };
            log::error!("xenbus: {err}");
            m.control.with(|c| c.status.last_error = Some(err));
        }
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

/// The handler thread: runs each request handed over by [`serve`], one at
/// a time, until the service stops.
fn work<P: Platform, H: Handler>(m: &Arc<MachineInner<P, H>>) {
    loop {
        let mut request = None;
        let mut given = || {
            m.control.with(|c| {
                if c.status.state == ServiceState::Dying {
                    return true;
                }
                request = c.request.take();
                request.is_some()
            })
        };
        m.wake.wait_until(&mut given, None);
        // `None`: stopping (a request handed over meanwhile is dropped).
        let Some(request) = request else {
            return;
        };
        let result = m.handler.handle(request);
        m.control.with(|c| c.finished = Some(result));
        m.wake.wake_all();
    }
}

/// Hands one request to the handler thread and waits for its result. Past
/// the timeout the handler is reported as timed out and still waited for,
/// so no other request starts while it runs. Returns early if the service
/// stops.
fn serve<P: Platform, H: Handler>(m: &Arc<MachineInner<P, H>>, request: H::Request) {
    let what = m.handler.describe(&request);
    m.control.with(|c| {
        c.finished = None;
        c.request = Some(request);
        c.status.last_request = Some(what.clone());
        if c.status.state != ServiceState::Dying {
            c.status.state = ServiceState::HandlerRunning;
        }
    });
    m.wake.wake_all();
    let mut outcome = None;
    let mut stopping = false;
    let mut done = || {
        m.control.with(|c| {
            outcome = c.finished.take();
            stopping = c.status.state == ServiceState::Dying;
            outcome.is_some() || stopping
        })
    };
    if !m.wake.wait_until(&mut done, Some(m.timing.timeout)) {
        let err = ServiceError::HandlerTimeout {
            service: m.handler.name(),
            request: what,
            after: m.timing.timeout,
        };
        log::warn!("xenbus: {err}");
        m.control.with(|c| {
            c.status.timed_out += 1;
            c.status.last_error = Some(err);
            if c.status.state != ServiceState::Dying {
                c.status.state = ServiceState::HandlerOverdue;
            }
        });
        // Wait it out: starting the next request now would run two
        // handlers at once. Its late result is dropped.
        let mut late = || {
            m.control
                .with(|c| c.finished.take().is_some() || c.status.state == ServiceState::Dying)
        };
        m.wake.wait_until(&mut late, None);
        return;
    }
    if stopping && outcome.is_none() {
        return;
    }
    set_state(m, ServiceState::Responded);
    match outcome {
        Some(Ok(())) => m.control.with(|c| c.status.handled += 1),
        Some(Err(e)) => failed(m, e),
        None => {}
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use core::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    use xenstore::{SpawnError, StdLock, StdPlatform, StdWaitQueue};

    /// The host platform, except that spawn number `fail_at` (from 1) fails.
    struct FailingSpawn {
        fail_at: usize,
        spawned: AtomicUsize,
    }

    impl Platform for FailingSpawn {
        type Lock<T: Send> = StdLock<T>;
        type WaitQueue = StdWaitQueue;

        fn spawn(
            &self,
            name: &'static str,
            body: Box<dyn FnOnce() + Send + 'static>,
        ) -> Result<(), SpawnError> {
            if self.spawned.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_at {
                return Err(SpawnError);
            }
            StdPlatform.spawn(name, body)
        }

        fn current_thread_id(&self) -> u64 {
            StdPlatform.current_thread_id()
        }

        fn now_us(&self) -> u64 {
            StdPlatform.now_us()
        }
    }

    struct Idle;

    impl Handler for Idle {
        type Request = ();
        fn name(&self) -> &'static str {
            "idle"
        }
        fn receive(&self) -> Result<Option<()>, ServiceError> {
            Ok(None)
        }
        fn handle(&self, (): ()) -> Result<(), ServiceError> {
            Ok(())
        }
        fn describe(&self, (): &()) -> String {
            String::from("nothing")
        }
    }

    /// A service whose first or second thread cannot start reports which,
    /// and returns (it used to wait for the never-started service thread).
    #[test]
    fn a_thread_that_cannot_start_is_reported_not_waited_for() {
        for (fail_at, thread) in [(1, HANDLER_THREAD), (2, "xenbus-idle")] {
            let platform = Arc::new(FailingSpawn {
                fail_at,
                spawned: AtomicUsize::new(0),
            });
            let timing = Timing {
                timeout: Duration::from_secs(30),
                period: None,
            };
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                let started = Machine::start(platform, Idle, timing, "xenbus-idle");
                let _ = tx.send(started.err());
            });
            // Only a guard against hanging the suite.
            let error = rx.recv_timeout(std::time::Duration::from_secs(20));
            assert_eq!(error, Ok(Some(ServiceError::Spawn(thread))));
        }
    }
}
