//! The driver interface: what a frontend driver implements to be given the
//! devices of its class (FreeBSD's xenbusb device methods, Linux's
//! `struct xenbus_driver`).

use xenstore::Platform;

use crate::device::Device;
use crate::error::BusError;
use crate::otherend::OtherendState;

/// A driver for one device class, registered with
/// [`crate::Bus::register_driver`].
///
/// Every callback runs on the bus worker thread, one at a time for the
/// whole bus, in the order the events happened. Callbacks may make
/// xenstore requests and may wait (e.g. [`Device::wait_for_otherend`]),
/// but while one waits no other device's callback runs: wait briefly.
/// No lock of the bus is held during a callback.
pub trait Driver<P: Platform>: Send + Sync + 'static {
    /// Whether this driver takes `dev`: read and check its configuration.
    /// Before this is called the bus has read the other end's details
    /// ([`Device::otherend`]) and started watching its state.
    ///
    /// On `Err` the device stays unbound: the bus reports the error to the
    /// toolstack (`error/<nodename>/error`) and switches our state to
    /// Closed, as Linux does when a probe fails. The bus keeps working.
    fn probe(&self, dev: &Device<P>) -> Result<(), BusError>;

    /// Sets the device up after a successful probe. The other end's
    /// current state follows as an [`Driver::otherend_changed`] call (the
    /// watch's first event). An `Err` is handled as a failed probe (the
    /// driver must undo what it did itself).
    fn attach(&self, _dev: &Device<P>) -> Result<(), BusError> {
        Ok(())
    }

    /// The device node was removed (hot-unplug): release everything the
    /// device holds. Afterwards the bus writes Closed to our `state` if the
    /// node still exists. Stopping the bus (dropping its last handle) does
    /// not detach: it stops watching and leaves devices as they are.
    fn detach(&self, dev: &Device<P>);

    /// The other end's `state` node changed (or its directory went away),
    /// in the order the changes were seen. The same state may be reported
    /// twice; transient states may be skipped if the other end moves fast.
    fn otherend_changed(&self, dev: &Device<P>, state: &OtherendState);

    /// The VM is about to suspend: quiesce the device. Errors are logged;
    /// the suspend goes on (as in Linux).
    fn suspend(&self, _dev: &Device<P>) -> Result<(), BusError> {
        Ok(())
    }

    /// The VM resumed, possibly on another host with a fresh store: the
    /// bus has re-read the other end's details and cleared our cached
    /// state, so the next [`Device::switch_state`] writes. Reconnect from
    /// scratch; the other end's state follows as `otherend_changed`.
    /// Errors are reported with `dev_error`.
    fn resume(&self, _dev: &Device<P>) -> Result<(), BusError> {
        Ok(())
    }
}
