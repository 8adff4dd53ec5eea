//! Event channels, 2-level ABI (`event_channel.h`, bitmaps in [`SharedInfo`]).
//!
//! - [`abi`]: the bit manipulation on shared_info (mask, pending, the upcall scan), pure
//!   functions over shared memory, tested on the host against a synthetic page.
//! - [`ops`]: the `EVTCHNOP_*` hypercalls (bind, send, unmask, close, status).
//! - [`dispatch`]: the per-port handler table the upcall dispatches into.
//! - [`channels`]: [`EventChannels`], the façade the kernel uses: binds with a handler in the
//!   right order, unmasks by the 2-level rules, runs the upcall.
//!
//! [`SharedInfo`]: crate::shared_info::SharedInfo

pub mod abi;
pub mod channels;
pub mod dispatch;
pub mod ops;

pub use abi::scan_pending;
pub use channels::{EventChannels, EvtchnError};
pub use dispatch::{EventHandler, HandlerTable, PortHandler, UpcallStats};
pub use ops::ChannelStatus;

pub use crate::types::{NR_PORTS, Port, Virq};
